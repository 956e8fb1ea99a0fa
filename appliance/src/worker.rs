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

use crate::flow::key::{direction, flow_hash};
use crate::flow::record::{DirCounters, Expiration, FlowRecord, ScoreStatus};
use crate::flow::table::{FlowTable, Lookup, TableConfig};
use crate::parse::{parse, SkipCounters};
use crate::config::{Config, Eviction};
use crossbeam_channel::Sender;
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_PKT_FIRST_OF_FLOW, WEIR_TCP_FIN, WEIR_TCP_RST};

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
    pub records: u64,
}

/// Per-flow data the worker keeps beside the counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowExt {}

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
            n_values,
        }
    }
}

pub struct Worker {
    s: WorkerSettings,
    table: FlowTable<FlowExt>,
    /// The burst being assembled for the plugins: packet views and their flows' slabs.
    batch_pkts: Vec<PacketV1>,
    batch_slabs: Vec<*mut u8>,
    /// Records finished during the current burst.
    out: Vec<FlowRecord>,
    sink: Sender<Vec<FlowRecord>>,
    due: Vec<u32>,
    last_ts_ns: u64,
    pub stats: WorkerStats,
}

// SAFETY: the raw slab pointers in the batch point into this worker's own table; the worker is
// moved to its lcore once and used only there.
unsafe impl Send for Worker {}

impl Worker {
    pub fn new(s: WorkerSettings, sink: Sender<Vec<FlowRecord>>) -> Worker {
        let burst = s.burst.max(1);
        Worker {
            table: FlowTable::new(s.table),
            batch_pkts: Vec::with_capacity(burst),
            batch_slabs: Vec::with_capacity(burst),
            out: Vec::new(),
            sink,
            due: Vec::with_capacity(1024),
            last_ts_ns: 0,
            stats: WorkerStats::default(),
            s,
        }
    }

    pub fn id(&self) -> u16 {
        self.s.id
    }

    pub fn live_flows(&self) -> u32 {
        self.table.len()
    }

    pub fn bytes_per_flow(&self) -> usize {
        self.table.bytes_per_flow()
    }

    /// Process one burst of received frames.
    pub fn process_burst<'a, I>(&mut self, frames: I)
    where
        I: IntoIterator<Item = RawPacket<'a>>,
    {
        for f in frames {
            self.process_one(f);
        }
        self.flush_batch();
        self.run_expiry(self.last_ts_ns / 1_000_000);
        self.send_records();
    }

    /// Let packet time move on without packets (live ports in quiet periods).
    pub fn advance_time(&mut self, now_ns: u64) {
        if now_ns > self.last_ts_ns {
            self.last_ts_ns = now_ns;
        }
        self.run_expiry(self.last_ts_ns / 1_000_000);
        self.send_records();
    }

    /// End every open flow (end of input, shutdown) and hand the records over.
    pub fn flush_all(&mut self) {
        self.flush_batch();
        let live: Vec<u32> = self.table.live_entries().collect();
        for idx in live {
            self.end_flow(idx, Expiration::Flush);
            self.stats.flushed += 1;
        }
        self.send_records();
    }

    #[inline]
    fn process_one(&mut self, f: RawPacket<'_>) {
        self.stats.packets += 1;
        self.stats.bytes += f.wire_len as u64;
        // Packet time never goes backwards (NFStream clamps to the latest time seen).
        let ts_ns = f.ts_ns.max(self.last_ts_ns);
        self.last_ts_ns = ts_ns;
        let mut pkt = PacketV1::EMPTY;
        let mut key = FlowKeyV1::default();
        if let Err(reason) = parse(f.data, f.wire_len, ts_ns, &mut pkt, &mut key) {
            self.stats.skipped.add(reason);
            return;
        }
        let now_ms = ts_ns / 1_000_000;
        let hash = flow_hash(&key);
        let idx = match self.lookup(&key, hash, now_ms) {
            Some(i) => i,
            None => {
                self.stats.table_full += 1;
                return;
            }
        };
        self.stats.accepted += 1;
        let e = self.table.entry_mut(idx);
        let dir = direction(&e.key, &key);
        pkt.direction = dir;
        if e.bidirectional.packets == 0 {
            pkt.flags |= WEIR_PKT_FIRST_OF_FLOW;
        }
        // NFStream counts the wire length as a 16-bit packet size.
        let size = (f.wire_len & 0xFFFF) as u64;
        count(&mut e.bidirectional, now_ms, size);
        count(if dir == 0 { &mut e.src2dst } else { &mut e.dst2src }, now_ms, size);
        let mut teardown = false;
        if self.s.tcp_teardown && pkt.protocol == 6 {
            if pkt.tcp_flags & WEIR_TCP_FIN != 0 {
                e.fin_seen |= 1 << dir;
            }
            teardown = pkt.tcp_flags & WEIR_TCP_RST != 0 || e.fin_seen == 3;
        }
        let slab = self.table.slab_ptr(idx);
        self.batch_pkts.push(pkt);
        self.batch_slabs.push(slab);
        if self.batch_pkts.len() == self.batch_pkts.capacity() {
            self.flush_batch();
        }
        if teardown {
            self.flush_batch();
            self.end_flow(idx, Expiration::Teardown);
            self.stats.teardown += 1;
        }
    }

    /// Find the packet's flow, ending it first when it has timed out, or create one.
    #[inline]
    fn lookup(&mut self, key: &FlowKeyV1, hash: u64, now_ms: u64) -> Option<u32> {
        loop {
            match self.table.lookup_or_insert(key, hash, now_ms + self.s.idle_ms) {
                Lookup::Found(idx) => {
                    let e = self.table.entry(idx);
                    let idle = now_ms - e.bidirectional.last_seen_ms >= self.s.idle_ms;
                    let active = now_ms - e.bidirectional.first_seen_ms >= self.s.active_ms;
                    if !(idle || active) {
                        return Some(idx);
                    }
                    // The flow's earlier packets may still be waiting in the batch.
                    self.flush_batch();
                    if idle {
                        self.stats.expired_idle += 1;
                        self.end_flow(idx, Expiration::Idle);
                    } else {
                        self.stats.expired_active += 1;
                        self.end_flow(idx, Expiration::Active);
                    }
                }
                Lookup::Created(idx) => {
                    self.stats.flows_created += 1;
                    self.init_flow(idx);
                    return Some(idx);
                }
                Lookup::Full => {
                    if self.s.eviction == Eviction::None {
                        return None;
                    }
                    let victim = self.table.eviction_candidate()?;
                    self.flush_batch();
                    self.stats.evicted += 1;
                    self.end_flow(victim, Expiration::Evicted);
                }
            }
        }
    }

    fn init_flow(&mut self, _idx: u32) {}

    /// Hand the assembled batch to the plugins.
    fn flush_batch(&mut self) {
        self.batch_pkts.clear();
        self.batch_slabs.clear();
    }

    /// End the flows whose wheel slot came due.
    fn run_expiry(&mut self, now_ms: u64) {
        let mut due = std::mem::take(&mut self.due);
        while self.table.due(now_ms, &mut due) {
            for &idx in &due {
                let e = self.table.entry(idx);
                let idle_at = e.bidirectional.last_seen_ms + self.s.idle_ms;
                let active_at = e.bidirectional.first_seen_ms + self.s.active_ms;
                let deadline = idle_at.min(active_at);
                if now_ms >= deadline {
                    if idle_at <= active_at {
                        self.stats.expired_idle += 1;
                        self.end_flow(idx, Expiration::Idle);
                    } else {
                        self.stats.expired_active += 1;
                        self.end_flow(idx, Expiration::Active);
                    }
                } else {
                    self.table.refile(idx, deadline);
                }
            }
        }
        self.due = due;
    }

    /// Turn flow `idx` into a record and free its entry. The batch must be flushed first.
    fn end_flow(&mut self, idx: u32, why: Expiration) {
        let e = *self.table.entry(idx);
        let values = vec![f64::NAN; self.s.n_values];
        let mut dst2src = e.dst2src;
        if dst2src.packets == 0 {
            dst2src = DirCounters::default();
        }
        self.out.push(FlowRecord {
            key: e.key,
            expiration: why,
            worker: self.s.id,
            bidirectional: e.bidirectional,
            src2dst: e.src2dst,
            dst2src,
            values,
            score_status: ScoreStatus::None,
            prediction: None,
            scores: Vec::new(),
        });
        self.table.remove(idx);
    }

    fn send_records(&mut self) {
        if self.out.is_empty() {
            return;
        }
        self.stats.records += self.out.len() as u64;
        let batch = std::mem::take(&mut self.out);
        // Blocks when the output stage is behind: records are never dropped here.
        if self.sink.send(batch).is_err() {
            tracing::error!(worker = self.s.id, "record output stage is gone; records lost");
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
