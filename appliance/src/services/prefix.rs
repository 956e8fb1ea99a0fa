//! Longest-prefix match over IPv4 and IPv6 prefixes (CIDR, RFC 4632; IPv6 RFC 4291 2.3).
//!
//! One hash map per prefix length that is present, probed from the longest length down: a
//! lookup costs at most one probe per distinct length in the config (usually a handful), and
//! it runs once per new flow, never per packet. Built once at start, read-only afterwards.

use std::collections::HashMap;
use std::net::IpAddr;

/// A parsed prefix: network address (host bits zero) and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(u32, u8),
    V6(u128, u8),
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Prefix::V4(a, l) => write!(f, "{}/{l}", std::net::Ipv4Addr::from(a)),
            Prefix::V6(a, l) => write!(f, "{}/{l}", std::net::Ipv6Addr::from(a)),
        }
    }
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl Prefix {
    /// Parse `a.b.c.d/n` or `x::y/n` (a bare address is a host prefix). Host bits must be
    /// zero: `10.0.0.1/8` is refused, since it usually means a typo.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (
                a,
                Some(
                    l.parse::<u8>()
                        .map_err(|_| format!("`{s}`: prefix length `{l}` is not a number"))?,
                ),
            ),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}`: `{addr}` is not an IPv4 or IPv6 address"))?;
        match ip {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return Err(format!("`{s}`: an IPv4 prefix length is at most 32"));
                }
                let a = u32::from(a);
                if a & !mask4(len) != 0 {
                    return Err(format!(
                        "`{s}`: host bits are set (did you mean `{}`?)",
                        Prefix::V4(a & mask4(len), len)
                    ));
                }
                Ok(Prefix::V4(a, len))
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return Err(format!("`{s}`: an IPv6 prefix length is at most 128"));
                }
                let a = u128::from(a);
                if a & !mask6(len) != 0 {
                    return Err(format!(
                        "`{s}`: host bits are set (did you mean `{}`?)",
                        Prefix::V6(a & mask6(len), len)
                    ));
                }
                Ok(Prefix::V6(a, len))
            }
        }
    }
}

/// Prefixes to values, longest match first.
#[derive(Clone, Debug, Default)]
pub struct PrefixTable<T: Copy> {
    /// (length, network -> value), longest length first.
    v4: Vec<(u8, HashMap<u32, T>)>,
    v6: Vec<(u8, HashMap<u128, T>)>,
}

impl<T: Copy> PrefixTable<T> {
    pub fn new() -> Self {
        PrefixTable {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    /// Add a prefix; returns the value already stored for exactly this prefix, if any (which
    /// is then kept: the caller decides whether that is an error).
    pub fn insert(&mut self, p: Prefix, v: T) -> Option<T> {
        fn slot<K: std::hash::Hash + Eq, T: Copy>(
            tables: &mut Vec<(u8, HashMap<K, T>)>,
            len: u8,
            key: K,
            v: T,
        ) -> Option<T> {
            let i = match tables.iter().position(|(l, _)| *l == len) {
                Some(i) => i,
                None => {
                    tables.push((len, HashMap::new()));
                    tables.sort_by_key(|t| std::cmp::Reverse(t.0));
                    tables.iter().position(|(l, _)| *l == len).unwrap_or(0)
                }
            };
            match tables[i].1.get(&key) {
                Some(old) => Some(*old),
                None => {
                    tables[i].1.insert(key, v);
                    None
                }
            }
        }
        match p {
            Prefix::V4(a, l) => slot(&mut self.v4, l, a, v),
            Prefix::V6(a, l) => slot(&mut self.v6, l, a, v),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The value of the longest prefix holding an IPv4 address.
    #[inline]
    pub fn lookup_v4(&self, a: u32) -> Option<T> {
        self.v4
            .iter()
            .find_map(|(l, m)| m.get(&(a & mask4(*l))).copied())
    }

    /// The value of the longest prefix holding an IPv6 address.
    #[inline]
    pub fn lookup_v6(&self, a: u128) -> Option<T> {
        self.v6
            .iter()
            .find_map(|(l, m)| m.get(&(a & mask6(*l))).copied())
    }

    /// Look up a flow-key address (`ip_version` 4: the first 4 bytes; 6: all 16).
    #[inline]
    pub fn lookup_key(&self, addr: &[u8; 16], ip_version: u8) -> Option<T> {
        if ip_version == 4 {
            self.lookup_v4(u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]))
        } else {
            self.lookup_v6(u128::from_be_bytes(*addr))
        }
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<T> {
        match ip {
            IpAddr::V4(a) => self.lookup_v4(a.into()),
            IpAddr::V6(a) => self.lookup_v6(a.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, u16)]) -> PrefixTable<u16> {
        let mut t = PrefixTable::new();
        for (p, v) in entries {
            assert!(t.insert(Prefix::parse(p).unwrap(), *v).is_none(), "{p}");
        }
        t
    }

    fn at(t: &PrefixTable<u16>, ip: &str) -> Option<u16> {
        t.lookup(ip.parse().unwrap())
    }

    #[test]
    fn overlapping_prefixes_take_the_longest() {
        let t = table(&[
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 3),
            ("10.1.2.3/32", 4),
        ]);
        assert_eq!(at(&t, "10.200.0.1"), Some(1));
        assert_eq!(at(&t, "10.1.9.9"), Some(2));
        assert_eq!(at(&t, "10.1.2.4"), Some(3));
        assert_eq!(at(&t, "10.1.2.3"), Some(4));
        assert_eq!(at(&t, "11.0.0.0"), None);
        // Boundaries of the /8 and the /24.
        assert_eq!(at(&t, "9.255.255.255"), None);
        assert_eq!(at(&t, "10.255.255.255"), Some(1));
        assert_eq!(at(&t, "10.1.2.255"), Some(3));
        assert_eq!(at(&t, "10.1.3.0"), Some(2));
    }

    #[test]
    fn default_routes_and_host_routes() {
        let t = table(&[
            ("0.0.0.0/0", 9),
            ("192.0.2.1/32", 1),
            ("::/0", 8),
            ("2001:db8::1/128", 2),
        ]);
        assert_eq!(at(&t, "1.2.3.4"), Some(9));
        assert_eq!(at(&t, "192.0.2.1"), Some(1));
        assert_eq!(at(&t, "192.0.2.2"), Some(9));
        assert_eq!(at(&t, "2001:db8::1"), Some(2));
        assert_eq!(at(&t, "2001:db8::2"), Some(8));
        // The families never mix: an IPv4 /0 does not match IPv6 and back.
        let v4only = table(&[("0.0.0.0/0", 1)]);
        assert_eq!(at(&v4only, "::1"), None);
        assert_eq!(at(&v4only, "::ffff:1.2.3.4"), None);
    }

    #[test]
    fn ipv6_overlaps_and_odd_lengths() {
        let t = table(&[
            ("2001:db8::/32", 1),
            ("2001:db8:8000::/33", 2),
            ("2001:db8:abcd:12::/64", 3),
        ]);
        assert_eq!(at(&t, "2001:db8:1::1"), Some(1));
        assert_eq!(at(&t, "2001:db8:8000::1"), Some(2));
        assert_eq!(at(&t, "2001:db8:ffff::1"), Some(2));
        assert_eq!(at(&t, "2001:db8:7fff:ffff::1"), Some(1));
        assert_eq!(at(&t, "2001:db8:abcd:12::99"), Some(3));
        assert_eq!(at(&t, "2001:db9::1"), None);
        // Through the flow-key form too.
        let k: [u8; 16] = "2001:db8:abcd:12::99"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(t.lookup_key(&k, 6), Some(3));
    }

    #[test]
    fn flow_key_ipv4_form() {
        let t = table(&[("203.0.113.0/24", 5)]);
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&[203, 0, 113, 7]);
        assert_eq!(t.lookup_key(&k, 4), Some(5));
        k[2] = 114;
        assert_eq!(t.lookup_key(&k, 4), None);
    }

    #[test]
    fn duplicates_are_reported_and_the_first_kept() {
        let mut t = table(&[("198.51.100.0/24", 1)]);
        assert_eq!(
            t.insert(Prefix::parse("198.51.100.0/24").unwrap(), 2),
            Some(1)
        );
        assert_eq!(at(&t, "198.51.100.1"), Some(1));
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_reason() {
        for (s, why) in [
            ("10.0.0.1/8", "host bits"),
            ("10.0.0.0/33", "at most 32"),
            ("2001:db8::/129", "at most 128"),
            ("2001:db8::1/32", "host bits"),
            ("example.com/8", "not an IPv4"),
            ("10.0.0.0/x", "not a number"),
        ] {
            let e = Prefix::parse(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
        assert_eq!(
            Prefix::parse("192.0.2.1").unwrap(),
            Prefix::V4(0xc000_0201, 32)
        );
    }
}
