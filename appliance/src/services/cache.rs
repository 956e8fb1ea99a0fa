//! Addresses learned from DNS answers: address -> service, until the record's TTL runs out.
//!
//! Only addresses whose name (or a name of its CNAME chain) matches a service are kept: what
//! the flow classifier needs is the service of an address, so that is what is stored. The
//! table is preallocated (a power of two of slots, open addressing with a bounded probe), so
//! learning and looking up never allocate. Expiry is by packet time: a slot whose deadline
//! has passed is free to take and no longer matches. When every slot of a probe window is
//! live, the one nearest to its expiry is replaced.

/// Slots probed per lookup or insert.
const PROBE: usize = 8;

#[derive(Clone, Copy, Default)]
struct Slot {
    addr: [u8; 16],
    /// 0 = never used (a lookup may stop here), else 4 or 6.
    ip_version: u8,
    service: u16,
    /// Packet time (ms) after which the mapping is gone.
    expires_ms: u64,
}

pub struct DnsCache {
    slots: Vec<Slot>,
    mask: usize,
    /// Live mappings replaced before their TTL ran out (the table was too small).
    pub replaced_live: u64,
}

fn hash(addr: &[u8; 16], ip_version: u8) -> u64 {
    let a = u64::from_le_bytes(addr[..8].try_into().unwrap_or([0; 8]));
    let b = u64::from_le_bytes(addr[8..].try_into().unwrap_or([0; 8]));
    let h = (a ^ b.rotate_left(29) ^ ip_version as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 31)
}

impl DnsCache {
    /// A table of at least `capacity` slots (rounded up to a power of two, at least `PROBE`).
    pub fn new(capacity: usize) -> DnsCache {
        let n = capacity.max(PROBE).next_power_of_two();
        let mut slots = vec![Slot::default(); n];
        // Touch every page now (zeroed allocations are mapped lazily): otherwise the first
        // lookups of a run each take a page fault inside the flow-table stage.
        for s in slots.iter_mut() {
            std::hint::black_box(&mut *s).expires_ms = 0;
        }
        DnsCache {
            slots,
            mask: n - 1,
            replaced_live: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Remember that `addr` belongs to `service` until `expires_ms` (packet time).
    pub fn insert(
        &mut self,
        addr: &[u8; 16],
        ip_version: u8,
        service: u16,
        now_ms: u64,
        expires_ms: u64,
    ) {
        let h = hash(addr, ip_version) as usize;
        let mut victim = h & self.mask;
        let mut victim_exp = u64::MAX;
        for i in 0..PROBE {
            let at = (h + i) & self.mask;
            let s = &self.slots[at];
            if s.ip_version == ip_version && s.addr == *addr {
                victim = at;
                victim_exp = 0;
                break;
            }
            let exp = if s.ip_version == 0 || s.expires_ms < now_ms {
                0
            } else {
                s.expires_ms
            };
            if exp < victim_exp {
                victim = at;
                victim_exp = exp;
            }
        }
        let s = &mut self.slots[victim];
        if victim_exp != 0 && !(s.ip_version == ip_version && s.addr == *addr) {
            self.replaced_live += 1;
        }
        *s = Slot {
            addr: *addr,
            ip_version,
            service,
            expires_ms,
        };
    }

    /// The service `addr` was learned for, if its mapping is still live at `now_ms`.
    #[inline]
    pub fn lookup(&self, addr: &[u8; 16], ip_version: u8, now_ms: u64) -> Option<u16> {
        let h = hash(addr, ip_version) as usize;
        for i in 0..PROBE {
            let s = &self.slots[(h + i) & self.mask];
            if s.ip_version == 0 {
                return None;
            }
            if s.ip_version == ip_version && s.addr == *addr {
                return (now_ms <= s.expires_ms).then_some(s.service);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&[10, 0, a, b]);
        k
    }

    #[test]
    fn ttl_expiry_on_packet_time() {
        let mut c = DnsCache::new(16);
        c.insert(&v4(0, 1), 4, 3, 1000, 61_000);
        assert_eq!(c.lookup(&v4(0, 1), 4, 1000), Some(3));
        assert_eq!(c.lookup(&v4(0, 1), 4, 61_000), Some(3));
        assert_eq!(c.lookup(&v4(0, 1), 4, 61_001), None);
        // Same bytes, other family: not the same address.
        assert_eq!(c.lookup(&v4(0, 1), 6, 1000), None);
        // A later answer moves the address to another service.
        c.insert(&v4(0, 1), 4, 5, 2000, 90_000);
        assert_eq!(c.lookup(&v4(0, 1), 4, 62_000), Some(5));
    }

    #[test]
    fn a_full_table_stays_bounded_and_keeps_the_newest() {
        let mut c = DnsCache::new(8);
        assert_eq!(c.capacity(), 8);
        for i in 0..200u8 {
            c.insert(&v4(1, i), 4, 1, 0, 1_000_000 + i as u64);
            assert_eq!(c.lookup(&v4(1, i), 4, 0), Some(1), "just inserted {i}");
        }
        assert_eq!(c.capacity(), 8);
        assert!(c.replaced_live > 0);
        let live = (0..200u8)
            .filter(|&i| c.lookup(&v4(1, i), 4, 0).is_some())
            .count();
        assert!(live <= 8, "{live}");
    }
}
