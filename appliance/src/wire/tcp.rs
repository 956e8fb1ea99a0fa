//! TCP headers (RFC 9293 section 3.1; ECE/CWR from RFC 3168).

use super::{be16, be32, need, Result};

pub const MIN_HEADER_LEN: usize = 20;

/// A view over the fixed 20-byte TCP header (options are not interpreted).
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> TcpPacket<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        Ok(TcpPacket { buf })
    }

    /// Source Port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf, 0)
    }

    /// Destination Port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// Sequence Number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buf, 4)
    }

    /// Acknowledgment Number.
    pub fn ack_number(&self) -> u32 {
        be32(self.buf, 8)
    }

    /// Data Offset in 32-bit words (high nibble of octet 12).
    pub fn data_offset(&self) -> u8 {
        self.buf[12] >> 4
    }

    /// Header length in bytes (Data Offset * 4); may be < 20 in a malformed segment.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The control bits CWR ECE URG ACK PSH RST SYN FIN (octet 13).
    pub fn flags(&self) -> u8 {
        self.buf[13]
    }

    /// Window (octets 14-15), unscaled.
    pub fn window(&self) -> u16 {
        be16(self.buf, 14)
    }
}
