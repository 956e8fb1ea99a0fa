//! Frame builders: Ethernet (optionally one 802.1Q tag), IPv4 (RFC 791) or IPv6 (RFC 8200),
//! TCP (RFC 9293) or UDP (RFC 768), with lengths that agree with the frame. The IPv4 header
//! checksum is always written; the TCP/UDP checksums (over the RFC 768 / RFC 8200 §8.1
//! pseudo-header) only when asked for, since they cost a pass over the payload.

pub const ETH_MIN_FRAME: usize = 60;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

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

/// One's-complement sum of 16-bit big-endian words (RFC 1071), not yet folded.
#[inline]
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    acc
}

#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// Write the frame of `h` carrying `payload` into `out` (cleared first), padded to Ethernet's
/// 60-byte minimum.
pub fn build(out: &mut Vec<u8>, h: &Header, payload: &[u8], checksums: bool) {
    out.clear();
    let client_mac = [0x02, 0, 0, 0, 0, 0x01];
    let server_mac = [0x02, 0, 0, 0, 0, 0x02];
    // MACs follow the direction so that both directions look like one link.
    let (smac, dmac) = if h.sport > h.dport {
        (client_mac, server_mac)
    } else {
        (server_mac, client_mac)
    };
    out.extend_from_slice(&dmac);
    out.extend_from_slice(&smac);
    let ethertype: u16 = if h.v6 { 0x86DD } else { 0x0800 };
    if h.vlan != 0 {
        out.extend_from_slice(&0x8100u16.to_be_bytes());
        out.extend_from_slice(&(h.vlan & 0x0FFF).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
    let (l4_len, proto) = match h.l4 {
        L4::Tcp { .. } => (20 + payload.len(), 6u8),
        L4::Udp => (8 + payload.len(), 17u8),
    };
    let ip_start = out.len();
    if h.v6 {
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(l4_len as u16).to_be_bytes());
        out.push(proto);
        out.push(64);
        out.extend_from_slice(&h.src);
        out.extend_from_slice(&h.dst);
    } else {
        out.extend_from_slice(&[0x45, 0]);
        out.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        out.extend_from_slice(&h.ip_id.to_be_bytes());
        out.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, no fragment
        out.push(64);
        out.push(proto);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&h.src[..4]);
        out.extend_from_slice(&h.dst[..4]);
        let c = fold(sum16(&out[ip_start..ip_start + 20], 0));
        out[ip_start + 10..ip_start + 12].copy_from_slice(&c.to_be_bytes());
    }
    let l4_start = out.len();
    out.extend_from_slice(&h.sport.to_be_bytes());
    out.extend_from_slice(&h.dport.to_be_bytes());
    let csum_at = match h.l4 {
        L4::Tcp {
            seq,
            ack,
            flags,
            window,
        } => {
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&ack.to_be_bytes());
            out.push(5 << 4); // data offset: 5 words, no options
            out.push(flags);
            out.extend_from_slice(&window.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            l4_start + 16
        }
        L4::Udp => {
            out.extend_from_slice(&(l4_len as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            l4_start + 6
        }
    };
    out.extend_from_slice(payload);
    if checksums {
        let mut acc = if h.v6 {
            sum16(&h.src, sum16(&h.dst, 0))
        } else {
            sum16(&h.src[..4], sum16(&h.dst[..4], 0))
        };
        acc += proto as u64 + l4_len as u64;
        let mut c = fold(sum16(&out[l4_start..], acc));
        if c == 0 && proto == 17 {
            c = 0xFFFF; // RFC 768: a computed zero is sent as all ones
        }
        out[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }
    if out.len() < ETH_MIN_FRAME {
        out.resize(ETH_MIN_FRAME, 0);
    }
}
