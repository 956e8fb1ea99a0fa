//! Comparing weir's flow records with NFStream's (the independent oracle in
//! `tests/data/*/expected`).

use super::records::Row;
use std::collections::BTreeMap;

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

pub fn flow_key(row: &Row) -> String {
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
pub fn compare(expected: &[Row], actual: &[Row], columns: &[String]) -> Vec<String> {
    let mut diffs = Vec::new();
    let index = |rows: &[Row]| {
        let mut m: BTreeMap<String, Vec<Row>> = BTreeMap::new();
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
