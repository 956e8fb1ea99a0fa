//! Community ID v1 of a flow: the `community_id` column, so weir's records join with Zeek's
//! and Suricata's logs of the same traffic.
//!
//! `"1:" + base64(sha1(seed ‖ addr_a ‖ addr_b ‖ proto ‖ 0 ‖ port_a ‖ port_b))`, every integer
//! in network order, the endpoints ordered so both directions hash alike (the smaller address
//! first, the ports deciding between equal addresses). ICMP and ICMPv6 flows hash the type as
//! the source port and, as destination port, the type that answers it (echo request/reply,
//! router solicitation/advertisement, ...) or, for a message without a counterpart, its code;
//! those one-way messages keep their direction. Protocols without ports hash no ports. SCTP
//! hashes ports 0: weir's flow key has none for it (Zeek and Suricata hash its ports).
//!
//! Written here rather than taken from a crate: it is twenty lines over `sha1` and `base64`,
//! and it is computed once per record into a fixed buffer (no allocation).

use base64::Engine as _;
use weir_plugin_api::FlowKeyV1;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// SHA-1's initial hash value (RFC 3174 section 6.1, H0..H4).
const SHA1_INIT: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];

/// Length of a v1 Community ID: `"1:"` and 28 base64 characters (20 bytes of SHA-1).
pub const LEN: usize = 30;

/// A Community ID, kept inline in the record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; LEN]);

impl Default for CommunityId {
    fn default() -> Self {
        CommunityId([b' '; LEN])
    }
}

impl CommunityId {
    /// The 30 ASCII bytes (what IPFIX exports).
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // The buffer only ever holds "1:" and base64 (ASCII), or the default spaces.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ICMP type that answers `t`, for request/response pairs (the spec's tables).
fn icmp_counterpart(v6: bool, t: u8) -> Option<u8> {
    if v6 {
        match t {
            128 => Some(129), // echo request / reply
            129 => Some(128),
            130 => Some(131), // multicast listener query / report
            131 => Some(130),
            133 => Some(134), // router solicitation / advertisement
            134 => Some(133),
            135 => Some(136), // neighbor solicitation / advertisement
            136 => Some(135),
            139 => Some(140), // node information query / response
            140 => Some(139),
            144 => Some(145), // home agent address discovery request / reply
            145 => Some(144),
            _ => None,
        }
    } else {
        match t {
            8 => Some(0), // echo / echo reply
            0 => Some(8),
            13 => Some(14), // timestamp / reply
            14 => Some(13),
            15 => Some(16), // information request / reply
            16 => Some(15),
            10 => Some(9), // router solicitation / advertisement
            9 => Some(10),
            17 => Some(18), // address mask request / reply
            18 => Some(17),
            _ => None,
        }
    }
}

/// The ICMP type and code of a flow's first packet, which its Community ID hashes (the flow
/// key has ports 0 for ICMP). `None` for other protocols or a header cut short.
pub fn icmp_type_code(protocol: u8, l4: &[u8]) -> Option<[u8; 2]> {
    if protocol != ICMP && protocol != ICMPV6 {
        return None;
    }
    Some([*l4.first()?, *l4.get(1)?])
}

/// [`icmp_type_code`] of a parsed packet, `[0, 0]` when it has none.
///
/// # Safety
/// `pkt.data` must point to `pkt.cap_len` readable bytes (true for a packet of the burst
/// being processed).
#[inline]
pub unsafe fn first_packet_icmp(pkt: &weir_plugin_api::PacketV1) -> [u8; 2] {
    if (pkt.protocol != ICMP && pkt.protocol != ICMPV6)
        || pkt.l4_off == weir_plugin_api::WEIR_NO_OFFSET
    {
        return [0, 0];
    }
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { pkt.bytes() };
    let l4 = bytes.get(pkt.l4_off as usize..).unwrap_or(&[]);
    icmp_type_code(pkt.protocol, l4).unwrap_or_default()
}

/// The Community ID of a flow with key `key` (src = the first packet's sender), `icmp` the type
/// and code of its first packet for ICMP flows.
pub fn compute(seed: u16, key: &FlowKeyV1, icmp: [u8; 2]) -> CommunityId {
    let alen = if key.ip_version == 4 { 4 } else { 16 };
    let (mut a, mut b) = (&key.src_ip[..alen], &key.dst_ip[..alen]);
    let proto = key.protocol;
    let (mut pa, mut pb, ports, one_way) = match proto {
        TCP | UDP | SCTP => (key.src_port, key.dst_port, true, false),
        ICMP | ICMPV6 => {
            let [t, code] = icmp;
            match icmp_counterpart(proto == ICMPV6, t) {
                Some(c) => (t as u16, c as u16, true, false),
                None => (t as u16, code as u16, true, true),
            }
        }
        _ => (0, 0, false, false),
    };
    if !one_way && (a, pa) > (b, pb) {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut pa, &mut pb);
    }
    // At most 2 + 16 + 16 + 2 + 4 = 40 bytes: the message and SHA-1's padding (0x80, zeros,
    // the length in bits) fill one 64-byte block (RFC 3174 section 4), hashed by the crate's
    // compression function alone; the streaming hasher's buffering and finalisation took a
    // third of this function's time, once per record.
    let mut block = [0u8; 64];
    let mut n = 0;
    for part in [&seed.to_be_bytes()[..], a, b, &[proto, 0]] {
        block[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    if ports {
        block[n..n + 2].copy_from_slice(&pa.to_be_bytes());
        block[n + 2..n + 4].copy_from_slice(&pb.to_be_bytes());
        n += 4;
    }
    block[n] = 0x80;
    block[56..].copy_from_slice(&(n as u64 * 8).to_be_bytes());
    let mut state = SHA1_INIT;
    sha1::compress(&mut state, &[block.into()]);
    let mut digest = [0u8; 20];
    for (d, w) in digest.chunks_exact_mut(4).zip(state) {
        d.copy_from_slice(&w.to_be_bytes());
    }
    let mut out = [0u8; LEN];
    out[..2].copy_from_slice(b"1:");
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out[2..])
        .unwrap_or(0);
    debug_assert_eq!(n, LEN - 2);
    CommunityId(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v4: bool, src: &str, dst: &str, proto: u8, sp: u16, dp: u16) -> FlowKeyV1 {
        let mut k = FlowKeyV1 {
            protocol: proto,
            src_port: sp,
            dst_port: dp,
            ip_version: if v4 { 4 } else { 6 },
            ..Default::default()
        };
        let ip = |s: &str, out: &mut [u8; 16]| match s.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
            std::net::IpAddr::V6(a) => *out = a.octets(),
        };
        ip(src, &mut k.src_ip);
        ip(dst, &mut k.dst_ip);
        k
    }

    // The examples of the Community ID specification's baseline (community-id-spec), seed 0
    // and 1; the full comparison with the reference implementation is in
    // tests/flow/community_id.rs.
    #[test]
    fn spec_baseline_examples() {
        let k = key(true, "128.232.110.120", "66.35.250.204", TCP, 34855, 80);
        assert_eq!(
            compute(0, &k, [0, 0]).as_str(),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        // Both directions alike.
        let r = key(true, "66.35.250.204", "128.232.110.120", TCP, 80, 34855);
        assert_eq!(compute(0, &k, [0, 0]), compute(0, &r, [0, 0]));
        let e = key(true, "192.168.0.89", "192.168.0.1", ICMP, 0, 0);
        assert_eq!(
            compute(0, &e, [8, 0]).as_str(),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
        // An echo reply in the other direction is the same conversation.
        let er = key(true, "192.168.0.1", "192.168.0.89", ICMP, 0, 0);
        assert_eq!(compute(0, &e, [8, 0]), compute(0, &er, [0, 0]));
    }
}
