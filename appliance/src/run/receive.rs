//! A worker lcore's life in `weir run`: poll its queues (a burst at a time, `workers.burst`)
//! until told to halt, drain the spreader's rings, flush; and packet time for live ports.

use super::ports::WorkerQueue;
use crate::launch::{Burst, WorkerReport};
use crate::pipeline::Pipeline;
use crate::rx_frames::ChainScratch;
use crate::stats::PublishedStats;
use crate::worker::{RawPacket, Worker};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use weir_dpdk::{rdtsc, Mbuf, MetaField, RxTimestamp};

/// A worker lcore's loop: poll its queues until told to halt, drain its finite queues, flush.
#[allow(clippy::too_many_arguments)]
pub(super) fn worker_loop(
    w: usize,
    pipeline: Arc<Pipeline>,
    (sink, recycled): (
        crossbeam_channel::Sender<Vec<crate::flow::record::FlowRecord>>,
        crossbeam_channel::Receiver<Vec<crate::flow::record::FlowRecord>>,
    ),
    alerts: crossbeam_channel::Sender<String>,
    mut qs: Vec<WorkerQueue>,
    clock: Clock,
    halt: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    published: Arc<PublishedStats>,
    max_packets: u64,
    spread_clock: Option<Arc<AtomicU64>>,
    scratch: ChainScratch,
) -> WorkerReport {
    let mut burst = Burst::new();
    let want = usize::from(pipeline.cfg.workers.burst);
    let mut rx = RxState {
        scratch,
        cut: 0,
        clock,
        last: LastPacket { ns: 0, tsc: 0 },
    };
    let mut worker = match pipeline.worker(w as u16, sink, alerts) {
        Ok(wk) => wk,
        Err(e) => {
            let e = format!("{e:#}");
            tracing::error!(worker = w, error = %e, "worker cannot start");
            abort.store(true, Ordering::Relaxed);
            // Keep the spreader's ring moving (it may wait for room) until told to halt.
            while !halt.load(Ordering::Acquire) {
                for q in qs.iter_mut().filter(|q| q.finite) {
                    q.q.rx_burst_up_to(&mut burst, want);
                }
                burst.clear();
            }
            published.running.store(false, Ordering::Release);
            return WorkerReport::failed(w as u16, e);
        }
    };
    // The status line and the metrics endpoint read what the worker publishes.
    worker.attach_metrics(published.clone());
    worker.attach_recycling(recycled);
    // Packet time in quiet periods moves on from the last packet's time by the real time
    // since it came (a replay keeps its own clock; a live port's packets carry `now`). Before
    // the first packet there is no clock to move (and no flow to expire).
    let mut idle_since = rdtsc();
    let panic_at = crate::dead_worker::test_panic_at(w);
    while !halt.load(Ordering::Acquire) {
        // The software spreader's time, read before polling: with the rings empty, every
        // packet up to it has been counted (see `Spreader::clock`).
        let spread_now = spread_clock
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Acquire));
        let mut got = 0;
        for q in qs.iter_mut() {
            got += poll_queue(&mut worker, q, &mut burst, want, &mut rx);
        }
        if got == 0 {
            // Quiet: let packet time move on once a millisecond so flows expire; a worker
            // behind the spreader follows the input's time too, not only its own packets'.
            let c = rdtsc();
            if c - idle_since > rx.clock.hz / 1000 && (rx.last.ns > 0 || spread_now > 0) {
                idle_since = c;
                let own = if rx.last.ns > 0 {
                    let elapsed = (c - rx.last.tsc) as u128 * 1_000_000_000 / rx.clock.hz as u128;
                    rx.last.ns + elapsed as u64
                } else {
                    0
                };
                worker.advance_time(own.max(spread_now));
            }
            std::hint::spin_loop();
        } else {
            crate::dead_worker::maybe_test_panic(w, panic_at, worker.stats.packets);
            if max_packets > 0 && worker.stats.packets >= max_packets {
                break;
            }
        }
    }
    // The spreader stopped before `halt` was raised: what it enqueued is visible now.
    for q in qs.iter_mut().filter(|q| q.finite) {
        while poll_queue(&mut worker, q, &mut burst, want, &mut rx) > 0 {}
    }
    worker.flush_all();
    published.running.store(false, Ordering::Release);
    WorkerReport::of(&worker)
}

/// One burst from `q` through the worker; returns the packets received.
#[inline]
fn poll_queue(
    worker: &mut Worker,
    q: &mut WorkerQueue,
    burst: &mut Burst,
    want: usize,
    rx: &mut RxState,
) -> usize {
    let t = worker.burst_start();
    let n = q.q.rx_burst_up_to(burst, want);
    if n == 0 {
        return 0;
    }
    let RxState {
        scratch,
        cut,
        clock,
        last,
    } = rx;
    let c = rdtsc();
    let now = clock.now_ns(c);
    let mut newest = 0u64;
    let whole_limit = q.whole_limit;
    let (source, by_port) = (q.source, q.source_by_port.as_deref());
    // Chained frames are copied into the worker's buffer, one after the other.
    let mut room = scratch.room();
    worker.process_burst(
        burst.iter().map(|m| {
            if m.pkt_len() >= whole_limit {
                *cut += 1;
            }
            let (ts_ns, wire_len) = clock.packet(m, now);
            newest = newest.max(ts_ns);
            RawPacket {
                data: crate::rx_frames::contiguous(m, &mut room, cut),
                wire_len,
                ts_ns,
                source: match by_port {
                    None => source,
                    Some(t) => t.get(usize::from(m.port())).copied().unwrap_or(0),
                },
            }
        }),
        t,
    );
    last.ns = last.ns.max(newest);
    last.tsc = c;
    burst.clear();
    // Published with the worker's next burst (or quiet tick, or flush).
    worker.stats.cut_frames = *cut;
    n
}

/// What a worker's receive keeps between bursts.
struct RxState {
    scratch: ChainScratch,
    /// Frames not received whole.
    cut: u64,
    clock: Clock,
    last: LastPacket,
}

/// The newest packet time a worker has seen, and the TSC when it came.
struct LastPacket {
    ns: u64,
    tsc: u64,
}

/// Packet time for packets without a capture timestamp: the TSC, anchored to the wall clock.
#[derive(Clone, Copy)]
pub(super) struct Clock {
    pub hz: u64,
    pub wall0: u64,
    pub tsc0: u64,
    pub meta: MetaField,
    pub rx_ts: Option<RxTimestamp>,
}

impl Clock {
    /// A packet's time and wire length: capture metadata (weir's field), else the port's RX
    /// timestamp, else `now`.
    #[inline]
    pub fn packet(&self, m: &Mbuf, now: u64) -> (u64, u32) {
        match self.meta.get(m) {
            Some(md) => (md.ts_ns, md.wire_len),
            None => (
                self.rx_ts.and_then(|r| r.pcap_ns(m)).unwrap_or(now),
                m.pkt_len(),
            ),
        }
    }

    #[inline]
    pub fn now_ns(&self, tsc: u64) -> u64 {
        self.wall0 + ((tsc - self.tsc0) as u128 * 1_000_000_000 / self.hz as u128) as u64
    }
}
