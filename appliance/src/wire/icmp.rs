//! ICMP (RFC 792) and ICMPv6 (RFC 4443 section 2.1) headers: both start with Type, Code and
//! Checksum, followed by a 4-byte message-specific field.

use super::{be16, need, Result};

/// Type, Code, Checksum.
pub const MIN_HEADER_LEN: usize = 4;
/// Type, Code, Checksum and the 4-byte rest-of-header (echo identifier/sequence, MTU, ...):
/// the payload of a message starts after it.
pub const HEADER_LEN: usize = 8;

/// A view over an ICMP or ICMPv6 header (the layout of the first 8 bytes is shared).
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> IcmpPacket<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        Ok(IcmpPacket { buf })
    }

    /// Type.
    pub fn msg_type(&self) -> u8 {
        self.buf[0]
    }

    /// Code.
    pub fn msg_code(&self) -> u8 {
        self.buf[1]
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        be16(self.buf, 2)
    }
}
