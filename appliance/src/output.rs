//! The output stage, off the data path: finished records from the workers, through the scorer
//! when a model is loaded, to the records sink; alerts to the alerts sink.
//!
//! ```text
//! workers --Vec<FlowRecord>--> dispatch --+--> scorer threads (ONNX Runtime) --+--> records sink
//!                                         +-------------- (no model) ---------+
//! workers, scorers --alert JSON lines--> alerts sink
//! records sink thread --also--> IPFIX exporter (sink/ipfix), when configured
//! ```
//!
//! Every channel is bounded and every hand-over blocks when the next stage is behind
//! (backpressure instead of loss), except where the model's overload policy says
//! `emit_unscored`: then a record skips the scorer, marked and counted, but is still written.
//!
//! **Model reload** ([`Output::reload_flag`], raised by SIGHUP in `weir run`): the dispatch
//! thread loads the model directory again into a new scorer session and swaps it in between
//! two batches; the old session is closed and drains what it holds to the same records channel
//! on its own thread, so no record is lost or written twice. A model whose score columns differ
//! from the running one's is refused (the records file's columns are fixed at start), as is
//! one that fails to load; the running model then stays.

use crate::flow::record::{FlowRecord, RecordSchema};
use crate::metrics::{AlertCounts, ReloadCounts};
use crate::scoring::{ScoringConfig, ScoringService, ScoringStats, StatsSnapshot};
use crate::sink::{self, RecordSink};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Select, Sender, TryRecvError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the sink and alerts threads flush and rotate by time, records or not.
const TICK: Duration = Duration::from_millis(100);

/// How the output stage's files are started, flushed and rotated.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkFiles {
    /// A Parquet dataset's rotation.
    pub rotation: sink::Rotation,
    /// A CSV or JSON Lines records file.
    pub records: sink::TextOptions,
    /// The alerts file (JSON Lines).
    pub alerts: sink::TextOptions,
}

/// Totals of what the output stage wrote.
#[derive(Debug, Default, Clone)]
pub struct OutputStats {
    /// Records written, flow and interval records alike.
    pub records: u64,
    /// Of `records`, the interval records.
    pub interval_records: u64,
    /// Packets counted in the flow records written (must equal the packets the workers
    /// accepted; interval records count them a second time, so they are left out).
    pub packets: u64,
    pub write_errors: u64,
    /// Records lost to failed writes (a Parquet row group that could not be written: its
    /// file was closed with the row groups before it).
    pub records_lost: u64,
    pub first_error: Option<String>,
    pub alerts: u64,
    pub scoring: Option<StatsSnapshot>,
    /// What the IPFIX exporter did (send errors are counted there, not in `write_errors`:
    /// export is best effort and never fails the run).
    pub ipfix: Option<crate::sink::ipfix::IpfixStats>,
}

pub struct Output {
    /// Workers send their finished records here, a burst's worth at a time.
    pub tx: Sender<Vec<FlowRecord>>,
    /// Alert lines (JSON objects, no newline) from anywhere.
    pub alerts: Sender<String>,
    /// Set it (SIGHUP) to reload the model directory; the dispatch thread clears it.
    pub reload_flag: Arc<AtomicBool>,
    /// Reloads done and refused.
    pub reloads: Arc<ReloadCounts>,
    /// The scoring counters (shared across reloads), when a model is loaded.
    pub scoring_stats: Option<Arc<ScoringStats>>,
    /// Alerts written, by kind.
    pub alert_counts: Arc<AlertCounts>,
    /// Records written so far.
    pub records_written: Arc<AtomicU64>,
    /// Set them (SIGUSR1) to close and reopen the records and alerts files (after logrotate
    /// moved them); the sink and alerts threads clear them.
    pub reopen_flags: [Arc<AtomicBool>; 2],
    /// (name, version, source) of the model loaded at start, for the data manifest.
    pub model: Option<(String, String, String)>,
    dispatch: JoinHandle<Option<StatsSnapshot>>,
    sink: JoinHandle<OutputStats>,
    alert_writer: JoinHandle<(u64, Option<String>)>,
}

/// What the dispatch thread needs to load the model again.
struct Reloader {
    cfg: ScoringConfig,
    /// The schema before any score column (what the model is bound against).
    base: RecordSchema,
    /// The running schema: a new model must give the same score columns.
    running: RecordSchema,
    out: Sender<FlowRecord>,
    alerts: Sender<String>,
    stats: Arc<ScoringStats>,
    counts: Arc<ReloadCounts>,
}

/// Load the model again on a thread of its own; the result arrives on the returned channel.
fn start_loading(r: &Arc<Reloader>) -> Option<Receiver<Result<ScoringService>>> {
    let (tx, rx) = bounded(1);
    let r = r.clone();
    match std::thread::Builder::new()
        .name("weir-model-load".into())
        .spawn(move || {
            let _ = tx.send(r.load());
        }) {
        Ok(_) => Some(rx),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the model loader thread; reload skipped");
            None
        }
    }
}

impl Reloader {
    /// Load the model directory again; the new session, or why it is refused.
    fn load(&self) -> Result<ScoringService> {
        let dir = self.cfg.dir.clone().expect("a loaded model has a dir");
        let mut schema = self.base.clone();
        let svc = ScoringService::start_with_stats(
            &dir,
            &mut schema,
            &self.cfg,
            self.out.clone(),
            Some(self.alerts.clone()),
            self.stats.clone(),
        )
        .with_context(|| format!("cannot load model {}", dir.display()))?;
        if schema.scores != self.running.scores || schema.classes != self.running.classes {
            let _ = svc.finish();
            bail!(
                "model {} has other outputs ({:?}, classes {:?}) than the running one ({:?}, classes {:?}); the records file's columns are fixed: restart weir to change them",
                dir.display(),
                schema.scores,
                schema.classes,
                self.running.scores,
                self.running.classes
            );
        }
        Ok(svc)
    }
}

impl Output {
    /// Start the output stage: a model (if `model` has a `dir`) whose score columns are added
    /// to `schema`, the records sink at `records` (format from the extension; `None` counts
    /// and discards), the alerts file at `alerts` (`None` discards alerts, counting them).
    pub fn start(
        records: Option<PathBuf>,
        alerts: Option<PathBuf>,
        model: Option<&ScoringConfig>,
        schema: &mut RecordSchema,
    ) -> Result<Output> {
        Self::start_with(
            records,
            sink::Rotation::default(),
            alerts,
            sink::eve::AlertsFormat::Jsonl,
            model,
            schema,
            None,
        )
    }

    /// [`Output::start`], with the rotation of a Parquet dataset records sink, and exporting
    /// every record to an IPFIX collector too when `ipfix` is given; alerts are written in
    /// `alerts_format`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with(
        records: Option<PathBuf>,
        rotation: sink::Rotation,
        alerts: Option<PathBuf>,
        alerts_format: sink::eve::AlertsFormat,
        model: Option<&ScoringConfig>,
        schema: &mut RecordSchema,
        ipfix: Option<&crate::sink::ipfix::IpfixConfig>,
    ) -> Result<Output> {
        let files = SinkFiles {
            rotation,
            ..Default::default()
        };
        Self::start_files(records, files, alerts, alerts_format, model, schema, ipfix)
    }

    /// [`Output::start_with`], with how the CSV / JSON Lines records file and the alerts file
    /// are started (appended to or replaced), flushed and rotated.
    #[allow(clippy::too_many_arguments)]
    pub fn start_files(
        records: Option<PathBuf>,
        files: SinkFiles,
        alerts: Option<PathBuf>,
        alerts_format: sink::eve::AlertsFormat,
        model: Option<&ScoringConfig>,
        schema: &mut RecordSchema,
        ipfix: Option<&crate::sink::ipfix::IpfixConfig>,
    ) -> Result<Output> {
        let (alert_tx, alert_rx) = bounded::<String>(4096);
        let (rec_tx, rec_rx) = bounded::<FlowRecord>(8192);
        let reloads = Arc::new(ReloadCounts::default());
        let mut reloader: Option<Arc<Reloader>> = None;
        let mut model_info = None;
        let scoring = match model.filter(|m| m.dir.is_some()) {
            Some(cfg) => {
                let dir = cfg.dir.clone().expect("filtered");
                let base = schema.clone();
                let stats = Arc::new(ScoringStats::new());
                let svc = ScoringService::start_with_stats(
                    &dir,
                    schema,
                    cfg,
                    rec_tx.clone(),
                    Some(alert_tx.clone()),
                    stats.clone(),
                )
                .with_context(|| format!("cannot load model {}", dir.display()))?;
                schema.scored = true;
                let m = svc.model();
                model_info = Some((
                    m.tag.name.clone(),
                    m.tag.version.clone(),
                    m.location.origin.clone(),
                ));
                reloader = Some(Arc::new(Reloader {
                    cfg: cfg.clone(),
                    base,
                    running: schema.clone(),
                    out: rec_tx.clone(),
                    alerts: alert_tx.clone(),
                    stats,
                    counts: reloads.clone(),
                }));
                tracing::info!(
                    model = %dir.display(),
                    source = %svc.model().location.origin,
                    batch = cfg.batch,
                    threads = cfg.threads,
                    "scoring finished flows"
                );
                Some(svc)
            }
            None => None,
        };
        let mut records_sink: Option<Box<dyn RecordSink>> = match &records {
            Some(p) => Some(
                sink::open_with(p, schema, files.rotation, files.records)
                    .map_err(|e| anyhow!(e))?,
            ),
            None => None,
        };
        let mut exporter = match ipfix {
            Some(c) => {
                Some(crate::sink::ipfix::IpfixSink::open(c, schema).map_err(|e| anyhow!(e))?)
            }
            None => None,
        };
        let mut alert_file = match &alerts {
            Some(p) => Some(
                sink::textfile::TextFile::open(p, Vec::new(), files.alerts)
                    .with_context(|| format!("cannot create alerts file {}", p.display()))?,
            ),
            None => None,
        };
        // Records the scorer has scored come one by one; without a model, the workers'
        // batches go to the sink thread whole.
        let (batch_tx, batch_rx) = bounded::<Vec<FlowRecord>>(64);
        let reopen_flags = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        let (tx, rx): (Sender<Vec<FlowRecord>>, Receiver<Vec<FlowRecord>>) = bounded(1024);
        let scoring_stats = reloader.as_ref().map(|r| r.stats.clone());
        let reload_flag = Arc::new(AtomicBool::new(false));
        let records_written = Arc::new(AtomicU64::new(0));
        let alert_counts = Arc::new(AlertCounts::default());

        let flag = reload_flag.clone();
        let dispatch = std::thread::Builder::new()
            .name("weir-dispatch".into())
            .spawn(move || {
                let mut scoring = scoring;
                let mut input = scoring.as_ref().map(|s| s.input());
                let mut draining: Vec<JoinHandle<()>> = Vec::new();
                let mut loading: Option<Receiver<Result<ScoringService>>> = None;
                loop {
                    // A timeout so a reload request is seen on a quiet link too.
                    let batch = match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(b) => Some(b),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    if let Some(batch) = batch {
                        let ok = match &input {
                            Some(i) => batch.into_iter().all(|rec| i.submit(rec)),
                            None => batch_tx.send(batch).is_ok(),
                        };
                        if !ok {
                            tracing::error!("the records sink stopped; records are being lost");
                        }
                    }
                    // A reload request starts a loader thread, so the records keep flowing
                    // while ONNX Runtime builds the new session.
                    if flag.swap(false, Ordering::AcqRel) && loading.is_none() {
                        match &reloader {
                            Some(r) => loading = start_loading(r),
                            None => tracing::warn!("reload requested but no model is configured"),
                        }
                    }
                    let ready = match &loading {
                        Some(l) => match l.try_recv() {
                            Ok(res) => Some(res),
                            Err(TryRecvError::Empty) => None,
                            Err(TryRecvError::Disconnected) => {
                                Some(Err(anyhow!("the model loader thread died")))
                            }
                        },
                        None => None,
                    };
                    if let (Some(res), Some(r)) = (ready, &reloader) {
                        loading = None;
                        match res {
                            Ok(svc) => {
                                // Swap between two batches: every record submitted so far is
                                // in the old session's queue, every later one goes to the new.
                                input = Some(svc.input());
                                if let Some(old) = scoring.replace(svc) {
                                    draining.push(std::thread::spawn(move || {
                                        let _ = old.finish();
                                    }));
                                }
                                r.counts.ok.fetch_add(1, Ordering::Relaxed);
                                tracing::info!("model reloaded; the previous session drains");
                            }
                            Err(e) => {
                                r.counts.failed.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(
                                    error = %format!("{e:#}"),
                                    "model reload refused; the running model stays"
                                );
                            }
                        }
                    }
                }
                // A session loaded while stopping scored nothing: close it.
                if let Some(Ok(svc)) = loading.map(|l| l.recv().unwrap_or_else(|e| Err(anyhow!(e))))
                {
                    let _ = svc.finish();
                }
                drop(input);
                drop(rec_tx);
                drop(batch_tx);
                drop(reloader);
                for h in draining {
                    let _ = h.join();
                }
                scoring.map(|s| s.finish())
            })
            .context("cannot start the dispatch thread")?;

        let written = records_written.clone();
        let reopen = reopen_flags[0].clone();
        let sink = std::thread::Builder::new()
            .name("weir-sink".into())
            .spawn(move || {
                let mut st = OutputStats::default();
                let error = |st: &mut OutputStats, what: &str, e: std::io::Error| {
                    st.write_errors += 1;
                    if st.first_error.is_none() {
                        tracing::error!(error = %e, "{what}");
                        st.first_error = Some(e.to_string());
                    }
                };
                let write =
                    |st: &mut OutputStats,
                     rec: &FlowRecord,
                     sink: &mut Option<Box<dyn RecordSink>>,
                     exporter: &mut Option<crate::sink::ipfix::IpfixSink>| {
                        if let Some(x) = exporter.as_mut() {
                            x.export(rec);
                        }
                        st.records += 1;
                        if rec.interval.is_some() {
                            st.interval_records += 1;
                        } else {
                            st.packets += rec.bidirectional.packets;
                        }
                        if let Some(s) = sink.as_mut() {
                            if let Err(e) = s.write(rec) {
                                error(st, "cannot write flow record", e);
                            }
                        }
                    };
                let mut sel = Select::new();
                let batches = sel.recv(&batch_rx);
                let scored = sel.recv(&rec_rx);
                let mut open = 2;
                let mut last_tick = Instant::now();
                while open > 0 {
                    // A timeout so a sink flushes and rotates its files by time, and the IPFIX
                    // exporter sends a waiting message, on a quiet link too.
                    match sel.select_timeout(TICK) {
                        Ok(op) if op.index() == batches => match op.recv(&batch_rx) {
                            Ok(batch) => {
                                for rec in &batch {
                                    write(&mut st, rec, &mut records_sink, &mut exporter);
                                }
                                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            }
                            Err(_) => {
                                sel.remove(batches);
                                open -= 1;
                            }
                        },
                        Ok(op) => match op.recv(&rec_rx) {
                            // The only other operation: the scorer's records.
                            Ok(rec) => {
                                write(&mut st, &rec, &mut records_sink, &mut exporter);
                                written.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                sel.remove(scored);
                                open -= 1;
                            }
                        },
                        Err(_) => {}
                    }
                    if last_tick.elapsed() >= TICK {
                        last_tick = Instant::now();
                        if let Some(x) = exporter.as_mut() {
                            x.tick();
                        }
                        if let Some(s) = records_sink.as_mut() {
                            if reopen.swap(false, Ordering::AcqRel) {
                                match s.reopen() {
                                    Ok(()) => tracing::info!("records file reopened"),
                                    Err(e) => error(&mut st, "cannot reopen the records file", e),
                                }
                            }
                            if let Err(e) = s.tick() {
                                error(&mut st, "cannot flush or rotate the records file", e);
                            }
                        }
                    }
                }
                if let Some(s) = records_sink.as_mut() {
                    if let Err(e) = s.finish() {
                        st.write_errors += 1;
                        tracing::error!(error = %e, "cannot finish the records file");
                        st.first_error.get_or_insert(e.to_string());
                    }
                    st.records_lost = s.lost();
                    if st.records_lost > 0 {
                        tracing::error!(records = st.records_lost, "records lost to failed writes");
                    }
                }
                st.ipfix = exporter.as_mut().map(|x| x.finish());
                st
            })
            .context("cannot start the sink thread")?;

        let counts = alert_counts.clone();
        let reopen = reopen_flags[1].clone();
        let alert_writer = std::thread::Builder::new()
            .name("weir-alerts".into())
            .spawn(move || {
                let mut n = 0u64;
                let mut err = None;
                let mut last_tick = Instant::now();
                loop {
                    match alert_rx.recv_timeout(TICK) {
                        Ok(line) => {
                            n += 1;
                            counts.count_line(&line);
                            if let Some(f) = alert_file.as_mut() {
                                let line = match alerts_format {
                                    sink::eve::AlertsFormat::Eve => {
                                        sink::eve::to_eve(&line).unwrap_or(line)
                                    }
                                    sink::eve::AlertsFormat::Jsonl => line,
                                };
                                let buf = f.line();
                                buf.extend_from_slice(line.as_bytes());
                                buf.push(b'\n');
                                if let Err(e) = f.end_line() {
                                    err.get_or_insert(e.to_string());
                                }
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if last_tick.elapsed() >= TICK {
                        last_tick = Instant::now();
                        if let Some(f) = alert_file.as_mut() {
                            if reopen.swap(false, Ordering::AcqRel) {
                                if let Err(e) = f.reopen() {
                                    err.get_or_insert(e.to_string());
                                }
                            }
                            if let Err(e) = f.tick() {
                                err.get_or_insert(e.to_string());
                            }
                        }
                    }
                }
                if let Some(f) = alert_file.as_mut() {
                    if let Err(e) = f.finish() {
                        err.get_or_insert(e.to_string());
                    }
                }
                (n, err)
            })
            .context("cannot start the alerts thread")?;

        Ok(Output {
            tx,
            alerts: alert_tx,
            reload_flag,
            reloads,
            scoring_stats,
            alert_counts,
            records_written,
            reopen_flags,
            model: model_info,
            dispatch,
            sink,
            alert_writer,
        })
    }

    /// Wait until every record and alert is written. Every clone of `tx` and `alerts` held
    /// elsewhere (workers) must be dropped first.
    pub fn finish(self) -> OutputStats {
        drop(self.tx);
        let scoring = self.dispatch.join().unwrap_or(None);
        let mut st = self.sink.join().unwrap_or_default();
        drop(self.alerts);
        let (alerts, err) = self.alert_writer.join().unwrap_or((0, None));
        st.alerts = alerts;
        st.scoring = scoring;
        if let Some(e) = err {
            st.write_errors += 1;
            st.first_error.get_or_insert(format!("alerts: {e}"));
        }
        st
    }
}
