//! The parser against NFStream 6.6.0's flow records for the 136 bundled captures
//! (`tests/data/nfstream/expected/`, an independent oracle).
//!
//! This checks what the parser decides, before any flow table: for each capture the set of
//! distinct bidirectional flow keys (5-tuple + VLAN id + tunnel id, unordered endpoints) that
//! weir's parser produces must equal the set in NFStream's records (several records of one key,
//! split by timeouts, count once), and per key the packets and bytes summed over all of NFStream's
//! records of that key must equal the packets and wire bytes of the frames weir parsed into it.
//!
//! Bytes: NFStream keeps a packet's wire length in a `uint16_t` (`nf_packet.raw_size`), so a
//! frame longer than 65535 bytes on the wire counts modulo 65536 there; the comparison does the
//! same (weir's flow table decides separately what it counts).
//!
//! Captures where weir deliberately differs are listed in [`KNOWN_DIFFERENCES`] with the
//! reason; the test fails if one of them stops differing, so the list stays true.

use crate::support::paths::{captures, data_dir};
use crate::support::pcap::read_frames;
use std::collections::BTreeMap;
use std::net::IpAddr;
use weir::parse::{parse, SkipCounters};
use weir_plugin_api::{FlowKeyV1, PacketV1};

/// (capture file name, why weir's parse differs from NFStream's and why weir is right).
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[(
    "ajp.pcap",
    "12 Cisco FabricPath frames (EtherType 0x8903, an Ethernet frame inside an outer MAC header): \
     NFStream ignores the EtherType, takes the 0x40 at offset 14 (inside the inner MAC address) \
     as an IPv4 header with IHL 0 and makes two flows of protocol 80 between made-up addresses \
     (0.7.8.0 <-> 142.243.129.0 and <-> 93.88.129.0); weir skips them as not_ip",
)];

/// Unordered flow key: the two (ip, port) endpoints sorted, then protocol, version, vlan, tunnel.
type Key = ((IpAddr, u16), (IpAddr, u16), u8, u8, u16, u32);

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    packets: u64,
    bytes: u64,
}

fn ip_of(raw: &[u8; 16], version: u8) -> IpAddr {
    if version == 4 {
        IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
    } else {
        IpAddr::from(*raw)
    }
}

fn unordered(a: (IpAddr, u16), b: (IpAddr, u16), proto: u8, ver: u8, vlan: u16, tun: u32) -> Key {
    if a <= b {
        (a, b, proto, ver, vlan, tun)
    } else {
        (b, a, proto, ver, vlan, tun)
    }
}

fn weir_flows(path: &std::path::Path) -> (BTreeMap<Key, Counts>, SkipCounters, usize) {
    let frames = read_frames(path);
    let mut flows: BTreeMap<Key, Counts> = BTreeMap::new();
    let mut skips = SkipCounters::new();
    let mut pkt = PacketV1::EMPTY;
    let mut key = FlowKeyV1::default();
    for f in &frames {
        match parse(&f.data, f.wire_len, 0, &mut pkt, &mut key) {
            Ok(()) => {
                let k = unordered(
                    (ip_of(&key.src_ip, key.ip_version), key.src_port),
                    (ip_of(&key.dst_ip, key.ip_version), key.dst_port),
                    key.protocol,
                    key.ip_version,
                    key.vlan_id,
                    key.tunnel_id,
                );
                let c = flows.entry(k).or_default();
                c.packets += 1;
                c.bytes += u64::from(f.wire_len & 0xffff);
            }
            Err(r) => skips.count(r),
        }
    }
    (flows, skips, frames.len())
}

fn nfstream_flows(name: &str) -> BTreeMap<Key, Counts> {
    let path = data_dir().join("expected").join(format!("{name}.csv"));
    let mut rdr =
        csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = rdr.headers().unwrap().clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("{}: no column {n}", path.display()))
    };
    let (si, sp, di, dp, pr, iv, vl, tu, pk, by) = (
        col("src_ip"),
        col("src_port"),
        col("dst_ip"),
        col("dst_port"),
        col("protocol"),
        col("ip_version"),
        col("vlan_id"),
        col("tunnel_id"),
        col("bidirectional_packets"),
        col("bidirectional_bytes"),
    );
    let mut flows: BTreeMap<Key, Counts> = BTreeMap::new();
    for rec in rdr.records() {
        let r = rec.unwrap();
        let p = |i: usize| -> u64 {
            r[i].parse()
                .unwrap_or_else(|e| panic!("{}: {:?}: {e}", path.display(), &r[i]))
        };
        let ip = |i: usize| -> IpAddr {
            r[i].parse()
                .unwrap_or_else(|e| panic!("{}: {:?}: {e}", path.display(), &r[i]))
        };
        let k = unordered(
            (ip(si), p(sp) as u16),
            (ip(di), p(dp) as u16),
            p(pr) as u8,
            p(iv) as u8,
            p(vl) as u16,
            p(tu) as u32,
        );
        let c = flows.entry(k).or_default();
        c.packets += p(pk);
        c.bytes += p(by);
    }
    flows
}

/// A readable list of how two flow maps differ (at most `limit` lines).
fn describe(
    weir: &BTreeMap<Key, Counts>,
    nfs: &BTreeMap<Key, Counts>,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, c) in weir {
        match nfs.get(k) {
            None => out.push(format!("  only weir:     {k:?} {c:?}")),
            Some(n) if n != c => {
                out.push(format!("  counts differ: {k:?} weir {c:?} nfstream {n:?}"))
            }
            _ => {}
        }
    }
    for (k, c) in nfs {
        if !weir.contains_key(k) {
            out.push(format!("  only nfstream: {k:?} {c:?}"));
        }
    }
    let n = out.len();
    out.truncate(limit);
    if n > limit {
        out.push(format!("  ... and {} more", n - limit));
    }
    out
}

#[test]
fn flow_keys_packets_and_bytes_equal_nfstream() {
    let caps = captures();
    assert_eq!(caps.len(), 136, "the bundled data set has 136 captures");
    let mut failures = Vec::new();
    let mut known_seen = Vec::new();
    let mut summary = Vec::new();
    let mut all_skips = SkipCounters::new();
    for path in &caps {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (weir, skips, n_frames) = weir_flows(path);
        let nfs = nfstream_flows(&name);
        all_skips.merge(&skips);
        let equal = weir == nfs;
        let skipped: Vec<String> = skips
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(n, c)| format!("{n}={c}"))
            .collect();
        summary.push(format!(
            "{name}: frames={n_frames} keys={} {} skipped[{}]",
            nfs.len(),
            if equal { "EQUAL" } else { "DIFFERENT" },
            skipped.join(" ")
        ));
        let known = KNOWN_DIFFERENCES.iter().find(|(n, _)| *n == name);
        match (equal, known) {
            (true, None) => {}
            (true, Some(_)) => known_seen.push(format!(
                "{name} is listed as different but now equals NFStream"
            )),
            (false, Some((_, why))) => {
                eprintln!("{name}: differs as expected ({why})");
            }
            (false, None) => {
                failures.push(format!("{name}:\n{}", describe(&weir, &nfs, 20).join("\n")));
            }
        }
    }
    for s in &summary {
        eprintln!("{s}");
    }
    eprintln!(
        "skips over all captures: {:?}",
        all_skips.iter().filter(|(_, c)| *c > 0).collect::<Vec<_>>()
    );
    assert!(known_seen.is_empty(), "{}", known_seen.join("\n"));
    assert!(
        failures.is_empty(),
        "{} captures differ from NFStream:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
