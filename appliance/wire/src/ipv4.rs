//! IPv4 headers (RFC 791 section 3.1), options included.

use super::{be16, checksum, need, put16, Error, Result};

/// Byte ranges of the IPv4 header's fields (RFC 791 section 3.1).
pub mod field {
    use crate::Field;
    /// Version (high nibble) and IHL (low nibble).
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (high 3 bits) and Fragment Offset (low 13 bits).
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Fixed header length (IHL = 5).
pub const MIN_HEADER_LEN: usize = field::DST_ADDR.end;

/// Don't Fragment and More Fragments in the flags/offset word.
const DF: u16 = 0x4000;
const MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers") weir looks at.
pub mod protocol {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
}

/// A view over an IPv4 header whose fixed part and options are inside the slice.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Checks: 20 bytes present, version 4, IHL >= 5, and the whole header (options included)
    /// present. [`Error::Malformed`] for a bad version or IHL, [`Error::Truncated`] otherwise.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        let p = Ipv4Packet { buf };
        if p.version() != 4 || p.ihl() < 5 {
            return Err(Error::Malformed);
        }
        need(buf, p.header_len())?;
        Ok(p)
    }

    /// Version (high nibble of octet 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf[field::VER_IHL] >> 4
    }

    /// Internet Header Length in 32-bit words (low nibble of octet 0).
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buf[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Type of Service / DSCP+ECN (octet 1).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buf[field::TOS]
    }

    /// Total Length: header plus data, in bytes (octets 2-3).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buf, field::LENGTH.start)
    }

    /// Identification (octets 4-5).
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buf, field::IDENT.start)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flg_off() & MF != 0
    }

    /// Fragment Offset in 8-byte units (13 bits).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.flg_off() & OFFSET_MASK
    }

    /// Time to Live (octet 8).
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf[field::TTL]
    }

    /// Protocol of the payload (octet 9).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf[field::PROTOCOL]
    }

    /// Header Checksum (octets 10-11), not verified: captures of offloaded traffic carry zeros.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf, field::CHECKSUM.start)
    }

    /// Source Address (octets 12-15).
    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        addr(&self.buf[field::SRC_ADDR])
    }

    /// Destination Address (octets 16-19).
    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        addr(&self.buf[field::DST_ADDR])
    }

    /// Flags and Fragment Offset (octets 6-7).
    #[inline]
    fn flg_off(&self) -> u16 {
        be16(self.buf, field::FLG_OFF.start)
    }

    /// True when the Header Checksum is right (RFC 1071: the header sums to all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(0, &self.buf[..self.header_len()])) == 0
    }
}

#[inline]
fn addr(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// The fields of an IPv4 header without options, to build one ([`Ipv4Repr::emit`]) or read
/// one back ([`Ipv4Repr::parse`]). `Default` is a 0.0.0.0 -> 0.0.0.0 header of TTL 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: [u8; 4],
    pub dst_addr: [u8; 4],
    /// Protocol of the payload ([`protocol`]).
    pub protocol: u8,
    /// Bytes after the header: Total Length is this plus 20.
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment Offset in 8-byte units (13 bits).
    pub frag_offset: u16,
}

impl Default for Ipv4Repr {
    fn default() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: [0; 4],
            dst_addr: [0; 4],
            protocol: 0,
            payload_len: 0,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
    }
}

impl Ipv4Repr {
    /// Reads the fields back (options, if any, are not kept; the payload length is Total
    /// Length minus the header, options included, or 0 when Total Length is smaller).
    #[inline]
    pub fn parse(p: &Ipv4Packet) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()).saturating_sub(p.header_len()),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the 20-byte header (IHL 5) into `buf[..20]`, Header Checksum computed.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..MIN_HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        put16(b, field::LENGTH, (MIN_HEADER_LEN + self.payload_len) as u16);
        put16(b, field::IDENT, self.ident);
        let flags = if self.dont_frag { DF } else { 0 } | if self.more_frags { MF } else { 0 };
        put16(b, field::FLG_OFF, flags | (self.frag_offset & OFFSET_MASK));
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        put16(b, field::CHECKSUM, 0);
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr);
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr);
        let c = checksum::finish(checksum::sum(0, b));
        put16(b, field::CHECKSUM, c);
    }

    /// Appends the header to `out`.
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + MIN_HEADER_LEN, 0);
        self.emit(&mut out[at..]);
    }

    /// The pseudo-header the upper layer's checksum covers.
    #[inline]
    pub fn pseudo_header(&self) -> checksum::PseudoHeader {
        checksum::PseudoHeader::V4 {
            src: self.src_addr,
            dst: self.dst_addr,
        }
    }
}
