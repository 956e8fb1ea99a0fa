//! Ethernet framing for captures of other link types (raw IP, Linux cooked, BSD loopback):
//! DPDK ports carry Ethernet frames.

use super::*;

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86DD;

/// Give a captured packet an Ethernet header, if its link type needs one.
///
/// Returns the frame to hand to the data path: `data` itself for Ethernet, else `scratch`
/// holding a synthetic 14-byte Ethernet header (zero MACs, the right EtherType) followed by the
/// network-layer bytes. `None` for link types weir does not read (counted by the caller).
pub fn to_ethernet<'a>(
    linktype: u32,
    data: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    use linktype::*;
    let (ethertype, l3): (u16, &[u8]) = match linktype {
        ETHERNET => return Some(data),
        RAW | RAW_OLD | RAW_OLD_BSD | IPV4 | IPV6 => {
            let v = data.first()? >> 4;
            match v {
                4 => (ETHERTYPE_IPV4, data),
                6 => (ETHERTYPE_IPV6, data),
                _ => return None,
            }
        }
        NULL | LOOP => {
            // A 4-byte address family in the capturing host's byte order (LOOP: network order).
            let fam_bytes: [u8; 4] = data.get(..4)?.try_into().ok()?;
            // NULL's family is in the capturing host's order: a small value read big-endian
            // has its two high bytes zero.
            let big_endian = linktype == LOOP || (fam_bytes[0] == 0 && fam_bytes[1] == 0);
            let fam = if big_endian {
                u32::from_be_bytes(fam_bytes)
            } else {
                u32::from_le_bytes(fam_bytes)
            };
            match fam {
                2 => (ETHERTYPE_IPV4, &data[4..]),
                10 | 24 | 28 | 30 => (ETHERTYPE_IPV6, &data[4..]),
                _ => return None,
            }
        }
        LINUX_SLL => (
            u16::from_be_bytes(data.get(14..16)?.try_into().ok()?),
            &data[16..],
        ),
        LINUX_SLL2 => (
            u16::from_be_bytes(data.get(0..2)?.try_into().ok()?),
            data.get(20..)?,
        ),
        _ => return None,
    };
    scratch.clear();
    scratch.extend_from_slice(&[0u8; 12]);
    scratch.extend_from_slice(&ethertype.to_be_bytes());
    scratch.extend_from_slice(l3);
    Some(&scratch[..])
}
