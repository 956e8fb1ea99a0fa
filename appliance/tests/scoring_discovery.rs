//! Where weir looks for libonnxruntime.so, in order: `[model] ort_library`, `ORT_DYLIB_PATH`,
//! the onnxruntime wheel in a venv, the system library. One test, alone in its binary,
//! because it changes the process environment.

use std::path::PathBuf;

use weir::scoring::runtime::{discover, probe, runtime};
use weir::scoring::{ScoringConfig, ScoringError};

#[test]
fn discovery_order_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let capi = venv.join("lib/python3.11/site-packages/onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    let fake = capi.join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not a shared object").unwrap();

    std::env::remove_var("ORT_DYLIB_PATH");
    std::env::set_var("VIRTUAL_ENV", &venv);
    let c = discover(&ScoringConfig::default()).expect("venv candidate");
    assert_eq!(c.path, fake);
    assert!(c.source_of.contains("onnxruntime wheel"), "{}", c.source_of);
    // Found, but it is not a library: refused with the path and the loader's reason.
    let e = probe(&c).expect_err("fake library");
    let msg = e.to_string();
    assert!(
        msg.contains(&fake.display().to_string()) && msg.contains("cannot be loaded"),
        "{msg}"
    );

    // Without VIRTUAL_ENV, the workspace's .venv (the Makefile's) is found from the cwd.
    std::env::remove_var("VIRTUAL_ENV");
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(".venv");
    if ws.exists() {
        let c = discover(&ScoringConfig::default()).expect("workspace venv");
        assert!(c.path.starts_with(&ws), "{:?}", c.path);
        assert!(c.path.to_string_lossy().contains("libonnxruntime.so.1."));
    }

    // ORT_DYLIB_PATH beats the venv, and a missing file is refused, not skipped.
    std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so");
    let c = discover(&ScoringConfig::default()).unwrap();
    assert_eq!(c.path, PathBuf::from("/nonexistent/libonnxruntime.so"));
    match runtime(&ScoringConfig::default()) {
        Err(e @ ScoringError::Library { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
            assert!(
                msg.contains("ORT_DYLIB_PATH") && msg.contains("no such file"),
                "{msg}"
            );
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a missing library was loaded"),
    }

    // The config key beats the environment.
    let cfg = ScoringConfig {
        ort_library: Some(PathBuf::from("/from/config.so")),
        ..ScoringConfig::default()
    };
    let c = discover(&cfg).unwrap();
    assert_eq!(c.path, PathBuf::from("/from/config.so"));
    assert_eq!(c.source_of, "[model] ort_library");
    std::env::remove_var("ORT_DYLIB_PATH");
}
