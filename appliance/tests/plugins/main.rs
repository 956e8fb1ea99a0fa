//! The plugin host and the shipped plugins: refusals at load, the runtime (bursts, slabs,
//! quarantine), services selecting plugins, and `splt` against tshark.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod ndpi_parity;
mod quarantine;
mod refusals;
mod runtime;
mod services;
mod splt_tshark;
mod text;
