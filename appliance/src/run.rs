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

mod ports;
mod receive;
mod status;

use crate::config::Config;
use crate::launch::{EalMode, Launch, Reports};
use crate::output::{Output, OutputStats};
use crate::pipeline::Pipeline;
use crate::rx_frames::ChainScratch;
use crate::stats::PublishedStats;
use anyhow::{bail, Result};
use ports::{setup_ports, PortPlan};
use receive::{worker_loop, Clock};
use status::{log_port_stats, log_spread_stats, log_status};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_dpdk::{rdtsc, tsc_hz, Port, RxTimestamp};

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

/// The run's stop flags. `abort`: a signal or a worker that cannot start; `halt`: the main
/// lcore tells the workers to finish (after the spreader stopped).
struct Flags {
    abort: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
}

pub fn run(config: &Path, opts: &RunOptions) -> Result<()> {
    let (pipeline, output) = start_output(config)?;
    let cfg = &pipeline.cfg;
    let n_workers = cfg.workers.count as usize;
    let mut launch = Launch::start(cfg, EalMode::Live)?;
    let clock = Clock {
        hz: tsc_hz().max(1),
        wall0: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        tsc0: rdtsc(),
        meta: launch.meta,
        rx_ts: RxTimestamp::register().ok(),
    };
    let mut plan = setup_ports(cfg, launch.lcores())?;
    let flags = Flags {
        abort: Arc::new(AtomicBool::new(false)),
        halt: Arc::new(AtomicBool::new(false)),
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flags.abort.clone())?;
    }
    // SIGHUP: reload the model.
    signal_hook::flag::register(signal_hook::consts::SIGHUP, output.reload_flag.clone())?;
    // SIGUSR1: reopen the records and alerts files (logrotate without copytruncate).
    for flag in &output.reopen_flags {
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.clone())?;
    }
    // What each worker publishes: read by the status line and the metrics endpoint.
    let live: Vec<Arc<PublishedStats>> = (0..n_workers)
        .map(|_| Arc::new(PublishedStats::default()))
        .collect();
    let _metrics_server = start_metrics(&pipeline, &output, &plan, &live);
    spawn_workers(
        &launch, &pipeline, &output, &mut plan, clock, &flags, &live, opts,
    )?;
    // The ports are started and every worker polls: tell systemd (Type=notify) weir is up.
    crate::sd_notify::notify_or_log(&format!(
        "READY=1\nSTATUS=running: {} port(s), {n_workers} worker(s)",
        plan.ports.len()
    ));
    tracing::info!(
        workers = n_workers,
        ports = plan.ports.len(),
        "running; SIGINT or SIGTERM stops and flushes every open flow"
    );
    let started = Instant::now();
    watch(cfg, opts, &mut plan, &clock, &flags, &live, started);
    // The spreader has stopped (it runs on this thread); now the workers drain and flush.
    crate::sd_notify::notify_or_log("STOPPING=1\nSTATUS=flushing open flows");
    flags.halt.store(true, Ordering::Release);
    let reports = launch.wait();
    log_end(&plan, &live);
    let PortPlan { spread_port, .. } = plan;
    drop(spread_port);
    let out = output.finish();
    summary(&reports, &out, started, clock.hz);
    check(&launch, &reports, &out)
}

/// Load the config, the plugins and the model, and start the output side (sinks, scoring,
/// alerts) before DPDK: a bad config, plugin or model is refused at once.
fn start_output(config: &Path) -> Result<(Arc<Pipeline>, Output)> {
    let cfg = Config::load(config)?;
    if cfg.ports.is_empty() {
        bail!(
            "{}: no [[ports]]: weir run needs at least one port (pci = \"0000:03:00.0\" or vdev = \"net_pcap0,rx_pcap=FILE\"); for capture files use `weir extract`",
            config.display()
        );
    }
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
    Ok((Arc::new(pipeline), output))
}

/// The metrics endpoint, when enabled. One that cannot be bound (another weir on this host,
/// a typo) must not stop the data path: traffic goes on, the error is logged loudly.
fn start_metrics(
    pipeline: &Pipeline,
    output: &Output,
    plan: &PortPlan,
    live: &[Arc<PublishedStats>],
) -> Option<crate::metrics::MetricsServer> {
    let cfg = &pipeline.cfg;
    if !cfg.metrics.enabled {
        return None;
    }
    let sources = crate::metrics::Sources {
        ports: plan.ports.iter().map(|p| p.stats_handle()).collect(),
        rx_queues: cfg.workers.count as u16,
        mempools: plan.pools.clone(),
        workers: live.to_vec(),
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
}

/// Start every worker on its lcore with the queues it polls. A panic stops the run: the
/// spreader stops waiting for that worker, the main loop sees `abort`, and the others drain
/// and flush.
#[allow(clippy::too_many_arguments)]
fn spawn_workers(
    launch: &Launch,
    pipeline: &Arc<Pipeline>,
    output: &Output,
    plan: &mut PortPlan,
    clock: Clock,
    flags: &Flags,
    live: &[Arc<PublishedStats>],
    opts: &RunOptions,
) -> Result<()> {
    let burst = usize::from(pipeline.cfg.workers.burst);
    let spread_clock = plan.spreader.as_ref().map(|s| s.clock());
    for (w, qs) in std::mem::take(&mut plan.queues).into_iter().enumerate() {
        let published = live[w].clone();
        published.running.store(true, Ordering::Release);
        let pipeline = pipeline.clone();
        let sink = (output.tx.clone(), output.recycled.clone());
        let alerts = output.alerts.clone();
        let (halt, abort) = (flags.halt.clone(), flags.abort.clone());
        let max_packets = opts.max_packets;
        let spread_clock = spread_clock.clone();
        let scratch = ChainScratch::new(plan.may_chain, burst, plan.max_frame);
        let (on_panic_counters, on_panic_abort) = (published.clone(), abort.clone());
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
    Ok(())
}

/// The main lcore until the run stops: it spreads when a port needs it, and every 50 ms looks
/// after the run (a signal or a dead worker, `--duration-s`, `--stop-after-idle-ms`, every
/// worker stopped, the status line).
fn watch(
    cfg: &Config,
    opts: &RunOptions,
    plan: &mut PortPlan,
    clock: &Clock,
    flags: &Flags,
    live: &[Arc<PublishedStats>],
    started: Instant,
) {
    let abort = &flags.abort;
    let mut last_status = Instant::now();
    let status_every = Duration::from_secs(cfg.log.status_interval_s);
    let check_every = clock.hz / 20;
    let mut next_check = rdtsc();
    let mut idle = IdleWatch::default();
    loop {
        match plan.spreader.as_mut() {
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
        if opts.stop_after_idle_ms > 0 && idle.quiet_for(&plan.ports, opts.stop_after_idle_ms) {
            tracing::info!(
                idle_ms = opts.stop_after_idle_ms,
                "no packet for --stop-after-idle-ms: stopping"
            );
            break;
        }
        if !status_every.is_zero() && last_status.elapsed() >= status_every {
            last_status = Instant::now();
            log_status(live, &plan.ports, plan.spreader.as_ref());
        }
    }
}

/// `--stop-after-idle-ms`: the ports' packets (received and missed) at the last change.
#[derive(Default)]
struct IdleWatch {
    seen_rx: u64,
    last_rx_at: Option<Instant>,
}

impl IdleWatch {
    /// True once no packet arrived for `ms` since the first one.
    fn quiet_for(&mut self, ports: &[Port], ms: u64) -> bool {
        let rx: u64 = ports
            .iter()
            .filter_map(|p| p.stats().ok())
            .map(|s| s.ipackets + s.imissed)
            .sum();
        if rx != self.seen_rx {
            self.seen_rx = rx;
            self.last_rx_at = Some(Instant::now());
            false
        } else {
            self.last_rx_at
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(ms))
        }
    }
}

/// The ports' and the spreader's counters at the end, and frames not received whole.
fn log_end(plan: &PortPlan, live: &[Arc<PublishedStats>]) {
    for p in &plan.ports {
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
    if let Some(s) = &plan.spreader {
        log_spread_stats(&s.stats);
    }
}

/// The run's summary on stderr: packets, records, per worker, and the merged cost table.
fn summary(reports: &Reports, out: &OutputStats, started: Instant, hz: u64) {
    let total = reports.total();
    let per_worker = reports.packets_per_worker();
    eprintln!(
        "weir run: {} packets ({} in flows{}) -> {} flow records in {:.1} s; per worker {per_worker:?}",
        total.packets,
        total.accepted,
        if total.filtered > 0 {
            format!(", {} filtered out", total.filtered)
        } else {
            String::new()
        },
        out.records,
        started.elapsed().as_secs_f64()
    );
    eprintln!("{}", reports.cost().format(Some(hz as f64)));
}

/// Fail the run for a worker that panicked, records lost on the way out, or write errors.
fn check(launch: &Launch, reports: &Reports, out: &OutputStats) -> Result<()> {
    if let Some((w, msg)) = launch.dead.first() {
        bail!(
            "worker {w} panicked: {msg}; the run was stopped, the other workers' open flows were \
             flushed ({} records written), worker {w}'s open flows were lost",
            out.records
        );
    }
    let total = reports.total();
    let (accepted, flows) = (total.accepted, total.records);
    if out.records != flows || out.packets != accepted {
        bail!(
            "records lost in the output stage: workers finished {flows} flows ({accepted} packets), {} written ({} packets)",
            out.records,
            out.packets
        );
    }
    if let Some(e) = &out.first_error {
        bail!(
            "{} records or alerts could not be written: {e}",
            out.write_errors
        );
    }
    Ok(())
}
