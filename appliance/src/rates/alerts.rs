//! Heavy-hitter alerts for the whole appliance: merging the workers' views and the threshold
//! and top-k detections.
//!
//! ## How workers' views are merged
//! Workers are shared-nothing: each keeps its own [`HeavyHitters`](super::HeavyHitters) table
//! and total counters over the packets it sees, and a key (a source address, a prefix) can be
//! seen by several workers because RSS spreads flows, not addresses. Decayed sums of disjoint
//! streams add: `V_total(t) = sum_w V_w(t)`, and likewise for every key. So once per report
//! interval each worker publishes a [`Snapshot`] of its log-domain `s` values (totals and every
//! tracked key) into its own slot of the table's [`HhGroup`] (one writer per slot, an
//! uncontended lock once per interval, never per packet). The worker that completes an
//! interval (every live worker has published it) runs [`merge`]: it evaluates each snapshot at
//! the interval's boundary, `V = exp((s - t)/tau)`, and sums per key and for the totals. The
//! detections then run once on the merged view, so fractions use the appliance's total rate and
//! a key split over workers is judged by its whole rate. Alerts carry the merging worker's id.
//!
//! A key missing from one worker's table adds nothing from that worker; by Space-Saving that
//! worker's part was below the smallest count of its bucket. Workers' packet clocks are assumed
//! to be within one report interval of each other (true online: every worker polls
//! continuously). A worker that stops ([`HeavyHitters::finish`](super::HeavyHitters::finish))
//! no longer holds merges back; when the last one stops a final report is merged.
//!
//! ## Detections (per merged report)
//! - `absolute`: a key's rate reaches `threshold_pps` (packets/s) or `threshold_bps` (bits/s);
//! - `fraction`: a key's packet rate reaches `threshold_fraction` of the total packet rate;
//! - `cleared`: a key that had crossed one of these is back below it (`threshold` says which);
//! - `top_k`: the k keys with the highest packet rate, every report; `threshold` is the k-th
//!   rate, the rate needed to enter the top k.
//!
//! Each crossing emits one alert, at the first report where it holds.

use super::config::{HeavyHitterConfig, KeyType};
use super::key::HhKey;
use super::tables::{DecayTables, Tick};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What an alert reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Absolute,
    Fraction,
    TopK,
    Cleared,
}

/// One alert, written as a JSON line
/// `{"time_ms","worker","key_type","key","kind","rate_pps","rate_bps","threshold"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Packet time of the report, ms.
    pub time_ms: u64,
    /// The worker that merged the report (the report covers all workers).
    pub worker: u16,
    pub key_type: KeyType,
    pub key: String,
    pub kind: AlertKind,
    /// The key's packet rate, packets/s, over the whole appliance.
    pub rate_pps: f64,
    /// The key's bit rate, bits/s, over the whole appliance.
    pub rate_bps: f64,
    /// The threshold crossed or cleared (pps, bps or fraction); for `top_k`, the k-th rate.
    pub threshold: f64,
    /// The Community ID of a `flow` key (not for ICMP: the key has no type and code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
}

/// One tracked key in a [`Snapshot`]: its packets and bytes counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapEntry {
    pub key: HhKey,
    pub s_pkts: u64,
    pub s_bytes: u64,
}

/// What one worker publishes each report interval.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Report interval number (`time_ns / report_interval`); `None` before the first report.
    pub interval: Option<u64>,
    /// Packet time the snapshot was taken for, ns.
    pub time_ns: u64,
    /// The worker has finished; it no longer holds merges back.
    pub retired: bool,
    /// Totals over every packet the worker saw (log-domain `s`; `None` if none).
    pub total_pkts: Option<u64>,
    pub total_bytes: Option<u64>,
    pub entries: Vec<SnapEntry>,
}

/// A key's rates over all workers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergedKey {
    pub key: HhKey,
    pub pps: f64,
    pub bps: f64,
}

/// The merged view of one report: totals and keys, by packet rate (highest first).
#[derive(Debug, Default)]
pub struct Merged {
    pub total_pps: f64,
    pub total_bps: f64,
    pub keys: Vec<MergedKey>,
    index: HashMap<HhKey, usize>,
}

/// Merge workers' snapshots at tick `t`: decayed sums of disjoint streams add, so every key's
/// rate and the totals are the sums of the workers' values at `t` (buffers in `out` are reused).
pub fn merge(tables: &DecayTables, snaps: &[&Snapshot], t: Tick, out: &mut Merged) {
    let tau_s = tables.tau_s();
    out.total_pps = 0.0;
    out.total_bps = 0.0;
    out.keys.clear();
    out.index.clear();
    for s in snaps {
        if let Some(p) = s.total_pkts {
            out.total_pps += tables.value(p, t) / tau_s;
        }
        if let Some(b) = s.total_bytes {
            out.total_bps += 8.0 * tables.value(b, t) / tau_s;
        }
        for e in &s.entries {
            let pps = tables.value(e.s_pkts, t) / tau_s;
            let bps = 8.0 * tables.value(e.s_bytes, t) / tau_s;
            let i = *out.index.entry(e.key).or_insert_with(|| {
                out.keys.push(MergedKey {
                    key: e.key,
                    pps: 0.0,
                    bps: 0.0,
                });
                out.keys.len() - 1
            });
            out.keys[i].pps += pps;
            out.keys[i].bps += bps;
        }
    }
    out.keys
        .sort_by(|a, b| b.pps.total_cmp(&a.pps).then(a.key.cmp(&b.key)));
}

const PPS: u8 = 1;
const BPS: u8 = 2;
const FRACTION: u8 = 4;

/// Which keys are above which threshold, across reports, so each crossing alerts once.
#[derive(Debug, Default)]
pub struct AlertState {
    active: HashMap<HhKey, u8>,
    gone: Vec<(HhKey, u8)>,
}

impl AlertState {
    /// Keys currently above some threshold.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Run the detections of `cfg` on one merged report and append the alerts to `out`.
    /// Returns the number appended.
    pub fn evaluate(
        &mut self,
        cfg: &HeavyHitterConfig,
        merged: &Merged,
        time_ms: u64,
        worker: u16,
        out: &mut Vec<Alert>,
    ) -> usize {
        let start = out.len();
        let alert = |k: &MergedKey, kind, threshold| Alert {
            time_ms,
            worker,
            key_type: cfg.key,
            key: k.key.format(cfg.key),
            kind,
            rate_pps: k.pps,
            rate_bps: k.bps,
            threshold,
            community_id: k.key.community_id(cfg.key, cfg.community_id_seed),
        };
        let thresholds = [
            (PPS, AlertKind::Absolute, cfg.threshold_pps),
            (BPS, AlertKind::Absolute, cfg.threshold_bps),
            (FRACTION, AlertKind::Fraction, cfg.threshold_fraction),
        ];
        let flags_of = |k: &MergedKey| {
            let mut f = 0;
            if cfg.threshold_pps.is_some_and(|x| k.pps >= x) {
                f |= PPS;
            }
            if cfg.threshold_bps.is_some_and(|x| k.bps >= x) {
                f |= BPS;
            }
            if merged.total_pps > 0.0
                && cfg
                    .threshold_fraction
                    .is_some_and(|x| k.pps >= x * merged.total_pps)
            {
                f |= FRACTION;
            }
            f
        };
        for k in &merged.keys {
            let now = flags_of(k);
            let prev = self.active.get(&k.key).copied().unwrap_or(0);
            if now == prev {
                continue;
            }
            for (bit, kind, th) in thresholds {
                if let Some(th) = th {
                    if now & bit != 0 && prev & bit == 0 {
                        out.push(alert(k, kind, th));
                    } else if prev & bit != 0 && now & bit == 0 {
                        out.push(alert(k, AlertKind::Cleared, th));
                    }
                }
            }
            if now == 0 {
                self.active.remove(&k.key);
            } else {
                self.active.insert(k.key, now);
            }
        }
        // Keys no worker tracks any more: their rate is (about) 0, clear them.
        self.gone.clear();
        for (key, &flags) in &self.active {
            if !merged.index.contains_key(key) {
                self.gone.push((*key, flags));
            }
        }
        self.gone.sort_unstable();
        for &(key, flags) in &self.gone {
            let k = MergedKey {
                key,
                pps: 0.0,
                bps: 0.0,
            };
            for (bit, _, th) in thresholds {
                if let (Some(th), true) = (th, flags & bit != 0) {
                    out.push(alert(&k, AlertKind::Cleared, th));
                }
            }
            self.active.remove(&key);
        }
        if let Some(top) = cfg.top_k {
            let n = top.min(merged.keys.len());
            if n > 0 {
                let cut = merged.keys[n - 1].pps;
                for k in &merged.keys[..n] {
                    out.push(alert(k, AlertKind::TopK, cut));
                }
            }
        }
        out.len() - start
    }
}

struct GroupState {
    last_interval: Option<u64>,
    final_done: bool,
    alerts: AlertState,
    merged: Merged,
}

/// The shared part of one `[[heavy_hitters]]` table: one snapshot slot per worker, the merge
/// and the alert state (see the module docs). Create one per table and hand it to every
/// worker's [`HeavyHitters`](super::HeavyHitters).
pub struct HhGroup {
    cfg: HeavyHitterConfig,
    tables: Arc<DecayTables>,
    interval_ns: u64,
    slots: Box<[Mutex<Snapshot>]>,
    state: Mutex<GroupState>,
    alerts_emitted: AtomicU64,
    reports: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked while holding a slot left plain data behind: keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HhGroup {
    /// `cfg` must have been validated ([`HeavyHitterConfig::validate`]).
    pub fn new(cfg: HeavyHitterConfig, tables: Arc<DecayTables>, workers: u16) -> Self {
        HhGroup {
            interval_ns: cfg.report_interval_ms.max(1) * 1_000_000,
            cfg,
            tables,
            slots: (0..workers.max(1))
                .map(|_| Mutex::new(Snapshot::default()))
                .collect(),
            state: Mutex::new(GroupState {
                last_interval: None,
                final_done: false,
                alerts: AlertState::default(),
                merged: Merged::default(),
            }),
            alerts_emitted: AtomicU64::new(0),
            reports: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &HeavyHitterConfig {
        &self.cfg
    }

    /// Workers (snapshot slots) in the group.
    pub fn workers(&self) -> u16 {
        self.slots.len() as u16
    }

    /// Alerts emitted so far (for metrics).
    pub fn alerts_emitted(&self) -> u64 {
        self.alerts_emitted.load(Ordering::Relaxed)
    }

    /// Merged reports so far (for metrics).
    pub fn reports(&self) -> u64 {
        self.reports.load(Ordering::Relaxed)
    }

    /// Store `worker`'s snapshot (swapped with the slot's old one, whose buffer the caller
    /// reuses) and, if that completes an interval, merge and append alerts to `out`.
    pub fn publish(&self, worker: u16, snap: &mut Snapshot, out: &mut Vec<Alert>) {
        if let Some(slot) = self.slots.get(worker as usize) {
            std::mem::swap(&mut *lock(slot), snap);
        }
        let mut st = lock(&self.state);
        let guards: Vec<MutexGuard<'_, Snapshot>> = self.slots.iter().map(lock).collect();
        let live = guards.iter().filter(|g| !g.retired);
        let mut ready = Some(u64::MAX);
        for g in live {
            ready = match (ready, g.interval) {
                (Some(r), Some(i)) => Some(r.min(i)),
                _ => None,
            };
        }
        let time_ns = match ready {
            None => return,
            Some(u64::MAX) => {
                // Every worker has finished: one last report at the latest time.
                if st.final_done {
                    return;
                }
                st.final_done = true;
                guards.iter().map(|g| g.time_ns).max().unwrap_or(0)
            }
            Some(k) => {
                if st.last_interval.is_some_and(|l| l >= k) {
                    return;
                }
                st.last_interval = Some(k);
                k * self.interval_ns
            }
        };
        let snaps: Vec<&Snapshot> = guards.iter().map(|g| &**g).collect();
        let t = self.tables.tick(time_ns);
        let st = &mut *st;
        merge(&self.tables, &snaps, t, &mut st.merged);
        drop(snaps);
        drop(guards);
        let n = st
            .alerts
            .evaluate(&self.cfg, &st.merged, time_ns / 1_000_000, worker, out);
        self.alerts_emitted.fetch_add(n as u64, Ordering::Relaxed);
        self.reports.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::config::RatesConfig;
    use crate::rates::key::PacketKey;

    fn key(last: u8) -> HhKey {
        let mut src_ip = [0u8; 16];
        src_ip[..4].copy_from_slice(&[10, 0, 0, last]);
        let p = PacketKey {
            src_ip,
            ip_version: 4,
            ..PacketKey::default()
        };
        HhKey::of(KeyType::SrcIp, 32, 128, &p)
    }

    /// A snapshot whose keys have the given packet rates (bytes: 100 per packet) at `t`.
    fn snap(tables: &DecayTables, t: Tick, total_pps: f64, keys: &[(u8, f64)]) -> Snapshot {
        let s = |rate: f64| t.0.wrapping_add(tables.log_threshold(rate) as u64);
        Snapshot {
            interval: Some(0),
            total_pkts: Some(s(total_pps)),
            total_bytes: Some(s(total_pps * 100.0)),
            entries: keys
                .iter()
                .map(|&(k, pps)| SnapEntry {
                    key: key(k),
                    s_pkts: s(pps),
                    s_bytes: s(pps * 100.0),
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn alerts_serialize_to_the_documented_json_line() {
        let a = Alert {
            time_ms: 1500,
            worker: 1,
            key_type: KeyType::SrcPrefix,
            key: "10.1.2.0/24".into(),
            kind: AlertKind::TopK,
            rate_pps: 2.5,
            rate_bps: 8000.0,
            threshold: 0.05,
            community_id: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"time_ms":1500,"worker":1,"key_type":"src_prefix","key":"10.1.2.0/24","kind":"top_k","rate_pps":2.5,"rate_bps":8000.0,"threshold":0.05}"#
        );
    }

    #[test]
    fn crossings_alert_once_and_clear_once() {
        let tables = DecayTables::new(&RatesConfig::default()).unwrap();
        let cfg = HeavyHitterConfig {
            threshold_pps: Some(1000.0),
            threshold_fraction: Some(0.25),
            top_k: Some(2),
            ..HeavyHitterConfig::new(KeyType::SrcIp)
        };
        let t = Tick(1 << 50);
        let mut st = AlertState::default();
        let mut m = Merged::default();
        let mut out = Vec::new();
        let mut step = |total: f64, keys: &[(u8, f64)], out: &mut Vec<Alert>| {
            out.clear();
            merge(&tables, &[&snap(&tables, t, total, keys)], t, &mut m);
            st.evaluate(&cfg, &m, 7, 0, out);
            out.iter()
                .map(|a| (a.key.clone(), a.kind, a.threshold))
                .collect::<Vec<_>>()
        };
        let k = |n: u8| format!("10.0.0.{n}");
        // 10.0.0.1 crosses both thresholds, 10.0.0.2 only the fraction one.
        let got = step(2000.0, &[(1, 1200.0), (2, 600.0), (3, 10.0)], &mut out);
        let kinds: Vec<_> = got.iter().map(|g| (g.0.clone(), g.1)).collect();
        assert_eq!(
            kinds,
            [
                (k(1), AlertKind::Absolute),
                (k(1), AlertKind::Fraction),
                (k(2), AlertKind::Fraction),
                (k(1), AlertKind::TopK),
                (k(2), AlertKind::TopK),
            ]
        );
        assert_eq!((got[0].2, got[1].2, got[2].2), (1000.0, 0.25, 0.25));
        assert!(
            (got[3].2 / 600.0 - 1.0).abs() < 1e-9,
            "top-k threshold is the k-th rate"
        );
        // Same state: only top-k again. Then 10.0.0.1 drops under the absolute threshold and
        // 10.0.0.2 disappears from every table.
        let got = step(2000.0, &[(1, 1200.0), (2, 600.0)], &mut out);
        assert!(got.iter().all(|g| g.1 == AlertKind::TopK));
        let got = step(2000.0, &[(1, 900.0)], &mut out);
        assert_eq!(
            got[..2],
            [
                (k(1), AlertKind::Cleared, 1000.0),
                (k(2), AlertKind::Cleared, 0.25)
            ]
        );
        assert_eq!(out[1].rate_pps, 0.0);
        assert_eq!(st.active(), 1, "10.0.0.1 is still above the fraction");
    }
}
