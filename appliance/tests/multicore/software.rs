//! `weir run` with two workers on a port that cannot spread flows (net_pcap, one RX queue):
//! the software spreader on the main lcore hashes each packet's flow and hands it to its
//! worker over a ring behind a net_ring port. Every flow must be seen by exactly one worker,
//! and the records must equal a one-worker `weir extract` of the capture.
//!
//! net_pcap gives the capture's microsecond timestamps and its captured length (the captures
//! here are not truncated, so that is the wire length), and never signals the end of the
//! file: the run ends with `--stop-after-idle-ms` once no packet came for 500 ms after the
//! first; `workers.spread_full = "wait"` makes the replay lossless (net_pcap reads as fast as
//! it is polled), and the test checks the port received every packet of the capture.
//!
//! Also: `workers.spread = "rss"` with 2 workers on net_pcap is refused, with a message naming
//! the port, its driver, both numbers and the software alternative.

use crate::support::{oracle::*, paths::*, records::*, run::*};
use std::path::Path;

/// Captures without truncation, frames under 2 KB, timestamps in order; with VLAN tags
/// (4in4tunnel, mongodb), tunnels (4in4, 6in6, GTP-U, IPv6 in GTP), IPv6, IP fragments, and
/// many flows (synscan).
const CAPTURES: &[&str] = &[
    "4in4tunnel.pcap",
    "6in6tunnel.pcap",
    "gtp-u.pcap",
    "ipv6_in_gtp.pcap",
    "mongodb.pcap",
    "dns_fragmented.pcap",
    "synscan.pcap",
    "quic.pcap",
    "skype.pcap",
    "bittorrent.pcap",
];

fn config(dir: &Path, capture: &Path, spread: &str, records: &Path) -> std::path::PathBuf {
    config_with(dir, capture, spread, "wait", 4096, records)
}

fn config_with(
    dir: &Path,
    capture: &Path,
    spread: &str,
    full: &str,
    ring: u32,
    records: &Path,
) -> std::path::PathBuf {
    let text = format!(
        r#"[eal]
no_huge = true
no_pci = true
memory_mb = 512

[[ports]]
vdev = "net_pcap0,rx_pcap={}"

[workers]
count = 2
spread = "{spread}"
spread_full = "{full}"
spread_ring = {ring}

[plugins]
dir = "{}"

[sinks]
records = "{}"

[log]
status_interval_s = 0
"#,
        capture.display(),
        plugin_dir().display(),
        records.display()
    );
    let p = dir.join(format!("{spread}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn software_spreading_puts_each_flow_on_one_worker_and_matches_extract() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut per_worker_total = [0usize; 2];
    for name in CAPTURES {
        let capture = pcap(name);
        let records = dir.path().join(format!("{name}.run.csv"));
        let cfg = config(dir.path(), &capture, "software", &records);
        let o = weir_logging("info")
            .args(["run", "--stop-after-idle-ms", "500", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let log = log_text(&o.stderr);
        assert!(o.status.success(), "{name}: weir run failed\n{log}");
        assert!(
            log.contains("path=\"software\"")
                && log.contains("software spreading on the main lcore"),
            "{name}: the log does not say the software path runs\n{log}"
        );
        let expected = packets_in(&capture);
        assert!(
            log.contains(&format!("weir run: {expected} packets")),
            "{name}: workers did not get all {expected} packets of the capture\n{log}"
        );
        let got = read_csv(&records);
        let per = assert_one_worker_per_flow(&got, name);
        per_worker_total[0] += per.get("0").copied().unwrap_or(0);
        per_worker_total[1] += per.get("1").copied().unwrap_or(0);
        let oracle = extract(
            std::slice::from_ref(&capture),
            1,
            &dir.path().join(format!("{name}.1.csv")),
        );
        assert!(!oracle.is_empty(), "{name}: no flows");
        let diffs = compare(&oracle, &got, &key_with_time, None);
        if !diffs.is_empty() {
            failures.push(format!(
                "{name}: {}",
                diffs[..diffs.len().min(5)].join("; ")
            ));
        }
    }
    eprintln!("flows per worker: {per_worker_total:?}");
    assert!(
        per_worker_total.iter().all(|&n| n > 0),
        "one worker got no flow: {per_worker_total:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rss_with_more_workers_than_queues_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = pcap("quic.pcap");
    let cfg = config(dir.path(), &capture, "rss", &dir.path().join("r.csv"));
    let o = weir_logging("info")
        .args(["run", "--stop-after-idle-ms", "500", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let log = log_text(&o.stderr);
    assert!(
        !o.status.success(),
        "2 workers on net_pcap with spread = rss ran\n{log}"
    );
    for needle in [
        "port net_pcap0",
        "driver net_pcap",
        "supports 1 RX queue",
        "workers.count is 2",
        "workers.spread = \"software\"",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} missing from the refusal:\n{log}"
        );
    }
    assert!(
        !log.contains("running;"),
        "workers started before the refusal\n{log}"
    );
}

/// The numbers between `key=[` and `]` in a log line, e.g. `per_worker=[3, 4]`.
fn list(line: &str, key: &str) -> Vec<u64> {
    line.split(&format!("{key}=["))
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .split(',')
        .map(|x| x.trim().parse().unwrap())
        .collect()
}

/// `workers.spread_full = "drop"` with the smallest ring: whatever the workers could not take
/// is counted, per worker, and nothing goes missing uncounted: received = handed to workers +
/// dropped at full rings, and the workers processed exactly what was handed to them.
#[test]
fn drop_policy_counts_every_packet_it_does_not_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let capture = pcap("skype.pcap");
    let records = dir.path().join("drop.csv");
    let cfg = config_with(dir.path(), &capture, "software", "drop", 64, &records);
    let o = weir_logging("info")
        .args(["run", "--stop-after-idle-ms", "500", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let log = log_text(&o.stderr);
    assert!(o.status.success(), "weir run failed\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("software spreading statistics"))
        .unwrap_or_else(|| panic!("no spreading statistics:\n{log}"));
    let received: u64 = line
        .split("received=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let to_worker = list(line, "per_worker");
    let ring_full = list(line, "ring_full");
    assert_eq!(received, packets_in(&capture), "{line}");
    assert_eq!(
        received,
        to_worker.iter().sum::<u64>() + ring_full.iter().sum::<u64>(),
        "{line}"
    );
    let processed: u64 = to_worker.iter().sum();
    assert!(
        log.contains(&format!("weir run: {processed} packets")),
        "workers did not process exactly the {processed} packets handed to them:\n{log}"
    );
    let dropped: u64 = ring_full.iter().sum();
    assert_eq!(
        dropped > 0,
        log.contains("packets dropped by the software spreader"),
        "drops must be warned about exactly when there are some:\n{log}"
    );
    eprintln!("{line}");
}
