//! Why a model or the ONNX Runtime library was refused, or a batch failed. Every message names
//! the file (or config key) and the reason, so an operator can fix it without reading code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error("ONNX Runtime library {path} (from {source_of}): {reason}")]
    Library {
        path: PathBuf,
        /// Where the path came from: the `[model] ort_library` key, `ORT_DYLIB_PATH`, ...
        source_of: String,
        reason: String,
    },
    #[error("no ONNX Runtime library found; looked in: {searched}. Set `[model] ort_library` or ORT_DYLIB_PATH, or install the venv (pip install -r models/requirements.txt)")]
    NoLibrary { searched: String },
    /// The model directory or one of its files could be changed by someone other than root or
    /// the user weir runs as (the plugin rule, `plugin_host::perms`).
    #[error("model {path} refused: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    ModelJson { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Onnx { path: PathBuf, reason: String },
    #[error("{path}: model feature `{feature}` is not provided by anything loaded; columns come from: {available}")]
    UnknownFeature {
        path: PathBuf,
        feature: String,
        available: String,
    },
    #[error("[model] {key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("model run failed: {0}")]
    Run(String),
}

pub type Result<T, E = ScoringError> = std::result::Result<T, E>;
