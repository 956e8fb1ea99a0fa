//! A worker's counters, in one type: the worker counts into [`WorkerStats`], publishes it once
//! per burst into its [`PublishedStats`] (read by the metrics endpoint and `weir run`'s status
//! line), and reports it when it stops (`launch::WorkerReport`: the summaries and `--stats`).
//!
//! Every scalar counter is named once, in [`WorkerStats::NAMES`]: publishing, reading back,
//! merging over workers and `--stats` go through that one list, so a counter added to it
//! reaches all of them (the metrics endpoint's families are named by hand, and a unit test in
//! `metrics.rs` checks that every counter appears there).
//!
//! Publishing costs a few dozen `Relaxed` stores per burst (single writer, no lock); the cost
//! table is copied every [`COST_PUBLISH_BURSTS`] bursts into a slot taken with `try_lock` only,
//! so a scrape that holds it makes the worker skip that copy instead of waiting.

use crate::cost::CostTable;
use crate::parse::{SkipCounters, SkipReason};
use crate::services::ServiceStats;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// A worker copies its cost table for the metrics every this many bursts.
pub const COST_PUBLISH_BURSTS: u64 = 64;

/// Plain per-worker counters (single writer: the worker). Read by others only through the
/// worker's [`PublishedStats`] or its final report.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    pub packets: u64,
    pub bytes: u64,
    pub accepted: u64,
    pub flows_created: u64,
    pub expired_idle: u64,
    pub expired_active: u64,
    pub teardown: u64,
    pub evicted: u64,
    pub flushed: u64,
    /// Packets of new flows skipped because the table was full and eviction is off.
    pub table_full: u64,
    pub skipped: SkipCounters,
    /// Records handed over: flow records plus interval records.
    pub records: u64,
    /// DNS learning and flows by service (all zero without `[[services]]`).
    pub services: ServiceStats,
    /// Of `records`, the interval records.
    pub interval_records: u64,
    /// Frames not received whole (cut at the port's limit, or a chain longer than the worker's
    /// buffer); counted by `weir run`'s receive loop (`rx_frames.rs`).
    pub cut_frames: u64,
    /// Packets the capture filter rejected (counted in `packets` and `bytes`, nowhere else).
    pub filtered: u64,
    /// Plugin text values (ABI 1.4) refused on this worker: written as missing.
    pub text_refused: crate::plugin_host::instance::TextRefusals,
}

/// The scalar counters of [`WorkerStats`], each named once: `NAMES`, `values` and
/// `values_mut` list the same fields in the same order.
macro_rules! scalar_counters {
    ($($name:literal => $($field:ident).+),* $(,)?) => {
        impl WorkerStats {
            /// The scalar counters' names (the per-reason skip counts are apart, by
            /// [`SkipReason`]).
            pub const NAMES: &'static [&'static str] = &[$($name),*];
            /// Number of scalar counters.
            pub const SCALARS: usize = Self::NAMES.len();

            /// The scalar counters, in [`WorkerStats::NAMES`] order.
            pub fn values(&self) -> [u64; Self::SCALARS] {
                [$(self $(.$field)+),*]
            }

            /// The scalar counters, writable, in [`WorkerStats::NAMES`] order.
            pub fn values_mut(&mut self) -> [&mut u64; Self::SCALARS] {
                [$(&mut self $(.$field)+),*]
            }
        }
    };
}

scalar_counters! {
    "packets" => packets,
    "bytes" => bytes,
    "accepted" => accepted,
    "flows_created" => flows_created,
    "expired_idle" => expired_idle,
    "expired_active" => expired_active,
    "teardown" => teardown,
    "evicted" => evicted,
    "flushed" => flushed,
    "table_full" => table_full,
    "records" => records,
    "interval_records" => interval_records,
    "cut_frames" => cut_frames,
    "filtered" => filtered,
    "text_too_long" => text_refused.too_long,
    "text_invalid_utf8" => text_refused.invalid_utf8,
    "ipv4_truncated" => skipped.ipv4_truncated,
    "dns_answers" => services.dns_answers,
    "dns_malformed" => services.dns_malformed,
    "dns_unsolicited" => services.dns_unsolicited,
    "dns_learned" => services.dns_learned,
    "dns_replaced_live" => services.dns_replaced_live,
    "flows_by_dns" => services.flows_by_dns,
    "flows_by_prefix" => services.flows_by_prefix,
    "flows_without_service" => services.flows_without_service,
}

impl WorkerStats {
    /// Add another worker's counters (the run's totals).
    pub fn merge(&mut self, o: &WorkerStats) {
        for (a, b) in self.values_mut().into_iter().zip(o.values()) {
            *a += b;
        }
        for (a, b) in self.skipped.counts.iter_mut().zip(o.skipped.counts) {
            *a += b;
        }
    }

    /// Every counter by name (`skipped` by reason as an object), for `--stats`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (name, v) in Self::NAMES.iter().zip(self.values()) {
            m.insert(name.to_string(), v.into());
        }
        let skipped: serde_json::Map<String, serde_json::Value> = self
            .skipped
            .iter()
            .map(|(name, n)| (name.to_string(), n.into()))
            .collect();
        m.insert("skipped".into(), skipped.into());
        m.into()
    }
}

/// One row of a published cost table: the scalars of [`crate::cost::CostRow`].
#[derive(Clone, Debug, Default)]
pub struct CostSnap {
    pub name: String,
    pub is_plugin: bool,
    pub calls: u64,
    pub packets: u64,
    pub flows: u64,
    pub cycles: u64,
    pub errors: u64,
    pub quarantined: u64,
}

/// What one worker publishes for others to read while it runs: its [`WorkerStats`]
/// (`Relaxed` stores once per burst), its open flows, whether it still runs, and a periodic
/// copy of its cost table.
#[derive(Debug)]
pub struct PublishedStats {
    scalars: [AtomicU64; WorkerStats::SCALARS],
    skipped: [AtomicU64; SkipReason::COUNT],
    active_flows: AtomicU64,
    /// Raised when the worker starts polling; cleared when it stops (or panics).
    pub running: AtomicBool,
    cost: Mutex<Vec<CostSnap>>,
}

impl Default for PublishedStats {
    fn default() -> Self {
        PublishedStats {
            scalars: std::array::from_fn(|_| AtomicU64::new(0)),
            skipped: std::array::from_fn(|_| AtomicU64::new(0)),
            active_flows: AtomicU64::new(0),
            running: AtomicBool::new(false),
            cost: Mutex::new(Vec::new()),
        }
    }
}

impl PublishedStats {
    /// Store the worker's counters (called by the worker, once per burst).
    #[inline]
    pub fn publish(&self, s: &WorkerStats, active_flows: u32) {
        let r = Ordering::Relaxed;
        for (a, v) in self.scalars.iter().zip(s.values()) {
            a.store(v, r);
        }
        for (a, v) in self.skipped.iter().zip(s.skipped.counts) {
            a.store(v, r);
        }
        self.active_flows.store(u64::from(active_flows), r);
    }

    /// The counters as last published.
    pub fn snapshot(&self) -> WorkerStats {
        let r = Ordering::Relaxed;
        let mut s = WorkerStats::default();
        for (v, a) in s.values_mut().into_iter().zip(&self.scalars) {
            *v = a.load(r);
        }
        for (v, a) in s.skipped.counts.iter_mut().zip(&self.skipped) {
            *v = a.load(r);
        }
        s
    }

    /// Flows open in the worker's table at its last publication.
    pub fn active_flows(&self) -> u64 {
        self.active_flows.load(Ordering::Relaxed)
    }

    /// Copy the cost table's scalars unless a scrape holds the slot (then skip: the next
    /// offer comes soon). Allocates only on the first copy (row names).
    pub fn offer_cost(&self, cost: &CostTable) {
        let Ok(mut slot) = self.cost.try_lock() else {
            return;
        };
        let rows = cost.rows();
        if slot.len() != rows.len() {
            slot.clear();
            slot.extend(rows.iter().map(|r| CostSnap {
                name: r.name.clone(),
                is_plugin: r.is_plugin,
                ..CostSnap::default()
            }));
        }
        for (s, r) in slot.iter_mut().zip(rows) {
            s.calls = r.calls;
            s.packets = r.packets;
            s.flows = r.flows;
            s.cycles = r.cycles;
            s.errors = r.errors;
            s.quarantined = r.quarantined;
        }
    }

    /// The cost table as last copied.
    pub fn cost_rows(&self) -> Vec<CostSnap> {
        self.cost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Hold the cost slot (tests: a scrape in progress).
    #[cfg(test)]
    pub(crate) fn lock_cost(&self) -> std::sync::MutexGuard<'_, Vec<CostSnap>> {
        self.cost.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter distinct: what a publication gives back, and a merge adds.
    fn numbered() -> WorkerStats {
        let mut s = WorkerStats::default();
        for (i, v) in s.values_mut().into_iter().enumerate() {
            *v = 1000 + i as u64;
        }
        for (i, v) in s.skipped.counts.iter_mut().enumerate() {
            *v = 2000 + i as u64;
        }
        s
    }

    #[test]
    fn publish_snapshot_and_merge_keep_every_counter() {
        let s = numbered();
        let p = PublishedStats::default();
        p.publish(&s, 7);
        let back = p.snapshot();
        assert_eq!(back.values(), s.values());
        assert_eq!(back.skipped, s.skipped);
        assert_eq!(p.active_flows(), 7);
        let mut total = s.clone();
        total.merge(&s);
        assert!(total
            .values()
            .iter()
            .zip(s.values())
            .all(|(t, v)| *t == 2 * v));
        assert_eq!(total.skipped.total(), 2 * s.skipped.total());
        // Named fields are where the list says.
        assert_eq!(
            s.services.flows_without_service,
            *s.values().last().unwrap()
        );
        let names: std::collections::BTreeSet<_> = WorkerStats::NAMES.iter().collect();
        assert_eq!(names.len(), WorkerStats::SCALARS, "a name twice");
        let j = s.to_json();
        assert_eq!(j["interval_records"], s.interval_records);
        assert_eq!(j["skipped"].as_object().unwrap().len(), SkipReason::COUNT);
    }
}
