//! Watching a child process: its resident memory while it runs.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Resident memory the process owns (RssAnon + RssShmem, KiB), if it still runs. File-backed
/// pages (RssFile) are left out: `weir extract` maps the capture and hands its frames to the
/// workers in place, so the pages of the capture it has read are resident page cache that grows
/// with the capture's size and that the kernel reclaims at will; they are not weir's memory.
pub fn owned_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(field("RssAnon:")? + field("RssShmem:")?)
}

/// Run a child to its end, sampling its owned resident memory ([`owned_rss_kib`]) every `every`; returns its output and the samples.
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
        if let Some(k) = owned_rss_kib(pid) {
            samples.push(k);
        }
        assert!(Instant::now() < deadline, "weir ran for 10 minutes");
        std::thread::sleep(every);
    }
    let mut out = child.wait_with_output().unwrap();
    out.stderr = reader.join().unwrap();
    (out, samples)
}

/// `weir run --config cfg` started inside network namespace `ns` (`ip netns exec` execs weir,
/// so the child's pid is weir's), returned once it logs that it is running, with a thread
/// collecting its stderr (joined: the whole log). Panics with the log if weir exits first or
/// does not start within 60 s.
pub fn weir_run_in_netns(
    ns: &str,
    cfg: &std::path::Path,
) -> (Child, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(super::run::weir_bin())
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start weir in the namespace");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all.join("\n")
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.contains("running;") => return (child, reader),
            Ok(_) => {}
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("weir did not start within 60 s");
            }
            Err(_) => {
                if let Ok(Some(st)) = child.try_wait() {
                    let log = reader.join().unwrap_or_default();
                    panic!("weir exited before running ({st}):\n{log}");
                }
            }
        }
    }
}
