//! # weir-plugin-api
//!
//! The weir plugin ABI v1. `include/weir_plugin.h` is the contract; [`abi`] mirrors it in Rust
//! with compile-time layout assertions. The Rust SDK (a trait and an export macro) lives in
//! [`sdk`]; with the `harness` feature, [`harness`] loads a built plugin `.so` for tests.
//!
//! ## ABI versions
//!
//! Minor versions only append to `weir_plugin_v1` (the host reads a field only when the
//! plugin's `struct_size` covers it), so a plugin built against any 1.x header loads in a later
//! host unchanged:
//!
//! - 1.1 `interval_emit`; 1.2 `interval_state_size`, `update_burst_intervals`; 1.3
//!   `flow_state_size`.
//! - 1.4 **text features**: the kind `WEIR_FEATURE_TEXT` ([`FeatureKind::Text`]), the struct
//!   `weir_text_v1` ([`TextV1`]) and the callback `flow_emit_text`, called instead of
//!   `flow_emit` with one host-owned buffer of `WEIR_TEXT_MAX` (256) bytes per text feature. The
//!   plugin copies the value and sets its full length; the host refuses (writes as missing, and
//!   counts) a value longer than the buffer or not UTF-8. The header explains why a bounded
//!   buffer rather than a vocabulary: text such as a TLS server name is open-ended, and a buffer
//!   allocated once per worker keeps the data path free of allocation, locks and callbacks. In
//!   the SDK: [`Feature::text`] and [`Plugin::emit_text`] with [`TextOut`] values.

pub mod abi;
#[cfg(feature = "harness")]
pub mod harness;
pub mod sdk;

pub use abi::*;
pub use sdk::{
    Burst, Feature, FeatureKind, IntervalPlugin, Plugin, SizedPlugin, TextOut, Verdict,
    WithInterval, Zeroable,
};
