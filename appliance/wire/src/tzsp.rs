//! TZSP, the TaZmen Sniffer Protocol (UDP port 37008): a sensor sends each frame it captured
//! in a UDP datagram, behind a 4-byte header and a list of tagged fields. There is no RFC; the
//! format is the one Wireshark's TZSP dissector and MikroTik's packet sniffer use.

use super::{be16, need, Error, Result};

/// TZSP's UDP port.
pub const UDP_PORT: u16 = 37008;
/// Version, type, encapsulated protocol.
pub const HEADER_LEN: usize = 4;
/// Type 0: a received packet with its tag list.
pub const TYPE_RECEIVED: u8 = 0;
/// Encapsulated protocol 1: Ethernet.
pub const ENCAP_ETHERNET: u16 = 1;
/// Tag 0: one byte of padding.
pub const TAG_PADDING: u8 = 0;
/// Tag 1: end of the tag list; the encapsulated frame follows.
pub const TAG_END: u8 = 1;

/// A view over a TZSP header and its tag list, all inside the slice.
#[derive(Clone, Copy, Debug)]
pub struct TzspPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
}

impl<'a> TzspPacket<'a> {
    /// Checks: version 1, and a tag list that ends with an END tag inside the slice (PADDING
    /// and END are one byte; every other tag is type, length, then `length` bytes).
    /// [`Error::Malformed`] for another version, [`Error::Truncated`] for a list cut short.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        if buf[0] != 1 {
            return Err(Error::Malformed);
        }
        let mut at = HEADER_LEN;
        // Each tag takes at least one byte: the walk ends within the slice.
        loop {
            match buf.get(at) {
                None => return Err(Error::Truncated),
                Some(&TAG_END) => {
                    at += 1;
                    break;
                }
                Some(&TAG_PADDING) => at += 1,
                Some(_) => {
                    let len = *buf.get(at + 1).ok_or(Error::Truncated)?;
                    at += 2 + usize::from(len);
                }
            }
        }
        need(buf, at)?;
        Ok(TzspPacket {
            buf,
            header_len: at,
        })
    }

    /// Version (octet 0), 1.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf[0]
    }

    /// Type (octet 1): 0 received tag list, 1 packet for transmit, ...
    #[inline]
    pub fn packet_type(&self) -> u8 {
        self.buf[1]
    }

    /// Encapsulated protocol (octets 2-3): 1 Ethernet, 18 IEEE 802.11, ...
    #[inline]
    pub fn encapsulation(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// Bytes of header and tags before the encapsulated frame.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The encapsulated frame as far as it is in the slice.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_walked_to_the_end_tag() {
        // Version 1, received, Ethernet; a padding byte, a 2-byte tag (RSSI), END.
        let b = [1, 0, 0, 1, 0, 10, 2, 0xaa, 0xbb, 1, 0xde, 0xad];
        let t = TzspPacket::new_checked(&b).unwrap();
        assert_eq!((t.version(), t.packet_type(), t.encapsulation()), (1, 0, 1));
        assert_eq!(t.header_len(), 10);
        assert_eq!(t.payload(), &[0xde, 0xad]);
        // No END tag inside the slice, a tag's length past the end, version 2.
        assert_eq!(
            TzspPacket::new_checked(&b[..9]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            TzspPacket::new_checked(&[1, 0, 0, 1, 10, 9, 0]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            TzspPacket::new_checked(&[2, 0, 0, 1, 1]).unwrap_err(),
            Error::Malformed
        );
    }
}
