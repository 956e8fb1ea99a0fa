//! Every bad model or library is refused at start, with a message naming the file and why.
//! The broken model directories come from `models/testing/make_fixtures.py` (`broken()`).
//!
//! A test binary of its own: ONNX Runtime is loaded once per process, so each test of a bad
//! library runs in a process of its own (this binary again, with only that test), where no
//! other test can have loaded the real one first.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::scoring::{config, fixtures, records};
use weir::scoring::{Scorer, ScoringConfig, ScoringError};

fn refuse(dir: &Path, cfg: &ScoringConfig) -> ScoringError {
    let data = records();
    match Scorer::new(dir, &data.schema, cfg) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => e,
    }
}

/// In the test process: run test `name` alone in a fresh copy of this binary, assert that it
/// passed, and return true (the caller returns). In that copy: return false (run the body).
fn in_fresh_process(name: &str) -> bool {
    if std::env::var_os("WEIR_TEST_FRESH_PROCESS").is_some() {
        return false;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env("WEIR_TEST_FRESH_PROCESS", "1")
        .output()
        .expect("run the test binary");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{name} in a fresh process failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

fn assert_msg(e: &ScoringError, parts: &[&str]) {
    let msg = e.to_string();
    eprintln!("refused: {msg}");
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

#[test]
fn the_good_fixture_is_accepted() {
    // So the refusals below are about what each one breaks, not about the fixture.
    let data = records();
    Scorer::new(&fixtures().join("rf"), &data.schema, &config()).expect("rf loads");
}

#[test]
fn no_model_json() {
    let dir = fixtures().join("no_json");
    let e = refuse(&dir, &config());
    assert!(matches!(e, ScoringError::ModelJson { .. }), "{e:?}");
    assert_msg(
        &e,
        &[&dir.join("model.json").display().to_string(), "cannot read"],
    );
}

#[test]
fn wrong_format_string() {
    let e = refuse(&fixtures().join("bad_format"), &config());
    assert!(matches!(e, ScoringError::ModelJson { .. }), "{e:?}");
    assert_msg(&e, &["model.json", "weir-model/9", "weir-model/1"]);
}

#[test]
fn feature_no_provider_has() {
    let e = refuse(&fixtures().join("unknown_feature"), &config());
    assert!(matches!(e, ScoringError::UnknownFeature { .. }), "{e:?}");
    assert_msg(
        &e,
        &[
            "model.json",
            "no_such_feature_anywhere",
            "core (weir): ",
            "flowstats: ",
            "src2dst_mean_ps",
        ],
    );
}

#[test]
fn feature_refused_even_without_plugins() {
    // The fixture models read flowstats features; with no plugin loaded they are unknown.
    let schema = weir::flow::record::RecordSchema::default();
    let e = match Scorer::new(&fixtures().join("rf"), &schema, &config()) {
        Ok(_) => panic!("accepted without plugins"),
        Err(e) => e,
    };
    assert_msg(
        &e,
        &[
            "is not provided by anything loaded",
            "plugins: (none loaded)",
        ],
    );
}

#[test]
fn onnx_input_width_mismatch() {
    let e = refuse(&fixtures().join("width_mismatch"), &config());
    assert!(matches!(e, ScoringError::Onnx { .. }), "{e:?}");
    assert_msg(
        &e,
        &[
            "model.onnx",
            "input `X` is 59 wide but model.json lists 58 features",
        ],
    );
}

#[test]
fn not_an_onnx_file() {
    let e = refuse(&fixtures().join("not_onnx"), &config());
    assert!(matches!(e, ScoringError::Onnx { .. }), "{e:?}");
    assert_msg(&e, &["not_onnx/model.onnx", "ONNX Runtime cannot load it"]);
}

#[test]
fn double_typed_input_is_refused_not_cast() {
    let e = refuse(&fixtures().join("double_input"), &config());
    assert!(matches!(e, ScoringError::Onnx { .. }), "{e:?}");
    assert_msg(
        &e,
        &[
            "double_input/model.onnx",
            "double (float64)",
            "refuses rather than casts",
        ],
    );
}

#[test]
fn missing_ort_library() {
    if in_fresh_process("missing_ort_library") {
        return;
    }
    let cfg = ScoringConfig {
        ort_library: Some(PathBuf::from("/nonexistent/dir/libonnxruntime.so.1.31.1")),
        ..ScoringConfig::default()
    };
    let e = refuse(&fixtures().join("rf"), &cfg);
    assert!(matches!(e, ScoringError::Library { .. }), "{e:?}");
    assert_msg(
        &e,
        &[
            "/nonexistent/dir/libonnxruntime.so.1.31.1",
            "[model] ort_library",
            "no such file",
        ],
    );
}

#[test]
fn a_library_that_is_not_onnx_runtime() {
    if in_fresh_process("a_library_that_is_not_onnx_runtime") {
        return;
    }
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libc.so.6");
    let cfg = ScoringConfig {
        ort_library: Some(libc.clone()),
        ..ScoringConfig::default()
    };
    let e = refuse(&fixtures().join("rf"), &cfg);
    assert_msg(
        &e,
        &[&libc.display().to_string(), "does not export OrtGetApiBase"],
    );
}

/// A library that exports ONNX Runtime's entry point but says it is 1.20.0.
#[test]
fn an_ort_library_of_the_wrong_version() {
    if in_fresh_process("an_ort_library_of_the_wrong_version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("fake_ort.c");
    std::fs::write(
        &src,
        "typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } Base;\n\
         static const void *get_api(unsigned v) { (void)v; return 0; }\n\
         static const char *version(void) { return \"1.20.0\"; }\n\
         static const Base base = { get_api, version };\n\
         const Base *OrtGetApiBase(void) { return &base; }\n",
    )
    .unwrap();
    let lib = dir.path().join("libonnxruntime.so.1.20.0");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    let cfg = ScoringConfig {
        ort_library: Some(lib.clone()),
        ..ScoringConfig::default()
    };
    let e = refuse(&fixtures().join("rf"), &cfg);
    assert!(matches!(e, ScoringError::Library { .. }), "{e:?}");
    assert_msg(
        &e,
        &[
            &lib.display().to_string(),
            "version 1.20.0",
            "needs ONNX Runtime >= 1.31",
        ],
    );
}

#[test]
fn bad_config_values() {
    for (cfg, key) in [
        (
            ScoringConfig {
                batch: 0,
                ..config()
            },
            "batch",
        ),
        (
            ScoringConfig {
                threads: 0,
                ..config()
            },
            "threads",
        ),
        (
            ScoringConfig {
                queue: 0,
                ..config()
            },
            "queue",
        ),
    ] {
        let e = cfg.validate().expect_err(key);
        assert_msg(&e, &[&format!("[model] {key}")]);
    }
    let e = toml::from_str::<ScoringConfig>("overload = \"drop\"").expect_err("drop");
    assert!(e.to_string().contains("block"), "{e}");
    let c: ScoringConfig =
        toml::from_str("dir = \"m\"\nbatch = 64\noverload = \"emit_unscored\"").unwrap();
    assert_eq!(c.batch, 64);
    assert_eq!(c.max_delay_ms, 50);
    assert_eq!(c.overload, weir::scoring::Overload::EmitUnscored);
}

/// model.json contents that parse but make no sense are refused too.
#[test]
fn inconsistent_model_json() {
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("rf/model.json")).unwrap())
            .unwrap();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            serde_json::json!({"alert": {"class": "NoSuchClass", "min_proba": 0.5}}),
            "alert class `NoSuchClass` is not one of",
        ),
        (serde_json::json!({"classes": []}), "needs \"classes\""),
        (serde_json::json!({"features": []}), "\"features\" is empty"),
        (serde_json::json!({"task": "regression"}), "invalid"),
        (
            serde_json::json!({"alert": {"max_score": -0.1}}),
            "does not fit",
        ),
    ];
    for (patch, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut m = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            m[k] = v.clone();
        }
        std::fs::write(dir.path().join("model.json"), m.to_string()).unwrap();
        std::fs::copy(
            fixtures().join("rf/model.onnx"),
            dir.path().join("model.onnx"),
        )
        .unwrap();
        let e = refuse(dir.path(), &config());
        assert_msg(&e, &["model.json", want]);
    }
}

/// One ONNX Runtime per process: a second, different library is refused, not ignored.
#[test]
fn a_second_library_in_the_same_process() {
    let data = records();
    Scorer::new(&fixtures().join("rf"), &data.schema, &config()).expect("first load");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::copy(crate::support::scoring::ort_library(), &copy).unwrap();
    let cfg = ScoringConfig {
        ort_library: Some(copy.clone()),
        ..ScoringConfig::default()
    };
    let e = refuse(&fixtures().join("rf"), &cfg);
    assert_msg(
        &e,
        &[
            &copy.display().to_string(),
            "already loaded in this process from",
        ],
    );
}
