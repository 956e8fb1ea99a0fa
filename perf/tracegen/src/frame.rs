//! One packet's frame: Ethernet (optionally one 802.1Q tag), IPv4 or IPv6, TCP or UDP, built
//! with weir's wire builders (`weir-wire`), so lengths agree with the frame. The IPv4 header
//! checksum is always written; the TCP/UDP checksums (over the pseudo-header) only when asked
//! for, since they cost a pass over the payload.

use weir_wire::checksum::PseudoHeader;
use weir_wire::ethernet::{ethertype, EthernetRepr};
use weir_wire::ipv4::{protocol, Ipv4Repr};
use weir_wire::ipv6::Ipv6Repr;
use weir_wire::tcp::{self, TcpRepr};
use weir_wire::udp::UdpRepr;
use weir_wire::vlan::VlanRepr;

pub const ETH_MIN_FRAME: usize = 60;

pub const TCP_FIN: u8 = tcp::flags::FIN;
pub const TCP_SYN: u8 = tcp::flags::SYN;
pub const TCP_RST: u8 = tcp::flags::RST;
pub const TCP_PSH: u8 = tcp::flags::PSH;
pub const TCP_ACK: u8 = tcp::flags::ACK;

#[derive(Clone, Copy, Debug)]
pub enum L4 {
    Tcp {
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
    },
    Udp,
}

/// The headers of one packet, oriented as sent.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// 802.1Q VLAN id; 0 = untagged.
    pub vlan: u16,
    pub v6: bool,
    /// IPv4 addresses use the first four bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub l4: L4,
    pub ip_id: u16,
}

impl Header {
    /// Bytes before the payload.
    pub fn len(&self) -> usize {
        14 + if self.vlan != 0 { 4 } else { 0 }
            + if self.v6 { 40 } else { 20 }
            + match self.l4 {
                L4::Tcp { .. } => 20,
                L4::Udp => 8,
            }
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Write the frame of `h` carrying `payload` into `out` (cleared first), padded to Ethernet's
/// 60-byte minimum.
pub fn build(out: &mut Vec<u8>, h: &Header, payload: &[u8], checksums: bool) {
    out.clear();
    let client_mac = [0x02, 0, 0, 0, 0, 0x01];
    let server_mac = [0x02, 0, 0, 0, 0, 0x02];
    // MACs follow the direction so that both directions look like one link.
    let (src_addr, dst_addr) = if h.sport > h.dport {
        (client_mac, server_mac)
    } else {
        (server_mac, client_mac)
    };
    let l3_type = if h.v6 {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    };
    let mut eth = EthernetRepr {
        src_addr,
        dst_addr,
        ethertype: l3_type,
    };
    if h.vlan != 0 {
        eth.ethertype = ethertype::VLAN;
        eth.push(out);
        VlanRepr {
            pcp: 0,
            vid: h.vlan,
            ethertype: l3_type,
        }
        .push(out);
    } else {
        eth.push(out);
    }
    let (l4_len, proto) = match h.l4 {
        L4::Tcp { .. } => (20 + payload.len(), protocol::TCP),
        L4::Udp => (8 + payload.len(), protocol::UDP),
    };
    let ph = if h.v6 {
        let ip = Ipv6Repr {
            src_addr: h.src,
            dst_addr: h.dst,
            next_header: proto,
            payload_len: l4_len,
            ..Default::default()
        };
        ip.push(out);
        ip.pseudo_header()
    } else {
        let ip = Ipv4Repr {
            src_addr: v4(&h.src),
            dst_addr: v4(&h.dst),
            protocol: proto,
            payload_len: l4_len,
            ident: h.ip_id,
            dont_frag: true,
            ..Default::default()
        };
        ip.push(out);
        ip.pseudo_header()
    };
    let ph: Option<&PseudoHeader> = checksums.then_some(&ph);
    match h.l4 {
        L4::Tcp {
            seq,
            ack,
            flags,
            window,
        } => TcpRepr {
            src_port: h.sport,
            dst_port: h.dport,
            seq_number: seq,
            ack_number: ack,
            flags,
            window,
        }
        .push(out, payload, ph),
        L4::Udp => UdpRepr {
            src_port: h.sport,
            dst_port: h.dport,
        }
        .push(out, payload, ph),
    }
    if out.len() < ETH_MIN_FRAME {
        out.resize(ETH_MIN_FRAME, 0);
    }
}

fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}
