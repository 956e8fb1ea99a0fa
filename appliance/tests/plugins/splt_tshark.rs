//! The splt plugin through `weir extract` against tshark's view of the same captures.
//!
//! splt's per-flow state is sized by its config (ABI 1.3 `flow_state_size`: 16 bytes and 6 per
//! packet), so in the real pipeline it sits tight between flowstats and tcp in each flow's
//! slab. For N = 8 (the default) and N = 32, every TCP and UDP flow's first N packets
//! (direction, wire size, ms since the previous packet) must be what tshark's frames say:
//! frame.len, and frame.time_epoch truncated to ms, in capture order per 5-tuple, the direction
//! relative to the flow's first packet. Flows weir split (a timeout: the 5-tuple appears twice
//! in its records) are left out, and so are frames tshark shows inside ICMP errors.

use crate::support::records::read_csv;
use crate::support::run::{weir, weir_bin};
use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Command;

/// Plain Ethernet/IP captures (no tunnels or fragments), TCP and UDP, IPv4 and IPv6.
const CAPTURES: &[&str] = &[
    "443-curl.pcap",
    "443-safari.pcap",
    "quic.pcap",
    "http_ipv6.pcap",
    "mongodb.pcap",
    "skype.pcap",
    "wechat.pcap",
];

type Endpoint = (IpAddr, u16);
/// (lower endpoint, higher endpoint, protocol): one flow either way.
type FlowId = (Endpoint, Endpoint, u8);

/// A flow's packets as tshark saw them: (from the first sender?, frame.len, time in ms).
struct Frames {
    first: Endpoint,
    pkts: Vec<(bool, u64, u64)>,
}

fn flow_id(a: Endpoint, b: Endpoint, proto: u8) -> FlowId {
    if a <= b {
        (a, b, proto)
    } else {
        (b, a, proto)
    }
}

/// `frame.time_epoch` ("1389.123456789") as whole ms, truncated like weir's packet time.
fn epoch_ms(s: &str) -> u64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let ns = secs.parse::<u64>().unwrap() * 1_000_000_000 + frac.parse::<u64>().unwrap();
    ns / 1_000_000
}

fn tshark_flows(capture: &std::path::Path) -> HashMap<FlowId, Frames> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(capture)
        .args(["-T", "fields", "-E", "separator=/t"]);
    for f in [
        "frame.protocols",
        "frame.time_epoch",
        "frame.len",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
    ] {
        cmd.args(["-e", f]);
    }
    let o = cmd
        .output()
        .expect("tshark must be installed (the Makefile's install list has it)");
    assert!(
        o.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut flows: HashMap<FlowId, Frames> = HashMap::new();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let protos = f[0];
        // Headers quoted in an ICMP error are not the flow's packets.
        if protos.contains("icmp") {
            continue;
        }
        let (src, dst) = match (f[3], f[4], f[5], f[6]) {
            (s, d, "", "") if !s.is_empty() => (s, d),
            ("", "", s, d) if !s.is_empty() => (s, d),
            _ => continue, // not IP, or IP in IP
        };
        let (proto, sp, dp) = match (f[7], f[8], f[9], f[10]) {
            (s, d, "", "") if !s.is_empty() => (6, s, d),
            ("", "", s, d) if !s.is_empty() => (17, s, d),
            _ => continue,
        };
        let a: Endpoint = (src.parse().unwrap(), sp.parse().unwrap());
        let b: Endpoint = (dst.parse().unwrap(), dp.parse().unwrap());
        let fr = flows.entry(flow_id(a, b, proto)).or_insert(Frames {
            first: a,
            pkts: Vec::new(),
        });
        let forward = a == fr.first;
        fr.pkts
            .push((forward, f[2].parse().unwrap(), epoch_ms(f[1])));
    }
    flows
}

/// Run `weir extract` with splt's `n` and check every unsplit TCP/UDP flow; returns how many.
fn check(capture: &str, n: usize, tmp: &std::path::Path) -> usize {
    let cap = crate::support::paths::data_dir()
        .join("pcaps")
        .join(capture);
    let cfg = tmp.join(format!("splt{n}.toml"));
    std::fs::write(&cfg, format!("[plugins.config.splt]\nn = {n}\n")).unwrap();
    let out = tmp.join(format!("{capture}.{n}.csv"));
    let o = weir()
        .arg("extract")
        .arg(&cap)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&cfg)
        .arg("--plugin-dir")
        .arg(weir_bin().parent().unwrap())
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = read_csv(&out);
    let oracle = tshark_flows(&cap);
    let id = |r: &HashMap<String, String>| -> Option<(FlowId, Endpoint)> {
        let proto: u8 = r["protocol"].parse().unwrap();
        if proto != 6 && proto != 17 {
            return None;
        }
        let a: Endpoint = (r["src_ip"].parse().unwrap(), r["src_port"].parse().unwrap());
        let b: Endpoint = (r["dst_ip"].parse().unwrap(), r["dst_port"].parse().unwrap());
        Some((flow_id(a, b, proto), a))
    };
    let mut times: HashMap<FlowId, usize> = HashMap::new();
    for r in &rows {
        if let Some((f, _)) = id(r) {
            *times.entry(f).or_default() += 1;
        }
    }
    let mut checked = 0;
    for r in &rows {
        let Some((f, src)) = id(r) else { continue };
        if times[&f] != 1 {
            continue;
        }
        let fr = oracle
            .get(&f)
            .unwrap_or_else(|| panic!("{capture}: weir's flow {f:?} is not in tshark's frames"));
        assert_eq!(src, fr.first, "{capture} {f:?}: the first sender");
        let want_packets: usize = r["bidirectional_packets"].parse().unwrap();
        assert_eq!(fr.pkts.len(), want_packets, "{capture} {f:?}: packets");
        // An empty cell is a missing value (NaN).
        let col = |name: String| -> f64 {
            match r[&name].as_str() {
                "" => f64::NAN,
                v => v.parse().unwrap(),
            }
        };
        for i in 0..32 {
            let got = (
                col(format!("splt_direction_{i}")),
                col(format!("splt_ps_{i}")),
                col(format!("splt_piat_ms_{i}")),
            );
            let want = if i >= n {
                (f64::NAN, f64::NAN, f64::NAN)
            } else if let Some(&(fwd, len, t)) = fr.pkts.get(i) {
                let gap = if i == 0 { 0 } else { t - fr.pkts[i - 1].2 };
                (f64::from(u8::from(!fwd)), len.min(65535) as f64, gap as f64)
            } else {
                (-1.0, -1.0, -1.0)
            };
            let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
            assert!(
                same(got.0, want.0) && same(got.1, want.1) && same(got.2, want.2),
                "{capture} n={n} {f:?} packet {i}: weir {got:?}, tshark {want:?}"
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn first_n_packets_match_tshark_for_n_8_and_32() {
    let tmp = tempfile::tempdir().unwrap();
    let mut total = [0usize; 2];
    for cap in CAPTURES {
        for (k, n) in [8, 32].into_iter().enumerate() {
            total[k] += check(cap, n, tmp.path());
        }
    }
    // Enough flows that long and short ones (fewer than N packets) are both covered.
    eprintln!("flows checked (n = 8, n = 32): {total:?}");
    assert!(
        total[0] >= 50 && total[0] == total[1],
        "flows checked: {total:?}"
    );
}
