//! Compile `entropy.c` (plain C11 against `plugin-api/include/weir_plugin.h`) into a shared
//! object with the C compiler the `cc` crate picks (honours `CC`, `CFLAGS`, cross targets):
//! `$OUT_DIR/libweir_entropy.so`, then copy it next to the Rust plugins in
//! `target/<profile>/` (three levels above `OUT_DIR`), where `cargo build --release` leaves
//! every `libweir_*.so`. A second build with `-DENTROPY_PORTABLE` (no AVX2 clone of the merge
//! loop), `$OUT_DIR/libweir_entropy_portable.so`, is only for the tests.
//!
//! Why not a Rust cdylib that links the C code: a cdylib exports only Rust `#[no_mangle]`
//! symbols (rustc's version script hides everything else), so the C entry point would need a
//! Rust trampoline and the plugin would no longer be a C plugin. Copying into the profile
//! directory is outside cargo's contract for build scripts (it is not cleaned by
//! `cargo clean -p`); the file is always rebuilt from this crate, so it cannot go stale.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let source = manifest.join("entropy.c");
    let include = manifest.join("../../plugin-api/include");
    println!("cargo:rerun-if-changed={}", source.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("weir_plugin.h").display()
    );

    let so = out_dir.join("libweir_entropy.so");
    compile(&source, &include, &so, &[]);
    // The same plugin without the AVX2 build of its merge loop, for the tests only (they run
    // both against the oracle; which one a CPU gets is up to the loader).
    let portable = out_dir.join("libweir_entropy_portable.so");
    compile(&source, &include, &portable, &["-DENTROPY_PORTABLE"]);

    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out.
    let profile_dir: &Path = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out");
    let dest = profile_dir.join("libweir_entropy.so");
    std::fs::copy(&so, &dest)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", so.display(), dest.display()));
}

/// Compile `source` into the shared object `so` with the `cc` crate's compiler and `defines`.
fn compile(source: &Path, include: &Path, so: &Path, defines: &[&str]) {
    let compiler = cc::Build::new()
        .opt_level(2)
        .pic(true)
        .warnings(false)
        .cargo_metadata(false)
        .get_compiler();
    let mut cmd = compiler.to_command();
    cmd.args([
        "-std=c11",
        "-shared",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        "-Werror",
    ])
    .args(defines)
    .arg("-I")
    .arg(include)
    .arg(source)
    .arg("-o")
    .arg(so)
    .arg("-lm");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {:?}: {e}", compiler.path()));
    if !status.success() {
        panic!(
            "compiling {} into {} failed: {status}",
            source.display(),
            so.display()
        );
    }
}
