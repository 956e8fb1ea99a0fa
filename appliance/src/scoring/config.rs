//! The `[model]` section of weir's configuration.

use serde::Deserialize;
use std::path::PathBuf;

use super::error::{Result, ScoringError};

/// What the scorer does when its input queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overload {
    /// The flow-emitting thread waits for room (back-pressure; nothing goes unscored).
    #[default]
    Block,
    /// The record goes straight to the sinks with `score_status = skipped_overload` (counted).
    EmitUnscored,
}

/// `[model]`: `dir`, `batch`, `max_delay_ms`, `threads`, `queue`, `overload`, `ort_library`,
/// `mlflow_store`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// The model directory (`model.onnx` + `model.json`, or an MLflow model with `MLmodel`
    /// beside `model.json`) or a `models:/NAME/VERSION` URI; no scoring when absent.
    pub dir: Option<PathBuf>,
    /// Rows per model run at most.
    pub batch: usize,
    /// A partial batch runs once its oldest record has waited this long.
    pub max_delay_ms: u64,
    /// Scorer threads, each with its own ONNX Runtime session.
    pub threads: usize,
    /// Capacity of the bounded channel into the scorer threads (records).
    pub queue: usize,
    pub overload: Overload,
    /// Path of `libonnxruntime.so`; else `ORT_DYLIB_PATH`, the venv's wheel, the system one.
    pub ort_library: Option<PathBuf>,
    /// The local MLflow file store (`mlruns/`, or a `file:` URI) that `models:/NAME/VERSION`
    /// resolves against; else `MLFLOW_TRACKING_URI`.
    pub mlflow_store: Option<PathBuf>,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            dir: None,
            batch: 256,
            max_delay_ms: 50,
            threads: 1,
            queue: 8192,
            overload: Overload::Block,
            ort_library: None,
            mlflow_store: None,
        }
    }
}

impl ScoringConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |key, reason: &str| {
            Err(ScoringError::Config {
                key,
                reason: reason.to_string(),
            })
        };
        if self.batch == 0 || self.batch > 65536 {
            return bad("batch", "must be 1..=65536");
        }
        if self.threads == 0 || self.threads > 64 {
            return bad("threads", "must be 1..=64");
        }
        if self.queue == 0 {
            return bad("queue", "must be at least 1");
        }
        Ok(())
    }
}
