//! TCP headers (RFC 9293 section 3.1; ECE/CWR from RFC 3168).

use super::checksum::{self, PseudoHeader};
use super::ipv4::protocol;
use super::{be16, be32, need, put16, put32, Result};

/// Byte ranges of the TCP header's fields (RFC 9293 section 3.1).
pub mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data Offset (high nibble; the low nibble is reserved).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// The control bits of octet 13.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Header length without options (Data Offset 5).
pub const MIN_HEADER_LEN: usize = field::URGENT.end;

/// A view over the fixed 20-byte TCP header (options are not interpreted).
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> TcpPacket<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        Ok(TcpPacket { buf })
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

    /// Sequence Number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buf, field::SEQ_NUM.start)
    }

    /// Acknowledgment Number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buf, field::ACK_NUM.start)
    }

    /// Data Offset in 32-bit words (high nibble of octet 12).
    #[inline]
    pub fn data_offset(&self) -> u8 {
        self.buf[field::DATA_OFF] >> 4
    }

    /// Header length in bytes (Data Offset * 4); may be < 20 in a malformed segment.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The control bits CWR ECE URG ACK PSH RST SYN FIN (octet 13).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buf[field::FLAGS]
    }

    /// Window (octets 14-15), unscaled.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buf, field::WIN_SIZE.start)
    }

    /// Checksum (octets 16-17).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf, field::CHECKSUM.start)
    }
}

/// The fields of a TCP header without options, to build one ([`TcpRepr::emit`]) or read one
/// back ([`TcpRepr::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    /// Control bits ([`flags`]).
    pub flags: u8,
    pub window: u16,
}

impl TcpRepr {
    #[inline]
    pub fn parse(p: &TcpPacket) -> TcpRepr {
        TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
        }
    }

    /// Bytes of header [`emit`](Self::emit) writes before the payload.
    #[inline]
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the 20-byte header (Data Offset 5) and `payload` into `buf`. With `ph`, the
    /// Checksum covers the pseudo-header, header and payload; without, it is left zero (as
    /// captures of checksum-offloading senders show it).
    #[inline]
    pub fn emit(&self, buf: &mut [u8], payload: &[u8], ph: Option<&PseudoHeader>) {
        let seg = &mut buf[..MIN_HEADER_LEN + payload.len()];
        put16(seg, field::SRC_PORT, self.src_port);
        put16(seg, field::DST_PORT, self.dst_port);
        put32(seg, field::SEQ_NUM, self.seq_number);
        put32(seg, field::ACK_NUM, self.ack_number);
        seg[field::DATA_OFF] = ((MIN_HEADER_LEN / 4) as u8) << 4;
        seg[field::FLAGS] = self.flags;
        put16(seg, field::WIN_SIZE, self.window);
        put16(seg, field::CHECKSUM, 0);
        put16(seg, field::URGENT, 0);
        seg[MIN_HEADER_LEN..].copy_from_slice(payload);
        if let Some(ph) = ph {
            let c = checksum::upper_layer(ph, protocol::TCP, seg);
            put16(seg, field::CHECKSUM, c);
        }
    }

    /// Appends the header and `payload` to `out` (see [`emit`](Self::emit)).
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>, payload: &[u8], ph: Option<&PseudoHeader>) {
        let at = out.len();
        out.resize(at + MIN_HEADER_LEN + payload.len(), 0);
        self.emit(&mut out[at..], payload, ph);
    }
}
