//! The record and alert sinks: Parquet read back by pyarrow, IPFIX export, EVE alerts, and
//! sinks reopened on SIGUSR1.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod eve_alerts;
mod ipfix;
mod parquet;
mod restart;
