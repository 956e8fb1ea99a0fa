//! How much of a worker's time its thread was not running.
//!
//! Every row of the cost table is TSC time: wall time of the core, whoever had it. On a machine
//! where the worker shares its core (a laptop, a CI runner, a VM, other busy threads), the time
//! the kernel gave to someone else lands in whichever stage was running, and a contended run
//! can pass for an expensive stage. So the worker reads, on its own thread, at start and at the
//! end, its thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) and its context switches
//! (`getrusage(RUSAGE_THREAD)`), beside the TSC: wall minus CPU is the time it was not running
//! (descheduled, or blocked, e.g. waiting for the output side). Two reads per run, none per
//! packet.

/// One thread's reads at a point in time.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    tsc: u64,
    cpu_ns: u64,
    nivcsw: u64,
    nvcsw: u64,
}

impl Sample {
    /// The calling thread's TSC, CPU time and context switches now.
    fn now() -> Sample {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own; a failure leaves it zero.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        // SAFETY: an all-zero rusage is valid; getrusage writes into the one we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD of the calling thread into our struct; a failure leaves zeros.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        Sample {
            tsc: super::rdtsc(),
            cpu_ns: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
            nivcsw: ru.ru_nivcsw as u64,
            nvcsw: ru.ru_nvcsw as u64,
        }
    }
}

/// A worker's run: TSC cycles from start to end, thread CPU time in them, context switches.
/// Summed over workers when tables merge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Running {
    start: Sample,
    /// TSC cycles between `begin` and `end` (0 until `end`).
    pub wall_cycles: u64,
    /// Thread CPU time in that span, ns.
    pub cpu_ns: u64,
    /// Involuntary context switches (the kernel took the core away).
    pub involuntary_switches: u64,
    /// Voluntary context switches (the thread blocked).
    pub voluntary_switches: u64,
}

impl Running {
    /// Start measuring, on the worker's own thread.
    pub fn begin() -> Running {
        Running {
            start: Sample::now(),
            ..Running::default()
        }
    }

    /// Stop measuring, on the same thread as `begin` (again later: the span grows).
    pub fn end(&mut self) {
        let now = Sample::now();
        self.wall_cycles = now.tsc.wrapping_sub(self.start.tsc);
        self.cpu_ns = now.cpu_ns.saturating_sub(self.start.cpu_ns);
        self.involuntary_switches = now.nivcsw.saturating_sub(self.start.nivcsw);
        self.voluntary_switches = now.nvcsw.saturating_sub(self.start.nvcsw);
    }

    pub fn add(&mut self, o: &Running) {
        self.wall_cycles += o.wall_cycles;
        self.cpu_ns += o.cpu_ns;
        self.involuntary_switches += o.involuntary_switches;
        self.voluntary_switches += o.voluntary_switches;
    }

    /// Seconds of wall time (TSC) and of thread CPU time.
    pub fn seconds(&self, tsc_hz: f64) -> (f64, f64) {
        (self.wall_cycles as f64 / tsc_hz, self.cpu_ns as f64 / 1e9)
    }

    /// Share of the wall time the thread was not running (0 to 1).
    pub fn not_running_share(&self, tsc_hz: f64) -> f64 {
        let (wall, cpu) = self.seconds(tsc_hz);
        if wall <= 0.0 {
            0.0
        } else {
            ((wall - cpu) / wall).clamp(0.0, 1.0)
        }
    }

    /// One line for the cost table.
    pub fn format(&self, tsc_hz: f64) -> String {
        let (wall, cpu) = self.seconds(tsc_hz);
        format!(
            "worker time not running (descheduled or blocked): {:.1} % ({:.3} s of {:.3} s; \
             thread CPU {:.3} s; {} involuntary and {} voluntary context switches): the rows \
             above are wall time and include it",
            100.0 * self.not_running_share(tsc_hz),
            (wall - cpu).max(0.0),
            wall,
            cpu,
            self.involuntary_switches,
            self.voluntary_switches
        )
    }

    pub fn to_json(&self, tsc_hz: f64) -> serde_json::Value {
        let (wall, cpu) = self.seconds(tsc_hz);
        serde_json::json!({
            "wall_s": wall,
            "cpu_s": cpu,
            "not_running_s": (wall - cpu).max(0.0),
            "share": self.not_running_share(tsc_hz),
            "involuntary_switches": self.involuntary_switches,
            "voluntary_switches": self.voluntary_switches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A thread that sleeps for 200 ms was not running for at least that long; the spin that
    /// follows ran (how much of it depends on the machine's load, so only its presence is
    /// checked).
    #[test]
    fn sleeping_counts_as_not_running_and_spinning_does_not() {
        // The TSC rate over 50 ms of wall time (EAL, which measures it otherwise, is not up).
        let (t0, c0) = (Instant::now(), super::super::rdtsc());
        while t0.elapsed() < Duration::from_millis(50) {
            std::hint::spin_loop();
        }
        let hz = super::super::rdtsc().wrapping_sub(c0) as f64 / t0.elapsed().as_secs_f64();
        let mut r = Running::begin();
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(200) {
            std::hint::spin_loop();
        }
        r.end();
        let (wall, cpu) = r.seconds(hz);
        assert!(wall >= 0.39, "wall {wall}");
        assert!(cpu > 0.01 && cpu <= wall, "cpu {cpu} of {wall}");
        assert!(wall - cpu >= 0.18, "not running {} s", wall - cpu);
        let share = r.not_running_share(hz);
        assert!(share > 0.4 && share < 1.0, "share {share}");
        assert!(r.voluntary_switches >= 1, "the sleep blocked");
        let mut sum = r;
        sum.add(&r);
        assert_eq!(sum.cpu_ns, 2 * r.cpu_ns);
        assert!((sum.not_running_share(hz) - share).abs() < 1e-9);
        assert!(r.format(hz).contains("not running"));
    }
}
