//! The generated trace read back with an independent pcap reader (the `pcap-file` crate) and
//! checked header by header: lengths agree with the frame, checksums verify (RFC 1071: the sum
//! over a header with its checksum is 0xFFFF), TCP flows start with a SYN, the heavy sources get
//! their share, and the same seed gives the same bytes.

use pcap_file::pcap::PcapReader;
use std::collections::{HashMap, HashSet};
use weir_tracegen::{write_trace, Options};

fn gen(o: &Options) -> Vec<u8> {
    write_trace(o, 65535, Vec::new()).unwrap().0
}

fn csum_ok(data: &[u8], seed: u64) -> bool {
    let mut acc = seed;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            (c[0] as u16) << 8
        };
        acc += w as u64;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc == 0xFFFF
}

type Key = (Vec<u8>, Vec<u8>, u16, u16, u8);

#[test]
fn frames_are_well_formed_and_flows_behave() {
    let o = Options {
        packets: 50_000,
        flows: 500,
        checksums: true,
        ..Options::default()
    };
    let bytes = gen(&o);
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    let (mut n, mut v6, mut vlan, mut udp, mut heavy) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut syn_first: HashMap<Key, bool> = HashMap::new();
    let mut last_ts = std::time::Duration::ZERO;
    let mut sizes = HashSet::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        n += 1;
        assert!(p.timestamp >= last_ts, "times never go back");
        last_ts = p.timestamp;
        let d = &p.data[..];
        assert_eq!(d.len() as u32, p.orig_len);
        assert!(d.len() >= 60);
        sizes.insert(d.len());
        let mut off = 12;
        let mut et = u16::from_be_bytes([d[off], d[off + 1]]);
        if et == 0x8100 {
            vlan += 1;
            off += 4;
            et = u16::from_be_bytes([d[off], d[off + 1]]);
        }
        off += 2;
        let (proto, l4, l4_len, src, dst, pseudo) = match et {
            0x0800 => {
                let ip = &d[off..off + 20];
                assert_eq!(ip[0], 0x45);
                assert!(csum_ok(ip, 0), "IPv4 header checksum");
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                assert!(off + total <= d.len());
                // Padding only on frames below the Ethernet minimum.
                assert!(off + total == d.len() || d.len() == 60);
                let mut ps = 0u64;
                for c in ip[12..20].chunks(2) {
                    ps += u16::from_be_bytes([c[0], c[1]]) as u64;
                }
                ps += ip[9] as u64 + (total - 20) as u64;
                if ip[12] == 198 && ip[13] == 18 {
                    heavy += 1;
                }
                (
                    ip[9],
                    off + 20,
                    total - 20,
                    ip[12..16].to_vec(),
                    ip[16..20].to_vec(),
                    ps,
                )
            }
            0x86DD => {
                v6 += 1;
                let ip = &d[off..off + 40];
                let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
                assert!(off + 40 + plen == d.len() || d.len() == 60);
                let mut ps = 0u64;
                for c in ip[8..40].chunks(2) {
                    ps += u16::from_be_bytes([c[0], c[1]]) as u64;
                }
                ps += ip[6] as u64 + plen as u64;
                (
                    ip[6],
                    off + 40,
                    plen,
                    ip[8..24].to_vec(),
                    ip[24..40].to_vec(),
                    ps,
                )
            }
            other => panic!("unexpected ethertype {other:#x}"),
        };
        let seg = &d[l4..l4 + l4_len];
        assert!(csum_ok(seg, pseudo), "L4 checksum of packet {n}");
        let sp = u16::from_be_bytes([seg[0], seg[1]]);
        let dp = u16::from_be_bytes([seg[2], seg[3]]);
        match proto {
            17 => {
                udp += 1;
                assert_eq!(u16::from_be_bytes([seg[4], seg[5]]) as usize, l4_len);
            }
            6 => {
                let flags = seg[13];
                let (a, b) = if (src.clone(), sp) < (dst.clone(), dp) {
                    ((src, sp), (dst, dp))
                } else {
                    ((dst, dp), (src, sp))
                };
                let key = (a.0, b.0, a.1, b.1, proto);
                syn_first.entry(key).or_insert(flags == 0x02);
            }
            p => panic!("unexpected protocol {p}"),
        }
    }
    assert_eq!(n, o.packets);
    let share = |x: u64| x as f64 / n as f64;
    assert!(share(v6) > 0.05 && share(vlan) > 0.02 && share(udp) > 0.05);
    // The heavy sources' share of packets, within sampling noise of 12 %.
    assert!(
        (share(heavy) - o.heavy_share).abs() < 0.01,
        "{}",
        share(heavy)
    );
    // Every TCP flow whose first packet is in the trace opens with a bare SYN.
    let syn = syn_first.values().filter(|&&s| s).count();
    assert_eq!(
        syn,
        syn_first.len(),
        "TCP flows that do not start with SYN ({} flows)",
        syn_first.len()
    );
    // IMIX data sizes and the small control frames all occur.
    assert!(sizes.contains(&60) && sizes.contains(&590) && sizes.contains(&1514));
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let o = Options {
        packets: 20_000,
        flows: 100,
        ..Options::default()
    };
    let a = gen(&o);
    assert_eq!(a, gen(&o));
    let b = gen(&Options { seed: 2, ..o });
    assert_ne!(a, b);
}
