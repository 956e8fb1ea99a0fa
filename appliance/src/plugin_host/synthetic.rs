//! The self-test's traffic: two small synthetic flows (an IPv4 TCP connection and an IPv6
//! UDP exchange) as real Ethernet frames built with the `wire` builders, and the malformed
//! packets of its second round.

use crate::wire::ethernet::{ethertype, EthernetRepr};
use crate::wire::icmp::IcmpRepr;
use crate::wire::ipv4::{protocol, Ipv4Repr};
use crate::wire::ipv6::Ipv6Repr;
use crate::wire::tcp::TcpRepr;
use crate::wire::udp::{self, UdpRepr};
use weir_plugin_api::*;

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

struct Spec {
    flow: usize,
    dir: u8,
    tcp_flags: u8,
    payload: &'static [u8],
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
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
            if k.ip_version == 4 {
                ether(ethertype::IPV4).push(&mut f);
                Ipv4Repr {
                    src_addr: [src[0], src[1], src[2], src[3]],
                    dst_addr: [dst[0], dst[1], dst[2], dst[3]],
                    protocol: k.protocol,
                    payload_len: l4_len + s.payload.len(),
                    ident: i as u16,
                    dont_frag: true,
                    ..Default::default()
                }
                .push(&mut f);
            } else {
                ether(ethertype::IPV6).push(&mut f);
                Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: k.protocol,
                    payload_len: l4_len + s.payload.len(),
                    ..Default::default()
                }
                .push(&mut f);
            }
            let l4_off = f.len();
            let d = s.dir as usize;
            let (tseq, tack) = (seq[s.flow][d], seq[s.flow][1 - d]);
            if tcp {
                TcpRepr {
                    src_port: sp,
                    dst_port: dp,
                    seq_number: tseq,
                    ack_number: if s.tcp_flags & A != 0 { tack } else { 0 },
                    flags: s.tcp_flags,
                    window: 0xfaf0,
                }
                .push(&mut f, s.payload, None);
                let adv = s.payload.len() as u32 + u32::from(s.tcp_flags & (S | F) != 0);
                seq[s.flow][d] = tseq.wrapping_add(adv);
            } else {
                UdpRepr {
                    src_port: sp,
                    dst_port: dp,
                }
                .push(&mut f, s.payload, None);
            }
            let payload_off = l4_off + l4_len;
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

/// The Ethernet header of every self-test frame.
fn ether(ethertype: u16) -> EthernetRepr {
    EthernetRepr {
        src_addr: [0x02, 0, 0, 0, 0, 1],
        dst_addr: [0x02, 0, 0, 0, 0, 2],
        ethertype,
    }
}

/// An Ethernet frame with an IPv4 header 10.9.0.1 -> 10.9.0.2 (`ident`, fragment fields of
/// `frag`), then `l4` as given.
fn ipv4_frame(proto: u8, frag: Ipv4Repr, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    ether(ethertype::IPV4).push(&mut f);
    Ipv4Repr {
        src_addr: [10, 9, 0, 1],
        dst_addr: [10, 9, 0, 2],
        protocol: proto,
        payload_len: l4.len(),
        ..frag
    }
    .push(&mut f);
    f.extend_from_slice(l4);
    f
}

impl SyntheticTraffic {
    /// The malformed round: each frame parsed by the data path's parser, one flow per packet
    /// (its key as parsed, the packet source to destination and first of its flow). Frames the
    /// parser refuses would never reach a plugin and are left out.
    pub fn malformed() -> SyntheticTraffic {
        let mut frames: Vec<(Box<[u8]>, u32)> = Vec::new();
        let ident = |ident| Ipv4Repr {
            ident,
            ..Default::default()
        };
        // A TCP segment with 40 bytes of payload, captured up to 5 bytes of it.
        let mut tcp = Vec::new();
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 1,
            ack_number: 1,
            flags: 0x18, // PSH ACK
            window: 0xfaf0,
        }
        .push(&mut tcp, &[b'x'; 40], None);
        let df = Ipv4Repr {
            dont_frag: true,
            ..ident(1)
        };
        let full = ipv4_frame(protocol::TCP, df, &tcp);
        let wire = full.len() as u32;
        frames.push((full[..14 + 20 + 20 + 5].into(), wire));
        // The same, captured up to the end of the TCP header only.
        frames.push((full[..14 + 20 + 20].into(), wire));
        // UDP without payload.
        let mut udp = Vec::new();
        UdpRepr {
            src_port: 5000,
            dst_port: 6000,
        }
        .push(&mut udp, &[], None);
        frames.push((ipv4_frame(protocol::UDP, ident(2), &udp).into(), 0));
        // ICMP echo request.
        let echo = IcmpRepr {
            msg_type: 8,
            msg_code: 0,
            rest: [0, 1, 0, 1],
        };
        let mut icmp = Vec::new();
        echo.push(&mut icmp, b"ping", None);
        frames.push((ipv4_frame(protocol::ICMP, ident(3), &icmp).into(), 0));
        // ICMPv6 echo request.
        let mut v6 = Vec::new();
        ether(ethertype::IPV6).push(&mut v6);
        let ip6 = Ipv6Repr {
            src_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            next_header: protocol::ICMPV6,
            payload_len: 8,
            ..Default::default()
        };
        ip6.push(&mut v6);
        let echo6 = IcmpRepr {
            msg_type: 128,
            ..echo
        };
        echo6.push(&mut v6, &[], Some(&ip6.pseudo_header()));
        frames.push((v6.into(), 0));
        // A fragmented UDP datagram: the first fragment (MF, with the UDP header, whose Length
        // is the whole datagram's) and a later one (offset 1480 bytes, no L4 header).
        let mut first = Vec::new();
        UdpRepr {
            src_port: 5000,
            dst_port: 6000,
        }
        .push(&mut first, &[b'f'; 24], None);
        first[udp::field::LENGTH].copy_from_slice(&2000u16.to_be_bytes());
        let mf = Ipv4Repr {
            more_frags: true,
            ..ident(4)
        };
        frames.push((ipv4_frame(protocol::UDP, mf, &first).into(), 0));
        let later = Ipv4Repr {
            frag_offset: 185,
            ..ident(4)
        };
        frames.push((ipv4_frame(protocol::UDP, later, &[b'g'; 16]).into(), 0));

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
