//! Heavy-hitter keys: the fields of a packet they are made of ([`PacketKey`]) and the packed
//! key a table counts and an alert names ([`HhKey`]).

use super::config::KeyType;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fields of one packet that heavy-hitter keys are made of. IPv4 addresses sit in the first
/// 4 bytes (as in `FlowKeyV1`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketKey {
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// 4 or 6.
    pub ip_version: u8,
}

/// A heavy-hitter key: an address or prefix (with version and length) or a bidirectional
/// 5-tuple, packed in 40 bytes. Read it with [`HhKey::format`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HhKey([u64; 5]);

#[inline]
fn words(ip: &[u8; 16]) -> (u64, u64) {
    let (a, b) = ip.split_at(8);
    // The split is 8/8 of a 16-byte array: both conversions succeed.
    (
        u64::from_be_bytes(a.try_into().unwrap_or_default()),
        u64::from_be_bytes(b.try_into().unwrap_or_default()),
    )
}

fn ip_of(hi: u64, lo: u64, version: u8) -> IpAddr {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    if version == 4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

/// Keep the first `len` bits of a 128-bit address held as two words.
#[inline]
fn mask(hi: u64, lo: u64, len: u8) -> (u64, u64) {
    let keep = |w: u64, bits: u32| match bits {
        0 => 0,
        b if b >= 64 => w,
        b => w & !(u64::MAX >> b),
    };
    let len = len as u32;
    (keep(hi, len.min(64)), keep(lo, len.saturating_sub(64)))
}

impl HhKey {
    /// The key of packet `p` for a table of `cfg`.
    #[inline]
    pub fn of(cfg_key: KeyType, v4_prefix: u8, v6_prefix: u8, p: &PacketKey) -> HhKey {
        let v = p.ip_version as u64;
        let addr = |ip: &[u8; 16], len: u8| {
            let (hi, lo) = words(ip);
            let (hi, lo) = mask(hi, lo, len);
            HhKey([hi, lo, v | (len as u64) << 8, 0, 0])
        };
        let len = if p.ip_version == 4 {
            v4_prefix
        } else {
            v6_prefix
        };
        match cfg_key {
            KeyType::SrcIp | KeyType::SrcPrefix => addr(&p.src_ip, len),
            KeyType::DstIp | KeyType::DstPrefix => addr(&p.dst_ip, len),
            KeyType::Flow => {
                // Bidirectional: order the endpoints so both directions give one key.
                let a = (words(&p.src_ip), p.src_port);
                let b = (words(&p.dst_ip), p.dst_port);
                let (lo_end, hi_end) = if a <= b { (a, b) } else { (b, a) };
                HhKey([
                    lo_end.0 .0,
                    lo_end.0 .1,
                    hi_end.0 .0,
                    hi_end.0 .1,
                    lo_end.1 as u64 | (hi_end.1 as u64) << 16 | (p.protocol as u64) << 32 | v << 40,
                ])
            }
        }
    }

    /// The Community ID of a `flow` key (`None` for ICMP, whose key has no type and code,
    /// and for other key types).
    pub fn community_id(&self, key_type: KeyType, seed: u16) -> Option<String> {
        let w = &self.0;
        let proto = (w[4] >> 32) as u8;
        if key_type != KeyType::Flow || proto == 1 || proto == 58 {
            return None;
        }
        let mut k = weir_plugin_api::FlowKeyV1 {
            src_port: w[4] as u16,
            dst_port: (w[4] >> 16) as u16,
            protocol: proto,
            ip_version: (w[4] >> 40) as u8,
            ..Default::default()
        };
        k.src_ip[..8].copy_from_slice(&w[0].to_be_bytes());
        k.src_ip[8..].copy_from_slice(&w[1].to_be_bytes());
        k.dst_ip[..8].copy_from_slice(&w[2].to_be_bytes());
        k.dst_ip[8..].copy_from_slice(&w[3].to_be_bytes());
        Some(
            crate::flow::community_id::compute(seed, &k, [0, 0])
                .as_str()
                .to_string(),
        )
    }

    /// Text form for alerts: `10.0.0.1`, `10.1.2.0/24`, `2001:db8::/64`, or for a flow
    /// `10.0.0.1:1234-10.0.0.2:80/6` (`[v6]:port`, lower endpoint first, then the IP protocol).
    pub fn format(&self, key_type: KeyType) -> String {
        let w = &self.0;
        match key_type {
            KeyType::SrcIp | KeyType::DstIp => ip_of(w[0], w[1], w[2] as u8).to_string(),
            KeyType::SrcPrefix | KeyType::DstPrefix => {
                format!("{}/{}", ip_of(w[0], w[1], w[2] as u8), (w[2] >> 8) as u8)
            }
            KeyType::Flow => {
                let v = (w[4] >> 40) as u8;
                let end = |ip: IpAddr, port: u64| match ip {
                    IpAddr::V4(a) => format!("{a}:{}", port as u16),
                    IpAddr::V6(a) => format!("[{a}]:{}", port as u16),
                };
                format!(
                    "{}-{}/{}",
                    end(ip_of(w[0], w[1], v), w[4]),
                    end(ip_of(w[2], w[3], v), w[4] >> 16),
                    (w[4] >> 32) as u8
                )
            }
        }
    }

    /// Equality without a `memcmp` call (the derived `==` on `[u64; 5]` makes one).
    #[inline]
    pub(super) fn same(&self, o: &HhKey) -> bool {
        let (a, b) = (&self.0, &o.0);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }

    #[inline]
    pub(super) fn hash(&self) -> u64 {
        // Folded 64x64->128-bit multiplies (as in wyhash/foldhash): the three products are
        // independent, so they overlap in the pipeline; the last fold mixes every input bit
        // into the low bits that pick the bucket.
        #[inline]
        fn fold(a: u64, b: u64) -> u64 {
            let p = a as u128 * b as u128;
            (p as u64) ^ ((p >> 64) as u64)
        }
        let w = &self.0;
        let x = fold(w[0] ^ 0x243f_6a88_85a3_08d3, w[1] ^ 0x1319_8a2e_0370_7344);
        let y = fold(w[2] ^ 0xa409_3822_299f_31d0, w[3] ^ 0x082e_fa98_ec4e_6c89);
        let z = fold(w[4] ^ 0x4528_21e6_38d0_1377, 0xbe54_66cf_34e9_0c6c);
        fold(x ^ 0xc0ac_29b7_c97c_50dd, y ^ z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    #[test]
    fn keys_mask_and_format() {
        let p = PacketKey {
            src_ip: v4([10, 1, 2, 3]),
            dst_ip: v4([192, 168, 0, 9]),
            src_port: 40000,
            dst_port: 80,
            protocol: 6,
            ip_version: 4,
        };
        let k = |t, l4, l6| HhKey::of(t, l4, l6, &p).format(t);
        assert_eq!(k(KeyType::SrcIp, 32, 128), "10.1.2.3");
        assert_eq!(k(KeyType::DstIp, 32, 128), "192.168.0.9");
        assert_eq!(k(KeyType::SrcPrefix, 24, 64), "10.1.2.0/24");
        assert_eq!(k(KeyType::DstPrefix, 9, 64), "192.128.0.0/9");
        assert_eq!(k(KeyType::Flow, 32, 128), "10.1.2.3:40000-192.168.0.9:80/6");
        let mut r = p;
        std::mem::swap(&mut r.src_ip, &mut r.dst_ip);
        std::mem::swap(&mut r.src_port, &mut r.dst_port);
        assert_eq!(
            HhKey::of(KeyType::Flow, 32, 128, &r),
            HhKey::of(KeyType::Flow, 32, 128, &p)
        );
        let mut six = p;
        six.ip_version = 6;
        six.src_ip = "2001:db8:1:2:3:4:5:6".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(k6(&six, KeyType::SrcPrefix, 48), "2001:db8:1::/48");
        assert_eq!(k6(&six, KeyType::SrcPrefix, 100), "2001:db8:1:2:3:4::/100");
        assert_eq!(k6(&six, KeyType::SrcPrefix, 64), "2001:db8:1:2::/64");
    }

    fn k6(p: &PacketKey, t: KeyType, l6: u8) -> String {
        HhKey::of(t, 32, l6, p).format(t)
    }
}
