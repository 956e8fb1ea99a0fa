//! CAPWAP headers (RFC 5415 section 4.3) and the IEEE 802.11 data frames they carry (RFC 5416,
//! IEEE 802.11-2020 section 9.3.2.1).
//!
//! A wireless termination point (access point) tunnels its stations' frames to the access
//! controller in CAPWAP data packets on UDP port 5247; control messages use port 5246 and carry
//! no station frames.

use super::{be32, need, Error, Result};

/// The CAPWAP control channel's UDP port (RFC 5415 section 3.1).
pub const CONTROL_PORT: u16 = 5246;
/// The CAPWAP data channel's UDP port (RFC 5415 section 3.1).
pub const DATA_PORT: u16 = 5247;
/// The preamble plus the fixed part of the header (HLEN is at least 2 words).
pub const MIN_HEADER_LEN: usize = 8;
/// Wireless Binding ID of IEEE 802.11 (RFC 5415 section 4.3).
pub const WBID_IEEE80211: u8 = 1;

/// A view over a CAPWAP header (preamble included) whose HLEN-stated length is inside the slice.
#[derive(Clone, Copy, Debug)]
pub struct CapwapPacket<'a> {
    buf: &'a [u8],
}

impl<'a> CapwapPacket<'a> {
    /// Checks: 8 bytes present, preamble version 0 and type 0 (a clear CAPWAP header; type 1
    /// is a DTLS record), HLEN at least 2 words, and the HLEN * 4 header bytes present.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, MIN_HEADER_LEN)?;
        let p = CapwapPacket { buf };
        if p.version() != 0 || p.preamble_type() != 0 || p.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        need(buf, p.header_len())?;
        Ok(p)
    }

    fn word0(&self) -> u32 {
        be32(self.buf, 0)
    }

    /// Preamble Version (high nibble of octet 0), 0 in RFC 5415 (section 4.1).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf[0] >> 4
    }

    /// Preamble Type (low nibble of octet 0): 0 CAPWAP header, 1 DTLS header.
    #[inline]
    pub fn preamble_type(&self) -> u8 {
        self.buf[0] & 0x0f
    }

    /// HLEN: the header's length in 4-byte words, optional fields included (5 bits).
    #[inline]
    pub fn hlen(&self) -> u8 {
        ((self.word0() >> 19) & 0x1f) as u8
    }

    /// Header length in bytes (HLEN * 4): where the payload starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.hlen()) * 4
    }

    /// RID: the radio of the access point (5 bits).
    #[inline]
    pub fn radio_id(&self) -> u8 {
        ((self.word0() >> 14) & 0x1f) as u8
    }

    /// WBID: Wireless Binding ID, the format of native frames (5 bits; 1 = IEEE 802.11).
    #[inline]
    pub fn wbid(&self) -> u8 {
        ((self.word0() >> 9) & 0x1f) as u8
    }

    /// T: the payload is a native frame of the WBID's format; clear, an IEEE 802.3 frame.
    #[inline]
    pub fn native_frame(&self) -> bool {
        self.word0() & (1 << 8) != 0
    }

    /// F: the packet is a fragment.
    #[inline]
    pub fn fragment(&self) -> bool {
        self.word0() & (1 << 7) != 0
    }

    /// K: a Data Channel Keep-Alive (its payload is message elements, not a frame).
    #[inline]
    pub fn keep_alive(&self) -> bool {
        self.word0() & (1 << 3) != 0
    }

    /// Fragment Offset in 8-byte units (13 bits of octets 6-7).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be32(self.buf, 4) >> 3 & 0x1fff) as u16
    }

    /// The payload as far as it is in the slice.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..]
    }
}

/// IEEE 802.11 MAC frame type Data (frame control bits 2-3).
pub const WLAN_TYPE_DATA: u8 = 2;

/// A view over an IEEE 802.11 data frame's MAC header whose length (which depends on the frame
/// control flags) is inside the slice.
#[derive(Clone, Copy, Debug)]
pub struct WlanDataFrame<'a> {
    buf: &'a [u8],
    /// Frame Control, octet 0 then octet 1 (in the order the standard puts them).
    fc: [u8; 2],
    header_len: usize,
}

impl<'a> WlanDataFrame<'a> {
    /// Checks: a Data frame (type 2) of protocol version 0, with its whole MAC header present:
    /// 24 bytes, 30 with a fourth address (To DS and From DS both set), plus 2 for the QoS
    /// Control field of QoS subtypes (subtype bit 3), plus 4 for the HT Control field when a
    /// QoS frame has the +HTC/Order bit.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        Self::with_fc(buf, false)
    }

    /// [`WlanDataFrame::new_checked`], also accepting a Frame Control field whose two octets
    /// are swapped, as some access points (Cisco's) send it in CAPWAP (Wireshark's CAPWAP
    /// dissector swaps it by default for the same reason). The standard order is tried first.
    #[inline]
    pub fn new_checked_either_fc(buf: &'a [u8]) -> Result<Self> {
        Self::with_fc(buf, false).or_else(|_| Self::with_fc(buf, true))
    }

    fn with_fc(buf: &'a [u8], swapped: bool) -> Result<Self> {
        need(buf, 24)?;
        let (fc0, fc1) = if swapped {
            (buf[1], buf[0])
        } else {
            (buf[0], buf[1])
        };
        if fc0 & 0x03 != 0 || (fc0 >> 2) & 0x03 != WLAN_TYPE_DATA {
            return Err(Error::Malformed);
        }
        let mut len = 24;
        if fc1 & 0x03 == 0x03 {
            len += 6;
        }
        let qos = fc0 & 0x80 != 0;
        if qos {
            len += 2;
            if fc1 & 0x80 != 0 {
                len += 4;
            }
        }
        need(buf, len)?;
        Ok(WlanDataFrame {
            buf,
            fc: [fc0, fc1],
            header_len: len,
        })
    }

    /// Subtype (frame control bits 4-7); bit 2 of the subtype set means no frame body.
    #[inline]
    pub fn subtype(&self) -> u8 {
        self.fc[0] >> 4
    }

    /// True when the subtype carries a frame body (not Null / QoS Null / CF-only).
    #[inline]
    pub fn has_body(&self) -> bool {
        self.subtype() & 0x04 == 0
    }

    /// Protected Frame flag: the body is encrypted.
    #[inline]
    pub fn protected(&self) -> bool {
        self.fc[1] & 0x40 != 0
    }

    /// Duration/ID (octets 2-3, little-endian like every 802.11 field).
    #[inline]
    pub fn duration(&self) -> u16 {
        u16::from_le_bytes([self.buf[2], self.buf[3]])
    }

    /// Bytes of MAC header before the frame body.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        // HLEN 4, RID 0, WBID 1, T=1, W=1: 0x00 0x20 0x03 0x20 (as in capwap_data.pcapng).
        let mut b = vec![0x00, 0x20, 0x03, 0x20, 0, 0, 0, 0];
        b.extend_from_slice(&[0; 8]);
        let c = CapwapPacket::new_checked(&b).unwrap();
        assert_eq!((c.hlen(), c.header_len(), c.wbid()), (4, 16, 1));
        assert!(c.native_frame() && !c.fragment() && !c.keep_alive());
        assert_eq!(c.radio_id(), 0);
        // HLEN beyond the slice, a DTLS preamble, HLEN below 2.
        assert_eq!(
            CapwapPacket::new_checked(&b[..12]).unwrap_err(),
            Error::Truncated
        );
        let mut d = b.clone();
        d[0] = 0x01;
        assert_eq!(CapwapPacket::new_checked(&d).unwrap_err(), Error::Malformed);
        let mut d = b.clone();
        d[1] = 0x08;
        assert_eq!(CapwapPacket::new_checked(&d).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn wlan_header_lengths() {
        let mut f = vec![0u8; 40];
        f[0] = 0x08; // data
        f[1] = 0x01; // to DS
        assert_eq!(WlanDataFrame::new_checked(&f).unwrap().header_len(), 24);
        f[1] = 0x03; // four addresses
        assert_eq!(WlanDataFrame::new_checked(&f).unwrap().header_len(), 30);
        f[0] = 0x88; // QoS data
        f[1] = 0x81; // to DS, +HTC
        assert_eq!(WlanDataFrame::new_checked(&f).unwrap().header_len(), 30);
        f[0] = 0x48; // null function: no body
        assert!(!WlanDataFrame::new_checked(&f).unwrap().has_body());
        f[0] = 0x80; // management (beacon)
        assert_eq!(
            WlanDataFrame::new_checked(&f).unwrap_err(),
            Error::Malformed
        );
        // Frame Control sent swapped (capwap_data.pcapng): 0x11 0x08.
        f[0] = 0x11;
        f[1] = 0x08;
        assert!(WlanDataFrame::new_checked(&f).is_err());
        let w = WlanDataFrame::new_checked_either_fc(&f).unwrap();
        assert_eq!(
            (w.header_len(), w.has_body(), w.protected()),
            (24, true, false)
        );
    }
}
