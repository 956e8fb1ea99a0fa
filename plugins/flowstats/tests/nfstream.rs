//! flowstats against NFStream's own flow records: every classic-pcap capture in
//! `appliance/tests/data/nfstream/` is read with pcap-file, cut into flows the way NFStream does
//! (bidirectional 5-tuple + VLAN, idle timeout 120 s, active timeout 1800 s, times truncated to
//! ms and clamped to the latest seen, IPv4 non-first fragments ignored), run through the built
//! `libweir_flowstats.so` via its C ABI, and compared column by column (relative 1e-6) with the
//! row NFStream wrote for the same flow (same 5-tuple, VLAN and first-seen ms).
//!
//! This test's own packet parser is deliberately small (Ethernet, VLAN, IPv4, IPv6 with the
//! common extension headers, IP-in-IP): flows it cannot reconstruct (other link types, GTP or
//! GRE tunnels, malformed frames) have no matching key and are counted as skipped; a matched
//! flow whose numbers differ fails the test. The host's parser is checked on all captures by
//! the appliance's own parity test.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use weir_plugin_api::harness::{built_library, LoadedPlugin};
use weir_plugin_api::{FlowKeyV1, PacketV1};

const IDLE_MS: u64 = 120_000;
const ACTIVE_MS: u64 = 1_800_000;

struct Parsed {
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    proto: u8,
    vlan: u16,
    tcp_flags: u8,
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn parse(frame: &[u8]) -> Option<Parsed> {
    let mut ethertype = be16(frame, 12)?;
    let mut off = 14;
    let mut vlan = 0;
    let mut tagged = false;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        if !tagged {
            vlan = be16(frame, off)? & 0x0fff;
            tagged = true;
        }
        ethertype = be16(frame, off + 2)?;
        off += 4;
    }
    let mut version = match ethertype {
        0x0800 => 4,
        0x86dd => 6,
        _ => return None,
    };
    loop {
        let (src, dst, mut proto, l4);
        if version == 4 {
            let h = frame.get(off..off + 20)?;
            let ihl = (h[0] & 0x0f) as usize * 4;
            if h[0] >> 4 != 4 || ihl < 20 {
                return None;
            }
            let frag_off = be16(h, 6)? & 0x1fff;
            if frag_off != 0 {
                return None; // not the first fragment
            }
            proto = h[9];
            src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
            l4 = off + ihl;
        } else {
            let h = frame.get(off..off + 40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            proto = h[6];
            let a: [u8; 16] = h[8..24].try_into().ok()?;
            let b: [u8; 16] = h[24..40].try_into().ok()?;
            src = IpAddr::V6(Ipv6Addr::from(a));
            dst = IpAddr::V6(Ipv6Addr::from(b));
            let mut o = off + 40;
            while matches!(proto, 0 | 43 | 60 | 44) {
                let next = *frame.get(o)?;
                o += if proto == 44 {
                    8
                } else {
                    (*frame.get(o + 1)? as usize + 1) * 8
                };
                proto = next;
            }
            l4 = o;
        }
        if proto == 4 || proto == 41 {
            // IP-in-IP: NFStream decapsulates and keys the flow on the inner header.
            version = if proto == 4 { 4 } else { 6 };
            off = l4;
            continue;
        }
        let (sp, dp, flags) = match proto {
            6 => (be16(frame, l4)?, be16(frame, l4 + 2)?, *frame.get(l4 + 13)?),
            17 => (be16(frame, l4)?, be16(frame, l4 + 2)?, 0),
            _ => (0, 0, 0),
        };
        return Some(Parsed {
            src: (src, sp),
            dst: (dst, dp),
            proto,
            vlan,
            tcp_flags: flags,
        });
    }
}

struct Flow {
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    proto: u8,
    vlan: u16,
    first_ms: u64,
    last_ms: u64,
    pkts: Vec<PacketV1>,
}

fn flows_of(path: &Path) -> Vec<Flow> {
    let mut reader = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut done = Vec::new();
    let mut active: HashMap<_, Flow> = HashMap::new();
    let mut latest_ns = 0u64;
    while let Some(p) = reader.next_packet() {
        let Ok(p) = p else { break };
        let ts = (p.timestamp.as_nanos() as u64).max(latest_ns);
        latest_ns = ts;
        let Some(x) = parse(&p.data) else { continue };
        let ms = ts / 1_000_000;
        let (lo, hi) = if x.src <= x.dst {
            (x.src, x.dst)
        } else {
            (x.dst, x.src)
        };
        let key = (lo, hi, x.proto, x.vlan);
        if let Some(f) = active.get(&key) {
            if ms - f.last_ms >= IDLE_MS || ms - f.first_ms >= ACTIVE_MS {
                done.push(active.remove(&key).unwrap());
            }
        }
        let f = active.entry(key).or_insert_with(|| Flow {
            src: x.src,
            dst: x.dst,
            proto: x.proto,
            vlan: x.vlan,
            first_ms: ms,
            last_ms: ms,
            pkts: Vec::new(),
        });
        f.last_ms = ms;
        f.pkts.push(PacketV1 {
            ts_ns: ts,
            wire_len: p.orig_len,
            direction: u8::from(x.src != f.src),
            protocol: x.proto,
            tcp_flags: x.tcp_flags,
            ..PacketV1::EMPTY
        });
    }
    done.extend(active.into_values());
    done
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

#[test]
fn flowstats_equals_nfstream_on_the_bundled_captures() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../appliance/tests/data/nfstream");
    let lib = LoadedPlugin::open(&built_library("weir_flowstats")).unwrap();
    let names: Vec<String> = lib.features().into_iter().map(|f| f.name).collect();
    let mut inst = lib.instance("{}", 0).unwrap();

    let (mut rows_total, mut rows_matched, mut captures) = (0, 0, 0);
    let mut entries: Vec<_> = std::fs::read_dir(data.join("pcaps"))
        .unwrap()
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let mut magic = [0u8; 4];
        std::io::Read::read_exact(&mut File::open(&path).unwrap(), &mut magic).unwrap();
        if !matches!(u32::from_le_bytes(magic), 0xa1b2c3d4 | 0xa1b23c4d) {
            continue; // pcapng or big-endian: outside this test's little reader
        }
        let Ok(r) = PcapReader::new(File::open(&path).unwrap()) else {
            continue;
        };
        if r.header().datalink != pcap_file::DataLink::ETHERNET {
            continue;
        }
        captures += 1;
        let mut by_key: HashMap<String, Flow> = HashMap::new();
        for f in flows_of(&path) {
            let k = format!(
                "{},{},{},{},{},{},{}",
                f.src.0, f.src.1, f.dst.0, f.dst.1, f.proto, f.vlan, f.first_ms
            );
            by_key.insert(k, f);
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let csv =
            std::fs::read_to_string(data.join("expected").join(format!("{name}.csv"))).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |n: &str| header.iter().position(|c| *c == n).unwrap();
        let first = col("bidirectional_min_ps");
        for line in lines {
            let v: Vec<&str> = line.split(',').collect();
            if v[col("tunnel_id")] != "0" {
                continue;
            }
            rows_total += 1;
            let k = format!(
                "{},{},{},{},{},{},{}",
                v[col("src_ip")],
                v[col("src_port")],
                v[col("dst_ip")],
                v[col("dst_port")],
                v[col("protocol")],
                v[col("vlan_id")],
                v[col("bidirectional_first_seen_ms")]
            );
            let Some(flow) = by_key.get(&k) else { continue };
            if flow.pkts.len().to_string() != v[col("bidirectional_packets")] {
                continue; // NFStream dropped packets this reader kept (malformed): not comparable
            }
            rows_matched += 1;
            let key = FlowKeyV1 {
                protocol: flow.proto,
                vlan_id: flow.vlan,
                ..Default::default()
            };
            let out = inst.run_flow(&key, &flow.pkts, 32).unwrap();
            for (i, got) in out.iter().enumerate() {
                assert_eq!(header[first + i], names[i]);
                let want: f64 = v[first + i].parse().unwrap();
                assert!(
                    close(*got, want),
                    "{name} flow {k}: {} = {got}, NFStream says {want}",
                    names[i]
                );
            }
        }
    }
    eprintln!(
        "{captures} captures, {rows_matched} of {rows_total} NFStream rows reconstructed and equal"
    );
    assert!(captures >= 100, "only {captures} captures read");
    assert!(
        rows_matched * 10 >= rows_total * 9,
        "only {rows_matched} of {rows_total} rows could be compared"
    );
}
