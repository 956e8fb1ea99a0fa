//! `weir run`: the appliance on live ports until SIGINT/SIGTERM.
//!
//! Each configured port (a PCI device bound to a DPDK driver, or a virtual device) gets one RX
//! queue per worker; with several workers the port's RSS spreads flows with a symmetric key
//! (both directions of a flow on one worker). Each worker lcore polls its queue of every port,
//! shares nothing with the others, and keeps its own flow table, plugin instances and counters.
//! On a signal every worker ends its open flows (records through plugins, scoring and sinks)
//! before weir exits.
//!
//! Packet time is the port's RX timestamp when it gives one (net_pcap's dynamic field), else
//! the TSC read once per burst, anchored to the wall clock at start.

use crate::config::Config;
use crate::cost::CostTable;
use crate::output::Output;
use crate::pipeline::{lcore_arg, Pipeline};
use crate::worker::{RawPacket, WorkerStats};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_dpdk::{
    lcore, rdtsc, rss, tsc_hz, Eal, MbufBurst, Mempool, MetaField, Port, PortConfig, RssConfig,
    RxQueue, RxTimestamp, DEFAULT_DATA_ROOM,
};

const BURST: usize = 64;

/// Counters a worker publishes once per burst (plain stores, single writer) for the status
/// line; the worker's own counters stay in its cache.
#[derive(Default)]
pub struct LiveCounters {
    pub packets: AtomicU64,
    pub flows: AtomicU64,
    pub records: AtomicU64,
    pub running: AtomicBool,
}

/// The EAL arguments of a live run, from the config.
pub fn eal_args(cfg: &Config) -> Result<Vec<String>> {
    let mut a = Vec::new();
    if cfg.eal.no_huge {
        a.extend([
            "--no-huge".to_string(),
            "-m".into(),
            cfg.eal.memory_mb.to_string(),
            "--no-shconf".into(),
            format!("--file-prefix=weir{}", std::process::id()),
        ]);
    }
    if cfg.eal.no_pci {
        a.push("--no-pci".into());
    }
    for p in &cfg.ports {
        if let Some(v) = &p.vdev {
            a.push(format!("--vdev={v}"));
        }
        if let Some(pci) = &p.pci {
            a.push(format!("--allow={pci}"));
        }
    }
    a.push(lcore_arg(cfg.workers.count as usize, &cfg.workers.cores)?);
    if !cfg.eal.args.iter().any(|x| x.starts_with("--log-level")) {
        a.push("--log-level=*:warning".into());
    }
    a.extend(cfg.eal.args.iter().cloned());
    Ok(a)
}

/// The ethdev name of a configured port: a vdev's name (before its first comma) or the PCI
/// address.
fn port_name(p: &crate::config::PortConfig) -> String {
    match (&p.vdev, &p.pci) {
        (Some(v), _) => v.split(',').next().unwrap_or(v).to_string(),
        (None, Some(pci)) => pci.clone(),
        (None, None) => String::new(),
    }
}

pub fn run(config: &Path, duration_s: u64, max_packets: u64) -> Result<()> {
    let cfg = Config::load(config)?;
    if cfg.ports.is_empty() {
        bail!(
            "{}: no [[ports]]: weir run needs at least one port (pci = \"0000:03:00.0\" or vdev = \"net_pcap0,rx_pcap=FILE\"); for capture files use `weir extract`",
            config.display()
        );
    }
    let n_workers = cfg.workers.count as usize;
    let mut pipeline = Pipeline::new(cfg, None, false)?;
    let output = Output::start(
        pipeline.cfg.sinks.records.clone(),
        pipeline.cfg.sinks.alerts.clone(),
        pipeline.cfg.model.as_ref(),
        &mut pipeline.schema,
    )?;
    let pipeline = Arc::new(pipeline);
    let cfg = &pipeline.cfg;

    let args = eal_args(cfg)?;
    tracing::info!(?args, "starting EAL");
    let _eal = Eal::init(&args).context("cannot start DPDK's EAL")?;
    let meta = MetaField::register()?;
    let rx_ts = RxTimestamp::register().ok();
    let lcores: Vec<u32> = lcore::worker_lcores().collect();
    if lcores.len() < n_workers {
        bail!(
            "EAL gave {} worker lcores for {n_workers} workers",
            lcores.len()
        );
    }

    // One mempool per worker, on its lcore's NUMA socket.
    let mut pools = Vec::with_capacity(n_workers);
    for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
        let socket = lcore::lcore_socket(lc) as i32;
        pools.push(Mempool::new_pktmbuf(
            &format!("weir_rx{w}"),
            cfg.workers.mbufs,
            256,
            DEFAULT_DATA_ROOM,
            socket,
        )?);
    }
    let mut ports = Vec::new();
    let mut queues: Vec<Vec<RxQueue>> = (0..n_workers).map(|_| Vec::new()).collect();
    for pc in &cfg.ports {
        let name = port_name(pc);
        let mut port = Port::by_name(&name).with_context(|| format!("port {name}"))?;
        let rss = (n_workers > 1).then_some(RssConfig {
            hash_types: rss::HASH_IP | rss::HASH_TCP | rss::HASH_UDP,
        });
        let setup = port
            .configure(&PortConfig {
                rx_queues: n_workers as u16,
                tx_queues: 0,
                rss,
            })
            .with_context(|| format!("port {name}"))?;
        tracing::info!("{setup}");
        for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
            let socket = lcore::lcore_socket(lc) as i32;
            queues[w].push(port.rx_queue_setup(w as u16, pc.rx_desc, socket, &pools[w])?);
        }
        if let Err(e) = port.set_promiscuous(true) {
            tracing::debug!(port = name.as_str(), error = %e, "promiscuous mode not set");
        }
        port.start().with_context(|| format!("port {name}"))?;
        ports.push(port);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    // ---- ops (issue 8): metrics endpoint and SIGHUP model reload -------------------------
    signal_hook::flag::register(signal_hook::consts::SIGHUP, output.reload_flag.clone())?;
    let worker_metrics: Vec<Arc<crate::metrics::WorkerMetrics>> = (0..n_workers)
        .map(|_| Arc::new(crate::metrics::WorkerMetrics::default()))
        .collect();
    let _metrics_server = if cfg.metrics.enabled {
        let sources = crate::metrics::Sources {
            ports: ports.iter().map(|p| p.stats_handle()).collect(),
            rx_queues: n_workers as u16,
            mempools: pools.clone(),
            workers: worker_metrics.clone(),
            scoring: output.scoring_stats.clone(),
            alerts: Some(output.alert_counts.clone()),
            heavy_hitters: cfg
                .heavy_hitters
                .iter()
                .flat_map(|h| {
                    (0..n_workers).map(move |w| crate::metrics::HeavyHitterInfo {
                        key: h.key.as_str().to_string(),
                        worker: w as u16,
                        capacity_keys: h.capacity as u64,
                    })
                })
                .collect(),
            records_written: Some(output.records_written.clone()),
            reloads: Some(output.reloads.clone()),
            tsc_hz: tsc_hz(),
        };
        Some(crate::metrics::MetricsServer::start(
            &cfg.metrics.listen,
            sources,
        )?)
    } else {
        None
    };
    // ---- end ops ------------------------------------------------------------------------
    let hz = tsc_hz().max(1);
    let wall0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let tsc0 = rdtsc();
    let (report_tx, report_rx) = crossbeam_channel::unbounded();
    let mut live = Vec::new();
    for (w, qs) in queues.into_iter().enumerate() {
        let counters = Arc::new(LiveCounters::default());
        counters.running.store(true, Ordering::Release);
        live.push(counters.clone());
        let pipeline = pipeline.clone();
        let sink = output.tx.clone();
        let alerts = output.alerts.clone();
        let stop = stop.clone();
        let report_tx = report_tx.clone();
        let metrics = cfg.metrics.enabled.then(|| worker_metrics[w].clone()); // ops (issue 8)
        let mut qs = qs;
        lcore::remote_launch(lcores[w], move || {
            let mut worker = match pipeline.worker(w as u16, sink, alerts) {
                Ok(wk) => wk,
                Err(e) => {
                    tracing::error!(worker = w, error = %format!("{e:#}"), "worker cannot start");
                    stop.store(true, Ordering::Relaxed);
                    counters.running.store(false, Ordering::Release);
                    let _ = report_tx.send((w, WorkerStats::default(), None));
                    return -1;
                }
            };
            if let Some(m) = metrics {
                worker.attach_metrics(m); // ops (issue 8)
            }
            let mut burst = MbufBurst::<BURST>::new();
            let mut idle_since = rdtsc();
            while !stop.load(Ordering::Relaxed) {
                let mut got = 0;
                for q in qs.iter_mut() {
                    let t = worker.burst_start();
                    let n = q.rx_burst(&mut burst);
                    if n == 0 {
                        continue;
                    }
                    got += n;
                    let now =
                        wall0 + ((rdtsc() - tsc0) as u128 * 1_000_000_000 / hz as u128) as u64;
                    worker.process_burst(
                        burst.iter().map(|m| {
                            let (ts_ns, wire_len) = match meta.get(m) {
                                Some(md) => (md.ts_ns, md.wire_len),
                                None => {
                                    (rx_ts.and_then(|r| r.pcap_ns(m)).unwrap_or(now), m.pkt_len())
                                }
                            };
                            RawPacket {
                                data: m.data(),
                                wire_len,
                                ts_ns,
                            }
                        }),
                        t,
                    );
                    burst.clear();
                }
                if got == 0 {
                    // Quiet link: let packet time move on once a millisecond so flows expire.
                    let c = rdtsc();
                    if c - idle_since > hz / 1000 {
                        idle_since = c;
                        let now = wall0 + ((c - tsc0) as u128 * 1_000_000_000 / hz as u128) as u64;
                        worker.advance_time(now);
                        counters
                            .flows
                            .store(worker.live_flows() as u64, Ordering::Relaxed);
                        counters
                            .records
                            .store(worker.stats.records, Ordering::Relaxed);
                    }
                    std::hint::spin_loop();
                } else {
                    counters
                        .packets
                        .store(worker.stats.packets, Ordering::Relaxed);
                    counters
                        .flows
                        .store(worker.live_flows() as u64, Ordering::Relaxed);
                    counters
                        .records
                        .store(worker.stats.records, Ordering::Relaxed);
                    if max_packets > 0 && worker.stats.packets >= max_packets {
                        break;
                    }
                }
            }
            worker.flush_all();
            counters
                .packets
                .store(worker.stats.packets, Ordering::Relaxed);
            counters.running.store(false, Ordering::Release);
            let _ = report_tx.send((w, worker.stats.clone(), Some(worker.cost.clone())));
            0
        })?;
    }
    drop(report_tx);
    tracing::info!(
        workers = n_workers,
        ports = ports.len(),
        "running; SIGINT or SIGTERM stops and flushes every open flow"
    );

    let started = Instant::now();
    let mut last_status = Instant::now();
    let status_every = Duration::from_secs(cfg.log.status_interval_s);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if stop.load(Ordering::Relaxed) {
            tracing::info!("signal received: stopping workers and flushing open flows");
            break;
        }
        if duration_s > 0 && started.elapsed() >= Duration::from_secs(duration_s) {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        if live.iter().all(|c| !c.running.load(Ordering::Acquire)) {
            break;
        }
        if !status_every.is_zero() && last_status.elapsed() >= status_every {
            last_status = Instant::now();
            let packets: u64 = live.iter().map(|c| c.packets.load(Ordering::Relaxed)).sum();
            let flows: u64 = live.iter().map(|c| c.flows.load(Ordering::Relaxed)).sum();
            let records: u64 = live.iter().map(|c| c.records.load(Ordering::Relaxed)).sum();
            let (missed, nombuf) = ports
                .iter()
                .filter_map(|p| p.stats().ok())
                .fold((0, 0), |(m, n), s| (m + s.imissed, n + s.rx_nombuf));
            tracing::info!(
                packets,
                active_flows = flows,
                records,
                missed,
                nombuf,
                "status"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    lcore::mp_wait_lcore();
    let mut reports: Vec<(usize, WorkerStats, Option<CostTable>)> = report_rx.iter().collect();
    reports.sort_by_key(|r| r.0);
    for p in &ports {
        if let Ok(s) = p.stats() {
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
        }
    }
    let out = output.finish();
    let packets: u64 = reports.iter().map(|r| r.1.packets).sum();
    let accepted: u64 = reports.iter().map(|r| r.1.accepted).sum();
    let flows: u64 = reports.iter().map(|r| r.1.records).sum();
    eprintln!(
        "weir run: {packets} packets ({accepted} in flows) -> {} flow records in {:.1} s",
        out.records,
        started.elapsed().as_secs_f64()
    );
    let costs: Vec<&CostTable> = reports.iter().filter_map(|r| r.2.as_ref()).collect();
    eprintln!("{}", CostTable::merge(&costs).format(Some(hz as f64)));
    if out.records != flows || out.packets != accepted {
        bail!(
            "records lost in the output stage: workers finished {flows} flows ({accepted} packets), {} written ({} packets)",
            out.records,
            out.packets
        );
    }
    if let Some(e) = out.first_error {
        bail!(
            "{} records or alerts could not be written: {e}",
            out.write_errors
        );
    }
    Ok(())
}
