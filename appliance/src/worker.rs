//! One worker: the per-core data path (parse -> flow table -> plugins -> expiry -> records).
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

use crate::config::{Config, Eviction};
use crate::cost::{CostTable, RowId, Stage};
use crate::flow::community_id;
use crate::flow::interval::IntervalSchedules;
use crate::flow::key::{direction, flow_hash};
use crate::flow::record::{DirCounters, Expiration, FlowRecord, IntervalSpan, ScoreStatus};
use crate::flow::table::{FlowEntry, FlowTable, Lookup, TableConfig};
use crate::parse::{parse, SkipCounters};
use crate::plugin_host::WorkerPlugins;
use crate::rates::{Alert, DecayTables, FlowRates, HeavyHitters, PacketKey};
use crate::services::{ServiceStats, Services};
use crossbeam_channel::Sender;
use std::sync::Arc;
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_PKT_FIRST_OF_FLOW, WEIR_TCP_FIN, WEIR_TCP_RST};

/// Records handed to the output stage at a time while flushing the whole table (the channel to
/// it holds 1024 such batches, so this bounds what can wait there).
const FLUSH_BATCH: usize = 64;

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
}

/// Plain per-worker counters, read by the reporting thread only after the worker stops (or
/// through snapshots it publishes).
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
            },
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
    due: Vec<u32>,
    /// Interval schedules and the flows each touched in its current interval.
    iv: IntervalSchedules,
    last_ts_ns: u64,
    /// Packet time of the last hand-over of records (see [`SEND_BATCH`]).
    last_send_ns: u64,
    /// Flow-table cycles of the current burst held while the plugins' per-flow calls ran.
    held_cycles: u64,
    pub stats: WorkerStats,
    /// Where the metrics endpoint reads this worker's counters (see `metrics.rs`).
    metrics: Option<Arc<crate::metrics::WorkerMetrics>>,
    /// Bursts until the cost table is copied to `metrics` again.
    bursts_to_cost: u64,
    /// Service classification and DNS learning, with `[[services]]`.
    services: Option<Services>,
    /// Service of each batched packet, and one service's packets of the batch (scratch of
    /// the per-service dispatch, allocated once).
    batch_svc: Vec<u16>,
    group_pkts: Vec<PacketV1>,
    group_slabs: Vec<*mut u8>,
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
        let table = FlowTable::new(s.table);
        let iv = IntervalSchedules::new(&s.interval_every_ms, s.table.capacity);
        tracing::info!(
            worker = s.id,
            capacity = s.table.capacity,
            bytes_per_flow = table.bytes_per_flow() + iv.bytes_per_flow(),
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
            due: Vec::with_capacity(1024),
            iv,
            last_ts_ns: 0,
            last_send_ns: 0,
            held_cycles: 0,
            stats: WorkerStats::default(),
            metrics: None,
            bursts_to_cost: 0,
            services: None,
            batch_svc: Vec::new(),
            group_pkts: Vec::new(),
            group_slabs: Vec::new(),
            s,
        }
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
    /// [`crate::metrics::COST_PUBLISH_BURSTS`] bursts) for the metrics endpoint.
    pub fn attach_metrics(&mut self, m: Arc<crate::metrics::WorkerMetrics>) {
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
                self.bursts_to_cost = crate::metrics::COST_PUBLISH_BURSTS;
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

    /// Process one burst of received frames, stage by stage (parse all, then look up all, then
    /// the plugins, then expiry), so each stage's cost is one TSC read per burst.
    pub fn process_burst<'a, I>(&mut self, frames: I, t_rx: u64)
    where
        I: IntoIterator<Item = RawPacket<'a>>,
    {
        // Stage: parse.
        self.parsed.clear();
        self.keys.clear();
        self.hashes.clear();
        let mut received = 0u32;
        // The receive ends here (the caller's rx_burst); parsing starts.
        let mut t = self.cost.start();
        let rx_cycles = t.wrapping_sub(t_rx);
        for f in frames {
            received += 1;
            self.stats.packets += 1;
            self.stats.bytes += f.wire_len as u64;
            // Packet time never goes backwards (NFStream clamps to the latest time seen).
            let ts_ns = f.ts_ns.max(self.last_ts_ns);
            self.last_ts_ns = ts_ns;
            let mut pkt = PacketV1::EMPTY;
            let mut key = FlowKeyV1::default();
            match parse(f.data, f.wire_len, ts_ns, &mut pkt, &mut key) {
                Ok(()) => {
                    let h = flow_hash(&key);
                    self.table.prefetch(h);
                    self.parsed.push(pkt);
                    self.keys.push(key);
                    self.hashes.push(h);
                }
                Err(reason) => self.stats.skipped.count(reason),
            }
        }
        if received > 0 {
            self.cost.account(Stage::Rx.row(), received, rx_cycles);
        }
        t = self.cost.lap(Stage::Parse.row(), received, t);
        // Stage: flow table. First bring in the entries the (prefetched) index slots point to,
        // then count: the loads of one packet's entry overlap the work on the packets before.
        for &h in &self.hashes {
            self.table.prefetch_entry(h);
        }
        for i in 0..self.parsed.len() {
            let pkt = self.parsed[i];
            let key = self.keys[i];
            self.account(pkt, &key, self.hashes[i], &mut t);
        }
        let n = self.batch_pkts.len() as u32;
        self.lap_flow_table(n, t);
        // Stage: plugins (the host chains its own TSC reads per plugin).
        self.flush_batch();
        self.end_torn_down();
        // Stage: expiry and handing records over.
        let mut t = self.cost.start();
        let ended = self.run_expiry(self.last_ts_ns / 1_000_000, &mut t);
        self.cost.lap_flows(Stage::Expiry.row(), ended, t);
        let t = self.stamp_community_ids();
        if !self.heavy_hitters.is_empty() {
            self.poll_heavy_hitters(false);
        }
        let mut sent = 0;
        if self.out.len() >= SEND_BATCH
            || self.last_ts_ns.saturating_sub(self.last_send_ns) >= SEND_EVERY_NS
        {
            sent = self.out.len() as u32;
            self.send_records();
        }
        self.cost.lap_flows(Stage::Sink.row(), sent, t);
        self.publish_metrics(false);
    }

    /// Let packet time move on without packets (live ports in quiet periods).
    ///
    /// Only expiry sees this time: packets are still clamped to the latest *packet* time, so
    /// a worker that idled between two bursts of a replay does not shift the later packets'
    /// times (which would change their inter-arrival times).
    pub fn advance_time(&mut self, now_ns: u64) {
        let now = now_ns.max(self.last_ts_ns);
        let mut t = self.cost.start();
        let ended = self.run_expiry(now / 1_000_000, &mut t);
        self.cost.lap_flows(Stage::Expiry.row(), ended, t);
        self.send_records();
        // A quiet link has time to spare: the cost table goes out too.
        self.publish_metrics(true);
    }

    /// End every open flow (end of input, shutdown) and hand the records over.
    pub fn flush_all(&mut self) {
        self.flush_batch();
        let live: Vec<u32> = self.table.live_entries().collect();
        // Ending flows at the end of input is expiry work: account it there.
        let mut t = self.cost.start();
        for idx in live {
            self.end_flow(idx, Expiration::Flush, Stage::Expiry.row(), &mut t);
            self.stats.flushed += 1;
            // Hand records over in bounded batches: a full table ends a million flows here, and
            // holding all their records at once would double the memory of the run.
            if self.out.len() >= FLUSH_BATCH {
                self.send_records();
            }
        }
        self.cost.lap_flows(Stage::Expiry.row(), 0, t);
        if !self.heavy_hitters.is_empty() {
            self.poll_heavy_hitters(true);
        }
        self.send_records();
        self.publish_metrics(true);
    }

    /// Count one parsed packet into its flow and queue it for the plugins.
    #[inline]
    fn account(&mut self, mut pkt: PacketV1, key: &FlowKeyV1, hash: u64, t: &mut u64) {
        let now_ms = pkt.ts_ns / 1_000_000;
        if let Some(s) = self.services.as_mut() {
            // Before the lookup: an answer is learned before any later flow starts.
            s.observe(&pkt, key);
        }
        if now_ms >= self.iv.next_end_ms {
            // An interval ended (or this is the first packet): its packets still waiting in
            // the batch go to the plugins first, then its records are written.
            self.interrupt_for_flow_end(t);
            self.pause(Stage::FlowTable.row(), *t);
            self.close_intervals(now_ms);
            *t = self.cost.start();
        }
        let idx = match self.lookup(key, hash, now_ms, t) {
            Some(i) => i,
            None => {
                self.stats.table_full += 1;
                return;
            }
        };
        self.stats.accepted += 1;
        let e = self.table.entry_mut(idx);
        let dir = direction(&e.key, key);
        pkt.direction = dir;
        if e.src2dst.packets == 0 {
            pkt.flags |= WEIR_PKT_FIRST_OF_FLOW;
            // SAFETY: a packet of the burst being processed: its bytes are live.
            e.ext.icmp = unsafe { community_id::first_packet_icmp(&pkt) };
        }
        // The full wire length (NFStream keeps it in 16 bits and wraps above 65535).
        let size = pkt.wire_len as u64;
        count(
            if dir == 0 {
                &mut e.src2dst
            } else {
                &mut e.dst2src
            },
            now_ms,
            size,
        );
        let mut teardown = false;
        if self.s.tcp_teardown && pkt.protocol == 6 {
            if pkt.tcp_flags & WEIR_TCP_FIN != 0 {
                e.ext.fin_seen |= 1 << dir;
            }
            teardown = pkt.tcp_flags & WEIR_TCP_RST != 0 || e.ext.fin_seen == 3;
        }
        // Without schedules the side array is empty and never touched.
        if !self.iv.is_empty() {
            self.iv.touch(idx, dir, now_ms, size);
        }
        let slab = self.table.slab_ptr(idx);
        self.batch_pkts.push(pkt);
        self.batch_slabs.push(slab);
        self.batch_flows.push(idx);
        if self.services.is_some() {
            self.batch_svc.push(self.table.entry(idx).ext.service);
        }
        if !self.heavy_hitters.is_empty() {
            self.batch_keys.push(PacketKey {
                src_ip: key.src_ip,
                dst_ip: key.dst_ip,
                src_port: key.src_port,
                dst_port: key.dst_port,
                protocol: key.protocol,
                ip_version: key.ip_version,
            });
        }
        if teardown && !self.table.entry(idx).ext.ending {
            // Ended after the burst's plugin dispatch, not now: ending it here would cut the
            // burst in front of every teardown and hand the plugins a few packets per call.
            self.table.entry_mut(idx).ext.ending = true;
            self.torn_down.push(idx);
        }
    }

    /// End the flows that tore down during the burst (their packets have been through the
    /// plugins), as the flow-table stage's work: the cycles are held for its next lap.
    fn end_torn_down(&mut self) {
        if self.torn_down.is_empty() {
            return;
        }
        let mut t = self.cost.start();
        for i in 0..self.torn_down.len() {
            let idx = self.torn_down[i];
            // Not ended already (a later packet of the flow in this burst, or an eviction,
            // ended it; a flow created since in that entry starts with `ending` false).
            if self.table.entry(idx).ext.ending {
                self.end_flow(idx, Expiration::Teardown, Stage::FlowTable.row(), &mut t);
                self.stats.teardown += 1;
            }
        }
        self.torn_down.clear();
        self.pause(Stage::FlowTable.row(), t);
    }

    /// A flow must end in the middle of the flow-table stage: its packets still waiting for
    /// the plugins go first, with the stage clock paused around them.
    fn interrupt_for_flow_end(&mut self, t: &mut u64) {
        let n = self.batch_pkts.len() as u32;
        self.lap_flow_table(n, *t);
        self.flush_batch();
        *t = self.cost.start();
    }

    /// Find the packet's flow, ending it first when it has timed out, or create one.
    #[inline]
    fn lookup(&mut self, key: &FlowKeyV1, hash: u64, now_ms: u64, t: &mut u64) -> Option<u32> {
        loop {
            match self
                .table
                .lookup_or_insert(key, hash, now_ms + self.s.idle_ms)
            {
                Lookup::Found(idx) => {
                    let e = self.table.entry(idx);
                    if e.ext.ending {
                        // A packet after the flow's teardown in the same burst: the flow ends
                        // now and the packet starts a new one, as if each had its own burst.
                        self.interrupt_for_flow_end(t);
                        self.stats.teardown += 1;
                        self.end_flow(idx, Expiration::Teardown, Stage::FlowTable.row(), t);
                        continue;
                    }
                    let bi = e.bidirectional();
                    let idle = now_ms - bi.last_seen_ms >= self.s.idle_ms;
                    let active = now_ms - bi.first_seen_ms >= self.s.active_ms;
                    if !(idle || active) {
                        return Some(idx);
                    }
                    // The flow's earlier packets may still be waiting in the batch.
                    self.interrupt_for_flow_end(t);
                    if idle {
                        self.stats.expired_idle += 1;
                        self.end_flow(idx, Expiration::Idle, Stage::FlowTable.row(), t);
                    } else {
                        self.stats.expired_active += 1;
                        self.end_flow(idx, Expiration::Active, Stage::FlowTable.row(), t);
                    }
                }
                Lookup::Created(idx) => {
                    self.stats.flows_created += 1;
                    self.init_flow(idx, now_ms, t);
                    return Some(idx);
                }
                Lookup::Full => {
                    if self.s.eviction == Eviction::None {
                        return None;
                    }
                    let victim = self.table.eviction_candidate()?;
                    self.interrupt_for_flow_end(t);
                    if self.table.entry(victim).ext.ending {
                        // It tore down earlier in this burst: that is how it ends.
                        self.stats.teardown += 1;
                        self.end_flow(victim, Expiration::Teardown, Stage::FlowTable.row(), t);
                    } else {
                        self.stats.evicted += 1;
                        self.end_flow(victim, Expiration::Evicted, Stage::FlowTable.row(), t);
                    }
                }
            }
        }
    }

    /// Stop the clock of stage `row` before the plugins' per-flow calls (the host times those on
    /// the plugins' rows). The flow table's cycles so far are held and added to its next lap, so
    /// its per-burst histogram still sees the whole burst; other stages count them at once.
    fn pause(&mut self, row: RowId, t: u64) {
        if row == Stage::FlowTable.row() {
            self.held_cycles += self.cost.start().wrapping_sub(t);
        } else {
            self.cost.lap_flows(row, 0, t);
        }
    }

    /// End one call of the flow-table stage (`n` packets) begun at `t`, with its held cycles.
    fn lap_flow_table(&mut self, n: u32, t: u64) -> u64 {
        let now = self.cost.start();
        let cycles = now.wrapping_sub(t) + std::mem::take(&mut self.held_cycles);
        self.cost.account(Stage::FlowTable.row(), n, cycles);
        now
    }

    /// Set up the plugins' state of a new flow. Zeroing the slab is the flow table's work
    /// (and where a fresh page is first touched); the plugins' `flow_init` calls are timed by
    /// the host on their own rows, so the flow-table clock pauses around them (counting the
    /// flow created) instead of counting them twice.
    fn init_flow(&mut self, idx: u32, now_ms: u64, t: &mut u64) {
        self.cost.add_flows(Stage::FlowTable.row(), 1);
        let key = self.table.entry(idx).key;
        let (service, skip) = match self.services.as_mut() {
            Some(s) => {
                let id = s.classify(&key, now_ms);
                self.table.entry_mut(idx).ext.service = id;
                (id, s.skip_mask(id))
            }
            None => (0, 0),
        };
        // The flow's interval schedule is chosen once, here, by its service; its side entry
        // (left by an earlier flow of this entry) starts clean.
        if !self.iv.is_empty() {
            self.iv.begin_flow(idx, service);
        }
        let Some(size) = self.plugins.as_ref().map(|p| p.slab_size()) else {
            return;
        };
        let slab = self.table.slab_ptr(idx);
        // SAFETY: the slab of a live entry: slab_size() writable bytes of this table.
        unsafe { std::ptr::write_bytes(slab, 0, size) };
        self.pause(Stage::FlowTable.row(), *t);
        if let Some(p) = self.plugins.as_mut() {
            self.cost.service_begin();
            // SAFETY: the slab of a live entry, sized and aligned for the plugins' layout.
            unsafe { p.flow_init_selected(&key, slab, skip, &mut self.cost) };
            self.cost.service_end(service);
        }
        *t = self.cost.start();
    }

    /// Run the batch through the rates stage, then hand it to the plugins.
    fn flush_batch(&mut self) {
        if !self.batch_pkts.is_empty() {
            let t = self.cost.start();
            let tables = &*self.tables;
            for (i, pkt) in self.batch_pkts.iter().enumerate() {
                let tick = tables.tick(pkt.ts_ns);
                let e = self.table.entry_mut(self.batch_flows[i]);
                e.ext.rates.on_packet(tables, tick, pkt.wire_len);
                for hh in self.heavy_hitters.iter_mut() {
                    hh.observe(&self.batch_keys[i], tick, pkt.wire_len);
                }
            }
            self.cost
                .lap(Stage::Rates.row(), self.batch_pkts.len() as u32, t);
        }
        if let Some(p) = self.plugins.as_mut() {
            let by_service =
                self.services.is_some() && self.cost.enabled() && self.cost.by_service.is_some();
            if !self.batch_pkts.is_empty() && by_service {
                dispatch_by_service(
                    p,
                    &mut self.cost,
                    &self.batch_slabs,
                    &self.batch_pkts,
                    &mut self.batch_svc,
                    &mut self.group_slabs,
                    &mut self.group_pkts,
                );
            } else if !self.batch_pkts.is_empty() {
                // SAFETY: every slab belongs to a live flow of this worker's table, and every
                // packet's data stays valid until the caller releases the burst, after this.
                unsafe { p.update_burst(&self.batch_slabs, &self.batch_pkts, &mut self.cost) };
            }
        }
        self.batch_svc.clear();
        self.batch_pkts.clear();
        self.batch_slabs.clear();
        self.batch_flows.clear();
        self.batch_keys.clear();
    }

    /// Let the heavy-hitter tables report when their interval is due (one compare each
    /// otherwise), and send their alerts on.
    fn poll_heavy_hitters(&mut self, finish: bool) {
        let now = self.last_ts_ns;
        for hh in self.heavy_hitters.iter_mut() {
            if finish {
                hh.finish(now, &mut self.alert_buf);
            } else {
                hh.poll(now, &mut self.alert_buf);
            }
        }
        for a in self.alert_buf.drain(..) {
            if let Ok(line) = serde_json::to_string(&a) {
                let _ = self.alerts.send(line);
            }
        }
    }

    /// End the flows whose wheel slot came due; returns how many ended. Intervals that ended
    /// by `now_ms` are written first (on their own cost row).
    fn run_expiry(&mut self, now_ms: u64, t: &mut u64) -> u32 {
        // Packets start the schedules (next_end_ms 0); the clock only ends their intervals.
        if now_ms >= self.iv.next_end_ms && self.iv.next_end_ms != 0 {
            self.cost.lap_flows(Stage::Expiry.row(), 0, *t);
            self.close_intervals(now_ms);
            *t = self.cost.start();
        }
        let mut ended = 0;
        let mut due = std::mem::take(&mut self.due);
        while self.table.due(now_ms, &mut due) {
            for &idx in &due {
                let bi = self.table.entry(idx).bidirectional();
                let idle_at = bi.last_seen_ms + self.s.idle_ms;
                let active_at = bi.first_seen_ms + self.s.active_ms;
                let deadline = idle_at.min(active_at);
                if now_ms >= deadline {
                    ended += 1;
                    if idle_at <= active_at {
                        self.stats.expired_idle += 1;
                        self.end_flow(idx, Expiration::Idle, Stage::Expiry.row(), t);
                    } else {
                        self.stats.expired_active += 1;
                        self.end_flow(idx, Expiration::Active, Stage::Expiry.row(), t);
                    }
                } else {
                    self.table.refile(idx, deadline);
                }
            }
        }
        self.due = due;
        ended
    }

    /// Turn flow `idx` into a record and free its entry. The batch must be flushed first.
    /// Runs inside stage `row` whose clock is `t`: the plugins' `flow_emit` calls are timed on
    /// their own rows, so `row`'s clock pauses around them.
    fn end_flow(&mut self, idx: u32, why: Expiration, row: RowId, t: &mut u64) {
        if let Some(span) = self.iv.untouch(idx) {
            // The flow's last interval: written before its flow record, so the interval
            // records of a flow always add up to it.
            self.pause(row, *t);
            let t_iv = self.cost.start();
            self.emit_interval(idx, span);
            self.cost.lap_flows(Stage::Interval.row(), 1, t_iv);
            *t = self.cost.start();
        }
        // However it ends, it is no longer waiting for `end_torn_down` (the freed entry keeps
        // its bytes until reused).
        self.table.entry_mut(idx).ext.ending = false;
        let e = *self.table.entry(idx);
        let mut values = vec![f64::NAN; self.s.n_values];
        let rate_values = e.ext.rates.features(&self.tables);
        values[self.n_plugin_values..self.n_plugin_values + rate_values.len()]
            .copy_from_slice(&rate_values);
        if self.plugins.is_some() {
            let slab = self.table.slab_ptr(idx);
            self.pause(row, *t);
            if let Some(p) = self.plugins.as_mut() {
                self.cost.service_begin();
                // SAFETY: the slab of the live entry being ended; `values` holds every feature.
                unsafe {
                    p.flow_emit(
                        &e.key,
                        slab,
                        &mut values[..self.n_plugin_values],
                        &mut self.cost,
                    )
                };
                self.cost.service_end(e.ext.service);
            }
            *t = self.cost.start();
        }
        let mut dst2src = e.dst2src;
        if dst2src.packets == 0 {
            dst2src = DirCounters::default();
        }
        self.out.push(FlowRecord {
            key: e.key,
            expiration: why,
            worker: self.s.id,
            service: e.ext.service,
            interval: None,
            bidirectional: e.bidirectional(),
            src2dst: e.src2dst,
            dst2src,
            values,
            score_status: ScoreStatus::None,
            model: None,
            prediction: None,
            scores: Vec::new(),
            icmp: e.ext.icmp,
            community_id: Default::default(),
        });
        self.table.remove(idx);
    }

    /// Write the interval records of every schedule whose interval ended by `now_ms` (the
    /// batch must be flushed first), on the `intervals` cost row; on the first packet, start
    /// the schedules instead.
    fn close_intervals(&mut self, now_ms: u64) {
        if self.iv.is_empty() {
            return;
        }
        if self.iv.next_end_ms == 0 {
            self.iv.start(now_ms);
            return;
        }
        let t = self.cost.start();
        let mut written = 0u32;
        while let Some((i, span, touched)) = self.iv.due(now_ms) {
            for &idx in &touched {
                self.emit_interval(idx, span);
                written += 1;
                // Keep the records of a busy interval in bounded batches, as flush_all does.
                if self.out.len() >= FLUSH_BATCH {
                    self.send_records();
                }
            }
            self.iv.finish(i, touched, now_ms);
        }
        self.cost.lap_flows(Stage::Interval.row(), written, t);
    }

    /// Turn flow `idx`'s current interval into an interval record and start its next one
    /// (the flow is already off its schedule's touched list). The plugins' `interval_emit`
    /// calls are timed on their own rows.
    fn emit_interval(&mut self, idx: u32, span: IntervalSpan) {
        let e = self.table.entry(idx);
        let key = e.key;
        let service = e.ext.service;
        let icmp = e.ext.icmp;
        let mut values = vec![f64::NAN; self.s.n_values];
        let rate_values = e.ext.rates.features(&self.tables);
        values[self.n_plugin_values..self.n_plugin_values + rate_values.len()]
            .copy_from_slice(&rate_values);
        if let Some(p) = self.plugins.as_mut() {
            let slab = self.table.slab_ptr(idx);
            // SAFETY: the slab of a live entry; `values` holds every feature.
            unsafe {
                p.interval_emit(
                    &key,
                    slab,
                    &mut values[..self.n_plugin_values],
                    &mut self.cost,
                )
            };
        }
        let fi = self.iv.take(idx);
        let zero_if_empty = |c: DirCounters| {
            if c.packets == 0 {
                DirCounters::default()
            } else {
                c
            }
        };
        self.stats.interval_records += 1;
        self.out.push(FlowRecord {
            key,
            expiration: Expiration::Active,
            worker: self.s.id,
            service,
            interval: Some(span),
            bidirectional: fi.bidirectional(),
            src2dst: zero_if_empty(fi.src2dst),
            dst2src: zero_if_empty(fi.dst2src),
            values,
            score_status: ScoreStatus::None,
            prediction: None,
            scores: Vec::new(),
            icmp,
            community_id: Default::default(),
            model: None,
        });
    }

    /// Give the records ended since the last call their Community ID, on the
    /// `community_id` cost row (its packets column counts records). Starts the next stage's
    /// clock, as [`CostTable::lap`] does.
    fn stamp_community_ids(&mut self) -> u64 {
        let t = self.cost.start();
        let n = self.out.len() - self.stamped;
        if n == 0 {
            return t;
        }
        let seed = self.s.community_id_seed;
        for r in &mut self.out[self.stamped..] {
            r.community_id = community_id::compute(seed, &r.key, r.icmp);
        }
        self.stamped = self.out.len();
        let row = Stage::CommunityId.row();
        let now = self.cost.lap(row, n as u32, t);
        self.cost.add_flows(row, n as u64);
        now
    }

    fn send_records(&mut self) {
        if self.out.is_empty() {
            return;
        }
        self.stamp_community_ids();
        self.stamped = 0;
        self.last_send_ns = self.last_ts_ns;
        self.stats.records += self.out.len() as u64;
        let batch = std::mem::replace(&mut self.out, Vec::with_capacity(SEND_BATCH));
        // Blocks when the output stage is behind: records are never dropped here.
        if self.sink.send(batch).is_err() {
            tracing::error!(
                worker = self.s.id,
                "record output stage is gone; records lost"
            );
        }
    }
}

/// Hand a batch to the plugins one service at a time (packets of one flow keep their order),
/// so the plugin rows' growth over each group is that service's cost.
fn dispatch_by_service(
    p: &mut WorkerPlugins,
    cost: &mut CostTable,
    slabs: &[*mut u8],
    pkts: &[PacketV1],
    svc: &mut [u16],
    group_slabs: &mut Vec<*mut u8>,
    group_pkts: &mut Vec<PacketV1>,
) {
    const TAKEN: u16 = u16::MAX;
    let n = pkts.len().min(slabs.len()).min(svc.len());
    let mut first = 0;
    while first < n {
        let s = svc[first];
        if svc[first..n].iter().all(|&x| x == s) {
            // One service left: no copy.
            cost.service_begin();
            // SAFETY: as in flush_batch (live slabs of this table, packets of this burst).
            unsafe { p.update_burst(&slabs[first..n], &pkts[first..n], cost) };
            cost.service_end(s);
            return;
        }
        group_slabs.clear();
        group_pkts.clear();
        for i in first..n {
            if svc[i] == s {
                group_slabs.push(slabs[i]);
                group_pkts.push(pkts[i]);
                svc[i] = TAKEN;
            }
        }
        cost.service_begin();
        // SAFETY: as above.
        unsafe { p.update_burst(group_slabs, group_pkts, cost) };
        cost.service_end(s);
        while first < n && svc[first] == TAKEN {
            first += 1;
        }
    }
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
