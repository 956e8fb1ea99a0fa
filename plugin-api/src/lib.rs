//! # weir-plugin-api
//!
//! The weir plugin ABI v1. `include/weir_plugin.h` is the contract; [`abi`] mirrors it in Rust
//! with compile-time layout assertions. The Rust SDK (a trait and an export macro) lives in
//! [`sdk`]; with the `harness` feature, [`harness`] loads a built plugin `.so` for tests.

pub mod abi;
#[cfg(feature = "harness")]
pub mod harness;
pub mod sdk;

pub use abi::*;
pub use sdk::{
    Burst, Feature, FeatureKind, IntervalPlugin, Plugin, SizedPlugin, TextOut, Verdict,
    WithInterval, Zeroable,
};
