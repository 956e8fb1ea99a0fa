//! The self-test's traffic: two small synthetic flows (an IPv4 TCP connection and an IPv6
//! UDP exchange) as real Ethernet frames, and the malformed packets of its second round.

use weir_plugin_api::*;

/// Synthetic traffic: owned frames, the packet views over them and their flows.
pub struct SyntheticTraffic {
    /// The frames the packets point into; must outlive every use of `pkts`.
    pub(super) _frames: Vec<Box<[u8]>>,
    pub keys: Vec<FlowKeyV1>,
    pub pkts: Vec<PacketV1>,
    /// Index into `keys` of each packet's flow.
    pub flow_of: Vec<usize>,
}

// SAFETY: the packet views point only into the frames owned by the same value.
unsafe impl Send for SyntheticTraffic {}

pub(super) struct Spec {
    flow: usize,
    dir: u8,
    tcp_flags: u8,
    payload: &'static [u8],
}

pub(super) fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

pub(super) fn ipv4_checksum(h: &[u8]) -> u16 {
    // RFC 1071: one's-complement sum of 16-bit words.
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl SyntheticTraffic {
    /// The self-test traffic: flow 0 is IPv4 TCP 10.0.0.1:40000 -> 10.0.0.2:80 (8 packets),
    /// flow 1 is IPv6 UDP [2001:db8::1]:5353 -> [2001:db8::2]:53 (3 packets), interleaved.
    // Long: the two flows' packets written out one by one, as a reader checks them.
    pub fn new() -> SyntheticTraffic {
        let mut ip6a = [0u8; 16];
        ip6a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut ip6b = ip6a;
        ip6a[15] = 1;
        ip6b[15] = 2;
        let keys = vec![
            FlowKeyV1 {
                src_ip: v4([10, 0, 0, 1]),
                dst_ip: v4([10, 0, 0, 2]),
                src_port: 40000,
                dst_port: 80,
                protocol: 6,
                ip_version: 4,
                ..Default::default()
            },
            FlowKeyV1 {
                src_ip: ip6a,
                dst_ip: ip6b,
                src_port: 5353,
                dst_port: 53,
                protocol: 17,
                ip_version: 6,
                ..Default::default()
            },
        ];
        const S: u8 = WEIR_TCP_SYN;
        const A: u8 = WEIR_TCP_ACK;
        const F: u8 = WEIR_TCP_FIN;
        const P: u8 = WEIR_TCP_PSH;
        let c2s = WEIR_DIR_SRC_TO_DST;
        let s2c = WEIR_DIR_DST_TO_SRC;
        let specs = [
            Spec {
                flow: 0,
                dir: c2s,
                tcp_flags: S,
                payload: b"",
            },
            Spec {
                flow: 1,
                dir: c2s,
                tcp_flags: 0,
                payload: b"\x12\x34\x01\x00\x00\x01query",
            },
            Spec {
                flow: 0,
                dir: s2c,
                tcp_flags: S | A,
                payload: b"",
            },
            Spec {
                flow: 0,
                dir: c2s,
                tcp_flags: A,
                payload: b"",
            },
            Spec {
                flow: 0,
                dir: c2s,
                tcp_flags: P | A,
                payload: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            },
            Spec {
                flow: 1,
                dir: s2c,
                tcp_flags: 0,
                payload: b"\x12\x34\x81\x80\x00\x01answer-bytes",
            },
            Spec {
                flow: 0,
                dir: s2c,
                tcp_flags: P | A,
                payload: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            },
            Spec {
                flow: 0,
                dir: c2s,
                tcp_flags: F | A,
                payload: b"",
            },
            Spec {
                flow: 1,
                dir: c2s,
                tcp_flags: 0,
                payload: b"\x56\x78\x01\x00\x00\x01again",
            },
            Spec {
                flow: 0,
                dir: s2c,
                tcp_flags: F | A,
                payload: b"",
            },
            Spec {
                flow: 0,
                dir: c2s,
                tcp_flags: A,
                payload: b"",
            },
        ];
        let mut frames = Vec::new();
        let mut pkts = Vec::new();
        let mut flow_of = Vec::new();
        let mut seq = [[1000u32, 5000u32]; 2];
        let mut seen = [false; 2];
        for (i, s) in specs.iter().enumerate() {
            let k = &keys[s.flow];
            let (src, dst, sp, dp) = if s.dir == c2s {
                (k.src_ip, k.dst_ip, k.src_port, k.dst_port)
            } else {
                (k.dst_ip, k.src_ip, k.dst_port, k.src_port)
            };
            let tcp = k.protocol == 6;
            let l4_len = if tcp { 20 } else { 8 };
            let l3_len = if k.ip_version == 4 { 20 } else { 40 };
            let ip_len = l3_len + l4_len + s.payload.len();
            let mut f = Vec::with_capacity(14 + ip_len);
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
            if k.ip_version == 4 {
                f.extend_from_slice(&[0x08, 0x00]);
                let mut h = [0u8; 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                h[4..6].copy_from_slice(&(i as u16).to_be_bytes());
                h[6] = 0x40; // DF
                h[8] = 64;
                h[9] = k.protocol;
                h[12..16].copy_from_slice(&src[..4]);
                h[16..20].copy_from_slice(&dst[..4]);
                let c = ipv4_checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            } else {
                f.extend_from_slice(&[0x86, 0xdd]);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((l4_len + s.payload.len()) as u16).to_be_bytes());
                f.extend_from_slice(&[k.protocol, 64]);
                f.extend_from_slice(&src);
                f.extend_from_slice(&dst);
            }
            let l4_off = f.len();
            f.extend_from_slice(&sp.to_be_bytes());
            f.extend_from_slice(&dp.to_be_bytes());
            let d = s.dir as usize;
            let (tseq, tack) = (seq[s.flow][d], seq[s.flow][1 - d]);
            if tcp {
                f.extend_from_slice(&tseq.to_be_bytes());
                f.extend_from_slice(&(if s.tcp_flags & A != 0 { tack } else { 0 }).to_be_bytes());
                f.extend_from_slice(&[0x50, s.tcp_flags, 0xfa, 0xf0, 0, 0, 0, 0]);
                let adv = s.payload.len() as u32 + u32::from(s.tcp_flags & (S | F) != 0);
                seq[s.flow][d] = tseq.wrapping_add(adv);
            } else {
                f.extend_from_slice(&((8 + s.payload.len()) as u16).to_be_bytes());
                f.extend_from_slice(&[0, 0]);
            }
            let payload_off = f.len();
            f.extend_from_slice(s.payload);
            let frame = f.into_boxed_slice();
            let first = !seen[s.flow];
            seen[s.flow] = true;
            pkts.push(PacketV1 {
                ts_ns: 1_700_000_000_000_000_000 + i as u64 * 1_250_000,
                data: frame.as_ptr(),
                wire_len: frame.len() as u32,
                cap_len: frame.len() as u32,
                l3_off: 14,
                l4_off: l4_off as u16,
                payload_off: payload_off as u16,
                payload_len: s.payload.len() as u16,
                ip_len: ip_len as u16,
                direction: s.dir,
                ip_version: k.ip_version,
                protocol: k.protocol,
                tcp_flags: if tcp { s.tcp_flags } else { 0 },
                tcp_window: if tcp { 0xfaf0 } else { 0 },
                tcp_seq: if tcp { tseq } else { 0 },
                tcp_ack: if tcp && s.tcp_flags & A != 0 { tack } else { 0 },
                ttl: 64,
                flags: if first { WEIR_PKT_FIRST_OF_FLOW } else { 0 },
                tcp_hdr_len: if tcp { 20 } else { 0 },
                reserved: [0; 3],
            });
            flow_of.push(s.flow);
            frames.push(frame);
        }
        SyntheticTraffic {
            _frames: frames,
            keys,
            pkts,
            flow_of,
        }
    }
}

/// A frame: zero MACs, `ethertype`, then `l3`.
pub(super) fn ether(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// An IPv4 packet 10.9.0.1 -> 10.9.0.2 carrying `l4` (`frag`: flags and fragment offset field).
pub(super) fn ipv4_packet(proto: u8, frag: u16, id: u16, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&[10, 9, 0, 1]);
    h[16..20].copy_from_slice(&[10, 9, 0, 2]);
    let c = ipv4_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

impl SyntheticTraffic {
    /// The malformed round: each frame parsed by the data path's parser, one flow per packet
    /// (its key as parsed, the packet source to destination and first of its flow). Frames the
    /// parser refuses would never reach a plugin and are left out.
    pub fn malformed() -> SyntheticTraffic {
        let mut frames: Vec<(Box<[u8]>, u32)> = Vec::new();
        // A TCP segment with 40 bytes of payload, captured up to 5 bytes of it.
        let mut tcp = vec![
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xfa, 0xf0,
        ];
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&[b'x'; 40]);
        let full = ether(0x0800, &ipv4_packet(6, 0x4000, 1, &tcp));
        let wire = full.len() as u32;
        frames.push((full[..14 + 20 + 20 + 5].into(), wire));
        // The same, captured up to the end of the TCP header only.
        frames.push((full[..14 + 20 + 20].into(), wire));
        // UDP without payload.
        let udp = [0x13, 0x88, 0x17, 0x70, 0, 8, 0, 0];
        frames.push((ether(0x0800, &ipv4_packet(17, 0, 2, &udp)).into(), 0));
        // ICMP echo request.
        let icmp = [8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g'];
        frames.push((ether(0x0800, &ipv4_packet(1, 0, 3, &icmp)).into(), 0));
        // ICMPv6 echo request.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
        frames.push((ether(0x86dd, &v6).into(), 0));
        // A fragmented UDP datagram: the first fragment (MF, with the UDP header) and a later
        // one (offset 1480 bytes, no L4 header).
        let mut first = vec![0x13, 0x88, 0x17, 0x70, 0x07, 0xd0, 0, 0];
        first.extend_from_slice(&[b'f'; 24]);
        frames.push((ether(0x0800, &ipv4_packet(17, 0x2000, 4, &first)).into(), 0));
        frames.push((
            ether(0x0800, &ipv4_packet(17, 185, 4, &[b'g'; 16])).into(),
            0,
        ));

        let mut keys = Vec::new();
        let mut pkts = Vec::new();
        let mut flow_of = Vec::new();
        let mut kept = Vec::new();
        for (i, (frame, wire)) in frames.into_iter().enumerate() {
            let wire = if wire == 0 { frame.len() as u32 } else { wire };
            let mut pkt = PacketV1::EMPTY;
            let mut key = FlowKeyV1::default();
            let ts = 1_700_000_001_000_000_000 + i as u64 * 1_000_000;
            if crate::parse::parse(&frame, wire, ts, &mut pkt, &mut key).is_err() {
                continue;
            }
            pkt.direction = WEIR_DIR_SRC_TO_DST;
            pkt.flags |= WEIR_PKT_FIRST_OF_FLOW;
            flow_of.push(keys.len());
            keys.push(key);
            pkts.push(pkt);
            kept.push(frame);
        }
        SyntheticTraffic {
            _frames: kept,
            keys,
            pkts,
            flow_of,
        }
    }
}

impl Default for SyntheticTraffic {
    fn default() -> Self {
        SyntheticTraffic::new()
    }
}
