//! `weir extract`: flow records from capture files, through the real DPDK data path.
//!
//! The captures are not read by a net_pcap port: net_pcap loses the original wire length and
//! has no end-of-file signal (at the end of its file an RX queue returns no packets, as an idle
//! link does). Instead a feeder on the main lcore reads them (pcap or pcapng), puts each
//! packet in an mbuf with its exact metadata (wire length, nanosecond time) in weir's dynamic
//! field, and enqueues it to a ring. The mbuf of a packet of a mapped capture points into the
//! mapping (a DPDK external buffer: no copy); the mappings stay until every worker returned.
//! The rings back an ethdev made with `rte_eth_from_rings` (the net_ring PMD), one RX queue per
//! worker, and the workers poll it with `rte_eth_rx_burst` exactly as they poll a NIC. The
//! feeder waits when a ring or the mempool is full, so nothing is dropped, and it raises a flag
//! after its last enqueue so workers know when the input is over.
//!
//! With several workers the feeder spreads packets by the same symmetric flow hash the flow
//! table uses, so both directions of a flow reach the same worker. Every worker's clock follows
//! the input's time, not only its own packets': the feeder publishes the time it has read up
//! to (after enqueuing every packet before it), and a worker whose queue is empty moves its
//! clock there (`Worker::advance_time`), so a flow whose idle deadline passed in the input ends
//! as idle whichever worker holds it, and `--workers N` gives the one-worker records.
//!
//! With a capture filter (`--filter`, `[capture] filter`) the workers run it before parsing
//! (`worker::filter_stage`); the feeder's clock moves only with the packets it accepts, so the
//! records equal those of the capture `tcpdump -w` writes with the same expression.

mod feed;
mod report;

use crate::capture::CaptureReader;
use crate::cli::ExtractArgs;
use crate::config::Config;
use crate::cost::CostTable;
use crate::launch::{Burst, EalMode, Launch, WorkerReport};
use crate::output::{Output, OutputStats};
use crate::pipeline::Pipeline;
use crate::worker::RawPacket;
use anyhow::{anyhow, bail, Context, Result};
use feed::{feed, feed_port, progress_bar, Backoff, Fed, FeedPort, LentMaps};
use report::{print_summary, write_stats};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use weir_dpdk::{Mbuf, MetaField, RxQueue, WeirMeta};

/// `weir extract`.
pub fn run(args: &ExtractArgs) -> Result<()> {
    let summary = extract(args, Some(args.out.clone()))?;
    if !args.quiet {
        eprintln!("{}", summary.cost_table);
    }
    Ok(())
}

/// `weir cost`: the data path over the captures, records counted but not written, then the
/// cost table plugin by plugin with each one's share.
pub fn cost(
    captures: Vec<std::path::PathBuf>,
    config: Option<std::path::PathBuf>,
    plugin_dir: Option<std::path::PathBuf>,
    json: Option<std::path::PathBuf>,
    filter: Option<String>,
) -> Result<()> {
    let args = ExtractArgs {
        captures,
        out: std::path::PathBuf::from("cost.csv"),
        config,
        plugin_dir,
        no_plugins: false,
        model: None,
        alerts: None,
        ipfix: None,
        workers: None,
        no_progress: false,
        quiet: true,
        stats: None,
        filter,
    };
    let summary = extract(&args, None)?;
    println!(
        "{} packets, {} flows; cycles per packet by stage and plugin (share of all cycles):",
        summary.packets, summary.flows
    );
    println!("{}", summary.cost_table);
    if let Some(p) = json {
        let mut v = summary.cost.to_json(Some(weir_dpdk::tsc_hz() as f64));
        v["packets"] = summary.packets.into();
        v["flows"] = summary.flows.into();
        let text = serde_json::to_string_pretty(&v)? + "\n";
        std::fs::write(&p, text).with_context(|| format!("cannot write --json {}", p.display()))?;
    }
    Ok(())
}

/// What an extract run did.
pub struct Summary {
    pub packets: u64,
    pub flows: u64,
    /// The merged cost table, formatted.
    pub cost_table: String,
    pub cost: CostTable,
}

/// The extract data path; records go to `out` (or are only counted when `None`).
pub fn extract(args: &ExtractArgs, out_path: Option<PathBuf>) -> Result<Summary> {
    let (cfg, total_bytes) = configure(args, out_path.as_ref())?;
    // The manifest's hash of the first capture starts now, on the core DPDK's start-up
    // leaves idle (see `HashHeadStart`); `weir cost` writes no manifest.
    let hash = (out_path.as_ref())
        .and(args.captures.first())
        .map(|c| crate::capture::HashHeadStart::spawn(c));
    // `weir cost` counts records only: no export.
    let ipfix = match out_path {
        Some(_) => ipfix_config(&cfg)?,
        None => None,
    };
    let n_workers = cfg.workers.count as usize;
    let mut pipeline = Pipeline::new(cfg, args.plugin_dir.clone(), args.no_plugins)?;
    // The model and the sinks are checked before DPDK starts: a bad model is refused at once.
    let output = start_output(&mut pipeline, out_path.clone(), ipfix.as_ref())?;
    let model_info = output.model.clone();
    let follower = follow_records(out_path.as_deref());
    let pipeline = Arc::new(pipeline);
    let cfg = &pipeline.cfg;

    let mut launch = Launch::start(cfg, EalMode::Offline)?;
    let meta = launch.meta;
    let burst = usize::from(cfg.workers.burst);
    let FeedPort {
        pools,
        mut rings,
        port: _port,
        queues,
    } = feed_port(n_workers, burst)?;
    let done = Arc::new(AtomicBool::new(false));
    // The input's time (ns) up to which every packet has been enqueued.
    let input_clock = Arc::new(AtomicU64::new(0));
    // Raised when a worker panics: the feeder stops waiting for ring room or mbufs.
    let worker_died = Arc::new(AtomicBool::new(false));
    for (i, rxq) in queues.into_iter().enumerate() {
        let feed = FeedSide {
            rxq,
            done: done.clone(),
            input_clock: input_clock.clone(),
            meta,
        };
        let pipeline = pipeline.clone();
        let (sink, alerts) = (output.tx.clone(), output.alerts.clone());
        let recycled = output.recycled.clone();
        let died = worker_died.clone();
        launch.spawn(
            i,
            move || extract_worker(i, &pipeline, (sink, recycled), alerts, feed),
            move || died.store(true, Ordering::Release),
        )?;
    }

    let stop = stop_on_signals()?;
    let started = Instant::now();
    // The mapped captures the workers' mbufs point into: unmapped only after the workers
    // returned (see `LentMaps`).
    let mut lent = LentMaps::default();
    let feed = feed(
        &args.captures,
        &pools,
        &mut lent,
        &meta,
        &mut rings,
        burst,
        &stop,
        &input_clock,
        &worker_died,
        progress_bar(args, total_bytes),
        pipeline.filters().get(0),
        hash,
    );
    // Whatever happened, let the workers finish and flush what they got.
    tracing::debug!(elapsed = ?started.elapsed(), "feeder done");
    done.store(true, Ordering::Release);
    let reports = launch.wait();
    lent.release();
    tracing::debug!(elapsed = ?started.elapsed(), "workers done");
    let out = output.finish();
    let records_hash = follower.and_then(|f| f.finish());
    if let Some((w, msg)) = launch.dead.first() {
        bail!(
            "worker {w} panicked: {msg}; the extract was stopped, the other workers' open flows \
             were flushed ({} records written), worker {w}'s open flows were lost",
            out.records
        );
    }
    let fed = feed?;
    let elapsed = started.elapsed();

    if let Some(e) = reports.first_error() {
        bail!("a worker could not start: {e}");
    }
    let total = reports.total();
    if total.packets != fed.packets {
        bail!(
            "packets lost between the feeder and the workers: fed {}, received {}",
            fed.packets,
            total.packets
        );
    }
    if !args.quiet {
        print_summary(&fed, &total, &out, out_path.as_deref(), elapsed);
    }
    let merged = reports.cost();
    let cost_table = merged.format(Some(weir_dpdk::tsc_hz() as f64));
    if let Some(p) = &args.stats {
        write_stats(p, &fed, &total, &out)?;
    }
    check(&total, &out, &fed)?;
    if let Some(o) = &out_path {
        write_manifest(args, o, &pipeline, (&out, records_hash), &fed, model_info)?;
    }
    Ok(Summary {
        packets: fed.packets,
        flows: out.records - out.interval_records,
        cost_table,
        cost: merged,
    })
}

/// The IPFIX export of `--ipfix` / `[sinks] ipfix*`, if any.
fn ipfix_config(cfg: &crate::config::Config) -> Result<Option<crate::sink::ipfix::IpfixConfig>> {
    cfg.sinks
        .ipfix_config()
        .map_err(|(k, m)| anyhow!("--ipfix / {k}: {m}"))
}

/// A flag SIGINT and SIGTERM raise: the feeder stops reading and every open flow is flushed.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// The manifest's hash of a CSV or JSON Lines records file, computed while it is written
/// (Parquet files appear whole at the end: hashed then).
fn follow_records(out: Option<&std::path::Path>) -> Option<crate::manifest::Follower> {
    out.filter(|o| {
        matches!(
            crate::sink::Format::from_path(o),
            Ok(crate::sink::Format::Csv | crate::sink::Format::JsonLines)
        )
    })
    .and_then(crate::manifest::Follower::start)
}

/// The data manifest beside the records `o`: what they were made from.
fn write_manifest(
    args: &ExtractArgs,
    o: &std::path::Path,
    pipeline: &Pipeline,
    (out, records_hash): (&OutputStats, Option<(String, u64)>),
    fed: &Fed,
    model: Option<(String, String, String)>,
) -> Result<()> {
    let plugins = pipeline
        .registry
        .plugins()
        .iter()
        .map(|p| (p.desc.name.clone(), p.desc.version.clone(), p.path.clone()))
        .collect();
    crate::manifest::write(&crate::manifest::Inputs {
        records: o,
        record_count: out.records,
        records_hash,
        captures: &args.captures,
        capture_hashes: Some(&fed.hashes),
        config: args.config.as_deref(),
        workers: pipeline.cfg.workers.count,
        plugin_dir: args.plugin_dir.as_deref(),
        no_plugins: args.no_plugins,
        plugins,
        model,
    })?;
    Ok(())
}

/// The config with the command line's overrides, after refusing unreadable captures and
/// removing a manifest an earlier run left beside `out_path`; and the captures' total size
/// (`None` when one is a pipe).
fn configure(args: &ExtractArgs, out_path: Option<&PathBuf>) -> Result<(Config, Option<u64>)> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(w) = args.workers {
        if w == 0 {
            bail!("--workers must be at least 1");
        }
        cfg.workers.count = w;
    }
    if let Some(f) = &args.filter {
        // libpcap's message for a bad expression, before any packet.
        crate::filter::Filter::compile(f).map_err(|m| anyhow!("--filter {f:?}: {m}"))?;
        cfg.capture.filter = Some(f.clone());
    }
    // Refuse unreadable captures before starting anything. A pipe (or another file that is
    // not a regular one) is only looked up: reading its header here would take bytes that
    // have no second reading.
    let mut total_bytes = Some(0u64);
    for c in &args.captures {
        match std::fs::metadata(c) {
            Ok(m) if !m.is_file() && !m.is_dir() => total_bytes = None,
            _ => {
                let size = CaptureReader::open(c)?.size();
                total_bytes = total_bytes.map(|t| t + size);
            }
        }
    }
    if cfg.flows.prefault.is_none() {
        // Captures this large fill the table: its pages are better zeroed at start, on every
        // core, than one first touch at a time inside the worker's lookups.
        let table_bytes = cfg.flows.capacity as u64 * 1024 * cfg.workers.count.max(1) as u64;
        // A pipe's size is not known: its capture may be long.
        cfg.flows.prefault = Some(total_bytes.is_none_or(|t| t >= table_bytes));
    }
    if let Some(o) = out_path {
        crate::sink::Format::from_path(o).map_err(|e| anyhow!(e))?;
        // A manifest left by an earlier run must not describe these records.
        let m = crate::manifest::path_for(o);
        if m.exists() {
            std::fs::remove_file(&m)
                .with_context(|| format!("cannot remove the old manifest {}", m.display()))?;
        }
    }
    if let Some(m) = &args.model {
        cfg.model.get_or_insert_with(Default::default).dir = Some(m.clone());
    }
    if let Some(a) = &args.alerts {
        cfg.sinks.alerts = Some(a.clone());
    }
    if let Some(c) = &args.ipfix {
        cfg.sinks.ipfix = Some(c.clone());
    }
    Ok((cfg, total_bytes))
}

/// The output side. `--out` is one complete file that the manifest describes: replaced. The
/// alerts file (`[sinks] alerts`, `--alerts`) is appended to, as in `weir run`.
fn start_output(
    pipeline: &mut Pipeline,
    out_path: Option<PathBuf>,
    ipfix: Option<&crate::sink::ipfix::IpfixConfig>,
) -> Result<Output> {
    let sinks = &pipeline.cfg.sinks;
    let files = crate::output::SinkFiles {
        rotation: sinks.rotation(),
        records: crate::sink::TextOptions {
            flush: std::time::Duration::from_secs_f64(sinks.flush_s),
            ..Default::default()
        },
        alerts: sinks.text_options("alerts.jsonl".as_ref(), crate::sink::Start::Append),
    };
    Output::start_files(
        out_path,
        files,
        pipeline.cfg.sinks.alerts.clone(),
        pipeline.cfg.sinks.alerts_format,
        pipeline.cfg.model.as_ref(),
        &mut pipeline.schema,
        ipfix,
    )
}

/// Fail the run for records lost on the way out, write errors, an interrupt or a capture not
/// read to its end (the flows of every packet read are written first).
fn check(total: &crate::stats::WorkerStats, out: &OutputStats, fed: &Fed) -> Result<()> {
    if out.records != total.records || out.packets != total.accepted {
        bail!(
            "records lost in the output stage: workers finished {} flows ({} packets), {} written ({} packets)",
            total.records, total.accepted, out.records, out.packets
        );
    }
    if let Some(e) = &out.first_error {
        bail!("{} records could not be written: {e}", out.write_errors);
    }
    if fed.interrupted {
        bail!(
            "interrupted after {} packets; the flows seen so far were written",
            fed.packets
        );
    }
    if !fed.capture_errors.is_empty() {
        bail!(
            "{}; the flows of every packet read were written",
            fed.capture_errors.join("; ")
        );
    }
    Ok(())
}

/// What a worker of `weir extract` polls: its queue of the feeder's port, the feeder's end
/// flag and input clock.
struct FeedSide {
    rxq: RxQueue,
    /// Raised after the feeder's last enqueue.
    done: Arc<AtomicBool>,
    /// The input's time (ns) up to which every packet has been enqueued.
    input_clock: Arc<AtomicU64>,
    meta: MetaField,
}

/// A worker's life in `weir extract`: poll its queue until the feeder is done and the queue
/// empty, following the input's clock while it is empty; then flush.
fn extract_worker(
    i: usize,
    pipeline: &Pipeline,
    (sink, recycled): (
        crossbeam_channel::Sender<Vec<crate::flow::record::FlowRecord>>,
        crossbeam_channel::Receiver<Vec<crate::flow::record::FlowRecord>>,
    ),
    alerts: crossbeam_channel::Sender<String>,
    mut feed: FeedSide,
) -> WorkerReport {
    // Workers receive `workers.burst` packets at a time, as in `weir run`.
    let mut burst = Burst::new();
    let want = usize::from(pipeline.cfg.workers.burst);
    let mut idle = Backoff::default();
    let mut worker = match pipeline.worker(i as u16, sink, alerts) {
        Ok(w) => w,
        Err(e) => {
            // Drain the queue so the feeder never waits on a dead worker.
            while !feed.done.load(Ordering::Acquire)
                || feed.rxq.rx_burst_up_to(&mut burst, want) > 0
            {
                if burst.is_empty() {
                    idle.wait();
                } else {
                    idle.reset();
                }
                burst.clear();
            }
            return WorkerReport::failed(i as u16, format!("{e:#}"));
        }
    };
    worker.attach_recycling(recycled);
    let mut done_seen = false;
    let mut told = 0u64;
    let panic_at = crate::dead_worker::test_panic_at(i);
    // Three bursts in flight, as a pipeline: `next` is taken from the queue and its mbuf
    // headers asked for; `ahead`, whose headers arrived meanwhile, has its frames' first lines
    // asked for; `burst` is processed. The feeder wrote the headers, and read each frame's
    // first line, on another core: each was a miss at the first read of its frame, and now
    // arrives during a whole burst's work.
    let mut ahead = Burst::new();
    let mut next = Burst::new();
    loop {
        // Read before polling: every packet up to this time is then in the queue, so an empty
        // queue means this worker has nothing older left (once the bursts held are processed).
        let clock = feed.input_clock.load(Ordering::Acquire);
        let mut t = worker.burst_start();
        let n = feed.rxq.rx_burst_up_to(&mut next, want);
        next.iter().for_each(Mbuf::prefetch_header);
        ahead.iter().for_each(Mbuf::prefetch_data);
        // `ahead` waits for the next round, unless nothing newer came: then it goes now too.
        let due = if n > 0 { 1 } else { 2 };
        for b in [&mut burst, &mut ahead].into_iter().take(due) {
            if !b.is_empty() {
                worker.process_burst(b.iter().map(|m| frame_of(m, &feed.meta)), t);
                b.clear();
                crate::dead_worker::maybe_test_panic(i, panic_at, worker.stats.packets);
                t = worker.burst_start();
            }
        }
        if n == 0 {
            if clock > told {
                told = clock;
                worker.advance_time(clock);
            }
            if done_seen {
                break;
            }
            // Everything enqueued before the flag was raised is visible after it.
            done_seen = feed.done.load(Ordering::Acquire);
            idle.wait();
            continue;
        }
        idle.reset();
        // burst <- ahead <- next; the emptied burst is the next `next`.
        std::mem::swap(&mut burst, &mut ahead);
        std::mem::swap(&mut ahead, &mut next);
    }
    worker.flush_all();
    WorkerReport::of(&worker)
}

/// A frame as the worker sees it: data and the feeder's exact metadata.
#[inline]
fn frame_of<'a>(m: &'a Mbuf, meta: &MetaField) -> RawPacket<'a> {
    let md = meta.get(m).unwrap_or(WeirMeta {
        ts_ns: 0,
        wire_len: m.pkt_len(),
    });
    RawPacket {
        data: m.data(),
        wire_len: md.wire_len,
        ts_ns: md.ts_ns,
        source: 0,
    }
}
