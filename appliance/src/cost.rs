//! Per-worker CPU cycle accounting for the built-in stages and every plugin.
//!
//! Modelled on FD.io VPP's `show runtime`: each stage of the data path is a row; the worker
//! reads the TSC once per call and chains the reads, so the end of one call is the start of the
//! next and one burst through N stages costs N + 1 TSC reads in all. Counters are plain fields of
//! a per-worker [`CostTable`] (no atomics, no locks); histograms are created with fixed bounds at
//! start, so recording never allocates. Tables from several workers are combined with
//! [`CostTable::merge`] for the report.
//!
//! ```ignore
//! let mut t = cost.start();
//! parse(...);                     t = cost.lap(Stage::Parse.row(), n, t);
//! flow_table(...);                t = cost.lap(Stage::FlowTable.row(), n, t);
//! ```
//!
//! With accounting disabled (`cost.enabled = false`) [`CostTable::start`] and
//! [`CostTable::lap`] do not read the TSC and touch no counter: the cost is one predictable
//! branch per call, so the perf harness can compare a run with and without accounting.

pub mod by_service;
mod hist;
mod running;

pub use hist::CycleHist;
pub use running::Running;
use std::fmt::Write as _;
use weir_dpdk::rdtsc;

/// The built-in stages of a worker, in data-path order. Plugin rows are reported between
/// [`Stage::Rates`] and [`Stage::Expiry`], where plugins run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Rx,
    Parse,
    FlowTable,
    Rates,
    Expiry,
    /// Ending intervals: the interval records of the flows touched in an interval that ended
    /// (plugins' `interval_emit` calls are on their own rows).
    Interval,
    /// Handing finished records to the scorer or sinks.
    Sink,
    /// The records' Community ID (once per record; its `packets` count records).
    CommunityId,
    /// The capture filter (`[capture] filter`, `ports[].filter`, `--filter`), before parsing;
    /// reported right after `rx`.
    Filter,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Rx,
        Stage::Parse,
        Stage::FlowTable,
        Stage::Rates,
        Stage::Expiry,
        Stage::Interval,
        Stage::Sink,
        Stage::CommunityId,
        Stage::Filter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Rx => "rx",
            Stage::Parse => "parse",
            Stage::FlowTable => "flow_table",
            Stage::Rates => "rates",
            Stage::Expiry => "expiry",
            Stage::Interval => "intervals",
            Stage::Sink => "sink",
            Stage::CommunityId => "community_id",
            Stage::Filter => "filter",
        }
    }

    /// The row of this stage in every [`CostTable`].
    pub const fn row(self) -> RowId {
        RowId(self as u16)
    }
}

/// Index of a row in a [`CostTable`]: a built-in stage or a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowId(pub u16);

impl RowId {
    /// The row of the `i`-th loaded plugin (registry order).
    pub const fn plugin(i: usize) -> RowId {
        RowId((Stage::ALL.len() + i) as u16)
    }
}

/// One row: a stage or a plugin on one worker (or merged over workers).
#[derive(Clone, Debug)]
pub struct CostRow {
    pub name: String,
    /// Whether this row is a plugin (else a built-in stage).
    pub is_plugin: bool,
    pub calls: u64,
    pub packets: u64,
    /// Flows started (plugins: `flow_init` calls; flow table: flows created).
    pub flows: u64,
    /// All cycles of this row: for a plugin, its update_burst calls plus its flow_init and
    /// flow_emit calls, so cycles/packet is the plugin's whole cost per packet.
    pub cycles: u64,
    /// Per-flow state bytes (plugins), 0 for stages.
    pub state_bytes: u32,
    /// Errors returned (plugins); a plugin is quarantined on its first one.
    pub errors: u64,
    /// Workers on which this plugin is quarantined (1/0 on a per-worker table).
    pub quarantined: u64,
    /// Cycles per packet of each accounted call that carried packets (for a plugin: each
    /// update_burst call; per-flow calls are not in it), log-linear within 6.25 %.
    pub hist: CycleHist,
}

impl CostRow {
    fn new(name: &str, is_plugin: bool, state_bytes: u32) -> CostRow {
        CostRow {
            name: name.to_string(),
            is_plugin,
            calls: 0,
            packets: 0,
            flows: 0,
            cycles: 0,
            state_bytes,
            errors: 0,
            quarantined: 0,
            // Fixed size (1.9 KiB), never resized.
            hist: CycleHist::default(),
        }
    }

    pub fn cycles_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.cycles as f64 / self.packets as f64
        }
    }
}

/// The per-worker cost table: one row per built-in stage, then one per plugin.
#[derive(Clone, Debug)]
pub struct CostTable {
    enabled: bool,
    rows: Vec<CostRow>,
    /// Plugin cost by service, when services are configured (see `cost/by_service.rs`).
    pub by_service: Option<Box<by_service::ServiceCost>>,
    /// How much of the worker's time its thread was not running (see [`Running`]): set by
    /// [`CostTable::running_begin`] and [`CostTable::running_end`] on the worker's thread.
    pub running: Option<Running>,
    /// All cycles accounted to plugin rows so far: a stage that calls plugins (flow starts and
    /// ends) subtracts their growth over its run instead of stopping its clock around each call
    /// (see [`CostTable::lap_excluding`]).
    plugin_cycles: u64,
}

impl CostTable {
    /// A table with the built-in stages and one row per plugin, given as (name, state bytes)
    /// in registry order (see `PluginRegistry::cost_rows`).
    pub fn new(plugins: &[(String, u32)], enabled: bool) -> CostTable {
        let mut rows: Vec<CostRow> = Stage::ALL
            .iter()
            .map(|s| CostRow::new(s.name(), false, 0))
            .collect();
        rows.extend(plugins.iter().map(|(n, b)| CostRow::new(n, true, *b)));
        CostTable {
            enabled,
            rows,
            by_service: None,
            running: None,
            plugin_cycles: 0,
        }
    }

    /// Start measuring the calling (worker) thread's time not running.
    pub fn running_begin(&mut self) {
        self.running = Some(Running::begin());
    }

    /// Read the thread's time not running so far (at the report: after the last burst).
    pub fn running_end(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.end();
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn rows(&self) -> &[CostRow] {
        &self.rows
    }

    pub fn row(&self, id: RowId) -> &CostRow {
        &self.rows[id.0 as usize]
    }

    /// Find a row by name (a stage name or a plugin name).
    pub fn find(&self, name: &str) -> Option<&CostRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Before a group of plugin calls for one service's flows (no-op without services).
    #[inline]
    pub fn service_begin(&mut self) {
        if let (true, Some(b)) = (self.enabled, self.by_service.as_mut()) {
            b.begin(&self.rows);
        }
    }

    /// After that group: its plugin cycles and packets go to `service`.
    #[inline]
    pub fn service_end(&mut self, service: u16) {
        if let (true, Some(b)) = (self.enabled, self.by_service.as_mut()) {
            b.end(&self.rows, service);
        }
    }

    /// The table as JSON (`weir cost --json`): every row, and the by-service cells.
    pub fn to_json(&self, tsc_hz: Option<f64>) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .report_order()
            .iter()
            .map(|r| {
                let q = |x: f64| {
                    if r.hist.is_empty() {
                        0
                    } else {
                        r.hist.value_at_quantile(x)
                    }
                };
                serde_json::json!({
                    "name": r.name,
                    "p50_cycles_per_packet": q(0.5),
                    "p99_cycles_per_packet": q(0.99),
                    "is_plugin": r.is_plugin,
                    "calls": r.calls,
                    "packets": r.packets,
                    "flows": r.flows,
                    "cycles": r.cycles,
                    "cycles_per_packet": r.cycles_per_packet(),
                    "state_bytes": r.state_bytes,
                    "errors": r.errors,
                })
            })
            .collect();
        let by_service: Vec<serde_json::Value> = self
            .by_service
            .iter()
            .flat_map(|b| {
                let b = &**b;
                (0..b.services.len()).flat_map(move |si| {
                    (0..b.plugins.len()).map(move |pi| {
                        let c = b.cell(si, pi);
                        serde_json::json!({
                            "service": b.services[si],
                            "plugin": b.plugins[pi],
                            "calls": c.calls,
                            "packets": c.packets,
                            "flows": c.flows,
                            "cycles": c.cycles,
                            "cycles_per_packet": c.cycles_per_packet(),
                        })
                    })
                })
            })
            .collect();
        serde_json::json!({
            "enabled": self.enabled,
            "tsc_hz": tsc_hz,
            "rows": rows,
            "by_service": by_service,
            "descheduled": match (&self.running, tsc_hz) {
                (Some(r), Some(hz)) => r.to_json(hz),
                _ => serde_json::Value::Null,
            },
        })
    }

    /// Start a chain of laps: the current TSC (0 when accounting is off).
    #[inline(always)]
    pub fn start(&self) -> u64 {
        if self.enabled {
            rdtsc()
        } else {
            0
        }
    }

    /// End one call of `row` that handled `pkts` packets and began at `t`; returns the TSC
    /// that starts the next call (one TSC read per lap).
    #[inline(always)]
    pub fn lap(&mut self, row: RowId, pkts: u32, t: u64) -> u64 {
        if !self.enabled {
            return 0;
        }
        let now = rdtsc();
        self.account(row, pkts, now.wrapping_sub(t));
        now
    }

    /// Cycles of all plugin rows so far: read when a stage that calls plugins starts, and
    /// give it to that stage's [`CostTable::lap_excluding`].
    #[inline(always)]
    pub fn plugin_cycles(&self) -> u64 {
        self.plugin_cycles
    }

    /// [`CostTable::lap`] for a stage that called plugins (timed on their own rows) since
    /// `plugins_at_start` = [`CostTable::plugin_cycles`] at its start: their cycles are not
    /// counted twice.
    #[inline(always)]
    pub fn lap_excluding(&mut self, row: RowId, pkts: u32, t: u64, plugins_at_start: u64) -> u64 {
        if !self.enabled {
            return 0;
        }
        let now = rdtsc();
        let inner = self.plugin_cycles - plugins_at_start;
        self.account(row, pkts, now.wrapping_sub(t).saturating_sub(inner));
        now
    }

    /// [`CostTable::lap_flows`] for a stage that called plugins since `plugins_at_start`.
    #[inline(always)]
    pub fn lap_flows_excluding(
        &mut self,
        row: RowId,
        flows: u32,
        t: u64,
        plugins_at_start: u64,
    ) -> u64 {
        if !self.enabled {
            return 0;
        }
        let now = rdtsc();
        let inner = self.plugin_cycles - plugins_at_start;
        let r = &mut self.rows[row.0 as usize];
        r.flows += flows as u64;
        r.cycles += now.wrapping_sub(t).saturating_sub(inner);
        now
    }

    /// Like [`CostTable::lap`] for per-flow calls (flow start/end): counts `flows` and the
    /// cycles, not calls, packets or the per-packet histogram.
    #[inline(always)]
    pub fn lap_flows(&mut self, row: RowId, flows: u32, t: u64) -> u64 {
        if !self.enabled {
            return 0;
        }
        let now = rdtsc();
        let cycles = now.wrapping_sub(t);
        if row.0 as usize >= Stage::ALL.len() {
            self.plugin_cycles += cycles;
        }
        let r = &mut self.rows[row.0 as usize];
        r.flows += flows as u64;
        r.cycles += cycles;
        now
    }

    /// Add one call of `cycles` that handled `pkts` packets (for callers that time otherwise).
    #[inline]
    pub fn account(&mut self, row: RowId, pkts: u32, cycles: u64) {
        if !self.enabled {
            return;
        }
        if row.0 as usize >= Stage::ALL.len() {
            self.plugin_cycles += cycles;
        }
        let r = &mut self.rows[row.0 as usize];
        r.calls += 1;
        r.packets += pkts as u64;
        r.cycles += cycles;
        if pkts > 0 {
            r.hist.record(cycles / pkts as u64);
        }
    }

    /// Count flows for a row without timing them (e.g. flows created by the flow table).
    #[inline]
    pub fn add_flows(&mut self, row: RowId, flows: u64) {
        if self.enabled {
            self.rows[row.0 as usize].flows += flows;
        }
    }

    /// Count an error of a plugin row; `quarantined` marks it quarantined on this worker.
    /// Counted even when accounting is off (errors are not timing).
    pub fn note_error(&mut self, row: RowId, quarantined: bool) {
        let r = &mut self.rows[row.0 as usize];
        r.errors += 1;
        if quarantined && r.quarantined == 0 {
            r.quarantined = 1;
        }
    }

    /// Sum tables of several workers (same plugins, same order) into one.
    pub fn merge(tables: &[&CostTable]) -> CostTable {
        let Some(first) = tables.first() else {
            return CostTable::new(&[], false);
        };
        let mut out = (*first).clone();
        for t in &tables[1..] {
            out.enabled |= t.enabled;
            for (o, r) in out.rows.iter_mut().zip(&t.rows) {
                o.calls += r.calls;
                o.packets += r.packets;
                o.flows += r.flows;
                o.cycles += r.cycles;
                o.errors += r.errors;
                o.quarantined += r.quarantined;
                o.state_bytes = o.state_bytes.max(r.state_bytes);
                o.hist.add(&r.hist);
            }
            if let (Some(a), Some(b)) = (out.by_service.as_mut(), t.by_service.as_ref()) {
                a.merge(b);
            }
            match (out.running.as_mut(), t.running.as_ref()) {
                (Some(a), Some(b)) => a.add(b),
                (None, Some(b)) => out.running = Some(*b),
                _ => {}
            }
        }
        out
    }

    /// Rows in report order: rx, filter, parse, flow_table, rates, the plugins, expiry,
    /// intervals, sink, community_id.
    fn report_order(&self) -> Vec<&CostRow> {
        let n_stages = Stage::ALL.len();
        let mut v: Vec<&CostRow> = vec![&self.rows[Stage::Rx as usize]];
        v.push(&self.rows[Stage::Filter as usize]);
        v.extend(self.rows[Stage::Parse as usize..Stage::Expiry as usize].iter());
        v.extend(self.rows[n_stages..].iter());
        v.extend(self.rows[Stage::Expiry as usize..Stage::Filter as usize].iter());
        v
    }

    /// A VPP `show runtime`-like table: per row calls, packets, flows, packets/call, mean
    /// cycles/packet, p50/p99 cycles/packet per call, share of all cycles, state bytes per flow
    /// and errors (with `(qN)` when quarantined on N workers). With `tsc_hz`, ns/packet too.
    pub fn format(&self, tsc_hz: Option<f64>) -> String {
        let mut s = String::new();
        if !self.enabled {
            s.push_str("cost accounting disabled (cost.enabled = false)\n");
            return s;
        }
        let total: u64 = self.rows.iter().map(|r| r.cycles).sum();
        let _ = write!(
            s,
            "{:<24} {:>12} {:>14} {:>10} {:>9} {:>11} {:>9} {:>9} {:>7}",
            "name", "calls", "packets", "flows", "pkts/call", "cyc/pkt", "p50", "p99", "share%"
        );
        if tsc_hz.is_some() {
            let _ = write!(s, " {:>9}", "ns/pkt");
        }
        let _ = writeln!(s, " {:>11} {:>9}", "state B/fl", "errors");
        for r in self.report_order() {
            let ppc = if r.calls == 0 {
                0.0
            } else {
                r.packets as f64 / r.calls as f64
            };
            let cpp = r.cycles_per_packet();
            let (p50, p99) = if r.hist.is_empty() {
                (0, 0)
            } else {
                (
                    r.hist.value_at_quantile(0.5),
                    r.hist.value_at_quantile(0.99),
                )
            };
            let share = if total == 0 {
                0.0
            } else {
                100.0 * r.cycles as f64 / total as f64
            };
            let name = if r.is_plugin {
                format!("  {}", r.name)
            } else {
                r.name.clone()
            };
            let _ = write!(
                s,
                "{:<24} {:>12} {:>14} {:>10} {:>9.1} {:>11.1} {:>9} {:>9} {:>7.2}",
                name, r.calls, r.packets, r.flows, ppc, cpp, p50, p99, share
            );
            if let Some(hz) = tsc_hz {
                let _ = write!(s, " {:>9.1}", cpp * 1e9 / hz);
            }
            let state = if r.is_plugin {
                r.state_bytes.to_string()
            } else {
                "-".to_string()
            };
            let errs = if r.quarantined > 0 {
                format!("{} (q{})", r.errors, r.quarantined)
            } else {
                r.errors.to_string()
            };
            let _ = writeln!(s, " {:>11} {:>9}", state, errs);
        }
        let _ = write!(s, "total cycles {total}");
        if let Some(hz) = tsc_hz {
            let _ = write!(
                s,
                " ({:.3} s at {:.3} GHz TSC)",
                total as f64 / hz,
                hz / 1e9
            );
        }
        s.push('\n');
        if let (Some(r), Some(hz)) = (&self.running, tsc_hz) {
            s.push_str(&r.format(hz));
            s.push('\n');
        }
        if let Some(b) = &self.by_service {
            s.push_str(&b.format(tsc_hz));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_count_calls_packets_and_chain() {
        let mut c = CostTable::new(&[("p".into(), 24)], true);
        let t0 = c.start();
        let t1 = c.lap(Stage::Parse.row(), 32, t0);
        let t2 = c.lap(RowId::plugin(0), 30, t1);
        assert!(t1 >= t0 && t2 >= t1);
        let parse = c.row(Stage::Parse.row());
        assert_eq!((parse.calls, parse.packets), (1, 32));
        assert_eq!(parse.cycles, t1 - t0);
        let p = c.row(RowId::plugin(0));
        assert_eq!((p.calls, p.packets, p.cycles), (1, 30, t2 - t1));
        assert_eq!(p.hist.len(), 1);
    }

    #[test]
    fn a_stage_that_calls_plugins_does_not_count_their_cycles() {
        let mut c = CostTable::new(&[("p".into(), 8)], true);
        let t0 = c.start();
        let at = c.plugin_cycles();
        // A plugin call of 1000 cycles inside the stage.
        c.account(RowId::plugin(0), 0, 1000);
        c.account(Stage::Parse.row(), 0, 5);
        assert_eq!(c.plugin_cycles() - at, 1000, "only plugin rows count");
        let t1 = c.lap_flows_excluding(Stage::Expiry.row(), 2, t0, at);
        let e = c.row(Stage::Expiry.row());
        assert_eq!(e.cycles, (t1 - t0).saturating_sub(1000));
        assert_eq!(e.flows, 2);
        let t2 = c.lap_excluding(Stage::FlowTable.row(), 4, t1, c.plugin_cycles());
        assert_eq!(c.row(Stage::FlowTable.row()).cycles, t2 - t1);
    }

    #[test]
    fn disabled_table_counts_nothing() {
        let mut c = CostTable::new(&[("p".into(), 8)], false);
        let t = c.start();
        assert_eq!(t, 0);
        c.lap(RowId::plugin(0), 10, t);
        c.account(Stage::Rx.row(), 10, 100);
        assert!(c.rows().iter().all(|r| r.calls == 0 && r.cycles == 0));
        assert!(c.format(None).contains("disabled"));
    }

    #[test]
    fn merge_sums_rows_and_histograms() {
        let mut a = CostTable::new(&[("p".into(), 8)], true);
        let mut b = a.clone();
        a.account(RowId::plugin(0), 10, 1000);
        b.account(RowId::plugin(0), 5, 1000);
        b.account(RowId::plugin(0), 5, 500);
        let m = CostTable::merge(&[&a, &b]);
        let r = m.row(RowId::plugin(0));
        assert_eq!((r.calls, r.packets, r.cycles), (3, 20, 2500));
        assert_eq!(r.hist.len(), 3);
        // 100, 200 and 100 cycles/packet: the median is 100 (its bucket [96, 104)'s midpoint).
        assert_eq!(r.hist.value_at_quantile(0.5), 100);
    }

    #[test]
    fn report_lists_plugins_between_rates_and_expiry() {
        let mut c = CostTable::new(&[("flowstats".into(), 200)], true);
        c.account(Stage::Rx.row(), 100, 1000);
        c.account(RowId::plugin(0), 100, 3000);
        let s = c.format(Some(1e9));
        let pos = |n: &str| s.find(n).unwrap();
        assert!(pos("rates") < pos("flowstats") && pos("flowstats") < pos("expiry"));
        let line = s.lines().find(|l| l.contains("flowstats")).unwrap();
        // 3000 of 4000 cycles: 75 %, 30 cycles/packet = 30 ns at 1 GHz.
        assert!(line.contains("75.00"), "{line}");
        assert!(line.contains("30.0"), "{line}");
    }
}
