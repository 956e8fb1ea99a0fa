//! The builders against the views: what `emit` writes, the view reads back field by field
//! (`Repr::parse(view) == repr`), and every checksum verifies by RFC 1071's rule (the covered
//! bytes, pseudo-header included, sum to all ones).

use crate::checksum::{self, PseudoHeader};
use crate::ethernet::{ethertype, EthernetFrame, EthernetRepr};
use crate::icmp::{IcmpPacket, IcmpRepr};
use crate::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use crate::ipv6::{Ipv6Packet, Ipv6Repr};
use crate::tcp::{flags, TcpPacket, TcpRepr};
use crate::udp::{UdpPacket, UdpRepr};
use crate::vlan::{VlanRepr, VlanTag};

/// True when `seg` (checksum in place) sums to all ones with its pseudo-header.
fn verifies(ph: &PseudoHeader, proto: u8, seg: &[u8]) -> bool {
    checksum::finish(checksum::sum(ph.sum(proto, seg.len()), seg)) == 0
}

#[test]
fn ethernet_and_vlan_round_trip() {
    let eth = EthernetRepr {
        src_addr: [2, 0, 0, 0, 0, 1],
        dst_addr: [2, 0, 0, 0, 0, 2],
        ethertype: ethertype::VLAN,
    };
    let tag = VlanRepr {
        pcp: 5,
        vid: 0xabc,
        ethertype: ethertype::IPV6,
    };
    let mut f = Vec::new();
    eth.push(&mut f);
    tag.push(&mut f);
    assert_eq!(f.len(), eth.header_len() + tag.header_len());
    assert_eq!(&f[..14], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00]);
    let v = EthernetFrame::new_checked(&f).unwrap();
    assert_eq!(EthernetRepr::parse(&v), eth);
    let t = VlanTag::new_checked(v.payload()).unwrap();
    assert_eq!(VlanRepr::parse(&t), tag);
    assert_eq!(t.tci(), 0xa000 | 0xabc);
}

#[test]
fn ipv4_round_trips_with_a_valid_checksum() {
    let ip = Ipv4Repr {
        src_addr: [192, 0, 2, 1],
        dst_addr: [198, 51, 100, 7],
        protocol: protocol::UDP,
        payload_len: 100,
        ttl: 17,
        tos: 0x2e,
        ident: 0x1234,
        dont_frag: false,
        more_frags: true,
        frag_offset: 0x1abc,
    };
    let mut b = [0u8; 20];
    ip.emit(&mut b);
    let p = Ipv4Packet::new_checked(&b).unwrap();
    assert_eq!(Ipv4Repr::parse(&p), ip);
    assert_eq!(p.total_len(), 120);
    assert!(p.verify_checksum());
    // Any changed bit breaks it.
    b[8] ^= 1;
    assert!(!Ipv4Packet::new_checked(&b).unwrap().verify_checksum());
}

/// A header whose checksum is known (0xb861, RFC 1071's rule worked by hand): the builder
/// writes the same bytes.
#[test]
fn ipv4_checksum_matches_a_known_header() {
    let ip = Ipv4Repr {
        src_addr: [192, 168, 0, 1],
        dst_addr: [192, 168, 0, 199],
        protocol: protocol::UDP,
        payload_len: 0x73 - 20,
        ident: 0,
        dont_frag: true,
        ..Default::default()
    };
    let mut b = [0u8; 20];
    ip.emit(&mut b);
    assert_eq!(
        b,
        [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7
        ]
    );
}

#[test]
fn ipv6_round_trip() {
    let ip = Ipv6Repr {
        src_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        next_header: protocol::TCP,
        payload_len: 1234,
        hop_limit: 3,
        traffic_class: 0xb8,
        flow_label: 0xf_1234,
    };
    let mut b = [0u8; 40];
    ip.emit(&mut b);
    assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b).unwrap()), ip);
}

#[test]
fn tcp_round_trips_and_its_checksum_covers_the_pseudo_header() {
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 443,
        seq_number: 0xdead_beef,
        ack_number: 7,
        flags: flags::PSH | flags::ACK,
        window: 512,
    };
    let payload = b"odd-length payload";
    for ph in [
        PseudoHeader::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
        },
        PseudoHeader::V6 {
            src: [1; 16],
            dst: [2; 16],
        },
    ] {
        let mut seg = Vec::new();
        tcp.push(&mut seg, payload, Some(&ph));
        let p = TcpPacket::new_checked(&seg).unwrap();
        assert_eq!(TcpRepr::parse(&p), tcp);
        assert_eq!(p.header_len(), 20);
        assert_eq!(&seg[20..], payload);
        assert_ne!(p.checksum(), 0);
        assert!(verifies(&ph, protocol::TCP, &seg));
        // Another address gives another checksum.
        assert!(!verifies(
            &PseudoHeader::V4 {
                src: [10, 0, 0, 3],
                dst: [10, 0, 0, 2]
            },
            protocol::TCP,
            &seg
        ));
    }
    let mut seg = Vec::new();
    tcp.push(&mut seg, payload, None);
    assert_eq!(TcpPacket::new_checked(&seg).unwrap().checksum(), 0);
}

#[test]
fn udp_round_trips_with_length_and_checksum() {
    let udp = UdpRepr {
        src_port: 5353,
        dst_port: 53,
    };
    let ph = PseudoHeader::V4 {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
    };
    let mut seg = Vec::new();
    udp.push(&mut seg, b"abc", Some(&ph));
    let p = UdpPacket::new_checked(&seg).unwrap();
    assert_eq!(UdpRepr::parse(&p), udp);
    assert_eq!(p.len(), 11);
    assert_eq!(p.payload(), b"abc");
    assert!(verifies(&ph, protocol::UDP, &seg));
    seg.clear();
    udp.push(&mut seg, b"abc", None);
    assert_eq!(UdpPacket::new_checked(&seg).unwrap().checksum(), 0);
}

#[test]
fn icmp_and_icmpv6_checksums() {
    let echo = IcmpRepr {
        msg_type: 8,
        msg_code: 0,
        rest: [0x12, 0x34, 0, 1],
    };
    let mut m = Vec::new();
    echo.push(&mut m, b"ping", None);
    let p = IcmpPacket::new_checked(&m).unwrap();
    assert_eq!(IcmpRepr::parse(&p), Some(echo));
    assert_eq!(checksum::finish(checksum::sum(0, &m)), 0);
    let ph = PseudoHeader::V6 {
        src: [1; 16],
        dst: [2; 16],
    };
    let echo6 = IcmpRepr {
        msg_type: 128,
        ..echo
    };
    m.clear();
    echo6.push(&mut m, b"ping", Some(&ph));
    assert!(verifies(&ph, protocol::ICMPV6, &m));
    assert_eq!(
        IcmpRepr::parse(&IcmpPacket::new_checked(&m[..4]).unwrap()),
        None
    );
}
