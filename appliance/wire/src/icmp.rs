//! ICMP (RFC 792) and ICMPv6 (RFC 4443 section 2.1) headers: both start with Type, Code and
//! Checksum, followed by a 4-byte message-specific field.

use super::checksum::{self, PseudoHeader};
use super::ipv4::protocol;
use super::{be16, need, put16, Result};

/// Byte ranges of the fields ICMP and ICMPv6 share.
pub mod field {
    use crate::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Identifier and sequence of echo messages, MTU of Packet Too Big, unused in others.
    pub const REST: Field = 4..8;
}

/// Type, Code, Checksum.
pub const MIN_HEADER_LEN: usize = field::CHECKSUM.end;
/// Type, Code, Checksum and the 4-byte rest-of-header (echo identifier/sequence, MTU, ...):
/// the payload of a message starts after it.
pub const HEADER_LEN: usize = field::REST.end;

/// A view over an ICMP or ICMPv6 header (the layout of the first 8 bytes is shared).
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> IcmpPacket<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        Ok(IcmpPacket { buf })
    }

    /// Type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf[field::TYPE]
    }

    /// Code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buf[field::CODE]
    }

    /// Checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf, field::CHECKSUM.start)
    }
}

/// The 8-byte header of an ICMP or ICMPv6 message, to build one ([`IcmpRepr::emit`]) or read
/// one back ([`IcmpRepr::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpRepr {
    pub msg_type: u8,
    pub msg_code: u8,
    /// The 4 message-specific bytes (echo identifier and sequence, ...).
    pub rest: [u8; 4],
}

impl IcmpRepr {
    /// Needs the full 8-byte header in the view's slice; `None` when it is shorter.
    #[inline]
    pub fn parse(p: &IcmpPacket) -> Option<IcmpRepr> {
        let rest = p.buf.get(field::REST)?;
        Some(IcmpRepr {
            msg_type: p.msg_type(),
            msg_code: p.msg_code(),
            rest: [rest[0], rest[1], rest[2], rest[3]],
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes before the payload.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and `payload` into `buf`, Checksum computed: over the message for
    /// ICMP (`ph` `None`, RFC 792), over the IPv6 pseudo-header too for ICMPv6 (`ph` given,
    /// RFC 4443 section 2.3).
    #[inline]
    pub fn emit(&self, buf: &mut [u8], payload: &[u8], ph: Option<&PseudoHeader>) {
        let msg = &mut buf[..HEADER_LEN + payload.len()];
        msg[field::TYPE] = self.msg_type;
        msg[field::CODE] = self.msg_code;
        put16(msg, field::CHECKSUM, 0);
        msg[field::REST].copy_from_slice(&self.rest);
        msg[HEADER_LEN..].copy_from_slice(payload);
        let c = match ph {
            Some(ph) => checksum::upper_layer(ph, protocol::ICMPV6, msg),
            None => checksum::finish(checksum::sum(0, msg)),
        };
        put16(msg, field::CHECKSUM, c);
    }

    /// Appends the header and `payload` to `out` (see [`emit`](Self::emit)).
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>, payload: &[u8], ph: Option<&PseudoHeader>) {
        let at = out.len();
        out.resize(at + HEADER_LEN + payload.len(), 0);
        self.emit(&mut out[at..], payload, ph);
    }
}
