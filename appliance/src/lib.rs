//! # weir (the appliance)
//!
//! The `weir` binary and its library: configuration, packet parsing, per-worker flow tables,
//! decay rates and heavy hitters, the plugin host and its cost accounting, scoring through ONNX
//! Runtime, and sinks. One worker per RX queue, shared-nothing: a worker owns its flow table,
//! rate tables, plugin instances and counters, and hands finished records to the output thread
//! through a channel.
//!
//! Where to find a concept:
//! - Commands: [`cli`] (the command line), [`run`] (`weir run` on live ports), [`extract`]
//!   (`weir extract` over captures), [`admin`] (`plugins`, `models inspect`, `check-config`),
//!   [`pipeline`] (what `run` and `extract` set up alike: plugins, record schema, workers),
//!   [`launch`] (the DPDK launch `run`, `extract` and `cost` share: EAL arguments, lcores,
//!   starting workers, collecting and merging their reports), [`affinity`] (unpinning the
//!   helper threads that may run on any CPU).
//! - Input: [`capture`] (pcap/pcapng files), [`rx_frames`] (whole frames from live ports, MTU
//!   and scattered RX), [`spread`] (RSS or the software spreader, flows to workers).
//! - The data path: [`wire`] (zero-copy views and builders of protocol headers, one file per
//!   protocol), [`filter`] (capture filters in libpcap's language, checked and run before
//!   parsing), [`parse`] (frame -> packet view + flow key, with named skip reasons),
//!   [`worker`] (one core's burst loop over the stages), [`flow`] (flow key, table, timer
//!   wheel, records, Community ID), [`rates`] (the table-based decay model, heavy hitters and
//!   their alerts), [`plugin_host`] (loading `.so` plugins, per-worker instances, self-test,
//!   quarantine), [`services`] (flows to services by IP prefix or names learned from DNS,
//!   plugins per service).
//! - Accounting and operations: [`stats`] (a worker's counters, one type, published to the
//!   metrics and the summaries), [`cost`] (per-stage and per-plugin cycle accounting),
//!   [`metrics`] (the Prometheus endpoint), [`logging`], [`sd_notify`] (systemd readiness),
//!   [`dead_worker`] (a worker that panics stops the run cleanly).
//! - Output: [`output`] (the output thread: scoring, then sinks), [`scoring`] (ONNX Runtime
//!   models, MLflow registry), [`sink`] (CSV, JSON Lines, Parquet, IPFIX, EVE alerts),
//!   [`manifest`] (the data manifest beside `weir extract`'s records).
//! - [`config`]: the TOML configuration file, every key checked.

pub mod admin;
pub mod affinity;
pub mod capture;
pub mod cli;
pub mod config;
pub mod cost;
pub mod dead_worker;
pub mod extract;
pub mod filter;
pub mod flow;
pub mod launch;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod plugin_host;
pub mod prefetch;
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
pub use weir_wire as wire;
pub mod worker;
