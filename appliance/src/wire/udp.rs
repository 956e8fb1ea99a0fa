//! UDP headers (RFC 768).

use super::{be16, need, Result};

pub const HEADER_LEN: usize = 8;

/// A view over the 8-byte UDP header.
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> UdpPacket<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        Ok(UdpPacket { buf })
    }

    /// Source Port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf, 0)
    }

    /// Destination Port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// Length of header plus data.
    pub fn len(&self) -> u16 {
        be16(self.buf, 4)
    }

    /// True when the Length field is 0 (only legal for IPv6 jumbograms).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes after the header that are in the slice.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}
