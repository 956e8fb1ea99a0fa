//! A worker lcore that panics: catching the panic on its lcore, keeping its message, and
//! telling the rest of the run (`weir run`, `weir extract`), which then stops feeding and
//! spreading, lets the other workers drain and flush, and exits non-zero naming the worker and
//! the message. A panicked worker's own open flows are not flushed: its state is not trusted.
//!
//! Also the test-only hook that makes a worker panic on its data path:
//! `WEIR_TEST_PANIC_WORKER=W:N` makes worker `W` panic once it has received `N` packets. It
//! is read once per worker at start and costs one comparison per burst.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// The workers that panicked: (worker index, panic message).
#[derive(Default)]
pub struct DeadWorkers(Mutex<Vec<(usize, String)>>);

impl DeadWorkers {
    fn push(&self, w: usize, msg: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((w, msg));
    }

    /// The first worker that panicked, if one did.
    pub fn first(&self) -> Option<(usize, String)> {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().min_by_key(|d| d.0).cloned()
    }

    /// Run worker `w`'s body; a panic is recorded, `on_panic` runs (raise the run's flags),
    /// and the lcore returns `dpdk::lcore::LAUNCH_PANICKED`.
    pub fn run(&self, w: usize, body: impl FnOnce() -> i32, on_panic: impl FnOnce()) -> i32 {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(rc) => rc,
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                tracing::error!(worker = w, panic = %msg, "worker panicked: stopping the run");
                self.push(w, msg);
                on_panic();
                weir_dpdk::lcore::LAUNCH_PANICKED
            }
        }
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Test hook: the packet count at which worker `w` must panic, from `WEIR_TEST_PANIC_WORKER`.
pub fn test_panic_at(w: usize) -> Option<u64> {
    let v = std::env::var("WEIR_TEST_PANIC_WORKER").ok()?;
    let (worker, n) = v.split_once(':')?;
    (worker.trim().parse::<usize>().ok()? == w)
        .then(|| n.trim().parse::<u64>().ok())
        .flatten()
}

/// Panic (test hook) when `packets` reached `at`.
#[inline]
pub fn maybe_test_panic(w: usize, at: Option<u64>, packets: u64) {
    if let Some(n) = at {
        if packets >= n {
            panic!("WEIR_TEST_PANIC_WORKER: worker {w} panics after {packets} packets");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_caught_with_their_message() {
        let d = DeadWorkers::default();
        let mut raised = false;
        assert_eq!(d.run(0, || 0, || raised = true), 0);
        assert!(!raised && d.first().is_none());
        let rc = d.run(3, || panic!("boom {}", 7), || raised = true);
        assert_eq!(rc, weir_dpdk::lcore::LAUNCH_PANICKED);
        assert!(raised);
        assert_eq!(d.first(), Some((3, "boom 7".to_string())));
    }
}
