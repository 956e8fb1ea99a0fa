//! A worker that panics stops the run cleanly: the panic is caught on its lcore, the spreader
//! (`spread_full = "wait"`) and the extract feeder stop waiting for its ring, the other workers
//! drain and flush their open flows, and weir exits non-zero naming the worker and the panic
//! message. The panic is made on the real data path by the test-only hook
//! `WEIR_TEST_PANIC_WORKER=W:N` (worker W panics once it received N packets).
//!
//! Before the fix both commands hung (the spreader and the feeder waited forever for the dead
//! worker's full ring): each run here is killed after a deadline and that counts as a failure.

use crate::support::{paths::*, records::*, run::*};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Run `cmd` with stderr to a file; `None` if it had to be killed after `limit`.
fn run_with_deadline(
    mut cmd: std::process::Command,
    log: &Path,
    limit: Duration,
) -> Option<(std::process::ExitStatus, String)> {
    let f = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::from(f))
        .spawn()
        .expect("start weir");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, std::fs::read_to_string(log).unwrap_or_default()));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_dead_worker_outcome(
    what: &str,
    outcome: Option<(std::process::ExitStatus, String)>,
    records: &Path,
) {
    let (status, log) = outcome.unwrap_or_else(|| panic!("{what}: hung after worker 1 panicked"));
    assert!(
        !status.success(),
        "{what}: exit 0 after a worker panicked\n{log}"
    );
    assert!(
        log.contains("worker 1 panicked: WEIR_TEST_PANIC_WORKER: worker 1 panics after"),
        "{what}: the reason is not given\n{log}"
    );
    assert!(
        log.contains("the other workers' open flows were flushed"),
        "{what}\n{log}"
    );
    // Worker 0's records are written (flushed at the end); none of worker 1's open flows.
    let rows = read_csv(records);
    assert!(!rows.is_empty(), "{what}: no records written\n{log}");
    assert!(
        rows.iter().all(|r| r["worker"] == "0"),
        "{what}: records of the dead worker"
    );
    assert!(
        rows.iter().any(|r| r["expiration_id"] == "-1"),
        "{what}: worker 0's open flows were not flushed at the end"
    );
}

#[test]
fn extract_stops_cleanly_when_a_worker_panics() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("x.csv");
    // Far more packets than worker 1's ring (4,096) and the mempool hold after it died.
    let caps: Vec<_> = (0..6).map(|_| pcap("instagram.pcap")).collect();
    let mut cmd = weir_logging("info");
    cmd.env("WEIR_TEST_PANIC_WORKER", "1:50")
        .arg("extract")
        .args(&caps)
        .arg("--out")
        .arg(&records)
        .args(["--workers", "2", "--quiet", "--plugin-dir"])
        .arg(plugin_dir());
    let out = run_with_deadline(cmd, &dir.path().join("log"), Duration::from_secs(120));
    check_dead_worker_outcome("weir extract", out, &records);
}

#[test]
fn run_stops_cleanly_when_a_worker_panics() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("r.csv");
    let cfg = dir.path().join("run.toml");
    // A replay that never ends (infinite_rx), spread in software with `wait` into small rings.
    std::fs::write(
        &cfg,
        format!(
            r#"[eal]
no_huge = true
no_pci = true
memory_mb = 512

[[ports]]
vdev = "net_pcap0,rx_pcap={},infinite_rx=1"

[workers]
count = 2
spread = "software"
spread_full = "wait"
spread_ring = 64

[plugins]
dir = "{}"

[sinks]
records = "{}"

[log]
status_interval_s = 0
"#,
            pcap("skype.pcap").display(),
            plugin_dir().display(),
            records.display()
        ),
    )
    .unwrap();
    let mut cmd = weir_logging("info");
    cmd.env("WEIR_TEST_PANIC_WORKER", "1:50")
        .args(["run", "--config"])
        .arg(&cfg);
    let out = run_with_deadline(cmd, &dir.path().join("log"), Duration::from_secs(120));
    check_dead_worker_outcome("weir run", out, &records);
}
