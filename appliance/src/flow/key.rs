//! The bidirectional flow key and its direction-independent hash.
//!
//! A flow is the 5-tuple plus VLAN id and tunnel id, in both directions (NFStream's
//! definition). The table stores the key as the flow's first packet saw it (`src` = first
//! sender) and looks packets up by a canonical form in which the two endpoints are ordered, so
//! both directions meet the same entry.

use weir_plugin_api::FlowKeyV1;

/// True when `a` and `b` are the same flow, in either direction.
#[inline]
pub fn same_flow(a: &FlowKeyV1, b: &FlowKeyV1) -> bool {
    if a.protocol != b.protocol
        || a.ip_version != b.ip_version
        || a.vlan_id != b.vlan_id
        || a.tunnel_id != b.tunnel_id
    {
        return false;
    }
    (a.src_ip == b.src_ip
        && a.dst_ip == b.dst_ip
        && a.src_port == b.src_port
        && a.dst_port == b.dst_port)
        || (a.src_ip == b.dst_ip
            && a.dst_ip == b.src_ip
            && a.src_port == b.dst_port
            && a.dst_port == b.src_port)
}

/// Whether a packet whose unoriented key is `pkt` travels src->dst (0) or dst->src (1) in the
/// flow `flow`. Follows NFStream: a packet is src->dst only when its source endpoint is the
/// flow's source endpoint.
#[inline]
pub fn direction(flow: &FlowKeyV1, pkt: &FlowKeyV1) -> u8 {
    if pkt.src_port == flow.src_port
        && pkt.dst_port == flow.dst_port
        && pkt.src_ip == flow.src_ip
        && pkt.dst_ip == flow.dst_ip
    {
        0
    } else {
        1
    }
}

/// A fast, direction-independent 64-bit hash of a flow key.
///
/// Written by hand because it is on the per-packet path: the two endpoints are hashed
/// separately and combined with a commutative operation, so swapping them gives the same value
/// without reordering the key first. Not keyed: the table bounds probe lengths by its load
/// factor, and an adversary filling one bucket chain only slows that worker (counted by the
/// probe statistics), it cannot make it lose flows.
#[inline]
pub fn flow_hash(k: &FlowKeyV1) -> u64 {
    #[inline(always)]
    fn endpoint(ip: &[u8; 16], port: u16) -> u64 {
        let a = u64::from_le_bytes(ip[0..8].try_into().unwrap());
        let b = u64::from_le_bytes(ip[8..16].try_into().unwrap());
        mix(a ^ mix(b ^ (port as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }
    let e1 = endpoint(&k.src_ip, k.src_port);
    let e2 = endpoint(&k.dst_ip, k.dst_port);
    let rest = (k.protocol as u64)
        | ((k.ip_version as u64) << 8)
        | ((k.vlan_id as u64) << 16)
        | ((k.tunnel_id as u64) << 32);
    mix(e1.wrapping_add(e2) ^ (e1 ^ e2).rotate_left(17) ^ mix(rest))
}

/// A 64-bit finaliser (the splitmix64 / murmur3 fmix constants).
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Swap the endpoints of a key (the same flow seen from the other side).
pub fn reversed(k: &FlowKeyV1) -> FlowKeyV1 {
    let mut r = *k;
    r.src_ip = k.dst_ip;
    r.dst_ip = k.src_ip;
    r.src_port = k.dst_port;
    r.dst_port = k.src_port;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: u8, pa: u16, b: u8, pb: u16) -> FlowKeyV1 {
        let mut k = FlowKeyV1 {
            protocol: 6,
            ip_version: 4,
            src_port: pa,
            dst_port: pb,
            ..Default::default()
        };
        k.src_ip[..4].copy_from_slice(&[10, 0, 0, a]);
        k.dst_ip[..4].copy_from_slice(&[10, 0, 0, b]);
        k
    }

    #[test]
    fn both_directions_hash_and_match_alike() {
        for i in 0..200u16 {
            let k = key((i % 7) as u8, 1000 + i, 9, 80);
            let r = reversed(&k);
            assert_eq!(flow_hash(&k), flow_hash(&r));
            assert!(same_flow(&k, &r));
            assert_eq!(direction(&k, &k), 0);
            assert_eq!(direction(&k, &r), 1);
        }
    }

    #[test]
    fn different_flows_differ() {
        let a = key(1, 1000, 2, 80);
        let mut b = a;
        b.vlan_id = 5;
        assert!(!same_flow(&a, &b));
        assert_ne!(flow_hash(&a), flow_hash(&b));
        let c = key(1, 1001, 2, 80);
        assert!(!same_flow(&a, &c));
        // Swapping only the ports is another flow.
        let d = key(1, 80, 2, 1000);
        assert!(!same_flow(&a, &d));
    }

    #[test]
    fn same_endpoint_both_sides_is_direction_zero() {
        let k = key(1, 53, 1, 53);
        assert_eq!(direction(&k, &reversed(&k)), 0);
    }
}
