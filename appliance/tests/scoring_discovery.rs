//! Where weir looks for libonnxruntime.so, in order: `[model] ort_library`, `ORT_DYLIB_PATH`,
//! (offline commands only) the onnxruntime wheel in `$VIRTUAL_ENV` or the project's `.venv`,
//! the install location, the system library; and the ownership checks on what is found. One
//! test, alone in its binary, because it changes the process environment.

use std::path::PathBuf;

use std::os::unix::fs::PermissionsExt;
use weir::scoring::runtime::{allow_project_venv, discover, probe, runtime};
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
    // `weir run`'s discovery: no venv at all, not even the activated one, nor the one in the
    // working directory or above the executable.
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(".venv");
    std::env::set_current_dir(ws.parent().unwrap()).unwrap();
    match discover(&ScoringConfig::default()) {
        Ok(c) => assert!(
            !c.path.starts_with(&venv) && !c.path.starts_with(&ws),
            "{:?} from {}",
            c.path,
            c.source_of
        ),
        Err(e) => assert!(!e.to_string().contains(".venv"), "{e}"),
    }
    allow_project_venv();
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

    // Without VIRTUAL_ENV, the workspace's .venv (the Makefile's) is found above the
    // executable (target/release/deps/...), never from the working directory.
    std::env::remove_var("VIRTUAL_ENV");
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

    // A library others can write, or in a directory others can write, is refused with the
    // path and the reason before it is loaded.
    let lib = tmp.path().join("lib").join("libonnxruntime.so");
    std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
    std::fs::write(&lib, b"not loaded").unwrap();
    let named = |p: &std::path::Path| ScoringConfig {
        ort_library: Some(p.to_path_buf()),
        ..ScoringConfig::default()
    };
    for (file_mode, dir_mode, want) in [
        (0o664, 0o755, "file"),
        (0o646, 0o755, "file"),
        (0o644, 0o775, "directory"),
    ] {
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(file_mode)).unwrap();
        std::fs::set_permissions(
            lib.parent().unwrap(),
            std::fs::Permissions::from_mode(dir_mode),
        )
        .unwrap();
        let msg = runtime(&named(&lib)).err().expect("refused").to_string();
        assert!(msg.contains(&lib.display().to_string()), "{msg}");
        assert!(msg.contains("refused") && msg.contains(want), "{msg}");
        assert!(
            !msg.contains("cannot be loaded"),
            "loaded before the check: {msg}"
        );
    }
    // The checks pass: only then is it loaded (and this file is no library).
    std::fs::set_permissions(
        lib.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = runtime(&named(&lib))
        .err()
        .expect("not a library")
        .to_string();
    assert!(msg.contains("cannot be loaded"), "{msg}");
    assert!(msg.contains(&lib.display().to_string()), "{msg}");
}
