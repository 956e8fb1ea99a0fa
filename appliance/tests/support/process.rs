//! Watching a child process: its resident memory while it runs.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Resident memory (VmRSS, KiB) of a process, if it still runs.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Run a child to its end, sampling VmRSS every `every`; returns its output and the samples.
pub fn run_sampled(mut cmd: Command, every: Duration) -> (Output, Vec<u64>) {
    let mut child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let pid = child.id();
    let mut samples = Vec::new();
    // Drain stderr on a thread so a chatty child never blocks on a full pipe.
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            break;
        }
        if let Some(k) = vm_rss_kib(pid) {
            samples.push(k);
        }
        assert!(Instant::now() < deadline, "weir ran for 10 minutes");
        std::thread::sleep(every);
    }
    let mut out = child.wait_with_output().unwrap();
    out.stderr = reader.join().unwrap();
    (out, samples)
}
