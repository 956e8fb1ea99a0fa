//! # weir (the appliance)
//!
//! The `weir` binary and its library: configuration, packet parsing, per-worker flow tables,
//! decay rates and heavy hitters, the plugin host and its cost accounting, scoring through ONNX
//! Runtime, and sinks. One worker per RX queue, shared-nothing; see `../shared/DESIGN.md`.
//!
//! Where to find a concept:
//! - [`wire`]: zero-copy views over protocol headers, one file per protocol.
//! - [`parse`]: frame -> packet view + flow key, with named skip reasons.
//! - [`flow`]: the flow key, flow table, timer wheel and flow records.
//! - [`rates`]: the table-based decay model and heavy-hitter tables.
//! - [`plugin_host`]: loading `.so` plugins, per-worker instances, quarantine.
//! - [`cost`]: per-stage and per-plugin cycle accounting.
//! - [`scoring`]: ONNX Runtime scorer threads.
//! - [`services`]: flows to services (IP prefixes, names learned from DNS), plugins per service.
//! - [`sink`]: CSV / JSON Lines writers.
//! - [`manifest`]: the data manifest `weir extract` writes beside its records.

pub mod admin;
pub mod capture;
pub mod cli;
pub mod config;
pub mod cost;
pub mod dead_worker;
pub mod extract;
pub mod flow;
pub mod launch;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod plugin_host;
pub mod rates;
pub mod run;
pub mod rx_frames;
pub mod scoring;
pub mod sd_notify;
pub mod services;
pub mod sink;
#[cfg(test)]
mod source_checks;
pub mod spread;
pub mod stats;
pub mod wire;
pub mod worker;
