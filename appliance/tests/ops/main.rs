//! Operating weir: the command line, the config file and its reference page, deployment
//! files, `make install`, jumbo frames, `weir run` services (metrics, reload, logs), and the
//! toolchain the lockfile needs; the flow table on hugepages.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod config;
mod deploy;
mod hugepages;
mod install;
mod jumbo;
mod run;
mod run_config;
mod toolchain;
