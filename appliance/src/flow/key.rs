//! The bidirectional flow key and its keyed, direction-independent hash.
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

/// The secret of the flow hash: six random words drawn once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKey(pub [u64; 6]);

impl HashKey {
    /// A key from the kernel's random source (`getrandom(2)`, one call at start).
    pub fn random() -> HashKey {
        let mut k = [0u64; 6];
        let mut got = 0usize;
        let want = core::mem::size_of_val(&k);
        while got < want {
            // SAFETY: writes at most `want - got` bytes into `k`'s remaining bytes.
            let n = unsafe {
                libc::getrandom(
                    (k.as_mut_ptr() as *mut u8).add(got) as *mut libc::c_void,
                    want - got,
                    0,
                )
            };
            if n > 0 {
                got += n as usize;
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // No getrandom (a very old kernel): the clock and the address space layout
                // still differ per process, which is all a hash key needs against an outsider.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                let a = &k as *const _ as u64;
                for (i, w) in k.iter_mut().enumerate() {
                    *w = mix(t ^ a.rotate_left(i as u32 * 11) ^ (i as u64 + 1));
                }
                break;
            }
        }
        HashKey(k)
    }
}

/// This process's key, drawn on first use. Every thread (the spreader, the workers, extract's
/// feeder) hashes with it, so a flow meets the same worker and the same table slot everywhere
/// in the process; another process (or a restart) has another key.
#[inline]
pub fn process_key() -> &'static HashKey {
    static KEY: std::sync::OnceLock<HashKey> = std::sync::OnceLock::new();
    KEY.get_or_init(HashKey::random)
}

/// A fast, keyed, direction-independent 64-bit hash of a flow key, with this process's key.
#[inline]
pub fn flow_hash(k: &FlowKeyV1) -> u64 {
    flow_hash_keyed(k, process_key())
}

/// A fast, keyed, direction-independent 64-bit hash of a flow key.
///
/// Written by hand because it is on the per-packet path: the two endpoints are hashed
/// separately and combined with a commutative operation, so swapping them gives the same value
/// without reordering the key first. Keyed because the table probes linearly: with a fixed
/// hash, an outsider could compute 5-tuples that share one home slot and make every lookup of
/// that worker walk a long run. The keyed step is the folded 128-bit multiply of the wyhash
/// and foldhash family (every input word is XORed with a secret word before it is
/// multiplied), so which tuples collide depends on a key the sender does not know.
#[inline]
pub fn flow_hash_keyed(k: &FlowKeyV1, key: &HashKey) -> u64 {
    let s = &key.0;
    #[inline(always)]
    fn endpoint(ip: &[u8; 16], port: u16, s: &[u64; 6]) -> u64 {
        let a = u64::from_le_bytes(ip[0..8].try_into().unwrap());
        let b = u64::from_le_bytes(ip[8..16].try_into().unwrap());
        // The port goes through its own keyed multiply: XORed straight into `b`, an IPv6
        // sender could trade port bits for address bits and collide whatever the key.
        let h = fold(a ^ s[0], b ^ s[1]);
        fold(h ^ s[2], (port as u64) ^ s[3])
    }
    let e1 = endpoint(&k.src_ip, k.src_port, s);
    let e2 = endpoint(&k.dst_ip, k.dst_port, s);
    let rest = (k.protocol as u64)
        | ((k.ip_version as u64) << 8)
        | ((k.vlan_id as u64) << 16)
        | ((k.tunnel_id as u64) << 32);
    let both = e1.wrapping_add(e2) ^ (e1 ^ e2).rotate_left(17);
    mix(fold(both ^ s[4], rest ^ s[5]))
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

/// The folded multiply: the 128-bit product's halves XORed together.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
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
    fn the_key_changes_the_hash_but_not_its_symmetry() {
        let k = key(1, 1000, 2, 80);
        let (a, b) = (HashKey([1, 2, 3, 4, 5, 6]), HashKey::random());
        assert_ne!(a, b);
        assert_ne!(flow_hash_keyed(&k, &a), flow_hash_keyed(&k, &b));
        assert_eq!(flow_hash_keyed(&reversed(&k), &b), flow_hash_keyed(&k, &b));
        assert_eq!(flow_hash(&k), flow_hash_keyed(&k, process_key()));
        // Trading port bits for IPv6 address bits does not collide.
        let mut v6 = k;
        v6.ip_version = 6;
        let mut w6 = v6;
        w6.src_port ^= 1;
        w6.src_ip[8] ^= 1;
        assert_ne!(flow_hash_keyed(&v6, &b), flow_hash_keyed(&w6, &b));
    }

    #[test]
    fn same_endpoint_both_sides_is_direction_zero() {
        let k = key(1, 53, 1, 53);
        assert_eq!(direction(&k, &reversed(&k)), 0);
    }
}
