//! The time stamp counter: cheap cycle counts for cost accounting and burst times.

/// Reads the TSC (`rdtsc`, not serialising, like DPDK's `rte_rdtsc`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: the shim wraps DPDK's static-inline rte_rdtsc; no preconditions.
        unsafe { weir_dpdk_sys::rte_rdtsc() }
    }
}

/// TSC ticks per second as measured by EAL (0 before `Eal::init`).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed at init.
    unsafe { weir_dpdk_sys::rte_get_tsc_hz() }
}
