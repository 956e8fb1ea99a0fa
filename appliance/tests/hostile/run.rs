//! `weir run` under faults: SIGTERM and SIGINT in the middle of a run
//! on endless traffic (net_pcap with `infinite_rx=1`) flush every open flow through the sinks,
//! and the packets in the records equal the packets the workers accepted and the port
//! received; a mempool too small for the traffic is counted as no-mbuf by the port while the
//! run goes on.
//!
//! The oracles: the port's own statistics (DPDK's `rte_eth_stats`, logged by weir at the end)
//! and the records file, against weir's summary line.

use crate::support::{frames::*, paths::*, pcap::*, records::*, run::*};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run's end: (packets, accepted, records) of weir's summary line, and the port's
/// (rx_packets, nombuf).
struct RunEnd {
    packets: u64,
    accepted: u64,
    records: u64,
    rx_packets: u64,
    nombuf: u64,
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let digits: String = text[i..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The text without ANSI colour sequences (the human log format colours keys and values).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_end(stderr: &str) -> RunEnd {
    let stderr = &plain(stderr);
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("weir run: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let port = stderr
        .lines()
        .find(|l| l.contains("port statistics"))
        .unwrap_or_else(|| panic!("no port statistics in:\n{stderr}"));
    RunEnd {
        packets: number_after(summary, "weir run:").unwrap(),
        accepted: number_after(summary, "(").unwrap(),
        records: number_after(summary, "->").unwrap(),
        rx_packets: number_after(port, "rx_packets=").unwrap(),
        nombuf: number_after(port, "nombuf=").unwrap(),
    }
}

fn run_config(dir: &Path, capture: &Path, extra: &str) -> std::path::PathBuf {
    run_config_with(dir, capture, ",infinite_rx=1", extra)
}

fn run_config_with(dir: &Path, capture: &Path, vdev_opts: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("weir.toml");
    let text = format!(
        "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 256\n\n\
         [[ports]]\nvdev = \"net_pcap0,rx_pcap={}{vdev_opts}\"\n\n\
         [sinks]\nrecords = \"{}\"\n\n[log]\nstatus_interval_s = 1\n{extra}",
        capture.display(),
        dir.join("flows.csv").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// Start `weir run`, let it receive for `after`, send `signal`, and wait for its end.
fn run_then_signal(
    config: &Path,
    after: Duration,
    signal: i32,
) -> (std::process::Output, Duration) {
    let mut cmd = Command::new(weir_bin());
    cmd.env("RUST_LOG", "info")
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !plugins_built() {
        panic!("weir run loads the plugins beside the binary: build them first (make build)");
    }
    let child = cmd.spawn().unwrap();
    std::thread::sleep(after);
    // SAFETY: kill(2) on the pid of our own child, still unreaped (we have not waited).
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0);
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    (o, t.elapsed())
}

fn signal_flushes_everything(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    // Many flows, so many are open when the signal comes.
    let cap = dir.path().join("traffic.pcap");
    write_pcap(
        &cap,
        &random_flood(signal as u64, 3000),
        1_700_000_000_000_000_000,
        1000,
    );
    let cfg = run_config(dir.path(), &cap, "");
    let (o, stop_time) = run_then_signal(&cfg, Duration::from_secs(4), signal);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "weir run failed after signal {signal}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let end = parse_end(&err);
    let (rows, packets, by_exp) = csv_totals(&dir.path().join("flows.csv"));
    eprintln!(
        "signal {signal}: stopped in {stop_time:?}; {} packets received by the port, {} by the \
         workers, {} accepted, {} records ({rows} rows, {packets} packets), by expiration {by_exp:?}",
        end.rx_packets, end.packets, end.accepted, end.records
    );
    assert!(end.packets > 10_000, "too little traffic to mean anything");
    // Everything the port delivered reached a worker, and everything accepted is in a record.
    assert_eq!(end.packets, end.rx_packets, "port rx vs worker packets");
    assert_eq!(end.accepted, end.packets, "every generated packet parses");
    assert_eq!(packets, end.accepted, "packets in the records vs accepted");
    assert_eq!(rows, end.records);
    // The open flows ended at shutdown (expiration_id -1), all of them.
    assert!(by_exp.get("-1").copied().unwrap_or(0) >= 3000, "{by_exp:?}");
    assert!(
        stop_time < Duration::from_secs(10),
        "slow to stop: {stop_time:?}"
    );
}

#[test]
fn sigterm_mid_run_flushes_every_open_flow() {
    signal_flushes_everything(libc::SIGTERM);
}

#[test]
fn sigint_mid_run_flushes_every_open_flow() {
    signal_flushes_everything(libc::SIGINT);
}

/// A mempool smaller than one burst: the port counts no-mbuf, the run goes on receiving, and
/// nothing received is lost after that. (net_pcap's `infinite_rx` mode preloads the capture
/// into the pool and does not count no-mbuf, so this reads the file once.) Every packet of
/// the capture is either received or counted as no-mbuf by the port.
#[test]
fn mempool_exhaustion_is_counted_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("traffic.pcap");
    let n = 100_000u64;
    write_pcap(
        &cap,
        &random_flood(99, n as usize),
        1_700_000_000_000_000_000,
        1000,
    );
    let cfg = run_config_with(dir.path(), &cap, "", "\n[workers]\nmbufs = 48\n");
    let (o, _) = run_then_signal(&cfg, Duration::from_secs(3), libc::SIGTERM);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "weir run with 48 mbufs failed:\n{err}");
    let end = parse_end(&err);
    let (_, packets, _) = csv_totals(&dir.path().join("flows.csv"));
    eprintln!(
        "48 mbufs: {} received, {} no-mbuf, {} packets in records",
        end.rx_packets, end.nombuf, packets
    );
    assert!(
        end.nombuf > 0,
        "no no-mbuf counted with 48 mbufs and bursts of 64:\n{err}"
    );
    assert!(
        end.rx_packets > 10 * 48,
        "the run did not recover from exhaustion"
    );
    assert_eq!(
        end.rx_packets + end.nombuf,
        n,
        "received + no-mbuf vs the capture"
    );
    assert_eq!(end.packets, end.rx_packets);
    assert_eq!(packets, end.accepted);
}
