//! The dispatch thread of the output stage, and loading (and reloading) the model it scores
//! with.

use super::{ModelInfo, SinkBatch};
use crate::flow::record::{FlowRecord, RecordSchema};
use crate::metrics::ReloadCounts;
use crate::scoring::{ScoringConfig, ScoringService, ScoringStats, StatsSnapshot};
use crate::sink::{LineFormat, Lines};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the dispatch thread needs to load the model again.
pub(super) struct Reloader {
    cfg: ScoringConfig,
    /// The schema before any score column (what the model is bound against).
    base: RecordSchema,
    /// The running schema: a new model must give the same score columns.
    running: RecordSchema,
    out: Sender<FlowRecord>,
    alerts: Sender<String>,
    pub stats: Arc<ScoringStats>,
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

/// Load the model at start: its session (whose score columns are added to `schema`), what
/// reloading it takes, and (name, version, source) for the data manifest.
pub(super) fn start_model(
    cfg: &ScoringConfig,
    schema: &mut RecordSchema,
    rec_tx: &Sender<FlowRecord>,
    alert_tx: &Sender<String>,
    reloads: &Arc<ReloadCounts>,
) -> Result<(ScoringService, Arc<Reloader>, ModelInfo)> {
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
    let model_info = (
        m.tag.name.clone(),
        m.tag.version.clone(),
        m.location.origin.clone(),
    );
    let reloader = Arc::new(Reloader {
        cfg: cfg.clone(),
        base,
        running: schema.clone(),
        out: rec_tx.clone(),
        alerts: alert_tx.clone(),
        stats,
        counts: reloads.clone(),
    });
    tracing::info!(
        model = %dir.display(),
        source = %svc.model().location.origin,
        batch = cfg.batch,
        threads = cfg.threads,
        "scoring finished flows"
    );
    Ok((svc, reloader, model_info))
}

/// The dispatch thread: the workers' records to the scorer (or, without a model, straight to
/// the sink thread), and model reloads swapped in between two batches.
///
/// Without a model this thread has nothing else to do, and the sink thread formatting every
/// line is the output stage's bottleneck whenever records come faster than it writes them (a
/// whole table flushed at the end of a capture): so while a batch the sink thread must format
/// itself already waits for it, this thread formats the next ones' lines. The two threads then
/// share the formatting (the sink thread always has one batch of its own to format, this one
/// formats the rest), the batches stay in one queue (the file's order is the workers'), and a
/// sink that keeps up formats all of its lines itself, as before. (Formatting whenever the
/// queue was not empty moved the bottleneck here: the sink thread, left with lines to copy,
/// sat half idle.)
pub(super) struct Dispatch {
    pub rx: Receiver<Vec<FlowRecord>>,
    pub scoring: Option<ScoringService>,
    pub batch_tx: Sender<SinkBatch>,
    /// How the records sink makes its lines, when it writes lines (CSV, JSON Lines).
    pub line_format: Option<Box<dyn LineFormat>>,
    /// Lines the sink thread has written, for their memory.
    pub lines_back: Receiver<Lines>,
    /// Batches sent without lines that the sink thread has not taken yet.
    pub unformatted: Arc<AtomicUsize>,
    pub rec_tx: Sender<FlowRecord>,
    /// Batches emptied into the scorer go to the sink thread, to return scored records in.
    pub empties: Sender<Vec<FlowRecord>>,
    pub reloader: Option<Arc<Reloader>>,
    pub flag: Arc<AtomicBool>,
}

impl Dispatch {
    pub fn run(self) -> Option<StatsSnapshot> {
        let Dispatch {
            rx,
            mut scoring,
            batch_tx,
            line_format,
            lines_back,
            unformatted,
            rec_tx,
            empties,
            reloader,
            flag,
        } = self;
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
            if let Some(mut batch) = batch {
                let ok = match &input {
                    Some(i) => {
                        let ok = batch.drain(..).all(|rec| i.submit(rec));
                        let _ = empties.try_send(batch);
                        ok
                    }
                    None => {
                        let lines = match &line_format {
                            Some(f) if unformatted.load(Ordering::Acquire) > 0 => {
                                let mut l = lines_back.try_recv().unwrap_or_default();
                                l.format_all(f.as_ref(), &batch);
                                Some(l)
                            }
                            _ => {
                                unformatted.fetch_add(1, Ordering::AcqRel);
                                None
                            }
                        };
                        batch_tx
                            .send(SinkBatch {
                                records: batch,
                                lines,
                            })
                            .is_ok()
                    }
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
        if let Some(Ok(svc)) = loading.map(|l| l.recv().unwrap_or_else(|e| Err(anyhow!(e)))) {
            let _ = svc.finish();
        }
        drop(input);
        drop(rec_tx);
        drop(batch_tx);
        drop(empties);
        drop(reloader);
        for h in draining {
            let _ = h.join();
        }
        scoring.map(|s| s.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::schema::tests::full_record;

    /// Without a model: a batch goes to the sink thread unformatted while none of those waits
    /// there, and the batches behind it come with their lines made here, in order, the
    /// sink's own lines.
    #[test]
    fn behind_an_unformatted_batch_the_dispatch_thread_formats_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let schema = RecordSchema::default();
        let sink = crate::sink::open(&dir.path().join("r.csv"), &schema).unwrap();
        let (tx, rx) = bounded(8);
        let (batch_tx, batch_rx) = bounded(8);
        let (rec_tx, _rec_rx) = bounded(1);
        let (empties, _empties_rx) = bounded(1);
        let (_lines_tx, lines_back) = bounded(1);
        let unformatted = Arc::new(AtomicUsize::new(0));
        let d = Dispatch {
            rx,
            scoring: None,
            batch_tx,
            line_format: sink.line_format(),
            lines_back,
            unformatted: unformatted.clone(),
            rec_tx,
            empties,
            reloader: None,
            flag: Arc::new(AtomicBool::new(false)),
        };
        let batches: Vec<Vec<FlowRecord>> = (0..3)
            .map(|n| {
                (0..=n)
                    .map(|i| {
                        let mut r = full_record(&schema, None);
                        r.bidirectional.packets = 10 * n as u64 + i as u64;
                        r
                    })
                    .collect()
            })
            .collect();
        for b in &batches {
            tx.send(b.clone()).unwrap();
        }
        drop(tx);
        assert!(d.run().is_none());
        let got: Vec<SinkBatch> = batch_rx.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert!(
            got[0].lines.is_none(),
            "the first batch is the sink thread's to format"
        );
        assert_eq!(unformatted.load(Ordering::Acquire), 1);
        let f = sink.line_format().unwrap();
        for (g, b) in got.iter().zip(&batches) {
            let packets = |v: &[FlowRecord]| -> Vec<u64> {
                v.iter().map(|r| r.bidirectional.packets).collect()
            };
            assert_eq!(packets(&g.records), packets(b), "batches out of order");
        }
        for (g, b) in got[1..].iter().zip(&batches[1..]) {
            let l = g.lines.as_ref().expect("formatted behind a waiting batch");
            assert_eq!(l.len(), b.len());
            for (i, r) in b.iter().enumerate() {
                let mut want = Vec::new();
                f.format(r, &mut want);
                assert_eq!(l.line(i), &want[..]);
            }
        }
    }
}
