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

mod dispatch;
mod writers;

use crate::flow::record::{FlowRecord, RecordSchema};
use crate::metrics::{AlertCounts, ReloadCounts};
use crate::scoring::{ScoringConfig, ScoringStats, StatsSnapshot};
use crate::sink::{self, RecordSink};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use dispatch::{start_model, Dispatch};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use writers::{AlertWriter, SinkWriter};

/// Batches of records that can wait between the workers and the dispatch thread (each at
/// most the worker's flush batch of 256: 8 k records, whatever the number of workers), with
/// [`SINK_BATCHES_IN_FLIGHT`] more before the sink thread. A record of the default plugins is
/// about 2 KB, and every byte of a queue that fills (the sink is the slower side whenever a
/// whole table is flushed) is memory the kernel must find and zero: 320 batches were 160 MB,
/// a third of `weir extract`'s peak, while 48 absorb some 30 ms of the sink's work.
pub const RECORD_BATCHES_IN_FLIGHT: usize = 32;

/// Batches of records between the dispatch thread and the sink thread.
pub const SINK_BATCHES_IN_FLIGHT: usize = 16;

/// A batch of records on its way to the sink thread, with its lines when the dispatch thread
/// formatted them (see `Dispatch::run`).
pub(crate) struct SinkBatch {
    pub records: Vec<FlowRecord>,
    pub lines: Option<sink::Lines>,
}

/// (name, version, source) of a model, for the data manifest.
type ModelInfo = (String, String, String);

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
    /// Batches the sink thread wrote, for the workers to reuse their memory
    /// (`Worker::attach_recycling`).
    pub recycled: Receiver<Vec<FlowRecord>>,
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
    pub model: Option<ModelInfo>,
    dispatch: JoinHandle<Option<StatsSnapshot>>,
    sink: JoinHandle<OutputStats>,
    alert_writer: JoinHandle<(u64, Option<String>)>,
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
        let (scoring, reloader, model_info) = match model.filter(|m| m.dir.is_some()) {
            Some(cfg) => {
                let (svc, reloader, info) = start_model(cfg, schema, &rec_tx, &alert_tx, &reloads)?;
                (Some(svc), Some(reloader), Some(info))
            }
            None => (None, None, None),
        };
        let records_sink: Option<Box<dyn RecordSink>> = match &records {
            Some(p) => Some(
                sink::open_with(p, schema, files.rotation, files.records)
                    .map_err(|e| anyhow!(e))?,
            ),
            None => None,
        };
        let exporter = match ipfix {
            Some(c) => {
                Some(crate::sink::ipfix::IpfixSink::open(c, schema).map_err(|e| anyhow!(e))?)
            }
            None => None,
        };
        let alert_file = match &alerts {
            Some(p) => Some(
                sink::textfile::TextFile::open(p, Vec::new(), files.alerts)
                    .with_context(|| format!("cannot create alerts file {}", p.display()))?,
            ),
            None => None,
        };
        // Records the scorer has scored come one by one; without a model, the workers'
        // batches go to the sink thread whole.
        let (batch_tx, batch_rx) = bounded::<SinkBatch>(SINK_BATCHES_IN_FLIGHT);
        // Lines the dispatch thread formatted go back to it once written, for their memory.
        let (lines_back_tx, lines_back) = bounded::<sink::Lines>(SINK_BATCHES_IN_FLIGHT + 2);
        let line_format = records_sink.as_ref().and_then(|s| s.line_format());
        let unformatted = Arc::new(AtomicUsize::new(0));
        // A few written batches wait for the workers; more are freed on the sink thread.
        let (recycle, recycled) = bounded::<Vec<FlowRecord>>(8);
        // Batches the dispatch thread emptied into the scorer, for the sink thread to return
        // scored records in.
        let (empties_tx, empties) = bounded::<Vec<FlowRecord>>(8);
        let reopen_flags = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        let (tx, rx): (Sender<Vec<FlowRecord>>, Receiver<Vec<FlowRecord>>) =
            bounded(RECORD_BATCHES_IN_FLIGHT);
        let scoring_stats = reloader.as_ref().map(|r| r.stats.clone());
        let reload_flag = Arc::new(AtomicBool::new(false));
        let records_written = Arc::new(AtomicU64::new(0));
        let alert_counts = Arc::new(AlertCounts::default());

        let dispatch = Dispatch {
            rx,
            scoring,
            batch_tx,
            line_format,
            lines_back,
            unformatted: unformatted.clone(),
            rec_tx,
            empties: empties_tx,
            reloader,
            flag: reload_flag.clone(),
        };
        let dispatch = spawn("weir-dispatch", "dispatch", move || dispatch.run())?;
        let writer = SinkWriter {
            batch_rx,
            lines_back: lines_back_tx,
            unformatted,
            rec_rx,
            recycle,
            empties,
            records_sink,
            exporter,
            written: records_written.clone(),
            reopen: reopen_flags[0].clone(),
        };
        let sink = spawn("weir-sink", "sink", move || writer.run())?;
        let writer = AlertWriter {
            alert_rx,
            alert_file,
            alerts_format,
            counts: alert_counts.clone(),
            reopen: reopen_flags[1].clone(),
        };
        let alert_writer = spawn("weir-alerts", "alerts", move || writer.run())?;

        Ok(Output {
            tx,
            alerts: alert_tx,
            recycled,
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

/// Start a named thread of the output stage.
fn spawn<T: Send + 'static>(
    name: &str,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .with_context(|| format!("cannot start the {what} thread"))
}
