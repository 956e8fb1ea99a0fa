//! Hostile input and faults: table eviction under floods, the malformed corpus through the
//! whole data path, overload and exhaustion, `weir run` under signals, a slow scorer, and the
//! regressions hostile input found.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod eviction;
mod malformed_extract;
mod overload;
mod regressions;
mod run;
mod scoring;
