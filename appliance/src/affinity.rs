//! Thread placement off the data path. EAL pins the main thread and each worker to one lcore,
//! and a thread inherits its creator's pin: helper threads that should use whatever CPU is
//! free (the table prefault) unpin themselves first.

/// CPUs online (at least 1).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Let the calling thread run on any CPU this process may use: the kernel narrows the set
/// to the process's cpuset. A failure leaves the inherited pin, which is only slower.
pub fn unpin_current_thread() {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it for indices below
    // CPU_SETSIZE; sched_setaffinity reads size_of::<cpu_set_t>() bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        for c in 0..online_cpus().min(libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unpinned_thread_may_run_on_every_online_cpu() {
        std::thread::spawn(|| {
            // SAFETY: pins this test thread to CPU 0 (always online), then reads its set.
            unsafe {
                let mut one: libc::cpu_set_t = core::mem::zeroed();
                libc::CPU_SET(0, &mut one);
                libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &one);
            }
            super::unpin_current_thread();
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            // The test process may itself be limited (taskset, cpuset): at most that many.
            assert!(n >= 1);
            // SAFETY: reads the calling thread's CPU set into a zeroed set.
            let count = unsafe {
                let mut set: libc::cpu_set_t = core::mem::zeroed();
                libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set);
                libc::CPU_COUNT(&set) as usize
            };
            let allowed = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Cpus_allowed_list"))
                        .map(|l| l.to_string())
                })
                .unwrap_or_default();
            assert!(
                count > 1 || super::online_cpus() == 1 || allowed.is_empty(),
                "still pinned to one CPU after unpinning ({count}; {allowed})"
            );
        })
        .join()
        .unwrap();
    }
}
