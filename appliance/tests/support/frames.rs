//! Frames for generated captures, built with weir's wire builders.

use super::pcap::Pkt;
use super::rng::XorShift;
use weir::wire::ethernet::{ethertype, EthernetRepr};
use weir::wire::ipv4::{protocol, Ipv4Repr};
use weir::wire::ipv6::Ipv6Repr;
use weir::wire::tcp::TcpRepr;
use weir::wire::udp::UdpRepr;

/// The Ethernet header of generated frames: 02:00:00:00:00:01 -> 02:00:00:00:00:02.
pub fn ether(ethertype: u16) -> EthernetRepr {
    EthernetRepr {
        src_addr: [2, 0, 0, 0, 0, 1],
        dst_addr: [2, 0, 0, 0, 0, 2],
        ethertype,
    }
}

/// Ethernet `eth` (its EtherType set here) + IPv4 `ip` (protocol and payload length set
/// here) + `l4`, an upper-layer packet already built.
pub fn over_ipv4(eth: EthernetRepr, ip: Ipv4Repr, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + l4.len());
    EthernetRepr {
        ethertype: ethertype::IPV4,
        ..eth
    }
    .push(&mut f);
    Ipv4Repr {
        protocol,
        payload_len: l4.len(),
        ..ip
    }
    .push(&mut f);
    f.extend_from_slice(l4);
    f
}

/// Ethernet `eth` + IPv6 `ip` (next header and payload length set here) + `l4`.
pub fn over_ipv6(eth: EthernetRepr, ip: Ipv6Repr, next_header: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 40 + l4.len());
    EthernetRepr {
        ethertype: ethertype::IPV6,
        ..eth
    }
    .push(&mut f);
    Ipv6Repr {
        next_header,
        payload_len: l4.len(),
        ..ip
    }
    .push(&mut f);
    f.extend_from_slice(l4);
    f
}

/// A UDP datagram (header and `payload`), no checksum.
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    UdpRepr { src_port, dst_port }.push(&mut d, payload, None);
    d
}

/// A TCP segment (20-byte header and `payload`), no checksum.
pub fn tcp(repr: TcpRepr, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(20 + payload.len());
    repr.push(&mut d, payload, None);
    d
}

/// Ethernet + IPv4 (DF) + UDP with `payload` bytes of payload (0xab), no UDP checksum.
pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        dont_frag: true,
        ..Default::default()
    };
    let l4 = udp(sport, dport, &vec![0xab; payload]);
    over_ipv4(ether(ethertype::IPV4), ip, protocol::UDP, &l4)
}

/// `n` UDP packets of random 5-tuples (each a new flow, almost surely).
pub fn random_flood(seed: u64, n: usize) -> Vec<Pkt> {
    let mut r = XorShift(seed | 1);
    (0..n)
        .map(|_| {
            let x = r.next();
            let y = r.next();
            let f = udp4(
                [10, (x >> 8) as u8, (x >> 16) as u8, x as u8],
                [172, 16, (y >> 8) as u8, y as u8],
                (x >> 24) as u16 | 1024,
                (y >> 16) as u16,
                (y >> 40) as usize % 64,
            );
            let wire_len = f.len() as u32;
            Pkt { data: f, wire_len }
        })
        .collect()
}
