//! IEEE 802.1Q VLAN tags, also used stacked as 802.1ad (QinQ) service + customer tags.
//!
//! A tag on the wire is the TPID (which the enclosing header carries as its EtherType: 0x8100,
//! 0x88a8 or 0x9100) followed by the 2-byte TCI and the 2-byte EtherType of what follows. This
//! view starts after the TPID.

use super::{be16, need, put16, Result};
use crate::ethernet::ethertype;

/// Byte ranges of a tag's fields (after its TPID).
pub mod field {
    use crate::Field;
    /// Tag Control Information: PCP (3 bits), DEI (1), VID (12).
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
}

/// TCI plus inner EtherType.
pub const TAG_LEN: usize = field::ETHERTYPE.end;

/// True for the TPIDs that introduce a VLAN tag.
#[inline]
pub fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    )
}

/// A view over one VLAN tag (after its TPID).
#[derive(Clone, Copy, Debug)]
pub struct VlanTag<'a> {
    buf: &'a [u8],
}

impl<'a> VlanTag<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, TAG_LEN)?;
        Ok(VlanTag { buf })
    }

    /// Tag Control Information (IEEE 802.1Q clause 9.6): PCP(3) DEI(1) VID(12).
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buf, field::TCI.start)
    }

    /// Priority Code Point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.buf[field::TCI.start] >> 5) & 0x7
    }

    /// VLAN Identifier, the low 12 bits of the TCI.
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of the header after this tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buf, field::ETHERTYPE.start)
    }

    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[TAG_LEN..]
    }
}

/// The fields of one VLAN tag (after its TPID), to build one ([`VlanRepr::emit`]) or read one
/// back ([`VlanRepr::parse`]). The TPID is the EtherType of the header before the tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanRepr {
    /// Priority Code Point (3 bits).
    pub pcp: u8,
    /// VLAN Identifier (12 bits).
    pub vid: u16,
    /// EtherType of the header after this tag.
    pub ethertype: u16,
}

impl VlanRepr {
    #[inline]
    pub fn parse(t: &VlanTag) -> VlanRepr {
        VlanRepr {
            pcp: t.pcp(),
            vid: t.vid(),
            ethertype: t.ethertype(),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub const fn header_len(&self) -> usize {
        TAG_LEN
    }

    /// Writes the TCI (DEI 0) and the inner EtherType into `buf[..4]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let tci = (u16::from(self.pcp & 0x7) << 13) | (self.vid & 0x0fff);
        put16(buf, field::TCI, tci);
        put16(buf, field::ETHERTYPE, self.ethertype);
    }

    /// Appends the tag to `out`.
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + TAG_LEN, 0);
        self.emit(&mut out[at..]);
    }
}
