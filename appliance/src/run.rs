//! `weir run`: the appliance on live ports until SIGINT/SIGTERM.
//!
//! Each configured port reaches the workers one of three ways, chosen per port from what the
//! device reports (`spread::choose`, config `workers.spread`) and logged with the reason:
//! - direct: one worker, one RX queue;
//! - rss: one RX queue per worker, flows spread by the device's symmetric RSS (or, for
//!   net_af_packet, the kernel's fanout hash), both directions of a flow on one worker;
//! - software: one RX queue polled by the main lcore's spreader, which hashes each packet's
//!   flow and hands it to its worker over a ring behind a net_ring ethdev (`spread.rs`).
//!
//! Each worker lcore polls its queues, shares nothing with the others, and keeps its own flow
//! table, plugin instances and counters. On a signal (or `--duration-s`, `--stop-after-idle-ms`)
//! the spreader stops first, then every worker drains its rings and ends its open flows
//! (records through plugins, scoring and sinks) before weir exits. Port counters (per queue
//! where the PMD counts them) and the spreader's are logged at the end, drops as warnings.
//!
//! Packet time is the port's RX timestamp when it gives one (net_pcap's dynamic field), else
//! the TSC read once per burst, anchored to the wall clock at start. In quiet periods a
//! worker's clock moves on from its newest packet's time by the real time since, so replays
//! keep their own clock and live ports keep the wall clock.

use crate::config::Config;
use crate::launch::{Burst, EalMode, Launch, WorkerReport};
use crate::output::Output;
use crate::pipeline::Pipeline;
use crate::rx_frames::ChainScratch;
use crate::spread::{self, PortPath, SpreadStats, Spreader};
use crate::stats::PublishedStats;
use crate::worker::{RawPacket, Worker};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_dpdk::{
    lcore, rdtsc, rss, tsc_hz, Mbuf, Mempool, MetaField, Port, PortConfig, Ring, RssConfig,
    RxQueue, RxTimestamp, DEFAULT_DATA_ROOM,
};

/// The ethdev name of a configured port: a vdev's name (before its first comma) or the PCI
/// address.
fn port_name(p: &crate::config::PortConfig) -> String {
    match (&p.vdev, &p.pci) {
        (Some(v), _) => v.split(',').next().unwrap_or(v).to_string(),
        (None, Some(pci)) => pci.clone(),
        (None, None) => String::new(),
    }
}

/// How long `weir run` runs (all zero: until a signal).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after this many seconds.
    pub duration_s: u64,
    /// Stop a worker after it has seen this many packets (benchmarks).
    pub max_packets: u64,
    /// Stop once no packet arrived for this long after the first one (net_pcap replays).
    pub stop_after_idle_ms: u64,
}

/// One RX queue a worker polls. `finite` queues (the software spreader's rings) are drained
/// to empty at shutdown: the spreader stops first, so everything it handed over is processed.
struct WorkerQueue {
    q: RxQueue,
    finite: bool,
    /// Frames this long or longer may have been cut (`FramePlan::whole_limit`).
    whole_limit: u32,
}

/// Every port set up, and who polls what.
struct PortPlan {
    ports: Vec<Port>,
    /// `[worker]` -> the queues it polls.
    queues: Vec<Vec<WorkerQueue>>,
    /// The software spreader, when a port needs it (run by the main lcore).
    spreader: Option<Spreader>,
    /// The net_ring port behind the spreader's rings.
    spread_port: Option<Port>,
    /// The workers' mempools (for the metrics endpoint).
    pools: Vec<Mempool>,
    /// Some port may deliver a frame as chained mbufs; and the largest frame of any port.
    may_chain: bool,
    max_frame: u32,
}

/// Ask each port what it supports, choose its path (`spread::choose`), configure it and set
/// up its queues; refuse, naming the port, what cannot work.
fn setup_ports(cfg: &Config, lcores: &[u32]) -> Result<PortPlan> {
    let n_workers = cfg.workers.count as usize;
    let mut plan = PortPlan {
        ports: Vec::new(),
        queues: (0..n_workers).map(|_| Vec::new()).collect(),
        spreader: None,
        spread_port: None,
        pools: Vec::new(),
        may_chain: false,
        max_frame: 0,
    };
    let mut chosen = Vec::new();
    for pc in &cfg.ports {
        let name = port_name(pc);
        let port = Port::by_name(&name).with_context(|| format!("port {name}"))?;
        let info = port.dev_info().with_context(|| format!("port {name}"))?;
        let path = spread::choose(cfg.workers.spread, n_workers, &name, &info)
            .map_err(|e| anyhow!("{e}"))?;
        match &path {
            PortPath::Direct => tracing::info!(port = name.as_str(), "one worker: no spreading"),
            PortPath::Rss { why } | PortPath::Software { why } => tracing::info!(
                port = name.as_str(),
                driver = info.driver.as_str(),
                path = path.name(),
                "spreading flows over {n_workers} workers: {}; {why}",
                path.name()
            ),
        }
        let vdev = crate::rx_frames::vdev_arg(pc);
        let frames = port
            .mtu()
            .and_then(|m| Ok((m, port.frame_limits()?)))
            .map_err(|e| anyhow!("port {name}: {e}"))
            .and_then(|(mtu, limits)| {
                crate::rx_frames::plan(pc, vdev.as_deref(), &info.driver, mtu, &limits)
                    .map_err(|e| anyhow!("port {name}: ports[].mtu: {e}"))
            })?;
        tracing::info!(port = name.as_str(), "{}", frames.describe());
        plan.may_chain |= frames.may_chain;
        plan.max_frame = plan.max_frame.max(frames.max_frame());
        chosen.push((pc, name, port, info, path, frames));
    }
    // One mbuf size for every pool: the largest any port needs.
    let data_room = chosen
        .iter()
        .map(|c| c.5.data_room)
        .max()
        .unwrap_or(DEFAULT_DATA_ROOM)
        .max(DEFAULT_DATA_ROOM);
    // Mempools: one per worker on its socket for the queues it polls itself; one for the
    // software ports' queues on the main lcore's socket, holding every ring's worth.
    let needs_own = chosen
        .iter()
        .any(|c| !matches!(c.4, PortPath::Software { .. }));
    let mut pools = Vec::new();
    if needs_own {
        for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
            let socket = lcore::lcore_socket(lc) as i32;
            pools.push(Mempool::new_pktmbuf(
                &format!("weir_rx{w}"),
                cfg.workers.mbufs,
                256,
                data_room,
                socket,
            )?);
        }
    }
    let software: Vec<u16> = chosen
        .iter()
        .filter(|c| matches!(c.4, PortPath::Software { .. }))
        .map(|c| c.0.rx_desc)
        .collect();
    let main_socket = lcore::lcore_socket(lcore::main_lcore()) as i32;
    let spread_pool = if software.is_empty() {
        None
    } else {
        // In flight at once: every ring full, every port's descriptors, a burst per worker and
        // the spreader, and what per-lcore caches may hold.
        let want = n_workers as u32 * cfg.workers.spread_ring
            + software.iter().map(|&d| u32::from(d)).sum::<u32>()
            + (n_workers as u32 + 2) * (u32::from(cfg.workers.burst) + 384);
        let size = (want.max(cfg.workers.mbufs) + 1).next_power_of_two() - 1;
        Some(Mempool::new_pktmbuf(
            "weir_spread_rx",
            size,
            256,
            data_room,
            main_socket,
        )?)
    };
    let mut spread_queues = Vec::new();
    let mut spread_limit = u32::MAX;
    for (pc, name, mut port, info, path, frames) in chosen {
        let rss = match &path {
            // A device that spreads by itself (af_packet's fanout) takes no RSS request.
            PortPath::Rss { .. } if info.flow_type_rss_offloads != 0 => Some(RssConfig {
                hash_types: rss::HASH_IP | rss::HASH_TCP | rss::HASH_UDP,
            }),
            _ => None,
        };
        let rx_queues = path.rx_queues(n_workers);
        let setup = port
            .configure_with(
                &PortConfig {
                    rx_queues,
                    tx_queues: 0,
                    rss,
                },
                &frames.rx,
            )
            .with_context(|| format!("port {name}"))?;
        tracing::info!("{setup}");
        if let Some(own) = spread::self_spreading(&info.driver) {
            if info.max_rx_queues > rx_queues {
                tracing::warn!(
                    port = name.as_str(),
                    "{} spreads over all its {} queues ({own}) but {rx_queues} are polled: \
                     packets hashed to the others are never read; give the vdev as many queues \
                     as workers (qpairs={n_workers})",
                    info.driver,
                    info.max_rx_queues
                );
            }
        }
        match &path {
            PortPath::Direct | PortPath::Rss { .. } => {
                for w in 0..rx_queues as usize {
                    let socket = lcore::lcore_socket(lcores[w]) as i32;
                    let q = port.rx_queue_setup(w as u16, pc.rx_desc, socket, &pools[w])?;
                    plan.queues[w].push(WorkerQueue {
                        q,
                        finite: false,
                        whole_limit: frames.whole_limit,
                    });
                }
            }
            PortPath::Software { .. } => {
                let pool = spread_pool.as_ref().expect("made for software ports");
                spread_queues.push(port.rx_queue_setup(0, pc.rx_desc, main_socket, pool)?);
                spread_limit = spread_limit.min(frames.whole_limit);
            }
        }
        if let Err(e) = port.set_promiscuous(true) {
            // A port that is not promiscuous sees only traffic addressed to it: on a SPAN or
            // TAP port that is almost nothing.
            tracing::warn!(
                port = name.as_str(),
                driver = info.driver.as_str(),
                error = %e,
                "promiscuous mode not set: the port receives only frames addressed to its MAC \
                 (and broadcast/multicast); on a SPAN or TAP port most traffic is lost (a VF \
                 needs `trust on` on its PF)"
            );
        }
        port.start().with_context(|| format!("port {name}"))?;
        match port.link() {
            Ok(l) if l.up => tracing::info!(port = name.as_str(), link = %l, "link up"),
            Ok(l) => tracing::warn!(
                port = name.as_str(),
                link = %l,
                "link down at start: no traffic until it comes up (cable, SFP, switch port)"
            ),
            Err(e) => tracing::warn!(port = name.as_str(), error = %e, "cannot read link state"),
        }
        plan.ports.push(port);
    }
    if let Some(pool) = &spread_pool {
        let mut rings = Vec::with_capacity(n_workers);
        for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
            let socket = lcore::lcore_socket(lc) as i32;
            rings.push(Ring::new(
                &format!("weir_spread{w}"),
                cfg.workers.spread_ring,
                socket,
            )?);
        }
        let mut ring_port = Port::from_rings(
            "weir_spread",
            &rings.iter().collect::<Vec<_>>(),
            &[],
            main_socket,
        )?;
        ring_port.configure(&PortConfig {
            rx_queues: n_workers as u16,
            tx_queues: 0,
            rss: None,
        })?;
        for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
            let socket = lcore::lcore_socket(lc) as i32;
            let q = ring_port.rx_queue_setup(w as u16, 0, socket, pool)?;
            plan.queues[w].push(WorkerQueue {
                q,
                finite: true,
                whole_limit: spread_limit,
            });
        }
        ring_port.start()?;
        tracing::info!(
            ports = spread_queues.len(),
            workers = n_workers,
            ring = cfg.workers.spread_ring,
            when_full = ?cfg.workers.spread_full,
            "software spreading on the main lcore: weir's symmetric flow hash -> one ring per \
             worker -> {}",
            ring_port.name()
        );
        plan.spreader = Some(Spreader::new(
            spread_queues,
            rings,
            cfg.workers.spread_full,
            usize::from(cfg.workers.burst),
        ));
        plan.spread_port = Some(ring_port);
    }
    plan.pools = pools;
    if let Some(p) = &spread_pool {
        plan.pools.push(p.clone());
    }
    Ok(plan)
}

/// A worker lcore's loop: poll its queues until told to halt, drain its finite queues, flush.
#[allow(clippy::too_many_arguments)]
fn worker_loop(
    w: usize,
    pipeline: Arc<Pipeline>,
    sink: crossbeam_channel::Sender<Vec<crate::flow::record::FlowRecord>>,
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
struct Clock {
    hz: u64,
    wall0: u64,
    tsc0: u64,
    meta: MetaField,
    rx_ts: Option<RxTimestamp>,
}

impl Clock {
    /// A packet's time and wire length: capture metadata (weir's field), else the port's RX
    /// timestamp, else `now`.
    #[inline]
    fn packet(&self, m: &Mbuf, now: u64) -> (u64, u32) {
        match self.meta.get(m) {
            Some(md) => (md.ts_ns, md.wire_len),
            None => (
                self.rx_ts.and_then(|r| r.pcap_ns(m)).unwrap_or(now),
                m.pkt_len(),
            ),
        }
    }

    #[inline]
    fn now_ns(&self, tsc: u64) -> u64 {
        self.wall0 + ((tsc - self.tsc0) as u128 * 1_000_000_000 / self.hz as u128) as u64
    }
}

pub fn run(config: &Path, opts: &RunOptions) -> Result<()> {
    let cfg = Config::load(config)?;
    if cfg.ports.is_empty() {
        bail!(
            "{}: no [[ports]]: weir run needs at least one port (pci = \"0000:03:00.0\" or vdev = \"net_pcap0,rx_pcap=FILE\"); for capture files use `weir extract`",
            config.display()
        );
    }
    let n_workers = cfg.workers.count as usize;
    let ipfix = cfg
        .sinks
        .ipfix_config()
        .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
    let mut pipeline = Pipeline::new(cfg, None, false)?;
    // A restart (the unit restarts on failure) must not wipe what earlier runs wrote: the
    // records and alerts files are appended to.
    let sinks = &pipeline.cfg.sinks;
    let append = crate::sink::Start::Append;
    let files = crate::output::SinkFiles {
        rotation: sinks.rotation(),
        records: sinks.text_options(sinks.records.as_deref().unwrap_or("".as_ref()), append),
        alerts: sinks.text_options("alerts.jsonl".as_ref(), append),
    };
    let output = Output::start_files(
        pipeline.cfg.sinks.records.clone(),
        files,
        pipeline.cfg.sinks.alerts.clone(),
        pipeline.cfg.sinks.alerts_format,
        pipeline.cfg.model.as_ref(),
        &mut pipeline.schema,
        ipfix.as_ref(),
    )?;
    let pipeline = Arc::new(pipeline);
    let cfg = &pipeline.cfg;

    let mut launch = Launch::start(cfg, EalMode::Live)?;
    let meta = launch.meta;
    let rx_ts = RxTimestamp::register().ok();
    let PortPlan {
        ports,
        queues,
        mut spreader,
        spread_port,
        pools,
        may_chain,
        max_frame,
    } = setup_ports(cfg, launch.lcores())?;

    // `abort`: a signal or a worker that cannot start; `halt`: the main lcore tells the
    // workers to finish (after the spreader stopped).
    let abort = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, abort.clone())?;
    }
    let halt = Arc::new(AtomicBool::new(false));
    // ---- ops (issue 8): metrics endpoint and SIGHUP model reload -------------------------
    signal_hook::flag::register(signal_hook::consts::SIGHUP, output.reload_flag.clone())?;
    // SIGUSR1: reopen the records and alerts files (logrotate without copytruncate).
    for flag in &output.reopen_flags {
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.clone())?;
    }
    // What each worker publishes: read by the status line and the metrics endpoint.
    let live: Vec<Arc<PublishedStats>> = (0..n_workers)
        .map(|_| Arc::new(PublishedStats::default()))
        .collect();
    let _metrics_server = if cfg.metrics.enabled {
        let sources = crate::metrics::Sources {
            ports: ports.iter().map(|p| p.stats_handle()).collect(),
            rx_queues: n_workers as u16,
            mempools: pools.clone(),
            workers: live.clone(),
            scoring: output.scoring_stats.clone(),
            alerts: Some(output.alert_counts.clone()),
            heavy_hitters: pipeline
                .heavy_hitter_occupancy()
                .into_iter()
                .map(
                    |(key, worker, capacity_keys, occupied)| crate::metrics::HeavyHitterInfo {
                        key,
                        worker,
                        capacity_keys,
                        occupied_keys: Some(occupied),
                    },
                )
                .collect(),
            records_written: Some(output.records_written.clone()),
            reloads: Some(output.reloads.clone()),
            tsc_hz: tsc_hz(),
        };
        // A metrics port that cannot be bound (another weir on this host, a typo) must not
        // stop the data path: traffic goes on, the error is logged loudly.
        match crate::metrics::MetricsServer::start(&cfg.metrics.listen, sources) {
            Ok(server) => Some(server),
            Err(e) => {
                tracing::error!(
                    error = %format!("{e:#}"),
                    "metrics endpoint not started; weir runs on without it (set [metrics] listen or enabled = false)"
                );
                None
            }
        }
    } else {
        None
    };
    // ---- end ops ------------------------------------------------------------------------
    let hz = tsc_hz().max(1);
    let clock = Clock {
        hz,
        wall0: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        tsc0: rdtsc(),
        meta,
        rx_ts,
    };
    let spread_clock = spreader.as_ref().map(|s| s.clock());
    for (w, qs) in queues.into_iter().enumerate() {
        let published = live[w].clone();
        published.running.store(true, Ordering::Release);
        let pipeline = pipeline.clone();
        let sink = output.tx.clone();
        let alerts = output.alerts.clone();
        let (halt, abort) = (halt.clone(), abort.clone());
        let max_packets = opts.max_packets;
        let spread_clock = spread_clock.clone();
        let scratch = ChainScratch::new(may_chain, usize::from(cfg.workers.burst), max_frame);
        let (on_panic_counters, on_panic_abort) = (published.clone(), abort.clone());
        // A panic stops the run: the spreader stops waiting for this worker, the main loop
        // sees `abort`, and the others drain and flush.
        let on_panic = move || {
            on_panic_counters.running.store(false, Ordering::Release);
            on_panic_abort.store(true, Ordering::Release);
        };
        let body = move || {
            worker_loop(
                w,
                pipeline,
                sink,
                alerts,
                qs,
                clock,
                halt,
                abort,
                published,
                max_packets,
                spread_clock,
                scratch,
            )
        };
        launch.spawn(w, body, on_panic)?;
    }
    // The ports are started and every worker polls: tell systemd (Type=notify) weir is up.
    crate::sd_notify::notify_or_log(&format!(
        "READY=1\nSTATUS=running: {} port(s), {n_workers} worker(s)",
        ports.len()
    ));
    tracing::info!(
        workers = n_workers,
        ports = ports.len(),
        "running; SIGINT or SIGTERM stops and flushes every open flow"
    );

    let started = Instant::now();
    let mut last_status = Instant::now();
    let status_every = Duration::from_secs(cfg.log.status_interval_s);
    let check_every = hz / 20;
    let mut next_check = rdtsc();
    let mut seen_rx = 0u64;
    let mut last_rx_at: Option<Instant> = None;
    loop {
        // The main lcore spreads when a port needs it, and looks after the run every 50 ms.
        match spreader.as_mut() {
            Some(s) => {
                let now = clock.now_ns(rdtsc());
                // Never wait for a ring once the run is stopping (a signal, a dead worker).
                let alive = |w: usize| {
                    live[w].running.load(Ordering::Acquire) && !abort.load(Ordering::Relaxed)
                };
                if s.poll(&alive, &|m| clock.packet(m, now).0) == 0 {
                    std::hint::spin_loop();
                }
                let c = rdtsc();
                if c < next_check {
                    continue;
                }
                next_check = c + check_every;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
        if abort.load(Ordering::Relaxed) {
            tracing::info!("stopping workers and flushing open flows");
            break;
        }
        if opts.duration_s > 0 && started.elapsed() >= Duration::from_secs(opts.duration_s) {
            break;
        }
        if live.iter().all(|c| !c.running.load(Ordering::Acquire)) {
            break;
        }
        if opts.stop_after_idle_ms > 0 {
            let rx: u64 = ports
                .iter()
                .filter_map(|p| p.stats().ok())
                .map(|s| s.ipackets + s.imissed)
                .sum();
            if rx != seen_rx {
                seen_rx = rx;
                last_rx_at = Some(Instant::now());
            } else if last_rx_at
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(opts.stop_after_idle_ms))
            {
                tracing::info!(
                    idle_ms = opts.stop_after_idle_ms,
                    "no packet for --stop-after-idle-ms: stopping"
                );
                break;
            }
        }
        if !status_every.is_zero() && last_status.elapsed() >= status_every {
            last_status = Instant::now();
            log_status(&live, &ports, spreader.as_ref());
        }
    }
    // The spreader has stopped (it runs on this thread); now the workers drain and flush.
    crate::sd_notify::notify_or_log("STOPPING=1\nSTATUS=flushing open flows");
    halt.store(true, Ordering::Release);
    let reports = launch.wait();
    for p in &ports {
        log_port_stats(p);
    }
    let cut: u64 = live.iter().map(|p| p.snapshot().cut_frames).sum();
    if cut > 0 {
        tracing::warn!(
            cut_frames = cut,
            "frames not received whole (as long as the port's receive limit, or chained past \
             the worker's buffer): they are parsed as cut; raise ports[].mtu to the largest \
             frame on the link"
        );
    }
    if let Some(s) = &spreader {
        log_spread_stats(&s.stats);
    }
    drop(spread_port);
    let out = output.finish();
    let total = reports.total();
    let (packets, accepted, flows) = (total.packets, total.accepted, total.records);
    let per_worker = reports.packets_per_worker();
    eprintln!(
        "weir run: {packets} packets ({accepted} in flows) -> {} flow records in {:.1} s; per worker {per_worker:?}",
        out.records,
        started.elapsed().as_secs_f64()
    );
    eprintln!("{}", reports.cost().format(Some(hz as f64)));
    if let Some((w, msg)) = launch.dead.first() {
        bail!(
            "worker {w} panicked: {msg}; the run was stopped, the other workers' open flows were \
             flushed ({} records written), worker {w}'s open flows were lost",
            out.records
        );
    }
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

/// The status line: packets, flows and records over the workers; drops at ports and rings.
fn log_status(live: &[Arc<PublishedStats>], ports: &[Port], spreader: Option<&Spreader>) {
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
fn log_port_stats(p: &Port) {
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
fn log_spread_stats(s: &SpreadStats) {
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
