//! GTP-U version 1 headers (3GPP TS 29.281 section 5), as carried on UDP port 2152.

use super::{need, Error, Result};

/// The UDP port of GTP-U (3GPP TS 29.281 section 4.4.2.3).
pub const UDP_PORT: u16 = 2152;
/// Mandatory part: flags, message type, length, TEID.
pub const MIN_HEADER_LEN: usize = 8;
/// Message type of a T-PDU (a user packet).
pub const MSG_T_PDU: u8 = 0xff;

/// A view over a GTP-U header whose optional fields and extension headers are all inside the
/// slice.
#[derive(Clone, Copy, Debug)]
pub struct GtpuPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
}

impl<'a> GtpuPacket<'a> {
    /// Checks the 8 mandatory bytes and walks the optional 4 bytes (present when any of E, S,
    /// PN is set) and the extension header chain (each `4 * length` bytes, the last byte naming
    /// the next type, 0 ending the chain). [`Error::Malformed`] for a zero-length extension.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        let flags = buf[0];
        let mut len = MIN_HEADER_LEN;
        if flags & 0x07 != 0 {
            len += 4;
            need(buf, len)?;
            // The next-extension-header type is the last of the 4 optional bytes.
            let mut next = buf[len - 1];
            while flags & 0x04 != 0 && next != 0 {
                need(buf, len + 1)?;
                let ext_len = usize::from(buf[len]) * 4;
                if ext_len == 0 {
                    return Err(Error::Malformed);
                }
                len += ext_len;
                need(buf, len)?;
                next = buf[len - 1];
            }
        }
        Ok(GtpuPacket {
            buf,
            header_len: len,
        })
    }

    /// Version (3 high bits of the flags octet), 1 for GTPv1.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf[0] >> 5
    }

    /// Protocol Type bit: 1 for GTP, 0 for GTP'.
    #[inline]
    pub fn protocol_type(&self) -> bool {
        self.buf[0] & 0x10 != 0
    }

    /// Message Type (octet 1).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf[1]
    }

    /// Tunnel Endpoint Identifier (octets 4-7).
    #[inline]
    pub fn teid(&self) -> u32 {
        super::be32(self.buf, 4)
    }

    /// Bytes of header before the T-PDU, optional fields and extensions included.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The T-PDU (what follows the header) as far as it is in the slice.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..]
    }
}
