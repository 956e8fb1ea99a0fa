//! IPv4 headers (RFC 791 section 3.1), options included.

use super::{be16, need, Error, Result};

/// Fixed header length (IHL = 5).
pub const MIN_HEADER_LEN: usize = 20;

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
    pub fn version(&self) -> u8 {
        self.buf[0] >> 4
    }

    /// Internet Header Length in 32-bit words (low nibble of octet 0).
    pub fn ihl(&self) -> u8 {
        self.buf[0] & 0x0f
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Type of Service / DSCP+ECN (octet 1).
    pub fn tos(&self) -> u8 {
        self.buf[1]
    }

    /// Total Length: header plus data, in bytes (octets 2-3).
    pub fn total_len(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// Identification (octets 4-5).
    pub fn ident(&self) -> u16 {
        be16(self.buf, 4)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.buf[6] & 0x40 != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buf[6] & 0x20 != 0
    }

    /// Fragment Offset in 8-byte units (13 bits).
    pub fn frag_offset(&self) -> u16 {
        be16(self.buf, 6) & 0x1fff
    }

    /// Time to Live (octet 8).
    pub fn ttl(&self) -> u8 {
        self.buf[8]
    }

    /// Protocol of the payload (octet 9).
    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }

    /// Header Checksum (octets 10-11), not verified: captures of offloaded traffic carry zeros.
    pub fn checksum(&self) -> u16 {
        be16(self.buf, 10)
    }

    /// Source Address (octets 12-15).
    pub fn src_addr(&self) -> [u8; 4] {
        [self.buf[12], self.buf[13], self.buf[14], self.buf[15]]
    }

    /// Destination Address (octets 16-19).
    pub fn dst_addr(&self) -> [u8; 4] {
        [self.buf[16], self.buf[17], self.buf[18], self.buf[19]]
    }
}
