//! Symmetric RSS: the Toeplitz hash in software, its symmetric key, and RSS hash-type bits.
//!
//! The Toeplitz hash is the one NICs use for RSS (Microsoft, "RSS hashing functions" and
//! "Verifying the RSS hash calculation"): for every set bit `i` of the input (most significant
//! bit of the first byte first), XOR in the 32 key bits that start at key bit `i`. The input
//! for IPv4/IPv6 with ports is `src addr, dst addr, src port, dst port` in network byte order.
//!
//! With a key that repeats every 16 bits, such as 0x6d5a 0x6d5a ... (Woo and Park, "Scalable
//! TCP session monitoring with symmetric receive-side scaling", 2012), swapping source and
//! destination (addresses are 32-bit aligned, ports 16-bit aligned) leaves the hash unchanged,
//! so both directions of a flow land on one queue or worker.
//!
//! [`Toeplitz`] precomputes, for each input byte position and byte value, the 32-bit word it
//! contributes, so hashing an IPv6 5-tuple is 36 table lookups and XORs.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes of the usual RSS key (40 bytes: enough for an IPv6 4-tuple, 36 bytes, plus 4).
pub const KEY_LEN: usize = 40;

/// Longest input [`Toeplitz`] hashes: IPv6 addresses and ports (16 + 16 + 2 + 2).
pub const MAX_INPUT: usize = 36;

/// RSS hash types (`RTE_ETH_RSS_*`), from the installed DPDK headers.
pub const HASH_IPV4: u64 = weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV4;
pub const HASH_IPV6: u64 = weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV6;
/// `RTE_ETH_RSS_IP`: IPv4/IPv6 addresses, fragments and other protocols.
pub const HASH_IP: u64 = weir_dpdk_sys::WEIR_RTE_ETH_RSS_IP;
/// `RTE_ETH_RSS_TCP`: TCP over IPv4/IPv6, addresses and ports.
pub const HASH_TCP: u64 = weir_dpdk_sys::WEIR_RTE_ETH_RSS_TCP;
/// `RTE_ETH_RSS_UDP`: UDP over IPv4/IPv6, addresses and ports.
pub const HASH_UDP: u64 = weir_dpdk_sys::WEIR_RTE_ETH_RSS_UDP;

const NAMES: &[(u64, &str)] = &[
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV4, "ipv4"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_FRAG_IPV4, "ipv4-frag"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV4_TCP, "ipv4-tcp"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV4_UDP, "ipv4-udp"),
    (
        weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV4_SCTP,
        "ipv4-sctp",
    ),
    (
        weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV4_OTHER,
        "ipv4-other",
    ),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV6, "ipv6"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_FRAG_IPV6, "ipv6-frag"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV6_TCP, "ipv6-tcp"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV6_UDP, "ipv6-udp"),
    (
        weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV6_SCTP,
        "ipv6-sctp",
    ),
    (
        weir_dpdk_sys::WEIR_RTE_ETH_RSS_NONFRAG_IPV6_OTHER,
        "ipv6-other",
    ),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV6_EX, "ipv6-ex"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV6_TCP_EX, "ipv6-tcp-ex"),
    (weir_dpdk_sys::WEIR_RTE_ETH_RSS_IPV6_UDP_EX, "ipv6-udp-ex"),
];

/// Names of the IP-level hash types set in `bits` (others are not named).
pub fn hash_type_names(bits: u64) -> Vec<&'static str> {
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|&(_, n)| n)
        .collect()
}

/// The symmetric key: 0x6d, 0x5a repeated to `len` bytes.
pub fn symmetric_key(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
        .collect()
}

/// A Toeplitz hasher for one key, with per-byte lookup tables (36 KiB, built once).
#[derive(Clone)]
pub struct Toeplitz {
    table: Box<[[u32; 256]; MAX_INPUT]>,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Toeplitz")
    }
}

impl Toeplitz {
    /// A hasher for `key`. Keys shorter than `MAX_INPUT + 4` bytes are extended with zero
    /// bits (only inputs up to `key.len() - 4` bytes are then meaningful).
    pub fn new(key: &[u8]) -> Toeplitz {
        let bit = |i: usize| -> u32 {
            key.get(i / 8)
                .map_or(0, |&b| u32::from((b >> (7 - (i % 8))) & 1))
        };
        // The 32 key bits starting at key bit `i`.
        let window = |i: usize| -> u32 { (0..32).fold(0u32, |w, j| (w << 1) | bit(i + j)) };
        let mut table = Box::new([[0u32; 256]; MAX_INPUT]);
        for (pos, row) in table.iter_mut().enumerate() {
            let windows: [u32; 8] = std::array::from_fn(|b| window(pos * 8 + b));
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = (0..8)
                    .filter(|b| v & (0x80 >> b) != 0)
                    .fold(0, |h, b| h ^ windows[b]);
            }
        }
        Toeplitz { table }
    }

    /// A hasher for the 40-byte symmetric key.
    pub fn symmetric() -> Toeplitz {
        Toeplitz::new(&symmetric_key(KEY_LEN))
    }

    /// Hash of `input` (at most [`MAX_INPUT`] bytes; longer input is cut there).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.table.iter())
            .fold(0, |h, (&b, row)| h ^ row[b as usize])
    }

    /// Hash of an IPv4 pair: with `ports = Some((src_port, dst_port))` the "IPv4 TCP/UDP"
    /// hash type, with `None` the addresses-only "IPv4" one.
    #[inline]
    pub fn hash_v4(&self, src: Ipv4Addr, dst: Ipv4Addr, ports: Option<(u16, u16)>) -> u32 {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&src.octets());
        b[4..8].copy_from_slice(&dst.octets());
        match ports {
            Some((sp, dp)) => {
                b[8..10].copy_from_slice(&sp.to_be_bytes());
                b[10..12].copy_from_slice(&dp.to_be_bytes());
                self.hash(&b)
            }
            None => self.hash(&b[..8]),
        }
    }

    /// Hash of an IPv6 pair, with ports when given.
    #[inline]
    pub fn hash_v6(&self, src: Ipv6Addr, dst: Ipv6Addr, ports: Option<(u16, u16)>) -> u32 {
        let mut b = [0u8; 36];
        b[..16].copy_from_slice(&src.octets());
        b[16..32].copy_from_slice(&dst.octets());
        match ports {
            Some((sp, dp)) => {
                b[32..34].copy_from_slice(&sp.to_be_bytes());
                b[34..36].copy_from_slice(&dp.to_be_bytes());
                self.hash(&b)
            }
            None => self.hash(&b[..32]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit definition, straight from the Microsoft pseudo-code, to check the tables.
    fn reference(key: &[u8], input: &[u8]) -> u32 {
        let kbit = |i: usize| u64::from((key[i / 8] >> (7 - i % 8)) & 1);
        let mut result = 0u32;
        for i in 0..input.len() * 8 {
            if input[i / 8] & (0x80 >> (i % 8)) != 0 {
                let w = (0..32).fold(0u64, |w, j| (w << 1) | kbit(i + j));
                result ^= w as u32;
            }
        }
        result
    }

    #[test]
    fn tables_match_bitwise_definition() {
        let key: Vec<u8> = (0..40u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let t = Toeplitz::new(&key);
        let mut x = 0x1234_5678u32;
        for len in 0..=MAX_INPUT {
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            assert_eq!(t.hash(&input), reference(&key, &input), "len {len}");
        }
    }

    #[test]
    fn symmetric_key_shape() {
        let k = symmetric_key(52);
        assert_eq!(k.len(), 52);
        assert!(k.chunks(2).all(|c| c == [0x6d, 0x5a]));
    }
}
