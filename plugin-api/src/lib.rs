//! # weir-plugin-api
//!
//! The weir plugin ABI v1. `include/weir_plugin.h` is the contract; [`abi`] mirrors it in Rust
//! with compile-time layout assertions. The Rust SDK (a trait and an export macro) lives in
//! [`sdk`].

pub mod abi;

pub use abi::*;
