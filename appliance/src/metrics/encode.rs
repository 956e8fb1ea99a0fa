//! The exposition: every source of [`Sources`] written as OpenMetrics families on each scrape,
//! one function per area (ports, mempools, workers, cost, heavy hitters, output, scoring).

use super::families::{counters, family, gauges, Labels, Out};
use super::Sources;
use crate::scoring::ScoringStats;
use crate::stats::WorkerStats;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::atomic::Ordering;

/// Upper bounds (seconds) of the scoring latency histogram's buckets.
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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

impl prometheus_client::collector::Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> Out {
        let e = &mut enc;
        gauges(
            e,
            "weir_build_info",
            "Always 1: weir's version, the DPDK version it was built against, the plugin ABI.",
            None,
            &[(build_info(), 1i64)],
        )?;
        ports(e, self)?;
        mempools(e, self)?;
        let snaps: Vec<(WorkerStats, u64)> = self
            .workers
            .iter()
            .map(|m| (m.snapshot(), m.active_flows()))
            .collect();
        super::workers::workers(e, &snaps)?;
        super::workers::cost(e, self)?;
        heavy_hitters(e, self)?;
        output(e, self)?;
        if let Some(s) = &self.scoring {
            scoring(e, s)?;
        }
        Ok(())
    }
}

/// Port counters (`rte_eth_stats`, per queue) and extended statistics.
fn ports(e: &mut DescriptorEncoder, src: &Sources) -> Out {
    let mut rx_p = Vec::new();
    let mut rx_b = Vec::new();
    let mut missed = Vec::new();
    let mut errors = Vec::new();
    let mut nombuf = Vec::new();
    let mut per_q = Vec::new();
    let mut xstats = Vec::new();
    let mut xcounters = Vec::new();
    for p in &src.ports {
        let port = p.name().to_string();
        let l = vec![("port", port.clone())];
        if let Ok(s) = p.stats() {
            rx_p.push((l.clone(), s.ipackets));
            rx_b.push((l.clone(), s.ibytes));
            missed.push((l.clone(), s.imissed));
            errors.push((l.clone(), s.ierrors));
            nombuf.push((l.clone(), s.rx_nombuf));
            for (q, v) in s.q_ipackets.iter().take(src.rx_queues as usize).enumerate() {
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

    Ok(())
}

/// Mbufs in use and free per pool.
fn mempools(e: &mut DescriptorEncoder, s: &Sources) -> Out {
    let in_use: Vec<(Labels, u64)> = s
        .mempools
        .iter()
        .map(|m| (vec![("pool", m.name().to_string())], m.in_use() as u64))
        .collect();
    let avail: Vec<(Labels, u64)> = s
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

    Ok(())
}

/// Heavy-hitter tables' capacity and occupancy.
fn heavy_hitters(e: &mut DescriptorEncoder, s: &Sources) -> Out {
    let hh_cap: Vec<(Labels, u64)> = s
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
    let hh_occ: Vec<(Labels, u64)> = s
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

    Ok(())
}

/// The output stage: records written, alerts, model reloads.
fn output(e: &mut DescriptorEncoder, s: &Sources) -> Out {
    let r = Ordering::Relaxed;
    if let Some(n) = &s.records_written {
        counters(
            e,
            "weir_records_written",
            "Flow records the output stage wrote.",
            None,
            &[(vec![], n.load(r))],
        )?;
    }
    if let Some(a) = &s.alerts {
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
    if let Some(rc) = &s.reloads {
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
    Ok(())
}

/// Scoring: batches, rows, overload, errors, queue depth and the latency histogram.
fn scoring(e: &mut DescriptorEncoder, s: &ScoringStats) -> Out {
    let r = Ordering::Relaxed;
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
    Ok(())
}

/// A histogram already counted elsewhere (hdrhistogram), written in Prometheus' buckets.
/// `encode_histogram` wants per-bucket counts, not cumulative ones.
struct ScoringLatency {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ScoringLatency {
    fn encode(&self, mut enc: prometheus_client::encoding::MetricEncoder) -> Out {
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
