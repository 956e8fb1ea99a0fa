//! Compile `ndpi.c` (plain C11 against `plugin-api/include/weir_plugin.h`) and link it with the
//! system's libndpi into `$OUT_DIR/libweir_ndpi.so`, then copy it next to the other plugins in
//! `target/<profile>/` (as `plugins/entropy/build.rs` does, for the same reasons).
//!
//! libndpi is optional: when `pkg-config libndpi` fails, the build says so (a cargo warning),
//! removes a stale `libweir_ndpi.so` from the profile directory and goes on; the other plugins
//! and weir build as usual. `LIBRARY_PATH` in `src/lib.rs` is then `None` and `NOT_BUILT` says
//! why, so the tests that need the plugin can fail with that reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let source = manifest.join("ndpi.c");
    let include = manifest.join("../../plugin-api/include");
    println!("cargo:rerun-if-changed={}", source.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("weir_plugin.h").display()
    );
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rustc-check-cfg=cfg(weir_ndpi_built)");
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out.
    let profile_dir: &Path = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out");
    let dest = profile_dir.join("libweir_ndpi.so");

    let flags = |what: &str| -> Result<Vec<String>, String> {
        let out = Command::new("pkg-config")
            .args([what, "libndpi"])
            .output()
            .map_err(|e| format!("cannot run pkg-config: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pkg-config {what} libndpi failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    };
    let (cflags, libs) = match (flags("--cflags"), flags("--libs")) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(e), _) | (_, Err(e)) => {
            let why = format!(
                "libndpi not found ({e}): the ndpi plugin is not built; install libndpi-dev \
                 (Debian/Ubuntu) to build it"
            );
            println!("cargo:warning={why}");
            println!("cargo:rustc-env=WEIR_NDPI_NOT_BUILT={why}");
            // A library left from an earlier build must not be installed or loaded as current.
            let _ = std::fs::remove_file(&dest);
            return;
        }
    };

    let so = out_dir.join("libweir_ndpi.so");
    let compiler = cc::Build::new()
        .opt_level(2)
        .pic(true)
        .warnings(false)
        .cargo_metadata(false)
        .get_compiler();
    let mut cmd = compiler.to_command();
    cmd.args([
        "-std=gnu11",
        "-shared",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        "-Werror",
    ])
    .arg("-I")
    .arg(&include)
    .args(&cflags)
    .arg(&source)
    .arg("-o")
    .arg(&so)
    .args(&libs)
    .arg("-lpthread");
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
    std::fs::copy(&so, &dest)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", so.display(), dest.display()));
    println!("cargo:rustc-cfg=weir_ndpi_built");
    println!("cargo:rustc-env=WEIR_NDPI_NOT_BUILT=");
}
