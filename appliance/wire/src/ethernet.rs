//! Ethernet II and IEEE 802.3 frames (IEEE 802.3 clause 3.2; LLC/SNAP per RFC 1042).

use super::{be16, need, put16, Result};

/// EtherType values weir looks at (IEEE registry).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// IEEE 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag still used by some switches.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// Byte ranges of the Ethernet II header's fields.
pub mod field {
    use crate::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of an 802.2 LLC header followed by a SNAP header (RFC 1042).
pub const LLC_SNAP_LEN: usize = 8;

/// A view over an Ethernet frame (without preamble or FCS, as captured).
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<'a> {
    buf: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Checks that the 14-byte header is present.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, HEADER_LEN)?;
        Ok(EthernetFrame { buf })
    }

    /// Destination MAC address (octets 0-5).
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        mac(&self.buf[field::DESTINATION])
    }

    /// Source MAC address (octets 6-11).
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        mac(&self.buf[field::SOURCE])
    }

    /// The Type/Length field (octets 12-13): an EtherType when >= 1536, an 802.3 payload length
    /// when <= 1500 (IEEE 802.3 clause 3.2.6).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buf, field::ETHERTYPE.start)
    }

    /// True when the Type/Length field is a length, i.e. an 802.3 frame with an LLC header.
    #[inline]
    pub fn is_8023_length(&self) -> bool {
        self.ethertype() <= 1500
    }

    /// Bytes after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}

#[inline]
fn mac(b: &[u8]) -> [u8; 6] {
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// The fields of an Ethernet II header, to build one ([`EthernetRepr::emit`]) or read one back
/// ([`EthernetRepr::parse`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src_addr: [u8; 6],
    pub dst_addr: [u8; 6],
    /// The EtherType (or, for a tagged frame, the first tag's TPID).
    pub ethertype: u16,
}

impl EthernetRepr {
    #[inline]
    pub fn parse(f: &EthernetFrame) -> EthernetRepr {
        EthernetRepr {
            src_addr: f.src_addr(),
            dst_addr: f.dst_addr(),
            ethertype: f.ethertype(),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf[..14]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::DESTINATION].copy_from_slice(&self.dst_addr);
        buf[field::SOURCE].copy_from_slice(&self.src_addr);
        put16(buf, field::ETHERTYPE, self.ethertype);
    }

    /// Appends the header to `out`.
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + HEADER_LEN, 0);
        self.emit(&mut out[at..]);
    }
}

/// An 802.2 LLC header with a SNAP extension (RFC 1042): DSAP 0xAA, SSAP 0xAA, control 0x03,
/// a 3-byte OUI and a 2-byte EtherType.
#[derive(Clone, Copy, Debug)]
pub struct LlcSnap<'a> {
    buf: &'a [u8],
}

impl<'a> LlcSnap<'a> {
    /// Checks that the 8 bytes are present. Whether they are really SNAP is
    /// [`LlcSnap::is_snap`]'s question.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, LLC_SNAP_LEN)?;
        Ok(LlcSnap { buf })
    }

    /// DSAP and SSAP both 0xAA with an unnumbered-information control byte (RFC 1042).
    #[inline]
    pub fn is_snap(&self) -> bool {
        self.buf[0] == 0xaa && self.buf[1] == 0xaa && self.buf[2] == 0x03
    }

    /// Organizationally unique identifier; 0 means the next field is an EtherType.
    #[inline]
    pub fn oui(&self) -> u32 {
        u32::from_be_bytes([0, self.buf[3], self.buf[4], self.buf[5]])
    }

    /// The EtherType carried in the SNAP header (octets 6-7).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buf, 6)
    }
}
