//! The workspace's `rust-version` is the real minimum: at least the `rust-version` every
//! locked dependency declares (read from each crate's own Cargo.toml in cargo's registry
//! sources, where the build unpacked it), and the toolchain running this test meets it.
//! When a toolchain of exactly that version is installed (`rustup run 1.NN`), the workspace
//! is also checked with it, in a target directory of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn version(s: &str) -> Vec<u64> {
    s.trim()
        .split('.')
        .map(|x| x.parse().unwrap_or(0))
        .collect()
}

fn key<'a>(toml: &'a str, name: &str) -> Option<&'a str> {
    toml.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"))
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let root = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let declared = key(&root, "rust-version").expect("workspace rust-version");
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home().join("registry/src"))
        .expect("cargo's registry sources")
        .map(|e| e.unwrap().path())
        .collect();
    let (mut found, mut needs) = (0, Vec::new());
    for pkg in lock.split("[[package]]").skip(1) {
        let (Some(name), Some(ver), Some(_)) =
            (key(pkg, "name"), key(pkg, "version"), key(pkg, "source"))
        else {
            continue; // a workspace crate
        };
        // Crates for other platforms (winapi, ...) are locked but never unpacked here.
        let Some(toml) = registries
            .iter()
            .map(|r| r.join(format!("{name}-{ver}/Cargo.toml")))
            .find(|p| p.is_file())
        else {
            continue;
        };
        found += 1;
        let text = std::fs::read_to_string(toml).unwrap();
        if let Some(rv) = key(&text, "rust-version") {
            needs.push((version(rv), format!("{name} {ver} (rust-version {rv})")));
        }
    }
    assert!(
        found > 100,
        "only {found} locked crates unpacked: build the workspace first"
    );
    needs.sort();
    let (most, who) = needs.last().unwrap();
    assert!(
        version(declared) >= *most,
        "rust-version = {declared} but {who} needs more"
    );
    assert_eq!(
        &version(declared),
        most,
        "rust-version = {declared} is above every dependency's ({who}): state the real minimum"
    );
    // The toolchain running the tests meets it.
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rustc.stdout);
    let running = version(
        text.split_whitespace()
            .nth(1)
            .unwrap()
            .split('-')
            .next()
            .unwrap(),
    );
    assert!(
        running >= version(declared),
        "{text} is older than {declared}"
    );
    // With that exact toolchain installed, it must check the workspace.
    let toolchain = declared.split('.').take(2).collect::<Vec<_>>().join(".");
    let has = Command::new("rustup")
        .args(["run", &toolchain, "cargo", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("toolchain {toolchain} not installed: dependency check only");
        return;
    }
    let target = workspace().join("target/msrv");
    let o = Command::new("rustup")
        .args([
            "run",
            &toolchain,
            "cargo",
            "check",
            "--workspace",
            "--locked",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo +{toolchain} check failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
