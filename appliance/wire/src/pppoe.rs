//! PPPoE session stage (RFC 2516 section 4) carrying one PPP frame (RFC 1661 section 2).

use super::{be16, need, Result};

/// PPPoE header (6) plus the PPP Protocol field (2).
pub const HEADER_LEN: usize = 8;

/// PPP Protocol numbers (IANA "PPP DLL Protocol Numbers").
pub mod ppp_protocol {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// A view over a PPPoE session header and the PPP protocol that follows it.
#[derive(Clone, Copy, Debug)]
pub struct PppoeSession<'a> {
    buf: &'a [u8],
}

impl<'a> PppoeSession<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        Ok(PppoeSession { buf })
    }

    /// VER (high nibble of octet 0), 1 per RFC 2516.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf[0] >> 4
    }

    /// CODE, 0x00 for session data.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buf[1]
    }

    #[inline]
    pub fn session_id(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// LENGTH of the PPPoE payload (the PPP frame, protocol field included).
    #[inline]
    pub fn length(&self) -> u16 {
        be16(self.buf, 4)
    }

    /// PPP Protocol field of the encapsulated frame.
    #[inline]
    pub fn ppp_protocol(&self) -> u16 {
        be16(self.buf, 6)
    }
}
