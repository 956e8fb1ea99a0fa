//! Prometheus metrics: what the appliance exposes over HTTP, and how it gets there without
//! touching the data path.
//!
//! What it owns: the per-worker publication slot ([`WorkerMetrics`]), the collector that turns
//! every source into the exposition on each scrape ([`Sources`]), and a tiny HTTP server on its
//! own thread ([`MetricsServer`]). Encoding is the `prometheus-client` crate's OpenMetrics text
//! format (<https://prometheus.io/docs/specs/om/open_metrics_spec/>), which Prometheus scrapes
//! natively; names follow Prometheus' conventions
//! (<https://prometheus.io/docs/practices/naming/>): a `weir_` prefix, base units (seconds,
//! bytes), `_total` on counters, and `port`, `queue`, `worker`, `stage`, `plugin` labels.
//!
//! The data path does no metric work per packet: a worker keeps its plain counters
//! ([`crate::worker::WorkerStats`]) and, once per burst, stores them with `Relaxed` into its
//! [`WorkerMetrics`] (single writer, a few dozen plain stores). Its cost table is copied every
//! [`COST_PUBLISH_BURSTS`] bursts into a mutex slot taken with `try_lock` only, so a scrape that
//! holds the slot makes the worker skip that copy instead of waiting. Port, mempool and scoring
//! figures are read by the scraping thread itself (`rte_eth_stats_get` through
//! [`weir_dpdk::StatsHandle`], `rte_mempool_in_use_count`, the scorers' atomics).
//!
//! No client can hold the endpoint: each connection is served on a thread of its own (at most
//! [`MAX_CONNECTIONS`] at once; more are closed at once), under a deadline for the whole
//! request head ([`READ_DEADLINE`]) and one for the whole response ([`WRITE_DEADLINE`]),
//! however slowly the bytes trickle. Stopping the server joins only the accept loop, which
//! never blocks; a connection thread still waiting on a client ends by its deadline alone.

use crate::cost::CostTable;
use crate::parse::SkipReason;
use crate::scoring::ScoringStats;
use crate::worker::WorkerStats;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once; one more is closed without an answer.
pub const MAX_CONNECTIONS: usize = 8;
/// The whole request head must arrive within this.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
/// The whole response must be taken within this.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// A worker copies its cost table for the metrics every this many bursts.
pub const COST_PUBLISH_BURSTS: u64 = 64;

/// Upper bounds (seconds) of the scoring latency histogram's buckets.
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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

/// What one worker publishes: its counters (single writer, `Relaxed` stores once per burst)
/// and a periodic copy of its cost table.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub accepted: AtomicU64,
    pub flows_created: AtomicU64,
    pub expired_idle: AtomicU64,
    pub expired_active: AtomicU64,
    pub teardown: AtomicU64,
    pub evicted: AtomicU64,
    pub flushed: AtomicU64,
    pub table_full: AtomicU64,
    /// Packets the capture filter rejected.
    pub filtered: AtomicU64,
    /// Plugin text values (ABI 1.4) refused: too long, not UTF-8.
    pub text_too_long: AtomicU64,
    pub text_invalid_utf8: AtomicU64,
    /// Frames not received whole (stored by `weir run`'s receive loop, see `rx_frames.rs`).
    pub cut_frames: AtomicU64,
    pub records: AtomicU64,
    pub active_flows: AtomicU64,
    pub skipped: [AtomicU64; SkipReason::COUNT],
    cost: Mutex<Vec<CostSnap>>,
}

impl WorkerMetrics {
    /// Store the worker's counters (called by the worker, once per burst).
    #[inline]
    pub fn publish(&self, s: &WorkerStats, active_flows: u32) {
        let r = Ordering::Relaxed;
        self.packets.store(s.packets, r);
        self.bytes.store(s.bytes, r);
        self.accepted.store(s.accepted, r);
        self.flows_created.store(s.flows_created, r);
        self.expired_idle.store(s.expired_idle, r);
        self.expired_active.store(s.expired_active, r);
        self.teardown.store(s.teardown, r);
        self.evicted.store(s.evicted, r);
        self.flushed.store(s.flushed, r);
        self.table_full.store(s.table_full, r);
        self.filtered.store(s.filtered, r);
        self.text_too_long.store(s.text_refused.too_long, r);
        self.text_invalid_utf8.store(s.text_refused.invalid_utf8, r);
        self.records.store(s.records, r);
        self.active_flows.store(active_flows as u64, r);
        for (a, v) in self.skipped.iter().zip(s.skipped.counts.iter()) {
            a.store(*v, r);
        }
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

    fn cost_rows(&self) -> Vec<CostSnap> {
        self.cost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Alerts written, by kind (the `kind` field of each alert line), counted by the alerts
/// writer thread.
#[derive(Debug, Default)]
pub struct AlertCounts {
    by_kind: Mutex<BTreeMap<String, u64>>,
}

impl AlertCounts {
    /// Count one alert JSON line by its `kind` (`unknown` when it has none).
    pub fn count_line(&self, line: &str) {
        let kind = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        *self
            .by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A heavy-hitter table's size, for the capacity gauge.
#[derive(Clone, Debug)]
pub struct HeavyHitterInfo {
    pub key: String,
    pub worker: u16,
    pub capacity_keys: u64,
    /// Keys held at the table's last report (stored by the worker once per report).
    pub occupied_keys: Option<Arc<AtomicU64>>,
}

/// Everything the metrics endpoint reads. Fill it at start; the collector reads it on each
/// scrape.
#[derive(Default)]
pub struct Sources {
    pub ports: Vec<weir_dpdk::StatsHandle>,
    /// Configured RX queues per port (for the per-queue counters).
    pub rx_queues: u16,
    pub mempools: Vec<weir_dpdk::Mempool>,
    pub workers: Vec<Arc<WorkerMetrics>>,
    pub scoring: Option<Arc<ScoringStats>>,
    pub alerts: Option<Arc<AlertCounts>>,
    pub heavy_hitters: Vec<HeavyHitterInfo>,
    /// Records written by the output stage.
    pub records_written: Option<Arc<AtomicU64>>,
    /// Model reloads: (succeeded, failed).
    pub reloads: Option<Arc<ReloadCounts>>,
    /// TSC frequency, for cycles-per-second conversions in dashboards.
    pub tsc_hz: u64,
}

/// Model reloads on SIGHUP.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("ports", &self.ports.len())
            .field("workers", &self.workers.len())
            .finish()
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family being written: its descriptor, then one sample per label set.
fn family<'a>(
    enc: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    unit: Option<&'a Unit>,
    ty: MetricType,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    enc.encode_descriptor(name, help, unit, ty)
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut f = family(enc, name, help, unit, MetricType::Counter)?;
    if let [(l, v)] = samples {
        if l.is_empty() {
            return ConstCounter::new(*v).encode(f);
        }
    }
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(f.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges<V: prometheus_client::encoding::EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels, V)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut f = family(enc, name, help, unit, MetricType::Gauge)?;
    if let [(l, v)] = samples {
        if l.is_empty() {
            return ConstGauge::new(*v).encode(f);
        }
    }
    for (labels, v) in samples {
        ConstGauge::new(*v).encode(f.encode_family(labels)?)?;
    }
    Ok(())
}

/// Whether a DPDK extended statistic is a counter (only ever grows): by DPDK's naming
/// convention (`rx_good_packets`, `rx_q0_bytes`, `rx_missed_errors`, `mac_remote_errors`,
/// `rx_size_64_packets`, `rx_xoff_packets`, ...) counters end in a unit of what is counted.
/// Everything else (a driver's jitter, temperature or level readings) stays a gauge.
pub fn xstat_is_counter(name: &str) -> bool {
    const COUNTED: &[&str] = &[
        "packets",
        "pkts",
        "bytes",
        "octets",
        "errors",
        "error",
        "errs",
        "drops",
        "dropped",
        "discards",
        "discard",
        "missed",
        "nombuf",
        "fails",
        "failures",
        "failed",
        "frames",
        "count",
        "overflow",
        "underflow",
        "collisions",
        "xon",
        "xoff",
        "pause",
        "timeouts",
    ];
    let last = name.rsplit(['_', '.']).next().unwrap_or(name);
    COUNTED.contains(&last.to_ascii_lowercase().as_str())
}

/// The labels of `weir_build_info`: weir's version, the DPDK version it was built against, and
/// the plugin ABI it speaks.
pub fn build_info() -> Labels {
    vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("dpdk_version", weir_dpdk::DPDK_VERSION.to_string()),
        (
            "abi",
            format!(
                "{}.{}",
                weir_plugin_api::WEIR_ABI_MAJOR,
                weir_plugin_api::WEIR_ABI_MINOR
            ),
        ),
    ]
}

fn w(i: usize) -> Labels {
    vec![("worker", i.to_string())]
}

impl prometheus_client::collector::Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut enc;
        gauges(
            e,
            "weir_build_info",
            "Always 1: weir's version, the DPDK version it was built against, the plugin ABI.",
            None,
            &[(build_info(), 1i64)],
        )?;
        // Ports.
        let mut rx_p = Vec::new();
        let mut rx_b = Vec::new();
        let mut missed = Vec::new();
        let mut errors = Vec::new();
        let mut nombuf = Vec::new();
        let mut per_q = Vec::new();
        let mut xstats = Vec::new();
        let mut xcounters = Vec::new();
        for p in &self.ports {
            let port = p.name().to_string();
            let l = vec![("port", port.clone())];
            if let Ok(s) = p.stats() {
                rx_p.push((l.clone(), s.ipackets));
                rx_b.push((l.clone(), s.ibytes));
                missed.push((l.clone(), s.imissed));
                errors.push((l.clone(), s.ierrors));
                nombuf.push((l.clone(), s.rx_nombuf));
                for (q, v) in s
                    .q_ipackets
                    .iter()
                    .take(self.rx_queues as usize)
                    .enumerate()
                {
                    per_q.push((vec![("port", port.clone()), ("queue", q.to_string())], *v));
                }
            }
            if let Ok(xs) = p.xstats() {
                for (name, v) in xs {
                    let dst = if xstat_is_counter(&name) {
                        &mut xcounters
                    } else {
                        &mut xstats
                    };
                    dst.push((vec![("port", port.clone()), ("stat", name)], v));
                }
            }
        }
        counters(
            e,
            "weir_port_rx_packets",
            "Packets received by the port (rte_eth_stats.ipackets).",
            None,
            &rx_p,
        )?;
        counters(
            e,
            "weir_port_rx",
            "Bytes received by the port (rte_eth_stats.ibytes).",
            Some(&Unit::Bytes),
            &rx_b,
        )?;
        counters(e, "weir_port_rx_missed_packets", "Packets the device dropped for lack of a free RX descriptor (imissed): the workers were too slow.", None, &missed)?;
        counters(
            e,
            "weir_port_rx_errors",
            "Erroneous packets received (ierrors).",
            None,
            &errors,
        )?;
        counters(
            e,
            "weir_port_rx_nombuf",
            "RX mbuf allocation failures (rx_nombuf).",
            None,
            &nombuf,
        )?;
        counters(
            e,
            "weir_port_queue_rx_packets",
            "Packets received per RX queue (zero where the PMD does not count per queue).",
            None,
            &per_q,
        )?;
        counters(
            e,
            "weir_port_xstat",
            "The port's extended statistics (rte_eth_xstats) that count (packets, bytes, \
             errors, drops, ...), by DPDK name.",
            None,
            &xcounters,
        )?;
        gauges(
            e,
            "weir_port_xstat_value",
            "The port's other extended statistics (rte_eth_xstats), by DPDK name.",
            None,
            &xstats,
        )?;

        // Mempools.
        let in_use: Vec<(Labels, u64)> = self
            .mempools
            .iter()
            .map(|m| (vec![("pool", m.name().to_string())], m.in_use() as u64))
            .collect();
        let avail: Vec<(Labels, u64)> = self
            .mempools
            .iter()
            .map(|m| (vec![("pool", m.name().to_string())], m.available() as u64))
            .collect();
        gauges(
            e,
            "weir_mempool_in_use_mbufs",
            "Mbufs handed out from the pool.",
            None,
            &in_use,
        )?;
        gauges(
            e,
            "weir_mempool_available_mbufs",
            "Mbufs free in the pool (lcore caches included).",
            None,
            &avail,
        )?;

        // Workers.
        let r = Ordering::Relaxed;
        let ws = &self.workers;
        let col = |f: &dyn Fn(&WorkerMetrics) -> u64| -> Vec<(Labels, u64)> {
            ws.iter().enumerate().map(|(i, m)| (w(i), f(m))).collect()
        };
        counters(
            e,
            "weir_worker_packets",
            "Packets a worker received.",
            None,
            &col(&|m| m.packets.load(r)),
        )?;
        counters(
            e,
            "weir_worker_rx",
            "Wire bytes a worker received.",
            Some(&Unit::Bytes),
            &col(&|m| m.bytes.load(r)),
        )?;
        counters(
            e,
            "weir_worker_flow_packets",
            "Packets counted into a flow.",
            None,
            &col(&|m| m.accepted.load(r)),
        )?;
        counters(
            e,
            "weir_worker_flows_created",
            "Flows created.",
            None,
            &col(&|m| m.flows_created.load(r)),
        )?;
        let mut ended = Vec::new();
        for (i, m) in ws.iter().enumerate() {
            for (reason, v) in [
                ("idle", m.expired_idle.load(r)),
                ("active", m.expired_active.load(r)),
                ("teardown", m.teardown.load(r)),
                ("evicted", m.evicted.load(r)),
                ("flush", m.flushed.load(r)),
            ] {
                ended.push((
                    vec![("worker", i.to_string()), ("reason", reason.to_string())],
                    v,
                ));
            }
        }
        counters(e, "weir_worker_flows_ended", "Flows ended, by reason (idle or active timeout, TCP teardown, evicted from a full table, flushed at shutdown).", None, &ended)?;
        counters(
            e,
            "weir_worker_flows_evicted",
            "Flows evicted from a full table.",
            None,
            &col(&|m| m.evicted.load(r)),
        )?;
        counters(
            e,
            "weir_worker_table_full_packets",
            "Packets of new flows skipped because the table was full and eviction is off.",
            None,
            &col(&|m| m.table_full.load(r)),
        )?;
        let mut refused = Vec::new();
        for (i, m) in ws.iter().enumerate() {
            for (reason, v) in [
                ("too_long", m.text_too_long.load(r)),
                ("invalid_utf8", m.text_invalid_utf8.load(r)),
            ] {
                refused.push((
                    vec![("worker", i.to_string()), ("reason", reason.to_string())],
                    v,
                ));
            }
        }
        counters(
            e,
            "weir_worker_plugin_text_refused",
            "Plugin text values (ABI 1.4) refused and written as missing: longer than 256 bytes \
             (too_long) or not UTF-8 (invalid_utf8).",
            None,
            &refused,
        )?;
        counters(
            e,
            "weir_worker_filtered_packets",
            "Packets the capture filter ([capture] filter, ports[].filter) rejected: counted \
             in weir_worker_packets, in no flow.",
            None,
            &col(&|m| m.filtered.load(r)),
        )?;
        counters(
            e,
            "weir_worker_rx_cut_frames",
            "Frames not received whole: as long as the port's receive limit (raise ports[].mtu) \
             or a chain longer than the worker's buffer.",
            None,
            &col(&|m| m.cut_frames.load(r)),
        )?;
        counters(
            e,
            "weir_worker_records",
            "Flow records a worker handed to the output stage.",
            None,
            &col(&|m| m.records.load(r)),
        )?;
        gauges(
            e,
            "weir_worker_active_flows",
            "Flows open in a worker's table.",
            None,
            &col(&|m| m.active_flows.load(r)),
        )?;
        let mut skipped = Vec::new();
        for (i, m) in ws.iter().enumerate() {
            for reason in SkipReason::ALL {
                skipped.push((
                    vec![
                        ("worker", i.to_string()),
                        ("reason", reason.name().to_string()),
                    ],
                    m.skipped[reason.index()].load(r),
                ));
            }
        }
        counters(
            e,
            "weir_worker_parse_skipped_packets",
            "Packets skipped by the parser, by reason.",
            None,
            &skipped,
        )?;

        // Cost accounting: stages and plugins as two sets of families.
        #[derive(Default)]
        struct Rows {
            cycles: Vec<(Labels, u64)>,
            packets: Vec<(Labels, u64)>,
            calls: Vec<(Labels, u64)>,
            per_packet: Vec<(Labels, f64)>,
            flows: Vec<(Labels, u64)>,
            errors: Vec<(Labels, u64)>,
            quarantined: Vec<(Labels, u64)>,
        }
        let (mut stages, mut plugins) = (Rows::default(), Rows::default());
        for (i, m) in ws.iter().enumerate() {
            for row in m.cost_rows() {
                let (rows, key) = if row.is_plugin {
                    (&mut plugins, "plugin")
                } else {
                    (&mut stages, "stage")
                };
                let l = vec![("worker", i.to_string()), (key, row.name.clone())];
                let per = if row.packets == 0 {
                    0.0
                } else {
                    row.cycles as f64 / row.packets as f64
                };
                rows.cycles.push((l.clone(), row.cycles));
                rows.packets.push((l.clone(), row.packets));
                rows.calls.push((l.clone(), row.calls));
                rows.per_packet.push((l.clone(), per));
                rows.flows.push((l.clone(), row.flows));
                rows.errors.push((l.clone(), row.errors));
                rows.quarantined.push((l, row.quarantined));
            }
        }
        counters(
            e,
            "weir_stage_cycles",
            "TSC cycles spent in a built-in stage.",
            None,
            &stages.cycles,
        )?;
        counters(
            e,
            "weir_stage_packets",
            "Packets through a built-in stage.",
            None,
            &stages.packets,
        )?;
        counters(
            e,
            "weir_stage_calls",
            "Accounted calls of a built-in stage (one per burst).",
            None,
            &stages.calls,
        )?;
        gauges(
            e,
            "weir_stage_cycles_per_packet",
            "Mean TSC cycles per packet of a stage since start.",
            None,
            &stages.per_packet,
        )?;
        counters(
            e,
            "weir_plugin_cycles",
            "TSC cycles spent in a plugin (update_burst, flow_init, flow_emit).",
            None,
            &plugins.cycles,
        )?;
        counters(
            e,
            "weir_plugin_packets",
            "Packets handed to a plugin.",
            None,
            &plugins.packets,
        )?;
        counters(
            e,
            "weir_plugin_calls",
            "update_burst calls of a plugin.",
            None,
            &plugins.calls,
        )?;
        counters(
            e,
            "weir_plugin_flows",
            "Flows a plugin started (flow_init calls).",
            None,
            &plugins.flows,
        )?;
        counters(
            e,
            "weir_plugin_errors",
            "Errors a plugin returned.",
            None,
            &plugins.errors,
        )?;
        gauges(
            e,
            "weir_plugin_quarantined",
            "1 when the plugin is quarantined on this worker.",
            None,
            &plugins.quarantined,
        )?;
        gauges(
            e,
            "weir_plugin_cycles_per_packet",
            "Mean TSC cycles per packet of a plugin since start.",
            None,
            &plugins.per_packet,
        )?;
        gauges(
            e,
            "weir_tsc_hz",
            "TSC frequency, to turn cycles into seconds.",
            None,
            &[(vec![], self.tsc_hz)],
        )?;

        // Heavy hitters.
        let hh_cap: Vec<(Labels, u64)> = self
            .heavy_hitters
            .iter()
            .map(|h| {
                (
                    vec![("worker", h.worker.to_string()), ("key", h.key.clone())],
                    h.capacity_keys,
                )
            })
            .collect();
        gauges(
            e,
            "weir_heavy_hitter_capacity_keys",
            "Keys a worker's heavy-hitter table can hold.",
            None,
            &hh_cap,
        )?;
        let hh_occ: Vec<(Labels, u64)> = self
            .heavy_hitters
            .iter()
            .filter_map(|h| {
                h.occupied_keys.as_ref().map(|o| {
                    (
                        vec![("worker", h.worker.to_string()), ("key", h.key.clone())],
                        o.load(Ordering::Relaxed),
                    )
                })
            })
            .collect();
        gauges(
            e,
            "weir_heavy_hitter_occupied_keys",
            "Keys a worker's heavy-hitter table held at its last report.",
            None,
            &hh_occ,
        )?;

        // Output stage.
        if let Some(n) = &self.records_written {
            counters(
                e,
                "weir_records_written",
                "Flow records the output stage wrote.",
                None,
                &[(vec![], n.load(r))],
            )?;
        }
        if let Some(a) = &self.alerts {
            let by: Vec<(Labels, u64)> = a
                .snapshot()
                .into_iter()
                .map(|(k, v)| (vec![("kind", k)], v))
                .collect();
            counters(
                e,
                "weir_alerts",
                "Alerts written, by kind (absolute, fraction, top_k, cleared, model).",
                None,
                &by,
            )?;
        }
        if let Some(rc) = &self.reloads {
            counters(
                e,
                "weir_model_reloads",
                "Model reloads on SIGHUP, by result.",
                None,
                &[
                    (vec![("result", "ok".into())], rc.ok.load(r)),
                    (vec![("result", "failed".into())], rc.failed.load(r)),
                ],
            )?;
        }
        if let Some(s) = &self.scoring {
            counters(
                e,
                "weir_scoring_batches",
                "Model runs (batches).",
                None,
                &[(vec![], s.batches.load(r))],
            )?;
            counters(
                e,
                "weir_scoring_rows",
                "Records scored.",
                None,
                &[(vec![], s.rows.load(r))],
            )?;
            counters(
                e,
                "weir_scoring_overload_skips",
                "Records sent on unscored because the scoring queue was full.",
                None,
                &[(vec![], s.overload_skips.load(r))],
            )?;
            counters(
                e,
                "weir_scoring_errors",
                "Failed model runs.",
                None,
                &[(vec![], s.errors.load(r))],
            )?;
            gauges(
                e,
                "weir_scoring_queue_depth",
                "Records waiting for a scorer.",
                None,
                &[(vec![], s.queue_depth.load(r))],
            )?;
            let h = s.latency_histogram();
            let count = h.len();
            let sum = h.mean() * count as f64 / 1e6;
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S
                .iter()
                .map(|&le| (le, h.count_between(0, (le * 1e6) as u64)))
                .chain(std::iter::once((f64::INFINITY, count)))
                .collect();
            let hist = ScoringLatency {
                sum,
                count,
                buckets,
            };
            let f = family(
                e,
                "weir_scoring_latency",
                "Time from a flow's end to its score.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            hist.encode(f)?;
        }
        Ok(())
    }
}

/// A histogram already counted elsewhere (hdrhistogram), written in Prometheus' buckets.
/// `encode_histogram` wants per-bucket counts, not cumulative ones.
struct ScoringLatency {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ScoringLatency {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let mut prev = 0;
        let per: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .map(|&(le, c)| {
                let d = c.saturating_sub(prev);
                prev = c.max(prev);
                (le, d)
            })
            .collect();
        enc.encode_histogram::<NoLabelSet>(self.sum, self.count, &per, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Encode every source into the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# encoding failed\n# EOF");
    }
    out
}

/// The HTTP server: answers `GET /metrics` (and `/`), each connection on its own thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `listen` and serve `sources` from a new thread.
    pub fn start(listen: &str, sources: Sources) -> anyhow::Result<MetricsServer> {
        use anyhow::Context;
        let listener = TcpListener::bind(listen)
            .with_context(|| format!("metrics.listen: cannot bind {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(sources));
        let registry = Arc::new(registry);
        let busy = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                                busy.fetch_sub(1, Ordering::AcqRel);
                                tracing::debug!("metrics: too many connections, one closed");
                                continue;
                            }
                            let (registry, busy2) = (registry.clone(), busy.clone());
                            let spawned = std::thread::Builder::new()
                                .name("weir-metrics-conn".into())
                                .spawn(move || {
                                    serve(conn, &registry);
                                    busy2.fetch_sub(1, Ordering::AcqRel);
                                });
                            if spawned.is_err() {
                                busy.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "metrics accept");
                            std::thread::sleep(Duration::from_millis(20))
                        }
                    }
                }
            })?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    /// Stops accepting and joins the accept loop (it polls, so this takes at most ~20 ms);
    /// connection threads are not waited for (each ends by its deadlines).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What is left of a deadline, or None when it passed.
fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Answer one HTTP/1.x request (RFC 9112) and close the connection. Each read and write waits
/// at most what is left of its deadline, so a client sending or reading one byte at a time
/// still cannot keep the thread past [`READ_DEADLINE`] + [`WRITE_DEADLINE`].
fn serve(mut conn: TcpStream, registry: &Registry) {
    let _ = conn.set_nonblocking(false);
    let read_by = Instant::now() + READ_DEADLINE;
    let mut buf = [0u8; 2048];
    let mut got = 0;
    // Read until the end of the request head, the client's end of sending, or a full buffer
    // (only the first line matters). A head still incomplete at the deadline is not answered.
    loop {
        if got == buf.len() {
            break;
        }
        let Some(wait) = left(read_by) else { return };
        let _ = conn.set_read_timeout(Some(wait));
        match conn.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if buf[..got].windows(4).any(|x| x == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    if got == 0 {
        return;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") | ("GET", "/") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(registry),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let write_by = Instant::now() + WRITE_DEADLINE;
    let mut sent = 0;
    while sent < reply.len() {
        let Some(wait) = left(write_by) else { return };
        let _ = conn.set_write_timeout(Some(wait));
        match conn.write(&reply.as_bytes()[sent..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => sent += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn serves_metrics_and_refuses_the_rest() {
        let w = Arc::new(WorkerMetrics::default());
        let stats = WorkerStats {
            packets: 7,
            flows_created: 2,
            ..WorkerStats::default()
        };
        w.publish(&stats, 2);
        let alerts = Arc::new(AlertCounts::default());
        alerts.count_line(r#"{"kind":"top_k","key":"10.0.0.1"}"#);
        alerts.count_line(r#"{"kind":"top_k"}"#);
        alerts.count_line("not json");
        let srv = MetricsServer::start(
            "127.0.0.1:0",
            Sources {
                workers: vec![w.clone()],
                alerts: Some(alerts),
                ..Sources::default()
            },
        )
        .unwrap();
        let a = srv.local_addr();
        let ok = get(a, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"));
        assert!(
            ok.contains("weir_worker_packets_total{worker=\"0\"} 7\n"),
            "{ok}"
        );
        assert!(
            ok.contains("weir_worker_active_flows{worker=\"0\"} 2\n"),
            "{ok}"
        );
        assert!(ok.contains("weir_alerts_total{kind=\"top_k\"} 2\n"), "{ok}");
        assert!(
            ok.contains("weir_alerts_total{kind=\"unknown\"} 1\n"),
            "{ok}"
        );
        assert!(ok.contains("# TYPE weir_worker_packets counter"), "{ok}");
        assert!(ok.trim_end().ends_with("# EOF"));
        // The body is exactly Content-Length bytes.
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        // Counters published later show up in the next scrape.
        w.publish(
            &WorkerStats {
                packets: 9,
                ..stats
            },
            0,
        );
        assert!(get(a, "GET /metrics HTTP/1.0\r\n\r\n")
            .contains("weir_worker_packets_total{worker=\"0\"} 9\n"));
        assert!(get(a, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(a, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        drop(srv);
        assert!(TcpStream::connect(a).is_err(), "listener closed on drop");
    }

    #[test]
    fn cost_copy_is_skipped_while_a_scrape_holds_the_slot() {
        let mut cost = CostTable::new(&[("p".to_string(), 8)], true);
        let row = crate::cost::RowId::plugin(0);
        cost.account(row, 10, 1000);
        let w = WorkerMetrics::default();
        w.offer_cost(&cost);
        let rows = w.cost_rows();
        let p = rows.iter().find(|r| r.name == "p").unwrap();
        assert!(p.is_plugin);
        assert_eq!((p.packets, p.cycles), (10, 1000));
        cost.account(row, 5, 500);
        {
            let _held = w.cost.lock().unwrap();
            // The worker must not wait: it skips this copy.
            w.offer_cost(&cost);
        }
        assert_eq!(
            w.cost_rows()
                .iter()
                .find(|r| r.name == "p")
                .unwrap()
                .packets,
            10
        );
        w.offer_cost(&cost);
        assert_eq!(
            w.cost_rows()
                .iter()
                .find(|r| r.name == "p")
                .unwrap()
                .packets,
            15
        );
    }

    #[test]
    fn a_silent_or_slow_client_cannot_hold_the_endpoint() {
        let srv = MetricsServer::start("127.0.0.1:0", Sources::default()).unwrap();
        let a = srv.local_addr();
        // One client connects and sends nothing; another sends a byte at a time, slower than
        // the read deadline allows for the whole head.
        let silent = TcpStream::connect(a).unwrap();
        let mut slow = TcpStream::connect(a).unwrap();
        let trickle = std::thread::spawn(move || {
            let t0 = Instant::now();
            for b in b"GET /metrics HTTP/1.1\r\n" {
                if slow.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            // The server gave up on it: it answers nothing and closes.
            let mut s = String::new();
            let _ = slow.read_to_string(&mut s);
            (s, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        // Meanwhile scrapes are answered at once.
        for _ in 0..3 {
            let t0 = Instant::now();
            let ok = get(a, "GET /metrics HTTP/1.1\r\n\r\n");
            assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        }
        let (s, took) = trickle.join().unwrap();
        assert!(
            s.is_empty(),
            "a request past its deadline was answered: {s}"
        );
        assert!(took < READ_DEADLINE + Duration::from_secs(8), "{took:?}");
        // More clients than the cap: the extra ones are closed, the server goes on.
        let held: Vec<TcpStream> = (0..MAX_CONNECTIONS + 2)
            .map(|_| TcpStream::connect(a).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // Stopping does not wait for the silent clients.
        let t0 = Instant::now();
        drop(srv);
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        drop((silent, held));
    }

    #[test]
    fn listen_errors_name_the_key() {
        let e = MetricsServer::start("256.0.0.1:1", Sources::default())
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("metrics.listen"), "{e:#}");
    }

    #[test]
    fn build_info_names_versions_and_xstats_are_typed() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sources::default()));
        let text = render(&registry);
        // The DPDK version against pkg-config's, the ABI against the plugin API's constants.
        let dpdk = std::process::Command::new("pkg-config")
            .args(["--modversion", "libdpdk"])
            .output()
            .expect("pkg-config");
        let dpdk = String::from_utf8_lossy(&dpdk.stdout).trim().to_string();
        let line = format!(
            "weir_build_info{{version=\"{}\",dpdk_version=\"{dpdk}\",abi=\"{}.{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            weir_plugin_api::WEIR_ABI_MAJOR,
            weir_plugin_api::WEIR_ABI_MINOR
        );
        assert!(text.contains(&line), "no {line} in:\n{text}");
        assert!(text.contains("# TYPE weir_build_info gauge"), "{text}");
        // The generic ethdev xstats every PMD has are counters; readings are not.
        for c in [
            "rx_good_packets",
            "rx_good_bytes",
            "rx_missed_errors",
            "rx_mbuf_allocation_errors",
            "rx_q0_packets",
            "rx_q0_errors",
            "rx_size_1519_to_max_packets",
            "mac_remote_errors",
            "rx_xoff_packets",
        ] {
            assert!(xstat_is_counter(c), "{c}");
        }
        for g in ["tx_pp_jitter", "tx_pp_wander", "temperature", "rx_q0_level"] {
            assert!(!xstat_is_counter(g), "{g}");
        }
    }
}
