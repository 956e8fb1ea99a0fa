//! `weir run` on a DPDK virtual device (net_pcap, no hugepages, no PCI) must never lose what
//! an earlier run wrote, and must let logrotate move its files: run twice on one records path
//! and both runs' records are in it (one header); rename the records and alerts files under a
//! running weir, send SIGUSR1, and the later records go to new files at the configured paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("weir.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn spawn(cfg: &Path, duration_s: u64) -> Child {
    crate::support::run::weir()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--duration-s", &duration_s.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir run")
}

/// Wait for weir to exit successfully; its stderr.
fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "weir run failed ({}):\n{err}",
        out.status
    );
    err
}

/// The records of weir's summary line ("... -> R flow records ...").
fn reported_records(err: &str) -> u64 {
    let line = err
        .lines()
        .find(|l| l.starts_with("weir run:"))
        .unwrap_or_else(|| panic!("no summary:\n{err}"));
    let (_, rest) = line.split_once("->").expect("-> in the summary");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// (header lines, data lines) of a CSV records file.
fn csv_lines(p: &Path, header: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(p).unwrap();
    let headers = text.lines().filter(|l| *l == header).count();
    (headers, text.lines().count() - headers)
}

const EAL: &str = "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 512\n";

#[test]
fn a_second_run_appends_to_the_records_of_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let capture = crate::support::paths::data_dir().join("pcaps/instagram.pcap");
    let records = tmp.path().join("flows.csv");
    let alerts = tmp.path().join("alerts.jsonl");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{EAL}\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n\n[sinks]\nrecords = \"{}\"\nalerts = \"{}\"\n",
            capture.display(),
            records.display(),
            alerts.display(),
        ),
    );
    let first = reported_records(&finish(spawn(&cfg, 2)));
    assert!(first > 0, "the capture gives records");
    let text = std::fs::read_to_string(&records).unwrap();
    let header = text.lines().next().unwrap().to_string();
    assert_eq!(csv_lines(&records, &header), (1, first as usize));
    let second = reported_records(&finish(spawn(&cfg, 2)));
    assert_eq!(second, first, "the same capture again");
    assert_eq!(
        csv_lines(&records, &header),
        (1, (first + second) as usize),
        "both runs' records, under one header"
    );
    // The CSV parses as one table.
    let rows = crate::support::records::read_csv(&records);
    assert_eq!(rows.len() as u64, first + second);
}

#[test]
fn sigusr1_after_a_rename_writes_new_files() {
    let tmp = tempfile::tempdir().unwrap();
    let capture = crate::support::paths::data_dir().join("pcaps/instagram.pcap");
    let records = tmp.path().join("flows.csv");
    let alerts = tmp.path().join("alerts.jsonl");
    // infinite_rx replays the capture for ever; a short active timeout turns it into a steady
    // stream of records, flushed every 0.1 s.
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{EAL}\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\n[flows]\nactive_timeout_s = 0.05\n\n[sinks]\nrecords = \"{}\"\nalerts = \"{}\"\nflush_s = 0.1\n",
            capture.display(),
            records.display(),
            alerts.display(),
        ),
    );
    let child = spawn(&cfg, 6);
    let t0 = Instant::now();
    // Records reach the file (flushed) while weir runs.
    while std::fs::metadata(&records).map(|m| m.len()).unwrap_or(0) < 4096 {
        assert!(t0.elapsed() < Duration::from_secs(5), "no records flushed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // What logrotate does without copytruncate: rename, then signal.
    let rotated = tmp.path().join("flows.csv.1");
    let rotated_alerts = tmp.path().join("alerts.jsonl.1");
    std::fs::rename(&records, &rotated).unwrap();
    std::fs::rename(&alerts, &rotated_alerts).unwrap();
    // SAFETY: signalling the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) }, 0);
    let err = finish(child);
    let total = reported_records(&err);
    assert!(
        records.exists(),
        "a new records file at the configured path"
    );
    assert!(alerts.exists(), "a new alerts file at the configured path");
    let header = std::fs::read_to_string(&rotated)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let (h1, n1) = csv_lines(&rotated, &header);
    let (h2, n2) = csv_lines(&records, &header);
    assert_eq!((h1, h2), (1, 1), "each file has its header");
    assert!(n1 > 0 && n2 > 0, "records in both files: {n1}, {n2}");
    assert_eq!((n1 + n2) as u64, total, "no record lost across the reopen");
}
