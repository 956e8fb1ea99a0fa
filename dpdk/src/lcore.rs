//! Logical cores: which one we run on, the workers EAL started, and launching work on them.
//!
//! EAL starts one pinned thread per lcore of its `-l`/`--lcores` list; the thread that called
//! `Eal::init` is the main lcore. [`remote_launch`] hands a worker one closure (boxed once per
//! launch); [`wait_lcore`] collects its return value.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::eal::Eal;
use crate::error::{errno_text, Error, Result};

/// Value a launched closure returns to [`wait_lcore`] when it panicked (the panic message is
/// printed by the panic hook as usual).
pub const LAUNCH_PANICKED: i32 = i32::MIN;

/// The calling thread's lcore id, or `None` on a thread EAL did not create.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads the thread-local lcore id through the shim.
    let id = unsafe { weir_dpdk_sys::rte_lcore_id() };
    (id != weir_dpdk_sys::LCORE_ID_ANY).then_some(id)
}

/// The main lcore (the thread that ran `Eal::init`).
pub fn main_lcore() -> u32 {
    // SAFETY: reads EAL's configuration.
    unsafe { weir_dpdk_sys::rte_get_main_lcore() }
}

/// Number of enabled lcores, main included.
pub fn lcore_count() -> u32 {
    // SAFETY: reads EAL's configuration.
    unsafe { weir_dpdk_sys::rte_lcore_count() }
}

/// The enabled worker lcores (all but the main one), in id order.
pub fn worker_lcores() -> impl Iterator<Item = u32> {
    let mut prev: u32 = u32::MAX; // rte_get_next_lcore starts after `i`; -1 means "from 0"
    std::iter::from_fn(move || {
        // SAFETY: reads EAL's configuration; skip_main=1, wrap=0.
        let next = unsafe { weir_dpdk_sys::rte_get_next_lcore(prev, 1, 0) };
        if next >= weir_dpdk_sys::RTE_MAX_LCORE {
            return None;
        }
        prev = next;
        Some(next)
    })
}

/// NUMA socket of `lcore` (0 on a single-socket machine).
pub fn lcore_socket(lcore: u32) -> u32 {
    // SAFETY: EAL bounds-checks the id and returns its configuration.
    unsafe { weir_dpdk_sys::rte_lcore_to_socket_id(lcore) }
}

/// NUMA socket of the calling thread.
pub fn socket_id() -> u32 {
    // SAFETY: reads a thread-local value.
    unsafe { weir_dpdk_sys::rte_socket_id() }
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by remote_launch, handed to exactly one call.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C.
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(LAUNCH_PANICKED)
}

/// Runs `f` on worker `lcore`, which must be idle. The closure is boxed once per launch.
pub fn remote_launch<F>(lcore: u32, f: F) -> Result<()>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let _eal = Eal::require("remote_launch")?;
    if lcore == main_lcore() {
        return Err(Error::Lcore {
            lcore,
            reason: "is the main lcore; only workers can be launched".into(),
        });
    }
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: the trampoline takes ownership of `arg` if and only if the launch succeeds.
    let ret = unsafe { weir_dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if ret != 0 {
        // SAFETY: not launched, so we still own the box.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(Error::Lcore {
            lcore,
            reason: format!(
                "cannot launch: {} (is it enabled in the EAL core list and idle?)",
                errno_text(ret)
            ),
        });
    }
    Ok(())
}

/// Waits for the closure launched on `lcore` and returns its value (0 if nothing ran).
pub fn wait_lcore(lcore: u32) -> i32 {
    // SAFETY: EAL checks the id; waits on the worker's state.
    unsafe { weir_dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// Waits for every worker lcore to finish what it was launched with.
pub fn mp_wait_lcore() {
    // SAFETY: waits on EAL's worker states.
    unsafe { weir_dpdk_sys::rte_eal_mp_wait_lcore() }
}
