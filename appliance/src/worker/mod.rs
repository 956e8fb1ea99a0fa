//! One worker: the per-core data path, run a burst at a time as stages over the whole burst
//! (parse -> flow table -> rates -> plugins -> flow ends -> records).
//!
//! - this file: the worker, its settings and counters, and the loop that runs the stages and
//!   reads the clock between them;
//! - `filter_stage`: the capture filter, when one is configured, before parsing;
//! - `flow_table`: parse, and counting packets into flows (lookup, creation);
//! - `dispatch`: rates and the plugins over the packets counted;
//! - `ending`: flows ending (teardown, expiry, end of input), interval records, and handing
//!   records to the output side.
//!
//! A worker owns everything it touches per packet (flow table, plugin instances, counters), so
//! workers share nothing and take no locks. It is driven a burst at a time by whatever receives
//! packets (a DPDK RX queue in `weir run` and `weir extract`), and hands finished flows, a burst's
//! worth at a time, to the output stage over a bounded channel.
//!
//! Flow semantics follow NFStream so that records can be checked against it: the packet time is
//! truncated to milliseconds for the record's times; when a packet arrives for a flow with
//! `now - last_seen >= idle` or `now - first_seen >= active`, that flow ends first and the
//! packet starts a new one; what is left at the end is flushed.

mod dispatch;
mod ending;
mod filter_stage;
mod flow_table;

use crate::config::{Config, Eviction};
use crate::cost::{CostTable, Stage};
use crate::flow::interval::IntervalSchedules;
use crate::flow::record::{DirCounters, Expiration, FlowRecord};
use crate::flow::table::{FlowEntry, FlowTable, TableConfig};
use crate::plugin_host::WorkerPlugins;
use crate::rates::{Alert, DecayTables, FlowRates, HeavyHitters, PacketKey};
use crate::services::Services;
pub use crate::stats::WorkerStats;
use crate::stats::{PublishedStats, COST_PUBLISH_BURSTS};
use crossbeam_channel::Sender;
use std::sync::Arc;
use weir_plugin_api::{FlowKeyV1, PacketV1};

/// Records handed to the output stage at a time while flushing the whole table (the channel to
/// it holds [`crate::output::RECORD_BATCHES_IN_FLIGHT`] such batches, so this bounds what can
/// wait there: 8 k records). Each hand-over wakes the output threads (a futex wake, and on a
/// virtual machine often an idle vCPU): 64 records a batch made three wake-ups per 64 flows
/// ended on a trace where most flows end during the run.
const FLUSH_BATCH: usize = 256;

/// While packets flow, records wait in the worker until this many have ended or
/// [`SEND_EVERY_NS`] of packet time passed: one channel send per burst woke the output thread
/// tens of thousands of times a second where flows end often (`tcp_teardown`), and on a small
/// machine its wake-ups took CPU from the worker. Quiet links (`advance_time`), the end of
/// input and shutdown (`flush_all`) send at once.
const SEND_BATCH: usize = FLUSH_BATCH;
const SEND_EVERY_NS: u64 = 50_000_000;

/// A received frame as the worker sees it.
#[derive(Clone, Copy)]
pub struct RawPacket<'a> {
    pub data: &'a [u8],
    /// Length on the wire (what byte counters count).
    pub wire_len: u32,
    /// Packet time, ns since the epoch.
    pub ts_ns: u64,
    /// Which filter applies (`crate::filter::Filters`): 0 for `[capture] filter` (and
    /// `weir extract`), `i + 1` for `ports[i]` in `weir run`.
    pub source: u16,
}

/// Per-flow data the worker keeps beside the counters. The interval part is not here: it is
/// in the side array of [`IntervalSchedules`], which exists only with interval records on.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowExt {
    /// Decayed packet and byte rates and their peaks.
    pub rates: FlowRates,
    /// The flow's service id, decided when it starts (0 = none).
    pub service: u16,
    /// TCP FIN seen per direction (bit 0 src->dst, bit 1 dst->src), for optional teardown.
    /// Next to `service`: both fit in the 8 bytes after `rates`.
    pub fin_seen: u8,
    /// The flow tore down (FIN both ways, or RST) during the current burst and ends once the
    /// burst's packets have been through the plugins (see `Worker::end_torn_down`).
    pub ending: bool,
    /// ICMP type and code of the flow's first packet, for its Community ID (in the padding
    /// after `ending`: the entry keeps its size).
    pub icmp: [u8; 2],
}

// SAFETY: FlowRates, service, fin_seen and icmp are plain integers and `ending` a bool; all-zero
// bits are a valid (empty) value.
unsafe impl bytemuck::Zeroable for FlowExt {}

// Key 48 + hash 8 + two directions' counters 64 + rates 32 + service, fin_seen and ending 8
// (was 240 with the interval part and fin_seen's padding in the entry).
const _: () = assert!(core::mem::size_of::<FlowEntry<FlowExt>>() == 160);

pub struct WorkerSettings {
    pub id: u16,
    pub idle_ms: u64,
    pub active_ms: u64,
    pub tcp_teardown: bool,
    pub eviction: Eviction,
    pub table: TableConfig,
    /// Make the table resident at start (`flows.prefault`).
    pub prefault: bool,
    pub burst: usize,
    /// Number of plugin/rate values per record.
    pub n_values: usize,
    /// Interval length of each service id (index 0: flows of no service), from
    /// `[intervals] every_ms` and `[[services]] every_ms` (0 = no interval records).
    pub interval_every_ms: Vec<u64>,
    /// Seed of the records' Community ID (`[flows] community_id_seed`).
    pub community_id_seed: u16,
}

impl WorkerSettings {
    pub fn from_config(cfg: &Config, id: u16, n_values: usize, slab: (usize, usize)) -> Self {
        WorkerSettings {
            id,
            idle_ms: cfg.idle_timeout_ms(),
            active_ms: cfg.active_timeout_ms(),
            tcp_teardown: cfg.flows.tcp_teardown,
            eviction: cfg.flows.eviction,
            table: TableConfig {
                capacity: cfg.flows.capacity,
                slab_size: slab.0,
                slab_align: slab.1,
                // A wheel that covers the idle timeout with room to spare.
                wheel_slots: ((cfg.idle_timeout_ms() / cfg.flows.wheel_granularity_ms.max(1))
                    as usize
                    + 2)
                .next_power_of_two()
                .min(1 << 20),
                wheel_granularity_ms: cfg.flows.wheel_granularity_ms,
                // A table made resident at start is one the run will fill: the reserved
                // pool's pages cost a tenth of fresh ones to make resident (`flow::mapped`),
                // and a table that is not prefaulted never takes them from a run that needs
                // them.
                reserved_hugepages: cfg.flows.reserved_hugepages
                    && cfg.flows.prefault.unwrap_or(false),
            },
            prefault: cfg.flows.prefault.unwrap_or(false),
            burst: cfg.workers.burst as usize,
            community_id_seed: cfg.flows.community_id_seed,
            n_values,
            interval_every_ms: std::iter::once(cfg.intervals.every_ms)
                .chain(
                    cfg.services
                        .iter()
                        .map(|s| s.every_ms.unwrap_or(cfg.intervals.every_ms)),
                )
                .collect(),
        }
    }
}

pub struct Worker {
    s: WorkerSettings,
    table: FlowTable<FlowExt>,
    plugins: Option<WorkerPlugins>,
    /// Plugin feature columns in each record (the rest of `values` are rate columns).
    n_plugin_values: usize,
    pub cost: CostTable,
    /// Per-burst scratch (allocated once): parsed packets, their keys and hashes.
    parsed: Vec<PacketV1>,
    keys: Vec<FlowKeyV1>,
    hashes: Vec<u64>,
    /// The burst being assembled for the plugins: packet views and their flows' slabs.
    batch_pkts: Vec<PacketV1>,
    batch_slabs: Vec<*mut u8>,
    /// Flow entry and heavy-hitter key of each batched packet (for the rates stage).
    batch_flows: Vec<u32>,
    batch_keys: Vec<PacketKey>,
    /// Flows that tore down during this burst, ended after its plugin dispatch.
    torn_down: Vec<u32>,
    tables: Arc<DecayTables>,
    heavy_hitters: Vec<HeavyHitters>,
    alerts: Sender<String>,
    alert_buf: Vec<Alert>,
    /// Records finished during the current burst.
    out: Vec<FlowRecord>,
    /// How many of `out` have their Community ID.
    stamped: usize,
    sink: Sender<Vec<FlowRecord>>,
    /// Batches the sink thread wrote, sent back (`attach_recycling`): their records' feature
    /// vectors and the batches themselves are reused, so making a record allocates nothing
    /// once the first batches came back.
    recycled: Option<crossbeam_channel::Receiver<Vec<FlowRecord>>>,
    /// Feature vectors of written records, ready for new records.
    spare_values: Vec<Vec<f64>>,
    /// Text values of written records (ABI 1.4 text features), ready for new records.
    spare_texts: Vec<crate::flow::record::Texts>,
    /// Score vectors of written scored records, ready for new records.
    spare_scores: Vec<Vec<f64>>,
    /// Emptied batches, ready to collect the next records.
    spare_batches: Vec<Vec<FlowRecord>>,
    due: Vec<u32>,
    /// Interval schedules and the flows each touched in its current interval.
    iv: IntervalSchedules,
    last_ts_ns: u64,
    /// Packet time of the last hand-over of records (see [`SEND_BATCH`]).
    last_send_ns: u64,
    /// Parsed packets of the current burst already seen by DNS learning (the flow-table
    /// stage may stop and resume at a packet).
    observed: usize,
    /// Flows the previous burst created: how many eviction victims a burst prefetches.
    created_last_burst: usize,
    pub stats: WorkerStats,
    /// Where this worker publishes its counters (the metrics endpoint, the status line).
    metrics: Option<Arc<PublishedStats>>,
    /// Bursts until the cost table is copied to `metrics` again.
    bursts_to_cost: u64,
    /// Service classification and DNS learning, with `[[services]]`.
    services: Option<Services>,
    /// Service of each batched packet, and one service's packets of the batch (scratch of
    /// the per-service dispatch, allocated once).
    batch_svc: Vec<u16>,
    group_pkts: Vec<PacketV1>,
    group_slabs: Vec<*mut u8>,
    /// Capture filters by packet source; empty without any (no filter stage then).
    filters: crate::filter::Filters,
}

// SAFETY: the raw slab pointers in the batch point into this worker's own table; the worker is
// moved to its lcore once and used only there.
unsafe impl Send for Worker {}

impl Worker {
    pub fn new(
        s: WorkerSettings,
        plugins: Option<WorkerPlugins>,
        cost: CostTable,
        tables: Arc<DecayTables>,
        heavy_hitters: Vec<HeavyHitters>,
        sink: Sender<Vec<FlowRecord>>,
        alerts: Sender<String>,
    ) -> Worker {
        let burst = s.burst.max(1);
        let n_plugin_values = plugins.as_ref().map_or(0, |p| p.n_features());
        let mut table = FlowTable::new(s.table);
        if s.prefault {
            // On the worker's own thread (its lcore): the pages come from its NUMA node.
            table.prefault();
        }
        let mut cost = cost;
        // Built on the worker's thread: its time not running is measured from here to the
        // end of `flush_all`.
        cost.running_begin();
        let iv = IntervalSchedules::new(&s.interval_every_ms, s.table.capacity);
        tracing::info!(
            worker = s.id,
            capacity = s.table.capacity,
            bytes_per_flow = table.bytes_per_flow() + iv.bytes_per_flow(),
            memory = table.memory().describe(),
            reserved_hugepages_mb = table.reserved_hugepage_bytes() >> 20,
            "flow table allocated (bytes per flow: entry, timer links, index share, plugin state, \
             interval side entry and touched lists when intervals are on)"
        );
        Worker {
            table,
            plugins,
            n_plugin_values,
            cost,
            parsed: Vec::with_capacity(burst),
            keys: Vec::with_capacity(burst),
            hashes: Vec::with_capacity(burst),
            batch_pkts: Vec::with_capacity(burst),
            batch_slabs: Vec::with_capacity(burst),
            batch_flows: Vec::with_capacity(burst),
            batch_keys: Vec::with_capacity(burst),
            torn_down: Vec::with_capacity(burst),
            tables,
            heavy_hitters,
            alerts,
            alert_buf: Vec::new(),
            out: Vec::new(),
            stamped: 0,
            sink,
            recycled: None,
            spare_values: Vec::new(),
            spare_texts: Vec::new(),
            spare_scores: Vec::new(),
            spare_batches: Vec::new(),
            due: Vec::with_capacity(1024),
            iv,
            last_ts_ns: 0,
            last_send_ns: 0,
            observed: 0,
            created_last_burst: 0,
            stats: WorkerStats::default(),
            metrics: None,
            bursts_to_cost: 0,
            services: None,
            batch_svc: Vec::new(),
            group_pkts: Vec::new(),
            group_slabs: Vec::new(),
            filters: crate::filter::Filters::default(),
            s,
        }
    }

    /// Reuse the records' memory the output side sends back on `rx` (written batches).
    pub fn attach_recycling(&mut self, rx: crossbeam_channel::Receiver<Vec<FlowRecord>>) {
        self.recycled = Some(rx);
    }

    /// Run these capture filters before parsing from now on (a no-op when `f` is empty).
    pub fn attach_filters(&mut self, f: crate::filter::Filters) {
        self.filters = f;
    }

    /// Classify flows into services (and learn from DNS answers) from now on; with a
    /// by-service cost table, the plugins get each burst one service at a time.
    pub fn attach_services(&mut self, s: Services) {
        let burst = self.s.burst.max(1);
        self.batch_svc = Vec::with_capacity(burst);
        self.group_pkts = Vec::with_capacity(burst);
        self.group_slabs = Vec::with_capacity(burst);
        self.services = Some(s);
    }

    pub fn id(&self) -> u16 {
        self.s.id
    }

    /// Publish counters to `m` once per burst (and the cost table every
    /// [`COST_PUBLISH_BURSTS`] bursts) for the metrics endpoint and the status line.
    pub fn attach_metrics(&mut self, m: Arc<PublishedStats>) {
        m.offer_cost(&self.cost);
        m.publish(&self.stats, self.table.len());
        self.metrics = Some(m);
    }

    /// Plain stores of the counters into the metrics slot; no-op without one.
    #[inline]
    fn publish_metrics(&mut self, force_cost: bool) {
        if let Some(s) = &self.services {
            self.stats.services = s.stats.clone();
        }
        if let Some(m) = &self.metrics {
            m.publish(&self.stats, self.table.len());
            self.bursts_to_cost = self.bursts_to_cost.saturating_sub(1);
            if force_cost || self.bursts_to_cost == 0 {
                self.bursts_to_cost = COST_PUBLISH_BURSTS;
                m.offer_cost(&self.cost);
            }
        }
    }

    pub fn live_flows(&self) -> u32 {
        self.table.len()
    }

    /// Bytes per flow of the table plus the interval side array (0 with intervals off).
    pub fn bytes_per_flow(&self) -> usize {
        self.table.bytes_per_flow() + self.iv.bytes_per_flow()
    }

    /// Start the cost chain of a burst: call before receiving it, pass the result to
    /// [`Worker::process_burst`] so the receive is accounted as the `rx` stage.
    #[inline]
    pub fn burst_start(&self) -> u64 {
        self.cost.start()
    }

    /// Process one burst of received frames, as stages over the whole burst: the capture filter
    /// (when one is configured), parse, then the
    /// flow table, rates and plugins over the packets counted, then the flows that tore down,
    /// intervals and expiry, then the hand-over of records. Each stage is a function over the
    /// burst that returns what it found; this loop runs them and reads the clock between them
    /// (one TSC read per stage and burst).
    ///
    /// The flow-table stage stops early when a flow must end before the next packet can be
    /// counted (it timed out, tore down earlier in the burst, or is evicted) or an interval
    /// ended: the packets counted so far go through rates and plugins first, then the flow ends
    /// (or the intervals close), then the stage resumes at that packet.
    pub fn process_burst<'a, I>(&mut self, frames: I, t_rx: u64)
    where
        I: IntoIterator<Item = RawPacket<'a>>,
    {
        // The receive ends here (the caller's rx_burst); filtering or parsing starts.
        let t = self.cost.start();
        let rx_cycles = t.wrapping_sub(t_rx);
        // The burst's frames are gathered first with their first line prefetched (a frame read
        // from a mapped capture, or a NIC's buffer out of cache, is a miss: this way a burst's
        // misses overlap), then filtered when a filter is configured, then parsed; at most
        // MAX_BURST frames at a time (callers pass no more than `workers.burst`).
        let mut frames = frames.into_iter();
        let filtering = !self.filters.is_empty();
        let (mut t, mut rx_cycles) = (t, rx_cycles);
        loop {
            let mut kept = filter_stage::FrameBuf::new();
            let received = if filtering {
                self.filter_stage(&mut frames, &mut kept)
            } else {
                filter_stage::gather(&mut frames, &mut kept)
            };
            if received == 0 {
                break;
            }
            self.cost.account(Stage::Rx.row(), received, rx_cycles);
            rx_cycles = 0;
            if filtering {
                t = self.cost.lap(Stage::Filter.row(), received, t);
            }
            let parsed = self.parse_stage(kept.as_slice().iter().copied());
            t = self.cost.lap(Stage::Parse.row(), parsed, t);
            self.count_burst(t);
            if (received as usize) < crate::config::MAX_BURST {
                break;
            }
            t = self.cost.start();
        }
    }

    /// The stages after parsing, over the packets `parse_stage` left in `parsed`.
    fn count_burst(&mut self, mut t: u64) {
        let created_before = self.stats.flows_created;
        self.prefetch_entries();
        let mut from = 0;
        loop {
            let plugins_at = self.cost.plugin_cycles();
            let (at, stop) = self.flow_table_stage(from);
            t = self.cost.lap_excluding(
                Stage::FlowTable.row(),
                self.batch_pkts.len() as u32,
                t,
                plugins_at,
            );
            t = self.run_batch(t);
            let plugins_at = self.cost.plugin_cycles();
            match stop {
                Stop::EndOfBurst => break,
                Stop::Intervals(now_ms) => {
                    let written = self.close_intervals(now_ms);
                    t = self.cost.lap_flows_excluding(
                        Stage::Interval.row(),
                        written,
                        t,
                        plugins_at,
                    );
                }
                Stop::EndFlow(idx, why) => {
                    self.end_flow(idx, why);
                    // Ending a flow to count a packet is the flow table's work.
                    t = self
                        .cost
                        .lap_flows_excluding(Stage::FlowTable.row(), 0, t, plugins_at);
                }
            }
            from = at;
        }

        self.created_last_burst = (self.stats.flows_created - created_before) as usize;
        let plugins_at = self.cost.plugin_cycles();
        self.end_torn_down();
        t = self
            .cost
            .lap_flows_excluding(Stage::FlowTable.row(), 0, t, plugins_at);
        let now_ms = self.last_ts_ns / 1_000_000;
        t = self.expiry_stages(now_ms, t);
        t = self.community_id_stage(t);
        if !self.heavy_hitters.is_empty() {
            self.poll_heavy_hitters(false);
        }
        let sent = self.records_stage();
        self.cost.lap_flows(Stage::Sink.row(), sent, t);
        self.publish_metrics(false);
    }

    /// Rates, then the plugins, over the packets the flow-table stage counted; returns the
    /// clock after them. The plugins' calls are timed by the host on their own rows.
    fn run_batch(&mut self, mut t: u64) -> u64 {
        if self.batch_pkts.is_empty() {
            return t;
        }
        self.rates_stage();
        t = self
            .cost
            .lap(Stage::Rates.row(), self.batch_pkts.len() as u32, t);
        if self.plugins.is_some() {
            self.plugins_stage();
            t = self.cost.start();
        }
        self.clear_batch();
        t
    }

    /// Intervals that ended by `now_ms` (their records first), then the flows whose timer came
    /// due; returns the clock after them.
    fn expiry_stages(&mut self, now_ms: u64, mut t: u64) -> u64 {
        // Packets start the schedules (next_end_ms 0); the clock only ends their intervals.
        if now_ms >= self.iv.next_end_ms && self.iv.next_end_ms != 0 {
            let plugins_at = self.cost.plugin_cycles();
            let written = self.close_intervals(now_ms);
            t = self
                .cost
                .lap_flows_excluding(Stage::Interval.row(), written, t, plugins_at);
        }
        let plugins_at = self.cost.plugin_cycles();
        let ended = self.expiry_stage(now_ms);
        self.cost
            .lap_flows_excluding(Stage::Expiry.row(), ended, t, plugins_at)
    }

    /// Let packet time move on without packets (live ports in quiet periods).
    ///
    /// Only expiry sees this time: packets are still clamped to the latest *packet* time, so
    /// a worker that idled between two bursts of a replay does not shift the later packets'
    /// times (which would change their inter-arrival times).
    pub fn advance_time(&mut self, now_ns: u64) {
        let now = now_ns.max(self.last_ts_ns);
        let t = self.cost.start();
        self.expiry_stages(now / 1_000_000, t);
        self.send_records();
        // A quiet link has time to spare: the cost table goes out too.
        self.publish_metrics(true);
    }

    /// End every open flow (end of input, shutdown) and hand the records over.
    pub fn flush_all(&mut self) {
        let t = self.cost.start();
        self.run_batch(t);
        // Ending flows at the end of input is expiry work: account it there.
        let t = self.cost.start();
        let plugins_at = self.cost.plugin_cycles();
        self.flush_stage();
        self.cost
            .lap_flows_excluding(Stage::Expiry.row(), 0, t, plugins_at);
        if !self.heavy_hitters.is_empty() {
            self.poll_heavy_hitters(true);
        }
        self.send_records();
        self.cost.running_end();
        self.publish_metrics(true);
    }
}

/// Why the flow-table stage returned.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// Every packet of the burst is counted.
    EndOfBurst,
    /// Intervals ended by this time (ms): their records are written before the packet that
    /// stopped the stage is counted.
    Intervals(u64),
    /// This flow ends before the packet that stopped the stage is counted.
    EndFlow(u32, Expiration),
}

#[inline]
fn count(c: &mut DirCounters, now_ms: u64, size: u64) {
    if c.packets == 0 {
        c.first_seen_ms = now_ms;
    }
    c.last_seen_ms = now_ms;
    c.packets += 1;
    c.bytes += size;
}

#[cfg(test)]
mod tests;
