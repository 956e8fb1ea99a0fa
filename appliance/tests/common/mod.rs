//! Helpers shared by the integration tests: paths, running the `weir` binary, and comparing
//! flow records with NFStream's (the independent oracle in `tests/data/nfstream/expected`).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nfstream")
}

/// Every capture of the NFStream folder, sorted by name.
pub fn captures() -> Vec<PathBuf> {
    captures_in(&data_dir())
}

/// The second parity folder: captures of the nDPI test suite with NFStream's records.
pub fn ndpi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ndpi")
}

/// Every capture of one data folder (`pcaps/` under `dir`), sorted by name.
pub fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("pcaps"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("pcaps").display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// NFStream's records for a capture: `expected/NAME.csv` beside the capture's `pcaps/`.
pub fn expected_csv(capture: &Path) -> PathBuf {
    let folder = capture
        .parent()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(data_dir);
    folder.join("expected").join(format!(
        "{}.csv",
        capture.file_name().unwrap().to_str().unwrap()
    ))
}

/// The `weir` binary cargo built for this test run.
pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

pub fn weir() -> Command {
    let mut c = Command::new(weir_bin());
    c.env("RUST_LOG", "warn");
    c
}

/// A CSV file as rows of column name -> text.
pub fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r.headers().unwrap().iter().map(|s| s.to_string()).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(|s| s.to_string()))
                .collect()
        })
        .collect()
}

/// The columns that identify a flow.
pub const KEY_COLUMNS: [&str; 8] = [
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "protocol",
    "vlan_id",
    "tunnel_id",
    "bidirectional_first_seen_ms",
];

/// The core columns compared exactly.
pub fn core_columns() -> Vec<String> {
    let mut v = vec!["ip_version".to_string()];
    for d in ["bidirectional", "src2dst", "dst2src"] {
        for f in [
            "first_seen_ms",
            "last_seen_ms",
            "duration_ms",
            "packets",
            "bytes",
        ] {
            v.push(format!("{d}_{f}"));
        }
    }
    v
}

pub fn flow_key(row: &HashMap<String, String>) -> String {
    KEY_COLUMNS
        .iter()
        .map(|c| row.get(*c).map(|s| s.as_str()).unwrap_or("?"))
        .collect::<Vec<_>>()
        .join("|")
}

/// Numbers equal: integers exactly, floats within a relative 1e-6 (NFStream prints Python
/// floats; weir prints Rust's shortest round-trip form).
pub fn values_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            let d = (x - y).abs();
            d <= 1e-6 * x.abs().max(y.abs()) || d < 1e-9
        }
        _ => false,
    }
}

/// Compare weir's records with NFStream's for one capture, on `columns`; returns the
/// differences (empty = equal).
pub fn compare(
    expected: &[HashMap<String, String>],
    actual: &[HashMap<String, String>],
    columns: &[String],
) -> Vec<String> {
    let mut diffs = Vec::new();
    let index = |rows: &[HashMap<String, String>]| {
        let mut m: BTreeMap<String, Vec<HashMap<String, String>>> = BTreeMap::new();
        for r in rows {
            m.entry(flow_key(r)).or_default().push(r.clone());
        }
        m
    };
    let e = index(expected);
    let a = index(actual);
    for (k, erows) in &e {
        match a.get(k) {
            None => diffs.push(format!("missing flow {k}")),
            Some(arows) => {
                if erows.len() != arows.len() {
                    diffs.push(format!(
                        "flow {k}: {} in NFStream, {} in weir",
                        erows.len(),
                        arows.len()
                    ));
                    continue;
                }
                for (er, ar) in erows.iter().zip(arows) {
                    for c in columns {
                        let ev = er.get(c).map(|s| s.as_str()).unwrap_or("<none>");
                        let av = ar.get(c).map(|s| s.as_str()).unwrap_or("<none>");
                        if !values_equal(ev, av) {
                            diffs.push(format!("flow {k}: {c}: NFStream {ev}, weir {av}"));
                        }
                    }
                }
            }
        }
    }
    for k in a.keys() {
        if !e.contains_key(k) {
            diffs.push(format!("extra flow {k}"));
        }
    }
    diffs
}
