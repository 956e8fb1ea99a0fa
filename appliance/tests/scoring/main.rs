//! Scoring with scikit-learn models through ONNX Runtime: parity with predict_proba,
//! refusals, the training CLI, `weir extract --model`, and Spark training.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod extract;
mod parity;
mod refusals;
mod spark;
mod train_cli;
