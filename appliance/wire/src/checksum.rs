//! The Internet checksum (RFC 1071): the one's-complement of the one's-complement sum of
//! 16-bit big-endian words, used by IPv4 (RFC 791), TCP (RFC 9293 section 3.1), UDP (RFC 768)
//! and ICMP (RFC 792), and by ICMPv6 (RFC 4443 section 2.3). TCP, UDP and ICMPv6 also sum a
//! pseudo-header of the IP addresses, protocol and upper-layer length (RFC 768, RFC 8200
//! section 8.1).

use crate::ipv4::protocol;

/// Adds the 16-bit big-endian words of `data` to `acc` (an odd last byte is padded with a
/// zero byte on its right). Not yet folded: pass the result on, then to [`finish`].
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds the carries of `acc` into 16 bits and complements: the value to write in a
/// checksum field. Over data that holds its own correct checksum, `finish(sum(0, data))` is 0.
pub fn finish(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The addresses of the pseudo-header that TCP, UDP and ICMPv6 checksums cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PseudoHeader {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

impl PseudoHeader {
    /// The sum of the pseudo-header for an upper-layer packet of `protocol` and `len` bytes
    /// (RFC 768: zero, protocol, UDP length; RFC 8200 section 8.1: 32-bit length, three zero
    /// bytes, next header; the sums are the same).
    pub fn sum(&self, protocol: u8, len: usize) -> u64 {
        let acc = match self {
            PseudoHeader::V4 { src, dst } => sum(sum(0, src), dst),
            PseudoHeader::V6 { src, dst } => sum(sum(0, src), dst),
        };
        acc + u64::from(protocol) + len as u64
    }
}

/// The checksum of an upper-layer packet `data` (its checksum field zero) under `ph`. UDP's
/// computed zero is sent as all ones (RFC 768: zero means "no checksum").
pub fn upper_layer(ph: &PseudoHeader, protocol: u8, data: &[u8]) -> u16 {
    let c = finish(sum(ph.sum(protocol, data.len()), data));
    if c == 0 && protocol == protocol::UDP {
        0xffff
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 section 3's worked example: the sum of these words is 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_on_the_right() {
        assert_eq!(sum(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    /// A UDP sum that comes out zero is written as 0xffff; a TCP one stays zero.
    #[test]
    fn udp_zero_is_all_ones() {
        let ph = PseudoHeader::V4 {
            src: [0; 4],
            dst: [0; 4],
        };
        for proto in [protocol::UDP, protocol::TCP] {
            // A segment whose last word brings the folded sum to 0xffff (checksum 0).
            let folded = !finish(ph.sum(proto, 10));
            let fill = 0xffff - folded;
            let data = [0, 0, 0, 0, 0, 0, 0, 0, (fill >> 8) as u8, fill as u8];
            assert_eq!(finish(sum(ph.sum(proto, 10), &data)), 0);
            let want = if proto == protocol::UDP { 0xffff } else { 0 };
            assert_eq!(upper_layer(&ph, proto, &data), want);
        }
    }
}
