//! The output stage, off the data path: finished records from the workers, through the scorer
//! when a model is loaded, to the records sink; alerts to the alerts sink.
//!
//! ```text
//! workers --Vec<FlowRecord>--> dispatch --+--> scorer threads (ONNX Runtime) --+--> records sink
//!                                         +-------------- (no model) ---------+
//! workers, scorers --alert JSON lines--> alerts sink
//! ```
//!
//! Every channel is bounded and every hand-over blocks when the next stage is behind
//! (backpressure instead of loss), except where the model's overload policy says
//! `emit_unscored`: then a record skips the scorer, marked and counted, but is still written.

use crate::flow::record::{FlowRecord, RecordSchema};
use crate::scoring::{ScoringConfig, ScoringService, StatsSnapshot};
use crate::sink::{self, RecordSink};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::Write;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Totals of what the output stage wrote.
#[derive(Debug, Default, Clone)]
pub struct OutputStats {
    pub records: u64,
    /// Packets counted in the records written (must equal the packets the workers accepted).
    pub packets: u64,
    pub write_errors: u64,
    pub first_error: Option<String>,
    pub alerts: u64,
    pub scoring: Option<StatsSnapshot>,
}

pub struct Output {
    /// Workers send their finished records here, a burst's worth at a time.
    pub tx: Sender<Vec<FlowRecord>>,
    /// Alert lines (JSON objects, no newline) from anywhere.
    pub alerts: Sender<String>,
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
        let (alert_tx, alert_rx) = bounded::<String>(4096);
        let (rec_tx, rec_rx) = bounded::<FlowRecord>(8192);
        let scoring = match model.filter(|m| m.dir.is_some()) {
            Some(cfg) => {
                let dir = cfg.dir.clone().expect("filtered");
                let svc = ScoringService::start(
                    &dir,
                    schema,
                    cfg,
                    rec_tx.clone(),
                    Some(alert_tx.clone()),
                )
                .with_context(|| format!("cannot load model {}", dir.display()))?;
                schema.scored = true;
                tracing::info!(
                    model = %dir.display(),
                    batch = cfg.batch,
                    threads = cfg.threads,
                    "scoring finished flows"
                );
                Some(svc)
            }
            None => None,
        };
        let mut records_sink: Option<Box<dyn RecordSink>> = match &records {
            Some(p) => Some(sink::open(p, schema).map_err(|e| anyhow!(e))?),
            None => None,
        };
        let mut alert_file = match &alerts {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create alerts file {}", p.display()))?,
            )),
            None => None,
        };
        let (tx, rx): (Sender<Vec<FlowRecord>>, Receiver<Vec<FlowRecord>>) = bounded(1024);

        let dispatch = std::thread::Builder::new()
            .name("weir-dispatch".into())
            .spawn(move || {
                let input = scoring.as_ref().map(|s| s.input());
                for batch in rx {
                    for rec in batch {
                        let ok = match &input {
                            Some(i) => i.submit(rec),
                            None => rec_tx.send(rec).is_ok(),
                        };
                        if !ok {
                            tracing::error!("the records sink stopped; records are being lost");
                        }
                    }
                }
                drop(input);
                drop(rec_tx);
                scoring.map(|s| s.finish())
            })
            .context("cannot start the dispatch thread")?;

        let sink = std::thread::Builder::new()
            .name("weir-sink".into())
            .spawn(move || {
                let mut st = OutputStats::default();
                for rec in rec_rx {
                    st.records += 1;
                    st.packets += rec.bidirectional.packets;
                    if let Some(s) = records_sink.as_mut() {
                        if let Err(e) = s.write(&rec) {
                            st.write_errors += 1;
                            if st.first_error.is_none() {
                                tracing::error!(error = %e, "cannot write flow record");
                                st.first_error = Some(e.to_string());
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
                }
                st
            })
            .context("cannot start the sink thread")?;

        let alert_writer = std::thread::Builder::new()
            .name("weir-alerts".into())
            .spawn(move || {
                let mut n = 0u64;
                let mut err = None;
                for line in alert_rx {
                    n += 1;
                    if let Some(f) = alert_file.as_mut() {
                        if let Err(e) = writeln!(f, "{line}") {
                            err.get_or_insert(e.to_string());
                        }
                    }
                }
                if let Some(f) = alert_file.as_mut() {
                    if let Err(e) = f.flush() {
                        err.get_or_insert(e.to_string());
                    }
                }
                (n, err)
            })
            .context("cannot start the alerts thread")?;

        Ok(Output {
            tx,
            alerts: alert_tx,
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
