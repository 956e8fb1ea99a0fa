//! Comparing a run's records with a one-worker `weir extract` of the same capture (the
//! oracle of the multicore tests), flow by flow.

use super::paths::plugin_dir;
use super::records::{read_csv, Row};
use super::run::weir_logging;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// `weir extract CAPTURES --workers N` into `out`; panics with weir's stderr on failure.
pub fn extract(captures: &[PathBuf], workers: u32, out: &Path) -> Vec<Row> {
    let o = weir_logging("info")
        .arg("extract")
        .args(captures)
        .arg("--out")
        .arg(out)
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--plugin-dir")
        .arg(plugin_dir())
        .arg("--quiet")
        .output()
        .expect("run weir");
    // A capture cut short fails the run after its readable packets' flows are written.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let cut_short = stderr.contains("corrupt capture after")
        && stderr.contains("the flows of every packet read were written");
    assert!(
        o.status.success() || cut_short,
        "weir extract {captures:?} --workers {workers} failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    read_csv(out)
}

/// A flow's 5-tuple with VLAN and tunnel ids (both directions of a flow give one key, as the
/// record's src is the flow's first sender).
pub fn tuple(r: &Row) -> String {
    [
        "src_ip",
        "src_port",
        "dst_ip",
        "dst_port",
        "protocol",
        "vlan_id",
        "tunnel_id",
    ]
    .iter()
    .map(|c| r[*c].as_str())
    .collect::<Vec<_>>()
    .join("|")
}

/// A flow's 5-tuple with the endpoints in a fixed order: the same for both directions, so a
/// flow split by a spreader that is not symmetric shows as one key on two workers.
pub fn canonical_tuple(r: &Row) -> String {
    let a = (r["src_ip"].as_str(), r["src_port"].as_str());
    let b = (r["dst_ip"].as_str(), r["dst_port"].as_str());
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        lo.0, lo.1, hi.0, hi.1, r["protocol"], r["vlan_id"], r["tunnel_id"]
    )
}

/// Every flow (5-tuple, either direction) was seen by one worker only; returns how many flows
/// each worker had.
pub fn assert_one_worker_per_flow(rows: &[Row], what: &str) -> BTreeMap<String, usize> {
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        let w = r["worker"].clone();
        *per_worker.entry(w.clone()).or_default() += 1;
        if let Some(prev) = owner.insert(canonical_tuple(r), w.clone()) {
            assert_eq!(
                prev,
                w,
                "{what}: flow {} seen by workers {prev} and {w}",
                canonical_tuple(r)
            );
        }
    }
    per_worker
}

/// Numbers equal: integers exactly, floats within a relative 1e-9 (the same code computed
/// both; only the order of float sums may differ).
fn values_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// Compares records of a multi-worker run with the one-worker oracle on `columns` (every
/// column of the oracle but `worker` and `expiration_id` when `None`), flow by flow keyed by
/// `key`. `expiration_id` may differ only as idle (0) in one and end of input (-1) in the
/// other: a worker's clock is the newest packet *it* saw, so a flow whose idle deadline passed
/// in the one-worker run (moved by another flow's later packet) may still be open on its worker
/// at the end and be flushed instead; what the record counts is the same. Returns differences.
pub fn compare(
    oracle: &[Row],
    got: &[Row],
    key: &dyn Fn(&Row) -> String,
    columns: Option<&[&str]>,
) -> Vec<String> {
    let index = |rows: &[Row]| {
        let mut m: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for r in rows {
            m.entry(key(r)).or_default().push(r.clone());
        }
        m
    };
    let (e, a) = (index(oracle), index(got));
    let mut diffs = Vec::new();
    for (k, erows) in &e {
        let Some(arows) = a.get(k) else {
            diffs.push(format!("missing flow {k}"));
            continue;
        };
        if erows.len() != arows.len() {
            diffs.push(format!(
                "flow {k}: {} records in the oracle, {} here",
                erows.len(),
                arows.len()
            ));
            continue;
        }
        for (er, ar) in erows.iter().zip(arows) {
            let cols: Vec<&str> = match columns {
                Some(c) => c.to_vec(),
                None => er
                    .keys()
                    .map(|s| s.as_str())
                    .filter(|c| *c != "worker" && *c != "expiration_id")
                    .collect(),
            };
            for c in cols {
                let ev = er.get(c).map(|s| s.as_str()).unwrap_or("<none>");
                let av = ar.get(c).map(|s| s.as_str()).unwrap_or("<none>");
                if !values_equal(ev, av) {
                    diffs.push(format!("flow {k}: {c}: oracle {ev}, here {av}"));
                }
            }
            if let (Some(ee), Some(ae)) = (er.get("expiration_id"), ar.get("expiration_id")) {
                let ok =
                    ee == ae || matches!((ee.as_str(), ae.as_str()), ("0", "-1") | ("-1", "0"));
                if !ok {
                    diffs.push(format!("flow {k}: expiration_id: oracle {ee}, here {ae}"));
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

/// A flow's identity in a replay of the same capture: 5-tuple and first-seen time.
pub fn key_with_time(r: &Row) -> String {
    format!("{}|{}", tuple(r), r["bidirectional_first_seen_ms"])
}

/// Packets in a capture (every record, whatever its link type).
pub fn packets_in(capture: &Path) -> u64 {
    weir::capture::count_packets(capture).unwrap_or_else(|e| panic!("{}: {e}", capture.display()))
}
