//! # weir_ndpi (C plugin)
//!
//! The plugin itself is `ndpi.c`, plain C11 against `plugin-api/include/weir_plugin.h`, linked
//! with the system's libndpi; `build.rs` compiles it into `libweir_ndpi.so` and copies it to
//! `target/<profile>/`, when `pkg-config libndpi` finds the library. This Rust crate holds no
//! plugin logic: it only tells tests whether and where the build put the library.

/// The shared object build.rs compiled for this build of the crate; `None` when libndpi was not
/// found (see [`NOT_BUILT`]).
#[cfg(weir_ndpi_built)]
pub const LIBRARY_PATH: Option<&str> = Some(concat!(env!("OUT_DIR"), "/libweir_ndpi.so"));
#[cfg(not(weir_ndpi_built))]
pub const LIBRARY_PATH: Option<&str> = None;

/// Why the plugin was not built (empty when it was).
pub const NOT_BUILT: &str = env!("WEIR_NDPI_NOT_BUILT");
