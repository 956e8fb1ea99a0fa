//! Scorer threads between the flow tables and the sinks.
//!
//! Finished records enter a bounded crossbeam channel ([`ScoringInput::submit`], stamped with
//! the time they were handed over: the flow's end as the appliance sees it). Each scorer
//! thread owns one ONNX Runtime session and runs a batch when it holds `batch` records or
//! when its oldest record has waited `max_delay_ms`, then sends every record, scored or not,
//! to the output channel the sink thread reads. No record is lost: when the input is full the
//! `[model] overload` policy either blocks the caller or sends the record on unscored with
//! `score_status = skipped_overload`; both are counted, and a failed run marks its records
//! `error` and forwards them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender, TrySendError};
use hdrhistogram::Histogram;

use super::alert::AlertRule;
use super::config::{Overload, ScoringConfig};
use super::error::{Result, ScoringError};
use super::scorer::{describe_schema, load, BoundModel, Scorer};
use crate::flow::record::{FlowRecord, RecordSchema, ScoreStatus};

/// Counters of the scoring stage (shared, read by metrics).
#[derive(Debug)]
pub struct ScoringStats {
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    pub overload_skips: AtomicU64,
    /// Failed model runs (their rows are forwarded with `score_status = error`).
    pub errors: AtomicU64,
    pub error_rows: AtomicU64,
    pub alerts: AtomicU64,
    /// Records waiting in the scoring queue, sampled by the scorer threads at each batch.
    pub queue_depth: AtomicU64,
    /// Microseconds from submit to scored, 1 us .. 60 s, 3 significant digits.
    latency_us: Mutex<Histogram<u64>>,
}

/// A copy of the counters and latency quantiles.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    pub batches: u64,
    pub rows: u64,
    pub overload_skips: u64,
    pub errors: u64,
    pub error_rows: u64,
    pub alerts: u64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_p999_us: u64,
    pub latency_max_us: u64,
}

impl Default for ScoringStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ScoringStats {
    pub fn new() -> ScoringStats {
        ScoringStats {
            batches: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            overload_skips: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            error_rows: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds"),
            ),
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        StatsSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            overload_skips: self.overload_skips.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            error_rows: self.error_rows.load(Ordering::Relaxed),
            alerts: self.alerts.load(Ordering::Relaxed),
            latency_p50_us: h.value_at_quantile(0.5),
            latency_p99_us: h.value_at_quantile(0.99),
            latency_p999_us: h.value_at_quantile(0.999),
            latency_max_us: h.max(),
        }
    }

    /// A copy of the latency histogram (microseconds).
    pub fn latency_histogram(&self) -> Histogram<u64> {
        self.latency_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

type Item = (Instant, FlowRecord);

/// The handle flow-emitting threads submit records through (cheap to clone).
#[derive(Clone)]
pub struct ScoringInput {
    tx: Sender<Item>,
    out: Sender<FlowRecord>,
    overload: Overload,
    stats: Arc<ScoringStats>,
}

impl ScoringInput {
    /// Hand a finished record to the scorers, applying the overload policy when the queue is
    /// full. Returns false only when the output channel is gone (the sinks stopped).
    pub fn submit(&self, rec: FlowRecord) -> bool {
        let item = (Instant::now(), rec);
        match self.overload {
            Overload::Block => match self.tx.send(item) {
                Ok(()) => true,
                Err(e) => self.forward_unscorable(e.into_inner().1),
            },
            Overload::EmitUnscored => match self.tx.try_send(item) {
                Ok(()) => true,
                Err(TrySendError::Full((_, mut rec))) => {
                    self.stats.overload_skips.fetch_add(1, Ordering::Relaxed);
                    rec.score_status = ScoreStatus::SkippedOverload;
                    rec.prediction = None;
                    rec.scores.clear();
                    self.out.send(rec).is_ok()
                }
                Err(TrySendError::Disconnected((_, rec))) => self.forward_unscorable(rec),
            },
        }
    }

    /// Every scorer thread is gone (a panic in ONNX Runtime's binding): the record still goes
    /// to the sinks, marked and counted as an error.
    fn forward_unscorable(&self, mut rec: FlowRecord) -> bool {
        self.stats.error_rows.fetch_add(1, Ordering::Relaxed);
        rec.score_status = ScoreStatus::Error;
        rec.prediction = None;
        rec.scores.clear();
        self.out.send(rec).is_ok()
    }
}

/// The running scorer threads.
pub struct ScoringService {
    input: Option<ScoringInput>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<ScoringStats>,
    model: Arc<BoundModel>,
}

impl ScoringService {
    /// Load the model (refusing any mismatch before traffic starts), fill `schema`'s score
    /// columns, and start `cfg.threads` scorer threads that send every record to `out` and
    /// alert lines (JSON, no newline) to `alerts`.
    pub fn start(
        model_dir: &Path,
        schema: &mut RecordSchema,
        cfg: &ScoringConfig,
        out: Sender<FlowRecord>,
        alerts: Option<Sender<String>>,
    ) -> Result<ScoringService> {
        Self::start_with_stats(
            model_dir,
            schema,
            cfg,
            out,
            alerts,
            Arc::new(ScoringStats::new()),
        )
    }

    /// [`ScoringService::start`] counting into existing `stats` (a model reloaded on SIGHUP
    /// keeps counting where the previous one stopped).
    pub fn start_with_stats(
        model_dir: &Path,
        schema: &mut RecordSchema,
        cfg: &ScoringConfig,
        out: Sender<FlowRecord>,
        alerts: Option<Sender<String>>,
        stats: Arc<ScoringStats>,
    ) -> Result<ScoringService> {
        cfg.validate()?;
        let (model, rt, session) = load(model_dir, schema, cfg)?;
        describe_schema(&model.spec, schema);
        let first = Scorer::with_session(model.clone(), session, schema);
        let mut scorers = vec![first];
        for _ in 1..cfg.threads {
            let s = scorers[0].sibling(&rt)?;
            scorers.push(s);
        }
        let (tx, rx) = bounded::<Item>(cfg.queue);
        let rule = AlertRule::of(&model.spec);
        let mut threads = Vec::new();
        for (i, scorer) in scorers.into_iter().enumerate() {
            let worker = Worker {
                scorer,
                rx: rx.clone(),
                out: out.clone(),
                alerts: alerts.clone(),
                rule: rule.clone(),
                stats: stats.clone(),
                batch: cfg.batch,
                max_delay: Duration::from_millis(cfg.max_delay_ms),
            };
            let h = std::thread::Builder::new()
                .name(format!("weir-scorer-{i}"))
                .spawn(move || worker.run())
                .map_err(|e| ScoringError::Config {
                    key: "threads",
                    reason: format!("cannot start scorer thread {i}: {e}"),
                })?;
            threads.push(h);
        }
        Ok(ScoringService {
            input: Some(ScoringInput {
                tx,
                out,
                overload: cfg.overload,
                stats: stats.clone(),
            }),
            threads,
            stats,
            model,
        })
    }

    pub fn input(&self) -> ScoringInput {
        self.input.clone().expect("input is only taken by finish")
    }

    pub fn stats(&self) -> &Arc<ScoringStats> {
        &self.stats
    }

    pub fn model(&self) -> &Arc<BoundModel> {
        &self.model
    }

    /// Close the input, let the threads score what is queued, and wait for them. Every
    /// [`ScoringInput`] clone must be dropped first, or this waits for them.
    pub fn finish(mut self) -> StatsSnapshot {
        self.input.take();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        self.stats.snapshot()
    }
}

struct Worker {
    scorer: Scorer,
    rx: crossbeam_channel::Receiver<Item>,
    out: Sender<FlowRecord>,
    alerts: Option<Sender<String>>,
    rule: Option<AlertRule>,
    stats: Arc<ScoringStats>,
    batch: usize,
    max_delay: Duration,
}

impl Worker {
    fn run(mut self) {
        let mut times: Vec<Instant> = Vec::with_capacity(self.batch);
        let mut recs: Vec<FlowRecord> = Vec::with_capacity(self.batch);
        loop {
            let Ok((t0, r)) = self.rx.recv() else { return };
            times.push(t0);
            recs.push(r);
            let deadline = t0 + self.max_delay;
            let mut closed = false;
            while recs.len() < self.batch {
                match self.rx.recv_deadline(deadline) {
                    Ok((t, r)) => {
                        times.push(t);
                        recs.push(r);
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.stats
                .queue_depth
                .store(self.rx.len() as u64, Ordering::Relaxed);
            self.flush(&mut times, &mut recs);
            if closed {
                return;
            }
        }
    }

    fn flush(&mut self, times: &mut Vec<Instant>, recs: &mut Vec<FlowRecord>) {
        let n = recs.len() as u64;
        if let Err(e) = self.scorer.score_batch(recs) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            self.stats.error_rows.fetch_add(n, Ordering::Relaxed);
            tracing::warn!("scoring a batch of {n} flows failed: {e}");
        }
        let done = Instant::now();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.rows.fetch_add(n, Ordering::Relaxed);
        {
            let mut h = self
                .stats
                .latency_us
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for t in times.iter() {
                let us = done.duration_since(*t).as_micros().clamp(1, 60_000_000) as u64;
                h.saturating_record(us);
            }
        }
        let spec = &self.scorer.model().spec;
        for r in recs.drain(..) {
            if let (Some(rule), Some(a)) = (&self.rule, &self.alerts) {
                if let Some(line) = rule.check(spec, &r) {
                    self.stats.alerts.fetch_add(1, Ordering::Relaxed);
                    let _ = a.send(line);
                }
            }
            // The sinks gone means shutdown; nothing else can take the record.
            let _ = self.out.send(r);
        }
        times.clear();
    }
}
