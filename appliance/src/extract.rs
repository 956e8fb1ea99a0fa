//! `weir extract`: flow records from capture files, through the real DPDK data path.
//!
//! The captures are not read by a net_pcap port: net_pcap loses the original wire length and
//! has no end-of-file signal (see `../shared/notes/dpdk-offline.md`). Instead a feeder on the
//! main lcore reads them (pcap or pcapng), copies each packet into an mbuf with its exact
//! metadata (wire length, nanosecond time) in weir's dynamic field, and enqueues it to a ring.
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

use crate::capture::{to_ethernet, CaptureReader};
use crate::cli::ExtractArgs;
use crate::config::Config;
use crate::cost::CostTable;
use crate::launch::{Burst, EalMode, Launch, WorkerReport};
use crate::output::Output;
use crate::pipeline::Pipeline;
use crate::worker::{RawPacket, WorkerStats};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use weir_dpdk::{Mbuf, Mempool, MetaField, Port, PortConfig, Ring, RxQueue, WeirMeta, SOCKET_ANY};
use weir_plugin_api::{FlowKeyV1, PacketV1};

/// Ring size per worker (mbufs in flight between the feeder and one worker).
const RING_SIZE: u32 = 4096;
/// Data room of the regular mbufs (headroom included).
const DATA_ROOM: u16 = 2048 + 128;
/// Data room of the few mbufs for frames larger than a regular one (TSO/GRO captures).
const BIG_DATA_ROOM: u16 = u16::MAX;
/// The feeder publishes the input's time every this many packets (and at the end): each time
/// it first enqueues the partial bursts of every worker.
const CLOCK_EVERY: u64 = 1024;

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
pub fn extract(args: &ExtractArgs, out_path: Option<std::path::PathBuf>) -> Result<Summary> {
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
    // Refuse unreadable captures before starting anything.
    let mut total_bytes = 0u64;
    for c in &args.captures {
        let r = CaptureReader::open(c)?;
        total_bytes += r.size();
    }
    if let Some(o) = &out_path {
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
    // `weir cost` counts records only: no export.
    let ipfix = match out_path {
        Some(_) => cfg
            .sinks
            .ipfix_config()
            .map_err(|(k, m)| anyhow!("--ipfix / {k}: {m}"))?,
        None => None,
    };
    let n_workers = cfg.workers.count as usize;
    let mut pipeline = Pipeline::new(cfg, args.plugin_dir.clone(), args.no_plugins)?;
    // The model and the sinks are checked before DPDK starts: a bad model is refused at once.
    // `--out` is one complete file that the manifest describes: replaced. The alerts file
    // (`[sinks] alerts`, `--alerts`) is appended to, as in `weir run`.
    let sinks = &pipeline.cfg.sinks;
    let files = crate::output::SinkFiles {
        rotation: sinks.rotation(),
        records: crate::sink::TextOptions {
            flush: std::time::Duration::from_secs_f64(sinks.flush_s),
            ..Default::default()
        },
        alerts: sinks.text_options("alerts.jsonl".as_ref(), crate::sink::Start::Append),
    };
    let output = Output::start_files(
        out_path.clone(),
        files,
        pipeline.cfg.sinks.alerts.clone(),
        pipeline.cfg.sinks.alerts_format,
        pipeline.cfg.model.as_ref(),
        &mut pipeline.schema,
        ipfix.as_ref(),
    )?;
    let model_info = output.model.clone();
    let pipeline = Arc::new(pipeline);
    let cfg = &pipeline.cfg;

    let mut launch = Launch::start(cfg, EalMode::Offline)?;
    let meta = launch.meta;
    let burst = usize::from(cfg.workers.burst);
    let pool = Mempool::new_pktmbuf(
        "weir_feed",
        (RING_SIZE * n_workers as u32 + 4 * burst as u32 * n_workers as u32 + 1024)
            .next_power_of_two()
            - 1,
        256,
        DATA_ROOM,
        SOCKET_ANY,
    )?;
    let big_pool = Mempool::new_pktmbuf("weir_feed_big", 127, 0, BIG_DATA_ROOM, SOCKET_ANY)?;
    let mut rings = Vec::with_capacity(n_workers);
    for i in 0..n_workers {
        rings.push(Ring::new(&format!("weir_feed{i}"), RING_SIZE, SOCKET_ANY)?);
    }
    let mut port = Port::from_rings(
        "weir_feed",
        &rings.iter().collect::<Vec<_>>(),
        &[],
        SOCKET_ANY,
    )?;
    port.configure(&PortConfig {
        rx_queues: n_workers as u16,
        tx_queues: 0,
        rss: None,
    })?;
    let mut queues = Vec::with_capacity(n_workers);
    for q in 0..n_workers {
        queues.push(port.rx_queue_setup(q as u16, 1024, SOCKET_ANY, &pool)?);
    }
    port.start()?;
    tracing::info!(
        workers = n_workers,
        port = port.name(),
        "extract: capture feeder -> net_ring port -> {} worker(s)",
        n_workers
    );

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
        let died = worker_died.clone();
        launch.spawn(
            i,
            move || extract_worker(i, &pipeline, sink, alerts, feed),
            move || died.store(true, Ordering::Release),
        )?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let started = Instant::now();
    let feed = feed(
        &args.captures,
        &pool,
        &big_pool,
        &meta,
        &mut rings,
        burst,
        &stop,
        &input_clock,
        &worker_died,
        progress_bar(args, total_bytes),
    );
    // Whatever happened, let the workers finish and flush what they got.
    tracing::debug!(elapsed = ?started.elapsed(), "feeder done");
    done.store(true, Ordering::Release);
    let reports = launch.wait();
    tracing::debug!(elapsed = ?started.elapsed(), "workers done");
    let out = output.finish();
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
        eprintln!(
            "weir extract: {} packets ({} in flows, {} skipped) -> {} flows in {} in {:.2} s ({:.0} packets/s)",
            fed.packets + fed.unsupported_linktype,
            total.accepted,
            total.skipped.total() + total.table_full + fed.unsupported_linktype,
            out.records - out.interval_records,
            out_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(not written)".into()),
            elapsed.as_secs_f64(),
            fed.packets as f64 / elapsed.as_secs_f64().max(1e-9),
        );
        if out.interval_records > 0 {
            eprintln!("  and {} interval records", out.interval_records);
        }
        for (name, n) in total.skipped.iter().filter(|(_, n)| *n > 0) {
            eprintln!("  skipped {name}: {n}");
        }
        if total.skipped.ipv4_truncated > 0 {
            eprintln!(
                "  ipv4_truncated (cut on the wire, counted in their flows): {}",
                total.skipped.ipv4_truncated
            );
        }
        if let Some(x) = &out.ipfix {
            eprintln!(
                "  ipfix: {} records in {} messages ({} template messages), {} send errors ({} records not sent)",
                x.records_sent, x.messages_sent, x.template_messages, x.send_errors, x.records_unsent
            );
        }
        for e in &fed.capture_errors {
            eprintln!("  not read to its end: {e}");
        }
        if fed.unsupported_linktype > 0 {
            eprintln!(
                "  skipped unsupported_linktype: {}",
                fed.unsupported_linktype
            );
        }
        if total.evicted > 0 || total.table_full > 0 {
            eprintln!(
                "  flow table full: {} flows evicted, {} packets not tracked",
                total.evicted, total.table_full
            );
        }
    }
    let merged = reports.cost();
    let cost_table = merged.format(Some(weir_dpdk::tsc_hz() as f64));
    if let Some(sc) = &out.scoring {
        if !args.quiet {
            eprintln!(
                "scored {} flows in {} batches (latency p50 {} us, p99 {} us; {} skipped under overload, {} errors); {} alerts",
                sc.rows, sc.batches, sc.latency_p50_us, sc.latency_p99_us, sc.overload_skips, sc.error_rows, out.alerts
            );
        }
    }
    if let Some(p) = &args.stats {
        write_stats(p, &fed, &total, &out)?;
    }
    if out.records != total.records || out.packets != total.accepted {
        bail!(
            "records lost in the output stage: workers finished {} flows ({} packets), {} written ({} packets)",
            total.records, total.accepted, out.records, out.packets
        );
    }
    if let Some(e) = out.first_error {
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
    if let Some(o) = &out_path {
        let plugins = pipeline
            .registry
            .plugins()
            .iter()
            .map(|p| (p.desc.name.clone(), p.desc.version.clone(), p.path.clone()))
            .collect();
        crate::manifest::write(&crate::manifest::Inputs {
            records: o,
            record_count: out.records,
            captures: &args.captures,
            capture_hashes: Some(&fed.hashes),
            config: args.config.as_deref(),
            workers: n_workers as u32,
            plugin_dir: args.plugin_dir.as_deref(),
            no_plugins: args.no_plugins,
            plugins,
            model: model_info,
        })?;
    }
    Ok(Summary {
        packets: fed.packets,
        flows: out.records - out.interval_records,
        cost_table,
        cost: merged,
    })
}

/// `--stats FILE`: what the run did, as one JSON object. Every packet read is in exactly one
/// of `accepted`, `skipped` (by reason, `table_full` and `unsupported_linktype` included), and
/// the packets in the records written equal `accepted` when nothing was lost.
fn write_stats(
    path: &std::path::Path,
    fed: &Fed,
    total: &WorkerStats,
    out: &crate::output::OutputStats,
) -> Result<()> {
    let mut skipped = serde_json::Map::new();
    for (name, n) in total.skipped.iter() {
        skipped.insert(name.to_string(), n.into());
    }
    skipped.insert("table_full".into(), total.table_full.into());
    skipped.insert(
        "unsupported_linktype".into(),
        fed.unsupported_linktype.into(),
    );
    let skipped_total = total.skipped.total() + total.table_full + fed.unsupported_linktype;
    let scoring = out.scoring.as_ref().map(|s| {
        serde_json::json!({
            "rows": s.rows,
            "batches": s.batches,
            "overload_skips": s.overload_skips,
            "error_rows": s.error_rows,
        })
    });
    let v = serde_json::json!({
        "packets_read": fed.packets + fed.unsupported_linktype,
        "packets_received": total.packets,
        "accepted": total.accepted,
        "skipped_total": skipped_total,
        "skipped": skipped,
        "ipv4_truncated": total.skipped.ipv4_truncated,
        "capture_errors": fed.capture_errors,
        "truncated_to_mbuf": fed.truncated_to_mbuf,
        "flows_created": total.flows_created,
        "evicted": total.evicted,
        "flows": total.records - total.interval_records,
        "interval_records": total.interval_records,
        "records_written": out.records,
        "records_packets": out.packets,
        "write_errors": out.write_errors,
        "records_lost": out.records_lost,
        "alerts": out.alerts,
        "scoring": scoring,
        "ipfix": out.ipfix.as_ref().map(|x| serde_json::json!({
            "records_sent": x.records_sent,
            "messages_sent": x.messages_sent,
            "template_messages": x.template_messages,
            "send_errors": x.send_errors,
            "records_unsent": x.records_unsent,
            "records_too_large": x.records_too_large,
            "interval_records_skipped": x.interval_records_skipped,
        })),
        "interrupted": fed.interrupted,
        // Every counter the workers keep, summed (the same list `/metrics` publishes).
        "worker_counters": total.to_json(),
        "services": {
            "dns_answers": total.services.dns_answers,
            "dns_malformed": total.services.dns_malformed,
            "dns_learned": total.services.dns_learned,
            "dns_unsolicited": total.services.dns_unsolicited,
            "dns_replaced_live": total.services.dns_replaced_live,
            "flows_by_dns": total.services.flows_by_dns,
            "flows_by_prefix": total.services.flows_by_prefix,
            "flows_without_service": total.services.flows_without_service,
        },
    });
    let text = serde_json::to_string_pretty(&v)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write --stats {}", path.display()))
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
    sink: crossbeam_channel::Sender<Vec<crate::flow::record::FlowRecord>>,
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
    let mut done_seen = false;
    let mut told = 0u64;
    let panic_at = crate::dead_worker::test_panic_at(i);
    loop {
        // Read before polling: every packet up to this time is then in the queue, so an empty
        // queue means this worker has nothing older left.
        let clock = feed.input_clock.load(Ordering::Acquire);
        let t = worker.burst_start();
        let n = feed.rxq.rx_burst_up_to(&mut burst, want);
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
        worker.process_burst(burst.iter().map(|m| frame_of(m, &feed.meta)), t);
        burst.clear();
        crate::dead_worker::maybe_test_panic(i, panic_at, worker.stats.packets);
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
    }
}

/// A packet on its way into a ring: its mbuf (or why there is none), worker, wire length.
type Feeding = (Result<(Mbuf, bool)>, usize, u32);

#[derive(Default)]
struct Fed {
    packets: u64,
    /// Captures that could not be read to their end: what went wrong, and after how much.
    capture_errors: Vec<String>,
    unsupported_linktype: u64,
    truncated_to_mbuf: u64,
    interrupted: bool,
    /// (sha256, bytes) of each capture read to its end, in order.
    hashes: Vec<Option<(String, u64)>>,
}

/// Waiting with nothing to do: spin briefly (a burst is usually microseconds away), then
/// yield, then sleep, so an idle worker or a blocked feeder gives its CPU to the threads
/// doing work (on a machine with few cores they share one).
#[derive(Default)]
struct Backoff {
    polls: u32,
}

impl Backoff {
    const SPIN: u32 = 64;
    const YIELD: u32 = 256;

    #[inline]
    fn wait(&mut self) {
        self.polls = self.polls.saturating_add(1);
        if self.polls <= Self::SPIN {
            std::hint::spin_loop();
        } else if self.polls <= Self::YIELD {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    #[inline]
    fn reset(&mut self) {
        self.polls = 0;
    }
}

fn progress_bar(args: &ExtractArgs, total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if args.no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}

/// Read every capture into the rings. Returns when all was fed, on a signal (`stop`) or when
/// a worker died (`died`).
#[allow(clippy::too_many_arguments)]
fn feed(
    captures: &[std::path::PathBuf],
    pool: &Mempool,
    big_pool: &Mempool,
    meta: &MetaField,
    rings: &mut [Ring],
    burst: usize,
    stop: &AtomicBool,
    input_clock: &AtomicU64,
    died: &AtomicBool,
    pb: Option<indicatif::ProgressBar>,
) -> Result<Fed> {
    let n = rings.len();
    // Each worker's packets gathered for its ring, enqueued `workers.burst` at a time.
    let mut pending: Vec<Burst> = (0..n).map(|_| Burst::new()).collect();
    let mut fed = Fed::default();
    let mut scratch = Vec::with_capacity(65536);
    let mut last_ts = 0u64;
    let mut progress = 0u64;
    let mut pkt = PacketV1::EMPTY;
    let mut key = FlowKeyV1::default();
    for path in captures {
        // The manifest's hash of the capture, computed as it is read (no second pass).
        let mut rd = CaptureReader::hash_as_read(path)?;
        loop {
            if stop.load(Ordering::Relaxed) || died.load(Ordering::Acquire) {
                fed.interrupted = true;
                break;
            }
            let item = rd.next_with(|p| -> Option<Feeding> {
                progress += p.data.len() as u64 + 16;
                let frame = to_ethernet(p.linktype, p.data, &mut scratch)?;
                // NFStream's clock: packet time never goes backwards across the input.
                last_ts = last_ts.max(p.ts_ns);
                let worker =
                    crate::spread::worker_of_frame(frame, p.orig_len, n, &mut pkt, &mut key);
                let m = alloc_copy(pool, big_pool, frame, rings, &mut pending, died);
                Some((m, worker, p.orig_len))
            });
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    // A capture cut short or corrupt after some packets: what was read counts
                    // (its flows are written), the next captures are read, and the run ends
                    // with this error (and `capture_errors` in --stats).
                    tracing::warn!(error = %e, "capture not read to its end");
                    fed.capture_errors.push(e.to_string());
                    break;
                }
            };
            let Some(item) = item else { break };
            let Some((m, w, orig_len)) = item else {
                fed.unsupported_linktype += 1;
                continue;
            };
            let (mut m, truncated) = m?;
            if truncated {
                fed.truncated_to_mbuf += 1;
            }
            meta.set(
                &mut m,
                WeirMeta {
                    ts_ns: last_ts,
                    wire_len: orig_len,
                },
            );
            fed.packets += 1;
            if pending[w].push(m).is_err() {
                unreachable!("pending burst flushed when full");
            }
            if pending[w].len() >= burst {
                push_all(&mut rings[w], &mut pending[w], died);
            }
            if fed.packets % CLOCK_EVERY == 0 {
                publish_clock(rings, &mut pending, input_clock, last_ts, died);
            }
            if fed.packets % 4096 == 0 {
                if let Some(pb) = &pb {
                    pb.set_position(progress);
                }
            }
        }
        if fed.interrupted {
            break;
        }
        fed.hashes.push(rd.finish_hash());
    }
    publish_clock(rings, &mut pending, input_clock, last_ts, died);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if fed.truncated_to_mbuf > 0 {
        tracing::warn!(
            packets = fed.truncated_to_mbuf,
            "frames longer than {} bytes were cut to fit an mbuf (their wire length is kept)",
            BIG_DATA_ROOM as usize - 128
        );
    }
    Ok(fed)
}

/// Enqueue every pending burst, then tell the workers the input has been read up to `ts_ns`.
fn publish_clock(
    rings: &mut [Ring],
    pending: &mut [Burst],
    input_clock: &AtomicU64,
    ts_ns: u64,
    died: &AtomicBool,
) {
    for (w, p) in pending.iter_mut().enumerate() {
        push_all(&mut rings[w], p, died);
    }
    // Release: a worker that reads this time sees every packet enqueued before it.
    input_clock.store(ts_ns, Ordering::Release);
}

/// An mbuf holding a copy of `frame`. Waits (pushing what is pending so workers can free
/// mbufs) while the pool is empty: backpressure, never loss; unless a worker died (`died`),
/// whose ring would never give its mbufs back.
fn alloc_copy(
    pool: &Mempool,
    big_pool: &Mempool,
    frame: &[u8],
    rings: &mut [Ring],
    pending: &mut [Burst],
    died: &AtomicBool,
) -> Result<(Mbuf, bool)> {
    let big = frame.len() > DATA_ROOM as usize - 128;
    let p = if big { big_pool } else { pool };
    let mut idle = Backoff::default();
    let mut m = loop {
        if let Some(m) = p.alloc() {
            break m;
        }
        if died.load(Ordering::Acquire) {
            bail!("a worker panicked: feeding stopped");
        }
        for (w, b) in pending.iter_mut().enumerate() {
            push_all(&mut rings[w], b, died);
        }
        idle.wait();
    };
    let room = if big {
        BIG_DATA_ROOM as usize - 128
    } else {
        frame.len()
    };
    let len = frame.len().min(room);
    m.append(&frame[..len])?;
    Ok((m, len < frame.len()))
}

/// Enqueue everything in `burst`, waiting while the ring is full; once a worker died
/// (`died`) whatever is left is freed instead (the run is failing, and a dead worker's ring
/// never drains).
fn push_all(ring: &mut Ring, burst: &mut Burst, died: &AtomicBool) {
    let mut idle = Backoff::default();
    while !burst.is_empty() {
        match ring.enqueue_burst(burst) {
            Ok(0) if died.load(Ordering::Acquire) => {
                burst.clear();
                break;
            }
            Ok(0) => idle.wait(),
            Ok(_) => idle.reset(),
            Err(e) => {
                tracing::error!(error = %e, "cannot enqueue to the feed ring");
                break;
            }
        }
    }
}
