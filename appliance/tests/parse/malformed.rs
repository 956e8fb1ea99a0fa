//! A generated malformed-traffic corpus for the parser: real packets from the
//! bundled captures truncated at every offset and with random bytes flipped, plus crafted
//! headers (IHL < 5, IPv4 total length larger and smaller than the frame, IPv6 extension-header
//! chains that run past the end, fragments, zero-length frames, VLAN stacks deeper than two).
//!
//! Every input must either parse or be counted under a named reason, never panic, and the
//! counts must add up. Where the input was built to be malformed in one way, the reason must be
//! the one that names it.

use crate::support::frames;
use crate::support::paths::data_dir;
use crate::support::pcap::{read_frames, Frame};
use weir::parse::{parse, SkipCounters, SkipReason};
use weir::wire::ipv4::Ipv4Repr;
use weir::wire::ipv6::Ipv6Repr;
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_NO_OFFSET, WEIR_PKT_IP_FRAGMENT};

/// Parsed and skipped tallies over a corpus.
#[derive(Default)]
struct Tally {
    inputs: u64,
    parsed: u64,
    skips: SkipCounters,
}

impl Tally {
    fn run(&mut self, frame: &[u8], wire_len: u32) -> Result<(PacketV1, FlowKeyV1), SkipReason> {
        let mut p = PacketV1::EMPTY;
        let mut k = FlowKeyV1::default();
        self.inputs += 1;
        let r = parse(frame, wire_len, 1, &mut p, &mut k);
        match r {
            Ok(()) => {
                self.parsed += 1;
                check_view(frame, &p);
                Ok((p, k))
            }
            Err(reason) => {
                self.skips.count(reason);
                Err(reason)
            }
        }
    }

    fn assert_adds_up(&self, what: &str) {
        assert_eq!(
            self.parsed + self.skips.total(),
            self.inputs,
            "{what}: parsed + skipped must equal inputs"
        );
        eprintln!(
            "{what}: {} inputs, {} parsed, skipped {:?}",
            self.inputs,
            self.parsed,
            self.skips
                .iter()
                .filter(|(_, c)| *c > 0)
                .collect::<Vec<_>>()
        );
    }
}

/// What a parsed view promises its readers: offsets inside the captured bytes.
fn check_view(frame: &[u8], p: &PacketV1) {
    assert_eq!(p.cap_len as usize, frame.len());
    assert_eq!(p.data, frame.as_ptr());
    assert!(
        (p.l3_off as usize) < frame.len(),
        "l3_off {} beyond {}",
        p.l3_off,
        frame.len()
    );
    assert!(p.ip_version == 4 || p.ip_version == 6);
    if p.l4_off != WEIR_NO_OFFSET {
        let min = match p.protocol {
            6 => 20,
            17 => 8,
            _ => 4,
        };
        assert!(
            p.l4_off as usize + min <= frame.len(),
            "l4 header of {min} at {} beyond {}",
            p.l4_off,
            frame.len()
        );
        assert!(p.l4_off > p.l3_off);
    }
    if p.payload_off != WEIR_NO_OFFSET {
        assert!(p.l4_off != WEIR_NO_OFFSET && p.payload_off > p.l4_off);
    }
    // SAFETY: data/cap_len describe `frame`, alive for this call.
    let payload = unsafe { p.payload() };
    assert!(payload.len() <= p.payload_len as usize);
}

/// Real packets of every shape the captures hold: plain v4/v6, VLAN and QinQ, GTP-U, 4in4, 6in6,
/// IPv6 hop-by-hop and fragment headers, IPv4 fragments, ICMP, non-IP.
fn sample_frames() -> Vec<Frame> {
    let picks: &[(&str, usize)] = &[
        ("4in4tunnel.pcap", 2),
        ("6in6tunnel.pcap", 2),
        ("ipv6_in_gtp.pcap", 2),
        ("gtp-u.pcap", 4),
        ("dns_fragmented.pcap", 66),
        ("ajp.pcap", 12),
        ("mongodb.pcap", 4),
        ("alexa-app.pcapng", 60),
        ("http_ipv6.pcap", 8),
        ("malformed_icmp.pcap", 1),
        ("malformed_dns.pcap", 6),
        ("fuzz-2021-06-07-c6c72a0a56.pcap", 1),
        ("synscan.pcap", 8),
        ("skype.pcap", 30),
        ("anydesk-2.pcap", 20),
    ];
    let mut out = Vec::new();
    for (name, n) in picks {
        let frames = read_frames(&data_dir().join("pcaps").join(name));
        assert!(!frames.is_empty(), "{name} has no frames");
        out.extend(frames.into_iter().take(*n));
    }
    out
}

#[test]
fn truncation_at_every_offset() {
    let mut tally = Tally::default();
    let mut cut_on_wire = 0u64;
    for f in sample_frames() {
        let full = {
            let mut p = PacketV1::EMPTY;
            let mut k = FlowKeyV1::default();
            parse(&f.data, f.wire_len, 0, &mut p, &mut k)
                .ok()
                .map(|_| k)
        };
        for cut in 0..=f.data.len() {
            let short = &f.data[..cut];
            // As a snap length would cut it (the wire carried the whole frame) ...
            if let Ok((_, k)) = tally.run(short, f.wire_len) {
                // ... a cut never invents a flow: the key is the full frame's, except that a
                // GTP-U header cut short leaves the packet to its outer UDP flow (as NFStream).
                let full = full.expect("a prefix parsed although the whole frame did not");
                if k.tunnel_id == full.tunnel_id {
                    assert_eq!(k, full, "cut at {cut} changed the flow key");
                }
            }
            // ... and as a frame that really was that short on the wire: an IPv4 packet cut
            // on the wire still counts (for the same flow when its ports were on the wire).
            if let Ok((p, k)) = tally.run(short, cut as u32) {
                if weir::parse::ipv4_truncated(&p) {
                    cut_on_wire += 1;
                    if k.src_port != 0 && k.tunnel_id == full.map_or(0, |f| f.tunnel_id) {
                        assert_eq!(Some(k), full, "a wire cut at {cut} changed the flow key");
                    }
                }
            }
        }
    }
    assert!(tally.skips.get(SkipReason::TruncatedEthernet) > 0);
    assert!(tally.skips.get(SkipReason::TruncatedIpv4) > 0);
    assert!(tally.skips.get(SkipReason::TruncatedIpv6) > 0);
    assert!(tally.skips.get(SkipReason::TruncatedL4) > 0);
    assert!(cut_on_wire > 0);
    tally.assert_adds_up("truncation");
}

/// A deterministic xorshift64* generator (no dependency, same corpus every run).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_byte_flips() {
    let mut tally = Tally::default();
    let mut rng = Rng(0x5eed_0f0e_b1e5);
    let frames = sample_frames();
    for round in 0..200 {
        for f in &frames {
            let mut d = f.data.clone();
            if d.is_empty() {
                continue;
            }
            // Flip 1-4 bytes, mostly in the headers where the parser looks.
            let flips = 1 + (rng.next() % 4) as usize;
            for _ in 0..flips {
                let span = d.len().min(96);
                let at = (rng.next() as usize) % span;
                d[at] = rng.next() as u8;
            }
            let wire = if round % 2 == 0 {
                f.wire_len
            } else {
                d.len() as u32
            };
            let _ = tally.run(&d, wire);
        }
    }
    tally.assert_adds_up("random flips");
    assert!(tally.parsed > 0 && tally.skips.total() > 0);
}

// ---- crafted headers ----

fn eth(etype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    frames::ether(etype).push(&mut f);
    f
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    Ipv4Repr {
        src_addr: [192, 0, 2, 1],
        dst_addr: [198, 51, 100, 7],
        protocol: proto,
        payload_len: payload.len(),
        ident: 1,
        ..Default::default()
    }
    .push(&mut h);
    h.extend_from_slice(payload);
    h
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    Ipv6Repr {
        src_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        next_header: next,
        payload_len: payload.len(),
        ..Default::default()
    }
    .push(&mut h);
    h.extend_from_slice(payload);
    h
}

use crate::support::frames::udp;

fn frame(etype: u16, l3: Vec<u8>) -> Vec<u8> {
    let mut f = eth(etype);
    f.extend(l3);
    f
}

fn expect(tally: &mut Tally, f: &[u8], want: Result<(), SkipReason>, what: &str) {
    let got = tally.run(f, f.len() as u32).map(|_| ());
    assert_eq!(got, want, "{what}");
}

#[test]
fn crafted_malformed_headers() {
    let mut t = Tally::default();
    let good_v4 = frame(0x0800, ipv4(17, &udp(5353, 53, b"query")));
    expect(&mut t, &good_v4, Ok(()), "well-formed IPv4/UDP");

    // Zero-length and runt frames.
    expect(
        &mut t,
        &[],
        Err(SkipReason::TruncatedEthernet),
        "zero-length frame",
    );
    expect(
        &mut t,
        &good_v4[..13],
        Err(SkipReason::TruncatedEthernet),
        "13-byte frame",
    );
    expect(
        &mut t,
        &good_v4[..14],
        Err(SkipReason::TruncatedIpv4),
        "Ethernet header only",
    );

    // IHL 0..4.
    for ihl in 0..5u8 {
        let mut f = good_v4.clone();
        f[14] = 0x40 | ihl;
        expect(
            &mut t,
            &f,
            Err(SkipReason::BadIpv4Ihl),
            &format!("IHL {ihl}"),
        );
    }
    // IHL larger than the captured bytes.
    let mut f = good_v4.clone();
    f[14] = 0x4f;
    expect(
        &mut t,
        &f[..40],
        Err(SkipReason::TruncatedIpv4),
        "IHL 15 in a short frame",
    );

    // Total length smaller than the header (malformed), larger than the frame on the wire
    // (cut on the wire: counted), and smaller than the frame (Ethernet padding: fine).
    for (total, want) in [
        (0u16, Err(SkipReason::Ipv4TotalLength)),
        (19, Err(SkipReason::Ipv4TotalLength)),
        (1500, Ok(())),
        (28, Ok(())),
    ] {
        let mut f = good_v4.clone();
        f[16..18].copy_from_slice(&total.to_be_bytes());
        expect(&mut t, &f, want, &format!("total length {total}"));
    }
    // Larger than the captured frame but not than the wire (snap length): parsed.
    let mut f = good_v4.clone();
    f[16..18].copy_from_slice(&1000u16.to_be_bytes());
    assert!(t.run(&f, 1014).is_ok(), "snap-length cut IPv4");

    // Fragments: first fragment parsed and flagged, later ones skipped.
    let mut first = good_v4.clone();
    first[20] = 0x20; // MF
    let (p, _) = t.run(&first, first.len() as u32).expect("first fragment");
    assert_ne!(p.flags & WEIR_PKT_IP_FRAGMENT, 0);
    let mut later = good_v4.clone();
    later[21] = 0x08;
    expect(
        &mut t,
        &later,
        Err(SkipReason::Ipv4Fragment),
        "IPv4 fragment offset 8",
    );

    // A UDP header the IP header says is shorter than 8 bytes.
    let f = frame(0x0800, ipv4(17, &[0, 53, 0, 53]));
    expect(&mut t, &f, Err(SkipReason::BadL4Length), "4-byte UDP");

    // IPv6 extension-header chains.
    let v6 = |payload: Vec<u8>, first: u8| frame(0x86dd, ipv6(first, &payload));
    let hop = |next: u8, len8: u8| -> Vec<u8> {
        let mut h = vec![next, len8];
        h.resize(8 * (usize::from(len8) + 1), 0);
        h
    };
    // Well-formed: hop-by-hop, destination options, then UDP.
    let mut chain = hop(60, 0);
    chain.extend(hop(17, 1));
    chain.extend(udp(546, 547, b"dhcp"));
    let (_, k) = t
        .run(&v6(chain.clone(), 0), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((k.protocol, k.src_port, k.dst_port), (17, 546, 547));
    // A chain cut by a snap length inside its second header: truncated, not malformed.
    let full = v6(chain.clone(), 0);
    let cut = &full[..14 + 40 + 8 + 4];
    assert_eq!(
        t.run(cut, full.len() as u32).map(|_| ()),
        Err(SkipReason::TruncatedIpv6)
    );
    // A header whose length runs past the payload length.
    let mut runs_past = hop(17, 200);
    runs_past.truncate(16);
    expect(
        &mut t,
        &v6(runs_past, 0),
        Err(SkipReason::Ipv6ExtChain),
        "ext header past the end",
    );
    // A chain of 64 hop-by-hop headers, then one that runs past the end.
    let mut long = Vec::new();
    for _ in 0..64 {
        long.extend(hop(0, 0));
    }
    long.extend_from_slice(&[0, 3]);
    expect(
        &mut t,
        &v6(long, 0),
        Err(SkipReason::Ipv6ExtChain),
        "64 headers then a cut one",
    );
    // Payload length that claims more than the frame carries.
    let mut f = v6(chain.clone(), 0);
    f[18..20].copy_from_slice(&4000u16.to_be_bytes());
    expect(
        &mut t,
        &f,
        Err(SkipReason::Ipv6PayloadLength),
        "IPv6 payload length past the frame",
    );
    // IPv6 fragments.
    let frag = |offset_units: u16, more: bool| -> Vec<u8> {
        let mut h = vec![17, 0];
        h.extend_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 9]);
        h.extend(udp(1, 2, b"abcdefgh"));
        h
    };
    let (p, _) = t
        .run(&v6(frag(0, true), 44), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(p.flags & WEIR_PKT_IP_FRAGMENT, 0);
    expect(
        &mut t,
        &v6(frag(3, false), 44),
        Err(SkipReason::Ipv6Fragment),
        "IPv6 fragment 3",
    );

    // VLAN stacks: two tags parse, three to six are too deep.
    for depth in 1..=6usize {
        let mut f = eth(0x8100);
        for i in 0..depth {
            let next: u16 = if i + 1 == depth { 0x0800 } else { 0x8100 };
            f.extend_from_slice(&(100 + i as u16).to_be_bytes());
            f.extend_from_slice(&next.to_be_bytes());
        }
        f.extend(ipv4(17, &udp(1, 2, b"x")));
        let want = if depth <= 2 {
            Ok(())
        } else {
            Err(SkipReason::VlanTooDeep)
        };
        expect(&mut t, &f, want, &format!("{depth} VLAN tags"));
    }
    // A VLAN tag cut in the middle.
    let mut f = eth(0x8100);
    f.extend_from_slice(&[0, 5]);
    expect(&mut t, &f, Err(SkipReason::TruncatedL2), "half a VLAN tag");

    // IP-in-IP nested deeper than the limit.
    let mut nested = ipv4(17, &udp(1, 2, b"x"));
    for _ in 0..6 {
        nested = ipv4(4, &nested);
    }
    expect(
        &mut t,
        &frame(0x0800, nested),
        Err(SkipReason::TunnelTooDeep),
        "IP-in-IP 7 deep",
    );

    // EtherType and version nibble disagree.
    let mut f = good_v4.clone();
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    expect(
        &mut t,
        &f,
        Err(SkipReason::BadIpVersion),
        "IPv4 under the IPv6 EtherType",
    );
    // Non-IP.
    expect(
        &mut t,
        &frame(0x0806, vec![0; 28]),
        Err(SkipReason::NotIp),
        "ARP",
    );

    t.assert_adds_up("crafted");
}
