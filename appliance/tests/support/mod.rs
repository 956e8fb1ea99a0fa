//! Shared by every integration test binary, which includes it with
//! `#[path = "../support/mod.rs"] mod support;`. One submodule per concern:
//! - [`paths`]: the bundled captures, NFStream's records of them, the workspace, plugins;
//! - [`run`]: running the `weir` binary, reading its log;
//! - [`records`]: reading weir's CSV records and `--stats` JSON;
//! - [`nfstream`]: comparing records with NFStream's;
//! - [`oracle`]: comparing a run's records with a one-worker `weir extract` of the same input;
//! - [`pcap`]: reading and writing captures; [`frames`]: generated frames (wire builders);
//! - [`rng`]: seeded generators; [`ema`]: the exact decay oracle;
//! - [`process`]: a child's resident memory, `weir run` in a namespace; [`netns`]: a namespace
//!   with a veth pair; [`plugins`]: building the C test plugin;
//! - [`scoring`]: the Python venv, scikit-learn model fixtures, records from NFStream's CSVs.
// Each binary uses only part of it.
#![allow(dead_code)]

pub mod ema;
pub mod frames;
pub mod netns;
pub mod nfstream;
pub mod oracle;
pub mod paths;
pub mod pcap;
pub mod plugins;
pub mod process;
pub mod records;
pub mod rng;
pub mod run;
pub mod scoring;
