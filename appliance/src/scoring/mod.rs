//! Scoring finished flows with scikit-learn models exported to ONNX, through ONNX Runtime.
//!
//! What it owns: the model directory format (`weir-model/1`: `model.onnx` + `model.json`,
//! [`model`]), finding and loading `libonnxruntime.so` ([`runtime`]), binding a model's
//! features to record columns and scoring batches ([`scorer`]), the scorer threads with
//! their bounded input, batching by size or deadline and overload policy ([`service`]), the
//! model's alert rule ([`alert`]), `weir models inspect` ([`inspect`]), and finding a model's
//! files in an MLflow model directory or a local MLflow registry ([`mlflow`]).
//! The `ort` crate (2.0 release candidate, `load-dynamic`) is the binding; the Python side
//! that trains and exports models is `models/` (see `models/README.md`).

pub mod alert;
pub mod config;
pub mod error;
pub mod inspect;
pub mod mlflow;
pub mod mlflow_http;
pub mod model;
pub mod runtime;
pub mod scorer;
pub mod service;

pub use alert::AlertRule;
pub use config::{Overload, ScoringConfig};
pub use error::ScoringError;
pub use inspect::{inspect, inspect_with};
pub use model::{ModelSpec, Task};
pub use scorer::Scorer;
pub use service::{ScoringInput, ScoringService, ScoringStats, StatsSnapshot};
