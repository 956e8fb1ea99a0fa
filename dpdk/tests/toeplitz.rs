//! The software Toeplitz hash: known answers from Microsoft's RSS verification suite
//! ("Verifying the RSS Hash Calculation", standard 40-byte key), agreement with DPDK's own
//! `rte_softrss` on random tuples, and symmetry of the 0x6d5a key on random IPv4/IPv6 tuples.

use std::net::{Ipv4Addr, Ipv6Addr};

use weir_dpdk::rss::{symmetric_key, Toeplitz, KEY_LEN};

/// The key of Microsoft's verification suite (also DPDK's and most NICs' default key).
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// (destination address and port, source address and port, address-only hash, hash with
/// TCP ports).
type Vector = ((&'static str, u16), (&'static str, u16), u32, u32);

/// IPv4 vectors from the suite.
const MS_V4: [Vector; 5] = [
    (
        ("161.142.100.80", 1766),
        ("66.9.149.187", 2794),
        0x323e8fc2,
        0x51ccc178,
    ),
    (
        ("65.69.140.83", 4739),
        ("199.92.111.2", 14230),
        0xd718262a,
        0xc626b0ea,
    ),
    (
        ("12.22.207.184", 38024),
        ("24.19.198.95", 12898),
        0xd2d0a5de,
        0x5c2b394a,
    ),
    (
        ("209.142.163.6", 2217),
        ("38.27.205.30", 48228),
        0x82989176,
        0xafc7327f,
    ),
    (
        ("202.188.127.2", 1303),
        ("153.39.163.191", 44251),
        0x5d1809c5,
        0x10e828a2,
    ),
];

/// IPv6 vectors from the suite.
const MS_V6: [Vector; 3] = [
    (
        ("3ffe:2501:200:3::1", 1766),
        ("3ffe:2501:200:1fff::7", 2794),
        0x2cc18cd5,
        0x40207d3d,
    ),
    (
        ("ff02::1", 4739),
        ("3ffe:501:8::260:97ff:fe40:efab", 14230),
        0x0f0c461c,
        0xdde51bbf,
    ),
    (
        ("fe80::200:f8ff:fe21:67cf", 38024),
        ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251),
        0x4b61e985,
        0x02d1feef,
    ),
];

#[test]
fn microsoft_known_answers() {
    let t = Toeplitz::new(&MS_KEY);
    for ((d, dp), (s, sp), ip, tcp) in MS_V4 {
        let (d, s): (Ipv4Addr, Ipv4Addr) = (d.parse().unwrap(), s.parse().unwrap());
        assert_eq!(t.hash_v4(s, d, None), ip, "{s} -> {d}");
        assert_eq!(t.hash_v4(s, d, Some((sp, dp))), tcp, "{s}:{sp} -> {d}:{dp}");
    }
    for ((d, dp), (s, sp), ip, tcp) in MS_V6 {
        let (d, s): (Ipv6Addr, Ipv6Addr) = (d.parse().unwrap(), s.parse().unwrap());
        assert_eq!(t.hash_v6(s, d, None), ip, "{s} -> {d}");
        assert_eq!(t.hash_v6(s, d, Some((sp, dp))), tcp, "{s}:{sp} -> {d}:{dp}");
    }
}

/// DPDK's rte_softrss over the same tuple, as host-order 32-bit words (rte_thash.h).
fn softrss(key: &[u8], bytes: &[u8]) -> u32 {
    let mut words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    // SAFETY: `words` and `key` are valid for the lengths given (key covers words*4 + 4 bytes).
    unsafe { weir_dpdk::sys::rte_softrss(words.as_mut_ptr(), words.len() as u32, key.as_ptr()) }
}

fn v4_bytes(s: Ipv4Addr, d: Ipv4Addr, sp: u16, dp: u16) -> Vec<u8> {
    [
        &s.octets()[..],
        &d.octets(),
        &sp.to_be_bytes(),
        &dp.to_be_bytes(),
    ]
    .concat()
}

fn v6_bytes(s: Ipv6Addr, d: Ipv6Addr, sp: u16, dp: u16) -> Vec<u8> {
    [
        &s.octets()[..],
        &d.octets(),
        &sp.to_be_bytes(),
        &dp.to_be_bytes(),
    ]
    .concat()
}

#[test]
fn symmetric_on_random_tuples_and_equal_to_rte_softrss() {
    let key = symmetric_key(KEY_LEN);
    let sym = Toeplitz::symmetric();
    let ms = Toeplitz::new(&MS_KEY);
    let mut rng = fastrand::Rng::with_seed(0x6d5a);
    let mut asymmetric_with_ms_key = 0;
    for _ in 0..20_000 {
        let (sp, dp) = (rng.u16(..), rng.u16(..));
        let (s4, d4) = (Ipv4Addr::from(rng.u32(..)), Ipv4Addr::from(rng.u32(..)));
        let (s6, d6) = (Ipv6Addr::from(rng.u128(..)), Ipv6Addr::from(rng.u128(..)));

        let h4 = sym.hash_v4(s4, d4, Some((sp, dp)));
        assert_eq!(
            h4,
            sym.hash_v4(d4, s4, Some((dp, sp))),
            "{s4}:{sp} <-> {d4}:{dp}"
        );
        assert_eq!(sym.hash_v4(s4, d4, None), sym.hash_v4(d4, s4, None));
        let h6 = sym.hash_v6(s6, d6, Some((sp, dp)));
        assert_eq!(
            h6,
            sym.hash_v6(d6, s6, Some((dp, sp))),
            "{s6}:{sp} <-> {d6}:{dp}"
        );
        assert_eq!(sym.hash_v6(s6, d6, None), sym.hash_v6(d6, s6, None));

        // Same values as DPDK's implementation, for both keys.
        assert_eq!(h4, softrss(&key, &v4_bytes(s4, d4, sp, dp)));
        assert_eq!(h6, softrss(&key, &v6_bytes(s6, d6, sp, dp)));
        let m4 = ms.hash_v4(s4, d4, Some((sp, dp)));
        assert_eq!(m4, softrss(&MS_KEY, &v4_bytes(s4, d4, sp, dp)));
        assert_eq!(
            ms.hash_v6(s6, d6, Some((sp, dp))),
            softrss(&MS_KEY, &v6_bytes(s6, d6, sp, dp))
        );
        if m4 != ms.hash_v4(d4, s4, Some((dp, sp))) {
            asymmetric_with_ms_key += 1;
        }
    }
    // The property is the key's, not the test's: the standard key is not symmetric.
    assert!(asymmetric_with_ms_key > 19_000, "{asymmetric_with_ms_key}");
}
