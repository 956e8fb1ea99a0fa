//! The decay model and heavy hitters against the exact f64 EMA.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod decay;
mod heavy_hitters;
