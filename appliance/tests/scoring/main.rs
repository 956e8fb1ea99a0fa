//! Scoring with scikit-learn models through ONNX Runtime: parity with predict_proba, the
//! training CLI, `weir extract --model`, and Spark training. (The refusals and the runtime's
//! discovery are binaries of their own: ONNX Runtime is loaded once per process, and they
//! must run before anything loads it.)
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod extract;
mod parity;
mod spark;
mod train_cli;
