//! IPFIX export against a real collector and an independent decoder. nfdump's `nfcapd` listens
//! on loopback, `weir extract` exports the flows of bundled captures (IPv4, IPv6, VLAN-tagged)
//! to it while writing CSV, and `nfdump -r` reads back the same flows (key, VLAN), packets and
//! bytes per direction (RFC 5103 reverse counters are nfdump's out packets/bytes), first/last
//! times and end reason as weir's CSV says. Also: every column as enterprise elements over a larger MTU with
//! frequent template refresh (the collector must skip what it does not know and keep up), and
//! a collector that is down (counted, the run and the CSV complete); `weir run` exporting from
//! `[sinks] ipfix` on a net_pcap port.
//!
//! And tshark's IPFIX dissector (cflow) decodes every message weir sent (captured by a test
//! socket, written as a pcap): no malformed or expert-flagged field, sequence numbers that count
//! the data records, and every element, weir's enterprise ones included, equal to the CSV.
//!
//! nfdump and tshark are in the Makefile's APT_PACKAGES; without nfdump the nfcapd tests say so
//! and pass.

use crate::support::{paths::*, records::*, run::*};
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
    let mut v: Vec<Flow> = read_csv(csv).iter().map(weir_flows_row).collect();
    v.sort();
    v
}

/// A CSV record as a [`Flow`].
fn weir_flows_row(r: &HashMap<String, String>) -> Flow {
    {
        {
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
        }
    }
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

/// A pcap (LINKTYPE_RAW: IPv4 packets) of UDP datagrams from `sport` to `dport` on loopback,
/// so tshark can dissect what a collector socket received.
fn write_pcap(path: &Path, datagrams: &[Vec<u8>], sport: u16, dport: u16) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 101] {
        out.extend_from_slice(&v.to_le_bytes()); // magic, version 2.4, zone, sigfigs, snaplen, linktype
    }
    for (i, d) in datagrams.iter().enumerate() {
        let total = 20 + 8 + d.len();
        let mut pkt = Vec::with_capacity(total);
        pkt.extend_from_slice(&[0x45, 0]);
        pkt.extend_from_slice(&(total as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        pkt.extend_from_slice(&sport.to_be_bytes());
        pkt.extend_from_slice(&dport.to_be_bytes());
        pkt.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0]);
        pkt.extend_from_slice(d);
        for v in [i as u32, 0, pkt.len() as u32, pkt.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&pkt);
    }
    std::fs::write(path, out).unwrap();
}

/// Epoch milliseconds of tshark's `Nov 23, 2015 08:58:47.395000000 UTC`.
fn tshark_time_ms(s: &str) -> u64 {
    let p: Vec<&str> = s.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == p[0])
    .unwrap() as i64
        + 1;
    let day: i64 = p[1].trim_end_matches(',').parse().unwrap();
    let year: i64 = p[2].parse().unwrap();
    assert_eq!(p[4], "UTC", "{s}");
    let hms: Vec<&str> = p[3].split(':').collect();
    let (sec, frac) = hms[2].split_once('.').unwrap();
    // Days from the civil date (proleptic Gregorian), H. Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + hms[0].parse::<i64>().unwrap() * 3600
        + hms[1].parse::<i64>().unwrap() * 60
        + sec.parse::<i64>().unwrap();
    secs as u64 * 1000 + frac[..3].parse::<u64>().unwrap()
}

/// Everything a record carries in the default template: the nfdump-visible part, and weir's
/// enterprise elements (expiration_id, src2dst last seen, dst2src first and last seen, the
/// Community ID, the four rates as float64 bits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FullFlow {
    flow: Flow,
    expiration_id: i8,
    dir_times: (u64, u64, u64),
    community_id: String,
    rates: Vec<u64>,
}

#[test]
fn tshark_decodes_every_element_of_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = rx.local_addr().unwrap().port();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut sport = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            match rx.recv_from(&mut buf) {
                Ok((n, from)) => {
                    sport = from.port();
                    got.push(buf[..n].to_vec());
                }
                Err(_) if flag.load(std::sync::atomic::Ordering::Acquire) => break,
                Err(_) => {}
            }
        }
        (got, sport)
    });
    let (csv, st) = extract(
        dir.path(),
        "tshark",
        &["--ipfix", &format!("127.0.0.1:{port}")],
    );
    done.store(true, std::sync::atomic::Ordering::Release);
    let (datagrams, sport) = receiver.join().unwrap();
    assert_eq!(
        datagrams.len() as u64,
        st["ipfix"]["messages_sent"].as_u64().unwrap()
    );
    let pcap = dir.path().join("ipfix.pcap");
    write_pcap(&pcap, &datagrams, sport, port);
    let out = Command::new("tshark")
        .env("TZ", "UTC")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", &format!("udp.port=={port},cflow")])
        .args(["-T", "json", "--no-duplicate-keys"])
        .output()
        .expect("tshark (in the Makefile's APT_PACKAGES)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("_ws.malformed") && !text.contains("_ws.expert"),
        "tshark found malformed or suspicious IPFIX"
    );
    let frames: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut decoded = Vec::new();
    let mut sequence = 0u64;
    let mut templates = 0;
    for f in frames.as_array().unwrap() {
        let cflow = &f["_source"]["layers"]["cflow"];
        assert_eq!(cflow["cflow.version"], "10");
        assert_eq!(
            cflow["cflow.sequence"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
            sequence,
            "sequence number = data records before this message"
        );
        for (name, set) in cflow.as_object().unwrap() {
            if !name.starts_with("Set ") {
                continue;
            }
            if name.contains("Data Template") {
                templates += 1;
                continue;
            }
            for (fname, flow) in set.as_object().unwrap() {
                if !fname.starts_with("Flow ") {
                    continue;
                }
                sequence += 1;
                let s = |k: &str| -> &str {
                    flow[k]
                        .as_str()
                        .unwrap_or_else(|| panic!("no {k} in {flow}"))
                };
                let n = |k: &str| -> u64 { s(k).parse().unwrap() };
                let pair = |k: &str| -> (u64, u64) {
                    let a = flow[k].as_array().unwrap_or_else(|| panic!("{k}: {flow}"));
                    (
                        a[0].as_str().unwrap().parse().unwrap(),
                        a[1].as_str().unwrap().parse().unwrap(),
                    )
                };
                let v6 = flow.get("cflow.srcaddrv6").is_some();
                let addr = |k: &str| -> IpAddr {
                    let k = if v6 { format!("{k}v6") } else { k.to_string() };
                    s(&k).parse().unwrap()
                };
                let hex = |h: &serde_json::Value| -> u64 {
                    u64::from_str_radix(&h.as_str().unwrap().replace(':', ""), 16).unwrap()
                };
                let ent = flow["cflow.enterprise_private_entry"].as_array().unwrap();
                let (pk, rpk) = pair("cflow.packets");
                let (oc, roc) = pair("cflow.octets");
                let times = &flow["cflow.timedelta_tree"];
                decoded.push(FullFlow {
                    flow: Flow {
                        key: (
                            addr("cflow.srcaddr"),
                            n("cflow.srcport") as u16,
                            addr("cflow.dstaddr"),
                            n("cflow.dstport") as u16,
                            n("cflow.protocol") as u8,
                            n("cflow.vlanid") as u16,
                        ),
                        times: (
                            tshark_time_ms(times["cflow.abstimestart"].as_str().unwrap()),
                            tshark_time_ms(times["cflow.abstimeend"].as_str().unwrap()),
                        ),
                        counts: (pk, oc, rpk, roc),
                        end_reason: n("cflow.flow_end_reason") as u8,
                    },
                    expiration_id: hex(&ent[0]) as u8 as i8,
                    dir_times: (hex(&ent[3]), hex(&ent[4]), hex(&ent[5])),
                    community_id: ent[6]
                        .as_str()
                        .unwrap()
                        .split(':')
                        .map(|b| u8::from_str_radix(b, 16).unwrap() as char)
                        .collect(),
                    rates: ent[7..].iter().map(hex).collect(),
                });
            }
        }
    }
    assert!(templates >= 1);
    let rows = read_csv(&csv);
    let mut want: Vec<FullFlow> = rows
        .iter()
        .map(|r| {
            let n = |c: &str| -> u64 { r[c].parse().unwrap() };
            FullFlow {
                flow: weir_flows_row(r),
                expiration_id: r["expiration_id"].parse().unwrap(),
                dir_times: (
                    n("src2dst_last_seen_ms"),
                    n("dst2src_first_seen_ms"),
                    n("dst2src_last_seen_ms"),
                ),
                community_id: r["community_id"].clone(),
                rates: ["decay_pps", "decay_bps", "peak_pps", "peak_bps"]
                    .iter()
                    .map(|c| r[*c].parse::<f64>().unwrap().to_bits())
                    .collect(),
            }
        })
        .collect();
    want.sort();
    decoded.sort();
    assert_eq!(want.len(), decoded.len());
    for (w, d) in want.iter().zip(&decoded) {
        assert_eq!(w, d);
    }
}

#[test]
fn weir_run_exports_from_the_config() {
    if !have_nfdump() {
        eprintln!("SKIPPED: nfcapd/nfdump not installed (Debian package `nfdump`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nf = Collector::start(dir.path());
    let csv = dir.path().join("run.csv");
    let cfg = dir.path().join("weir.toml");
    std::fs::write(
        &cfg,
        format!(
            "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 512\n\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n\n[sinks]\nrecords = \"{}\"\nipfix = \"127.0.0.1:{}\"\n\n[metrics]\nenabled = false\n",
            data_dir().join("pcaps/1kxun.pcap").display(),
            csv.display(),
            nf.port
        ),
    )
    .unwrap();
    let out = weir()
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--stop-after-idle-ms",
            "1500",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = nf.stop_and_read();
    let w = weir_flows(&csv);
    assert!(w.len() > 100, "{} flows", w.len());
    assert_same(&w, &nfdump_flows(&raw));
}
