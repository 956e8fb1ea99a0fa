//! Frames for generated captures, built with weir's wire builders.

use super::pcap::Pkt;
use super::rng::XorShift;
use weir::wire::ethernet::{ethertype, EthernetRepr};
use weir::wire::ipv4::{protocol, Ipv4Repr};
use weir::wire::udp::UdpRepr;

/// The Ethernet header of generated frames: 02:00:00:00:00:01 -> 02:00:00:00:00:02.
pub fn ether(ethertype: u16) -> EthernetRepr {
    EthernetRepr {
        src_addr: [2, 0, 0, 0, 0, 1],
        dst_addr: [2, 0, 0, 0, 0, 2],
        ethertype,
    }
}

/// Ethernet + IPv4 (DF) + UDP with `payload` bytes of payload (0xab), no UDP checksum.
pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + 8 + payload);
    ether(ethertype::IPV4).push(&mut f);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: protocol::UDP,
        payload_len: 8 + payload,
        dont_frag: true,
        ..Default::default()
    }
    .push(&mut f);
    UdpRepr {
        src_port: sport,
        dst_port: dport,
    }
    .push(&mut f, &vec![0xab; payload], None);
    f
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
