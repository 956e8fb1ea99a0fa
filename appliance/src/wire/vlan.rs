//! IEEE 802.1Q VLAN tags, also used stacked as 802.1ad (QinQ) service + customer tags.
//!
//! A tag on the wire is the TPID (which the enclosing header carries as its EtherType: 0x8100,
//! 0x88a8 or 0x9100) followed by the 2-byte TCI and the 2-byte EtherType of what follows. This
//! view starts after the TPID.

use super::{be16, need, Result};
use crate::wire::ethernet::ethertype;

/// TCI plus inner EtherType.
pub const TAG_LEN: usize = 4;

/// True for the TPIDs that introduce a VLAN tag.
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
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, TAG_LEN)?;
        Ok(VlanTag { buf })
    }

    /// Tag Control Information (IEEE 802.1Q clause 9.6): PCP(3) DEI(1) VID(12).
    pub fn tci(&self) -> u16 {
        be16(self.buf, 0)
    }

    /// Priority Code Point.
    pub fn pcp(&self) -> u8 {
        (self.buf[0] >> 5) & 0x7
    }

    /// VLAN Identifier, the low 12 bits of the TCI.
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of the header after this tag.
    pub fn ethertype(&self) -> u16 {
        be16(self.buf, 2)
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[TAG_LEN..]
    }
}
