//! Per-worker heavy-hitter tables: bounded, set-associative Space-Saving over decay counters.
//!
//! ## Why Space-Saving (Metwally, Agrawal, El Abbadi, ICDT 2005) and not HashPipe
//! Space-Saving never drops a key that is really heavy: a key is evicted only when it holds the
//! smallest count, and a newcomer inherits that count, so estimates are upper bounds and every
//! key whose decayed count exceeds the smallest one tracked is present. With decayed counters
//! this carries over unchanged (Cormode et al., "Forward decay", ICDE 2009), because the order of
//! counters by `s` never changes with time: the minimum is found by comparing stored `s` values,
//! without the clock. HashPipe (Sivaraman et al., SOSR 2017) is built for switch pipelines that
//! can touch each stage once; it undercounts and may split a key over stages, so a threshold
//! alert could be missed. Here a CPU can afford a small associative search.
//!
//! ## Layout
//! The classic Space-Saving keeps a global minimum (a heap or stream-summary), which costs
//! O(log n) pointer chasing per packet. Instead keys hash into one of `2^b` buckets of 8 ways
//! and the minimum is taken within the bucket (the "bucketized" Space-Saving used by
//! line-rate sketches): one fingerprint line and one line of `s` values per bucket, no
//! allocation, no pointers. The guarantee becomes per bucket: a key whose decayed count exceeds
//! the smallest count in its bucket is tracked, and an estimate exceeds the truth by at most
//! that smallest count (about total/capacity when the hash spreads keys evenly).
//!
//! Per entry: fingerprint 4 B + packets `s` 8 B + key 40 B + bytes `s` 8 B = 60 B
//! (4096 keys: 240 KB per table per worker).

use super::alerts::{Alert, HhGroup, SnapEntry, Snapshot};
use super::config::HeavyHitterConfig;
use super::decay::DecayCounter;
pub use super::key::{HhKey, PacketKey};
use super::tables::{DecayTables, Tick};
use std::sync::Arc;

/// Ways per bucket.
pub const WAYS: usize = 8;

#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Bucket {
    /// 0 = empty way, else the top bit set and 31 bits of the hash.
    fp: [u32; WAYS],
    /// Packets counter `s` of each way.
    s_pkts: [u64; WAYS],
}

#[derive(Clone, Copy, Default)]
struct Slot {
    key: HhKey,
    s_bytes: u64,
}

/// `a < b` in the (time-invariant) order of decay counters.
#[inline]
fn less(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

/// One worker's table for one `[[heavy_hitters]]` entry. Feed it every packet with
/// [`HeavyHitters::observe`] and call [`HeavyHitters::poll`] once per burst.
pub struct HeavyHitters {
    cfg: HeavyHitterConfig,
    v4_prefix: u8,
    v6_prefix: u8,
    tables: Arc<DecayTables>,
    group: Arc<HhGroup>,
    worker: u16,
    mask: usize,
    buckets: Box<[Bucket]>,
    slots: Box<[Slot]>,
    total_pkts: DecayCounter,
    total_bytes: DecayCounter,
    interval_ns: u64,
    /// Packet time (ns) of the next report; 0 until the first packet or poll.
    next_report_ns: u64,
    /// Reused between reports so publishing does not allocate once warm.
    snap: Snapshot,
    /// Keys held at the last report, for the metrics endpoint (stored once per report).
    occupied: Arc<std::sync::atomic::AtomicU64>,
}

impl HeavyHitters {
    /// The table of `worker` (0-based, < the group's worker count) in `group`, which holds the
    /// (validated) configuration and merges the workers' reports.
    pub fn new(tables: Arc<DecayTables>, group: Arc<HhGroup>, worker: u16) -> Self {
        debug_assert!(
            worker < group.workers(),
            "worker {worker} outside its group"
        );
        let cfg = group.config().clone();
        let n_buckets = cfg.capacity.div_ceil(WAYS).next_power_of_two();
        HeavyHitters {
            v4_prefix: cfg.v4_prefix(),
            v6_prefix: cfg.v6_prefix(),
            interval_ns: cfg.report_interval_ms * 1_000_000,
            cfg,
            tables,
            group,
            worker,
            mask: n_buckets - 1,
            buckets: vec![Bucket::default(); n_buckets].into_boxed_slice(),
            slots: vec![Slot::default(); n_buckets * WAYS].into_boxed_slice(),
            total_pkts: DecayCounter::default(),
            total_bytes: DecayCounter::default(),
            next_report_ns: 0,
            snap: Snapshot::default(),
            occupied: Arc::default(),
        }
    }

    /// Keys this table held at its last report (read by the metrics endpoint's thread).
    pub fn occupancy(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.occupied.clone()
    }

    /// One table per worker for `cfg`, sharing one new group.
    pub fn for_workers(
        tables: Arc<DecayTables>,
        cfg: &HeavyHitterConfig,
        workers: u16,
    ) -> Vec<HeavyHitters> {
        let group = Arc::new(HhGroup::new(cfg.clone(), tables.clone(), workers));
        (0..workers)
            .map(|w| HeavyHitters::new(tables.clone(), group.clone(), w))
            .collect()
    }

    /// Keys this table can hold (capacity rounded up to whole power-of-two buckets).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of table memory.
    pub fn table_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets) + std::mem::size_of_val(&*self.slots)
    }

    pub fn config(&self) -> &HeavyHitterConfig {
        &self.cfg
    }

    pub fn group(&self) -> &Arc<HhGroup> {
        &self.group
    }

    /// Count one packet of `bytes` bytes at tick `t` (`tables.tick(ts_ns)`). No allocation.
    #[inline]
    pub fn observe(&mut self, pkt: &PacketKey, t: Tick, bytes: u32) {
        let tables = &*self.tables;
        let e_bytes = t.0.wrapping_add(tables.ln_weight(bytes));
        self.total_pkts.add(tables, t);
        self.total_bytes.add_at(tables, e_bytes);

        let key = HhKey::of(self.cfg.key, self.v4_prefix, self.v6_prefix, pkt);
        let h = key.hash();
        let b = (h as usize) & self.mask;
        let fp = (h >> 32) as u32 | 1 << 31;
        let base = b * WAYS;
        let bucket = &mut self.buckets[b];
        let slots = &mut self.slots[base..base + WAYS];

        // Compare all 8 fingerprints without branches (one vector compare where available),
        // then check the full key of the (almost always single) match.
        let mut hits = bucket
            .fp
            .iter()
            .enumerate()
            .fold(0u32, |m, (i, &f)| m | ((f == fp) as u32) << i);
        while hits != 0 {
            let i = hits.trailing_zeros() as usize;
            hits &= hits - 1;
            if slots[i].key.same(&key) {
                bucket.s_pkts[i] = tables.combine(bucket.s_pkts[i], t.0);
                slots[i].s_bytes = tables.combine(slots[i].s_bytes, e_bytes);
                return;
            }
        }
        // Miss: take an empty way, else evict the smallest and inherit its counts
        // (Space-Saving: estimates stay upper bounds).
        let empties = bucket
            .fp
            .iter()
            .enumerate()
            .fold(0u32, |m, (i, &f)| m | ((f == 0) as u32) << i);
        let empty = empties != 0;
        let victim = if empty {
            empties.trailing_zeros() as usize
        } else {
            // Min by the time-invariant order of `s`; selects, not branches.
            let mut v = 0;
            for (i, &s) in bucket.s_pkts.iter().enumerate().skip(1) {
                v = if less(s, bucket.s_pkts[v]) { i } else { v };
            }
            v
        };
        bucket.fp[victim] = fp;
        slots[victim].key = key;
        if empty {
            bucket.s_pkts[victim] = t.0;
            slots[victim].s_bytes = e_bytes;
        } else {
            bucket.s_pkts[victim] = tables.combine(bucket.s_pkts[victim], t.0);
            slots[victim].s_bytes = tables.combine(slots[victim].s_bytes, e_bytes);
        }
    }

    /// Call once per burst with the current packet time. Does nothing until a report is due
    /// (one compare); then publishes this worker's counts to the group and, when every worker
    /// has published this interval, merges them and appends the whole appliance's alerts to
    /// `out` (see [`HhGroup`]).
    #[inline]
    pub fn poll(&mut self, ts_ns: u64, out: &mut Vec<Alert>) {
        if ts_ns < self.next_report_ns {
            return;
        }
        self.report(ts_ns, out);
    }

    #[cold]
    fn report(&mut self, ts_ns: u64, out: &mut Vec<Alert>) {
        let boundary = ts_ns / self.interval_ns * self.interval_ns;
        if self.next_report_ns == 0 {
            // First call: start counting intervals from here.
            self.next_report_ns = boundary + self.interval_ns;
            return;
        }
        self.next_report_ns = boundary + self.interval_ns;
        self.publish(boundary, false, out);
    }

    /// The worker is done (end of input or shutdown): publish a last report at `ts_ns` and stop
    /// holding back the group's merges.
    pub fn finish(&mut self, ts_ns: u64, out: &mut Vec<Alert>) {
        self.publish(ts_ns, true, out);
    }

    fn publish(&mut self, time_ns: u64, retire: bool, out: &mut Vec<Alert>) {
        let mut snap = std::mem::take(&mut self.snap);
        self.snapshot_into(time_ns, &mut snap);
        snap.retired = retire;
        self.group.publish(self.worker, &mut snap, out);
        self.snap = snap;
    }

    /// Fill `snap` with this worker's counters for the report at packet time `time_ns` (what
    /// [`HeavyHitters::poll`] publishes). Entries decayed below the `rho` cut-off are dropped
    /// from the table here, so no entry outlives the tick window.
    pub fn snapshot_into(&mut self, time_ns: u64, snap: &mut Snapshot) {
        let t = self.tables.tick(time_ns);
        let cutoff = self.tables.rho_cutoff() as i64;
        snap.entries.clear();
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            for i in 0..WAYS {
                if bucket.fp[i] == 0 {
                    continue;
                }
                if -DecayTables::excess(bucket.s_pkts[i], t) >= cutoff {
                    bucket.fp[i] = 0;
                    continue;
                }
                let slot = &self.slots[b * WAYS + i];
                snap.entries.push(SnapEntry {
                    key: slot.key,
                    s_pkts: bucket.s_pkts[i],
                    s_bytes: slot.s_bytes,
                });
            }
        }
        self.occupied.store(
            snap.entries.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        snap.interval = Some(time_ns / self.interval_ns);
        snap.time_ns = time_ns;
        snap.retired = false;
        snap.total_pkts = self.total_pkts.s();
        snap.total_bytes = self.total_bytes.s();
    }

    /// This worker's own view (not merged) of the tracked keys at tick `t`: `(key, pps, bps)`
    /// sorted by packet rate, highest first. For tests and debugging.
    pub fn local_rates(&self, t: Tick) -> Vec<(HhKey, f64, f64)> {
        let mut v = Vec::new();
        for (b, bucket) in self.buckets.iter().enumerate() {
            for i in 0..WAYS {
                if bucket.fp[i] != 0 {
                    let slot = &self.slots[b * WAYS + i];
                    v.push((
                        slot.key,
                        self.tables.rate(bucket.s_pkts[i], t),
                        8.0 * self.tables.rate(slot.s_bytes, t),
                    ));
                }
            }
        }
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// This worker's total packet rate at `t` (all packets it observed).
    pub fn local_total_pps(&self, t: Tick) -> f64 {
        self.total_pkts.value(&self.tables, t) / self.tables.tau_s()
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
    fn tables_can_move_to_worker_threads() {
        fn send<T: Send>() {}
        fn share<T: Send + Sync>() {}
        send::<HeavyHitters>();
        share::<DecayTables>();
        share::<HhGroup>();
    }

    #[test]
    fn decayed_entries_are_dropped_at_report() {
        use crate::rates::config::{KeyType, RatesConfig};
        let tables = Arc::new(DecayTables::new(&RatesConfig::default()).unwrap());
        let mut cfg = HeavyHitterConfig::new(KeyType::SrcIp);
        cfg.top_k = Some(1);
        let mut hh = HeavyHitters::for_workers(tables.clone(), &cfg, 1).remove(0);
        let p = PacketKey {
            src_ip: v4([10, 0, 0, 1]),
            ip_version: 4,
            ..PacketKey::default()
        };
        hh.observe(&p, tables.tick(1_000_000_000), 100);
        let mut snap = Snapshot::default();
        hh.snapshot_into(10_000_000_000, &mut snap);
        assert_eq!(snap.entries.len(), 1, "e^-9 is still counted");
        hh.snapshot_into(25_000_000_000, &mut snap);
        assert!(snap.entries.is_empty(), "below e^-22.9 it is gone");
        assert!(hh.local_rates(tables.tick(25_000_000_000)).is_empty());
    }
}
