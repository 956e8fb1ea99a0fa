//! IPv6 fixed headers (RFC 8200 section 3) and the extension headers a flow meter walks
//! through to reach the upper-layer header (RFC 8200 section 4).

use super::ipv4::protocol;
use super::{be16, need, Error, Result};

pub const HEADER_LEN: usize = 40;

/// A view over the 40-byte IPv6 fixed header.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Checks: 40 bytes present and version 6 ([`Error::Malformed`] otherwise).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        let p = Ipv6Packet { buf };
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// Version (high nibble of octet 0).
    pub fn version(&self) -> u8 {
        self.buf[0] >> 4
    }

    /// Traffic Class (8 bits straddling octets 0-1).
    pub fn traffic_class(&self) -> u8 {
        (self.buf[0] << 4) | (self.buf[1] >> 4)
    }

    /// Payload Length: bytes after the fixed header, extension headers included (octets 4-5).
    pub fn payload_len(&self) -> u16 {
        be16(self.buf, 4)
    }

    /// Next Header (octet 6).
    pub fn next_header(&self) -> u8 {
        self.buf[6]
    }

    /// Hop Limit (octet 7).
    pub fn hop_limit(&self) -> u8 {
        self.buf[7]
    }

    /// Source Address (octets 8-23).
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf[8..24]);
        a
    }

    /// Destination Address (octets 24-39).
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf[24..40]);
        a
    }
}

/// True for the extension headers walked to find the upper layer: Hop-by-Hop (0), Routing
/// (43), Fragment (44), Destination Options (60), Mobility (135). This is the set NFStream
/// (through nDPI's `ndpi_handle_ipv6_extension_headers`) walks; anything else, AH (51) and ESP
/// (50) included, is taken as the upper-layer protocol of the flow.
pub fn is_walked_extension(next_header: u8) -> bool {
    matches!(
        next_header,
        protocol::HOPOPT
            | protocol::IPV6_ROUTE
            | protocol::IPV6_FRAG
            | protocol::IPV6_OPTS
            | protocol::MOBILITY
    )
}

/// Length of a Fragment header (RFC 8200 section 4.5).
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// Length in bytes of an extension header of type `kind` whose second octet (Hdr Ext Len) is
/// `hdr_ext_len`: 8 for a Fragment header (whose second octet is reserved), else
/// (Hdr Ext Len + 1) * 8 (RFC 8200 section 4.3-4.6).
pub fn ext_header_len(kind: u8, hdr_ext_len: u8) -> usize {
    if kind == protocol::IPV6_FRAG {
        FRAGMENT_HEADER_LEN
    } else {
        (usize::from(hdr_ext_len) + 1) * 8
    }
}

/// A view over one extension header: its first two octets are Next Header and Hdr Ext Len.
#[derive(Clone, Copy, Debug)]
pub struct ExtHeader<'a> {
    kind: u8,
    buf: &'a [u8],
}

impl<'a> ExtHeader<'a> {
    /// `kind` is the Next Header value that announced this header. Checks that the whole
    /// header (its stated length) is in `buf`.
    pub fn new_checked(kind: u8, buf: &'a [u8]) -> Result<Self> {
        need(buf, 8)?;
        let h = ExtHeader { kind, buf };
        need(buf, h.len())?;
        Ok(h)
    }

    /// Next Header (octet 0).
    pub fn next_header(&self) -> u8 {
        self.buf[0]
    }

    /// Header length in bytes (see [`ext_header_len`]).
    pub fn len(&self) -> usize {
        ext_header_len(self.kind, self.buf[1])
    }

    /// Never true: an extension header is at least 8 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Fragment header only: Fragment Offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buf, 2) >> 3
    }

    /// Fragment header only: M (more fragments) flag.
    pub fn more_frags(&self) -> bool {
        self.buf[3] & 0x01 != 0
    }
}
