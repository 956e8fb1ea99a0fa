//! What `weir run` logs about itself: the periodic status line, and the ports' and the
//! software spreader's counters at the end (drops as warnings).

use crate::spread::{SpreadStats, Spreader};
use crate::stats::PublishedStats;
use std::sync::Arc;
use weir_dpdk::Port;

/// The status line: packets, flows and records over the workers; drops at ports and rings.
pub(super) fn log_status(
    live: &[Arc<PublishedStats>],
    ports: &[Port],
    spreader: Option<&Spreader>,
) {
    let mut total = crate::stats::WorkerStats::default();
    for p in live {
        total.merge(&p.snapshot());
    }
    let (packets, records, cut_frames) = (total.packets, total.records, total.cut_frames);
    let flows: u64 = live.iter().map(|p| p.active_flows()).sum();
    let (missed, nombuf) = ports
        .iter()
        .filter_map(|p| p.stats().ok())
        .fold((0, 0), |(m, n), s| (m + s.imissed, n + s.rx_nombuf));
    let spread_ring_full: u64 = spreader.map_or(0, |s| s.stats.ring_full.iter().sum());
    tracing::info!(
        packets,
        active_flows = flows,
        records,
        missed,
        nombuf,
        spread_ring_full,
        cut_frames,
        "status"
    );
}

/// A port's counters at the end; drops (missed, no-mbuf, errors) as a warning.
pub(super) fn log_port_stats(p: &Port) {
    match p.stats() {
        Ok(s) => {
            tracing::info!(
                port = p.name(),
                rx_packets = s.ipackets,
                rx_bytes = s.ibytes,
                missed = s.imissed,
                errors = s.ierrors,
                nombuf = s.rx_nombuf,
                per_queue = ?s.q_ipackets,
                "port statistics"
            );
            if s.imissed > 0 || s.rx_nombuf > 0 || s.ierrors > 0 {
                tracing::warn!(
                    port = p.name(),
                    missed = s.imissed,
                    nombuf = s.rx_nombuf,
                    errors = s.ierrors,
                    "packets dropped at the port: missed = no free RX descriptor (workers too \
                     slow or too few), nombuf = mempool empty, errors = bad frames"
                );
            }
        }
        Err(e) => tracing::warn!(port = p.name(), error = %e, "cannot read port statistics"),
    }
}

/// The software spreader's counters at the end; ring-full drops as a warning.
pub(super) fn log_spread_stats(s: &SpreadStats) {
    tracing::info!(
        received = s.received,
        per_worker = ?s.to_worker,
        ring_full = ?s.ring_full,
        waits = s.waits,
        cycles_per_packet = format!(
            "{:.1}",
            s.busy_cycles as f64 / s.received.max(1) as f64
        ),
        "software spreading statistics"
    );
    let dropped: u64 = s.ring_full.iter().sum();
    if dropped > 0 {
        tracing::warn!(
            spread_ring_full = dropped,
            per_worker = ?s.ring_full,
            "packets dropped by the software spreader because a worker's ring was full \
             (workers.spread_full = \"drop\"): that worker is too slow; add workers or use RSS"
        );
    }
}
