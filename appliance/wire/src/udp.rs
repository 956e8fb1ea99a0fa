//! UDP headers (RFC 768).

use super::checksum::{self, PseudoHeader};
use super::ipv4::protocol;
use super::{be16, need, put16, Result};

/// Byte ranges of the UDP header's fields (RFC 768).
pub mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view over the 8-byte UDP header.
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> UdpPacket<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        Ok(UdpPacket { buf })
    }

    /// Source Port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf, field::SRC_PORT.start)
    }

    /// Destination Port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf, field::DST_PORT.start)
    }

    /// Length of header plus data.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buf, field::LENGTH.start)
    }

    /// True when the Length field is 0 (only legal for IPv6 jumbograms).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum (0: none was computed).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf, field::CHECKSUM.start)
    }

    /// Bytes after the header that are in the slice.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}

/// The ports of a UDP header, to build one ([`UdpRepr::emit`]) or read one back
/// ([`UdpRepr::parse`]); Length comes from the payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    #[inline]
    pub fn parse(p: &UdpPacket) -> UdpRepr {
        UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        }
    }

    /// Bytes of header [`emit`](Self::emit) writes before the payload.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header and `payload` into `buf`, Length = 8 + payload. With `ph`,
    /// the Checksum covers the pseudo-header, header and payload (a computed zero written as
    /// 0xffff); without, it is 0, which RFC 768 reads as "not computed".
    #[inline]
    pub fn emit(&self, buf: &mut [u8], payload: &[u8], ph: Option<&PseudoHeader>) {
        let seg = &mut buf[..HEADER_LEN + payload.len()];
        put16(seg, field::SRC_PORT, self.src_port);
        put16(seg, field::DST_PORT, self.dst_port);
        put16(seg, field::LENGTH, (HEADER_LEN + payload.len()) as u16);
        put16(seg, field::CHECKSUM, 0);
        seg[HEADER_LEN..].copy_from_slice(payload);
        if let Some(ph) = ph {
            let c = checksum::upper_layer(ph, protocol::UDP, seg);
            put16(seg, field::CHECKSUM, c);
        }
    }

    /// Appends the header and `payload` to `out` (see [`emit`](Self::emit)).
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>, payload: &[u8], ph: Option<&PseudoHeader>) {
        let at = out.len();
        out.resize(at + HEADER_LEN + payload.len(), 0);
        self.emit(&mut out[at..], payload, ph);
    }
}
