//! Shared by the scoring tests: the venv's Python, model fixtures made by
//! `models/testing/make_fixtures.py` (with scikit-learn's own answers), and flow records built
//! from NFStream's CSVs under the names weir's columns carry.

pub mod records;
#[allow(unused_imports)]
pub use records::{record_files, records, workspace};

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use weir::scoring::ScoringConfig;

/// `WEIR_PYTHON`, else the workspace's `.venv/bin/python` (made by the Makefile).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_PYTHON") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let p = workspace().join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python for the scikit-learn oracle: set WEIR_PYTHON or create {} \
         (python3 -m venv .venv && .venv/bin/pip install -r models/requirements.txt)",
        p.display()
    );
    p
}

fn stamp() -> String {
    let mut h = DefaultHasher::new();
    for f in [
        "models/testing/make_fixtures.py",
        "models/train.py",
        "models/weir_export.py",
        "models/weir_records.py",
        "models/requirements.txt",
    ] {
        std::fs::read(workspace().join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .hash(&mut h);
    }
    for f in record_files() {
        f.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// Model fixtures, made once per stamp of the scripts under the target dir. Made in a private
/// directory and renamed into place, so test binaries run in parallel (nextest) never see a
/// half-written set.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scoring-fixtures");
        let dir = root.join(stamp());
        if dir.join("DONE").exists() {
            return dir;
        }
        let tmp = root.join(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("create fixtures dir");
        let out = Command::new(python())
            .arg(workspace().join("models/testing/make_fixtures.py"))
            .arg(&tmp)
            .args(record_files())
            .output()
            .expect("run make_fixtures.py");
        assert!(
            out.status.success(),
            "make_fixtures.py failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        std::fs::write(tmp.join("DONE"), "").expect("write DONE");
        // Loses the race harmlessly when another process put an identical set in place.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(dir.join("DONE").exists(), "fixtures at {}", dir.display());
        dir
    })
}

/// The ONNX Runtime library of the oracle's Python (so both sides run the same build).
pub fn ort_library() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = Command::new(python())
            .args([
                "-c",
                "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
            ])
            .output()
            .expect("run python");
        assert!(out.status.success(), "onnxruntime not importable: {out:?}");
        let capi = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
        std::fs::read_dir(&capi)
            .expect("onnxruntime/capi")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so."))
            })
            .expect("libonnxruntime.so.* in the wheel")
    })
    .clone()
}

pub fn config() -> ScoringConfig {
    ScoringConfig {
        ort_library: Some(ort_library()),
        ..ScoringConfig::default()
    }
}

/// One oracle row: source file, row in the file, sklearn's values.
pub type OracleRow = (String, usize, Vec<f64>);

/// sklearn's answers: (header of score columns, rows of values), in fixture order.
pub fn oracle(model: &str) -> (Vec<String>, Vec<OracleRow>) {
    let path = fixtures().join(model).join("oracle.csv");
    let mut rd =
        csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cols: Vec<String> = rd
        .headers()
        .unwrap()
        .iter()
        .skip(2)
        .map(String::from)
        .collect();
    let rows = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            let vals = r
                .iter()
                .skip(2)
                .map(|v| v.parse::<f64>().unwrap())
                .collect();
            (r[0].to_string(), r[1].parse().unwrap(), vals)
        })
        .collect();
    (cols, rows)
}
