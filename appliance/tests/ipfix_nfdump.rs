//! IPFIX export against a real collector: nfdump's `nfcapd` listens on loopback, `weir extract`
//! exports the flows of bundled captures (IPv4, IPv6, VLAN-tagged) to it while writing CSV,
//! and `nfdump -r` reads back the same flows (key, VLAN), packets and bytes per direction
//! (RFC 5103 reverse counters are nfdump's out packets/bytes), first/last times and end reason
//! as weir's CSV says. Also: every column as enterprise elements over a larger MTU with
//! frequent template refresh (the collector must skip what it does not know and keep up), and
//! a collector that is down (counted, the run and the CSV complete).
//!
//! nfdump is in the Makefile's APT_PACKAGES; without it this test says so and passes.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Captures with IPv4 and IPv6 flows (1kxun, http_ipv6) and 802.1Q tags (mongodb).
const CAPTURES: [&str; 3] = ["1kxun.pcap", "http_ipv6.pcap", "mongodb.pcap"];

fn have_nfdump() -> bool {
    let ok = |bin: &str| {
        Command::new(bin)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok("nfcapd") && ok("nfdump")
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `nfcapd` writing into `dir`.
struct Collector {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Collector {
    fn start(dir: &Path) -> Collector {
        let flows = dir.join("flows");
        std::fs::create_dir_all(&flows).unwrap();
        let port = free_udp_port();
        let log = std::fs::File::create(dir.join("nfcapd.log")).unwrap();
        let child = Command::new("nfcapd")
            .args([
                "-w",
                flows.to_str().unwrap(),
                "-b",
                "127.0.0.1",
                "-t",
                "3600",
            ])
            // A socket buffer for the burst an extract sends at the end of a capture (the
            // default 208 KiB drops datagrams: RcvbufErrors).
            .args(["-B", "4194304"])
            .args(["-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nfcapd");
        // Ready once it says it bound its socket.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(dir.join("nfcapd.log")).unwrap_or_default();
            if text.contains("Startup") {
                break;
            }
            assert!(Instant::now() < deadline, "nfcapd did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Collector {
            child,
            dir: flows,
            port,
        }
    }

    /// SIGTERM (nfcapd closes its file), then the flows it stored, through `nfdump -o raw`.
    fn stop_and_read(mut self) -> Vec<HashMap<String, String>> {
        // Let it read what is still in its socket buffer.
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "nfcapd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.starts_with("nfcapd.") && !n.contains("current")
            })
            .collect();
        assert_eq!(files.len(), 1, "one closed nfcapd file: {files:?}");
        let out = Command::new("nfdump")
            .arg("-r")
            .arg(&files[0])
            .args(["-o", "raw"])
            .output()
            .expect("nfdump");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_raw(&String::from_utf8_lossy(&out.stdout))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `nfdump -o raw`: blocks of `name = value` lines, one per flow.
fn parse_raw(text: &str) -> Vec<HashMap<String, String>> {
    let mut flows = Vec::new();
    for block in text.split("Flow Record:").skip(1) {
        let mut m = HashMap::new();
        for line in block.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim();
                // `first = 1470104377634 [2016-08-02 ...]`: the number.
                let v = v.split(" [").next().unwrap().to_string();
                m.insert(k.trim().to_string(), v);
            }
        }
        flows.push(m);
    }
    flows
}

/// What both sides must agree on, per flow: the key and VLAN, first and last times, packets
/// and bytes forward then reverse, and the end reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Flow {
    key: (IpAddr, u16, IpAddr, u16, u8, u16),
    times: (u64, u64),
    counts: (u64, u64, u64, u64),
    end_reason: u8,
}

fn weir_flows(csv: &Path) -> Vec<Flow> {
    let mut v: Vec<Flow> = read_csv(csv)
        .iter()
        .map(|r| {
            let n = |c: &str| -> u64 { r[c].parse().unwrap_or_else(|_| panic!("{c}: {}", r[c])) };
            // flowEndReason of weir's expiration_id (RFC 5102 §5.11.3).
            let reason = match r["expiration_id"].as_str() {
                "0" => 1,
                "1" => 2,
                "3" => 3,
                "-1" => 4,
                "2" => 5,
                other => panic!("expiration_id {other}"),
            };
            Flow {
                key: (
                    r["src_ip"].parse().unwrap(),
                    n("src_port") as u16,
                    r["dst_ip"].parse().unwrap(),
                    n("dst_port") as u16,
                    n("protocol") as u8,
                    n("vlan_id") as u16,
                ),
                times: (
                    n("bidirectional_first_seen_ms"),
                    n("bidirectional_last_seen_ms"),
                ),
                counts: (
                    n("src2dst_packets"),
                    n("src2dst_bytes"),
                    n("dst2src_packets"),
                    n("dst2src_bytes"),
                ),
                end_reason: reason,
            }
        })
        .collect();
    v.sort();
    v
}

fn nfdump_flows(raw: &[HashMap<String, String>]) -> Vec<Flow> {
    let mut v: Vec<Flow> = raw
        .iter()
        .map(|m| {
            let s = |k: &str| -> &str { m.get(k).unwrap_or_else(|| panic!("no `{k}` in {m:?}")) };
            let n = |k: &str| -> u64 { s(k).parse().unwrap_or_else(|_| panic!("{k}: {}", s(k))) };
            let proto: u8 = s("proto")
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let reason = s("end reason").split_whitespace().next().unwrap();
            Flow {
                key: (
                    s("src addr").parse().unwrap(),
                    n("src port") as u16,
                    s("dst addr").parse().unwrap(),
                    n("dst port") as u16,
                    proto,
                    n("src vlan") as u16,
                ),
                times: (n("first"), n("last")),
                counts: (
                    n("in packets"),
                    n("in bytes"),
                    n("out packets"),
                    n("out bytes"),
                ),
                end_reason: u8::from_str_radix(reason.trim_start_matches("0x"), 16).unwrap(),
            }
        })
        .collect();
    v.sort();
    v
}

fn assert_same(weir: &[Flow], nf: &[Flow]) {
    let diff: Vec<String> = weir
        .iter()
        .zip(nf)
        .filter(|(a, b)| a != b)
        .take(5)
        .map(|(a, b)| format!("weir   {a:?}\nnfdump {b:?}"))
        .collect();
    assert!(
        weir.len() == nf.len() && diff.is_empty(),
        "weir wrote {} flows, nfdump read {}; first differences:\n{}",
        weir.len(),
        nf.len(),
        diff.join("\n")
    );
}

fn captures_args() -> Vec<PathBuf> {
    CAPTURES
        .iter()
        .map(|c| data_dir().join("pcaps").join(c))
        .collect()
}

fn extract(dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, serde_json::Value) {
    let csv = dir.join(format!("{name}.csv"));
    let stats = dir.join(format!("{name}.json"));
    let out = weir()
        .arg("extract")
        .args(captures_args())
        .arg("--out")
        .arg(&csv)
        .arg("--stats")
        .arg(&stats)
        .args(["--quiet", "--no-progress"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weir extract failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    (csv, st)
}

#[test]
fn nfcapd_reads_back_weirs_flows_packets_bytes_and_times() {
    if !have_nfdump() {
        eprintln!("SKIPPED: nfcapd/nfdump not installed (Debian package `nfdump`; `make deps` installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nf = Collector::start(dir.path());
    let (csv, st) = extract(
        dir.path(),
        "flag",
        &["--ipfix", &format!("127.0.0.1:{}", nf.port)],
    );
    let raw = nf.stop_and_read();
    let w = weir_flows(&csv);
    assert!(w.len() > 100, "{} flows", w.len());
    assert!(w.iter().any(|f| f.key.0.is_ipv6()) && w.iter().any(|f| f.key.0.is_ipv4()));
    assert!(w.iter().any(|f| f.key.5 != 0), "a VLAN-tagged flow");
    assert!(
        w.iter().any(|f| f.counts.2 > 0),
        "flows with reverse packets"
    );
    assert_eq!(st["ipfix"]["records_sent"], st["records_written"], "{st}");
    assert_eq!(st["ipfix"]["send_errors"], 0, "{st}");
    assert_same(&w, &nfdump_flows(&raw));
}

#[test]
fn every_column_over_a_large_mtu_with_template_refresh_from_the_config() {
    if !have_nfdump() {
        eprintln!("SKIPPED: nfcapd/nfdump not installed (Debian package `nfdump`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nf = Collector::start(dir.path());
    let cfg = dir.path().join("weir.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sinks]\nipfix = \"127.0.0.1:{}\"\nipfix_columns = [\"*\"]\nipfix_mtu = 8000\nipfix_template_refresh_messages = 2\nipfix_observation_domain = 9\nipfix_max_messages_per_s = 2000\n",
            nf.port
        ),
    )
    .unwrap();
    let (csv, st) = extract(dir.path(), "config", &["--config", cfg.to_str().unwrap()]);
    let raw = nf.stop_and_read();
    let header = read_csv(&csv);
    assert!(!header.is_empty());
    assert_eq!(st["ipfix"]["records_sent"], st["records_written"], "{st}");
    assert!(
        st["ipfix"]["template_messages"].as_u64().unwrap() > 2,
        "templates refreshed: {st}"
    );
    assert_same(&weir_flows(&csv), &nfdump_flows(&raw));
}

#[test]
fn a_collector_that_is_down_is_counted_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port(); // nothing listens: ICMP port unreachable -> ECONNREFUSED
    let (csv, st) = extract(
        dir.path(),
        "down",
        &["--ipfix", &format!("127.0.0.1:{port}")],
    );
    assert!(st["ipfix"]["send_errors"].as_u64().unwrap() > 0, "{st}");
    assert!(st["ipfix"]["records_unsent"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["write_errors"], 0, "{st}");
    assert_eq!(
        read_csv(&csv).len() as u64,
        st["records_written"].as_u64().unwrap(),
        "the CSV is complete"
    );
}
