//! # weir_entropy (C plugin)
//!
//! The plugin itself is `entropy.c`, plain C11 against `plugin-api/include/weir_plugin.h`;
//! `build.rs` compiles it into `libweir_entropy.so` and copies it to `target/<profile>/`.
//! This Rust crate holds no plugin logic: it only tells tests where the build put the library.
//! See `entropy.c`'s header comment (and README.md) for the features and the state size.

/// The shared object build.rs compiled for this build of the crate.
pub const LIBRARY_PATH: &str = concat!(env!("OUT_DIR"), "/libweir_entropy.so");

/// The same plugin built with `-DENTROPY_PORTABLE`: the portable merge loop only, where
/// [`LIBRARY_PATH`] on x86-64 also has an AVX2 build the loader picks on CPUs that have it.
/// The tests check both against the oracle.
pub const PORTABLE_LIBRARY_PATH: &str = concat!(env!("OUT_DIR"), "/libweir_entropy_portable.so");
