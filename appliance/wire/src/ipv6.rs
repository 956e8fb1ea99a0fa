//! IPv6 fixed headers (RFC 8200 section 3) and the extension headers a flow meter walks
//! through to reach the upper-layer header (RFC 8200 section 4).

use super::ipv4::protocol;
use super::{be16, checksum, need, put16, put32, Error, Result};

/// Byte ranges of the IPv6 fixed header's fields (RFC 8200 section 3).
pub mod field {
    use crate::Field;
    /// Version (4 bits), Traffic Class (8), Flow Label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// A view over the 40-byte IPv6 fixed header.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Checks: 40 bytes present and version 6 ([`Error::Malformed`] otherwise).
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        let p = Ipv6Packet { buf };
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// Version (high nibble of octet 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic Class (8 bits straddling octets 0-1).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.buf[0] << 4) | (self.buf[1] >> 4)
    }

    /// Flow Label (the low 20 bits of octets 0-3).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        super::be32(self.buf, field::VER_TC_FLOW.start) & 0x000f_ffff
    }

    /// Payload Length: bytes after the fixed header, extension headers included (octets 4-5).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buf, field::LENGTH.start)
    }

    /// Next Header (octet 6).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buf[field::NXT_HDR]
    }

    /// Hop Limit (octet 7).
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buf[field::HOP_LIMIT]
    }

    /// Source Address (octets 8-23).
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf[field::SRC_ADDR]);
        a
    }

    /// Destination Address (octets 24-39).
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf[field::DST_ADDR]);
        a
    }
}

/// The fields of an IPv6 fixed header, to build one ([`Ipv6Repr::emit`]) or read one back
/// ([`Ipv6Repr::parse`]). `Default` is a :: -> :: header of hop limit 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    /// Next Header: the upper-layer protocol or the first extension header.
    pub next_header: u8,
    /// Bytes after the fixed header (Payload Length).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
}

impl Default for Ipv6Repr {
    fn default() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: [0; 16],
            dst_addr: [0; 16],
            next_header: protocol::IPV6_NONXT,
            payload_len: 0,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
    }
}

impl Ipv6Repr {
    #[inline]
    pub fn parse(p: &Ipv6Packet) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header into `buf[..40]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        let word =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        put32(b, field::VER_TC_FLOW, word);
        put16(b, field::LENGTH, self.payload_len as u16);
        b[field::NXT_HDR] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr);
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr);
    }

    /// Appends the header to `out`.
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + HEADER_LEN, 0);
        self.emit(&mut out[at..]);
    }

    /// The pseudo-header the upper layer's checksum covers.
    #[inline]
    pub fn pseudo_header(&self) -> checksum::PseudoHeader {
        checksum::PseudoHeader::V6 {
            src: self.src_addr,
            dst: self.dst_addr,
        }
    }
}

/// True for the extension headers walked to find the upper layer: Hop-by-Hop (0), Routing
/// (43), Fragment (44), Destination Options (60), Mobility (135). This is the set NFStream
/// (through nDPI's `ndpi_handle_ipv6_extension_headers`) walks; anything else, AH (51) and ESP
/// (50) included, is taken as the upper-layer protocol of the flow.
#[inline]
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
#[inline]
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
    #[inline]
    pub fn new_checked(kind: u8, buf: &'a [u8]) -> Result<Self> {
        need(buf, 8)?;
        let h = ExtHeader { kind, buf };
        need(buf, h.len())?;
        Ok(h)
    }

    /// Next Header (octet 0).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buf[0]
    }

    /// Header length in bytes (see [`ext_header_len`]).
    #[inline]
    pub fn len(&self) -> usize {
        ext_header_len(self.kind, self.buf[1])
    }

    /// Never true: an extension header is at least 8 bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Fragment header only: Fragment Offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buf, 2) >> 3
    }

    /// Fragment header only: M (more fragments) flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.buf[3] & 0x01 != 0
    }
}
