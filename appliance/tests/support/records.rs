//! Reading what weir wrote: CSV records and `--stats` JSON.

use std::collections::HashMap;
use std::path::Path;

/// A record: column name -> text.
pub type Row = HashMap<String, String>;

/// A CSV file as rows of column name -> text.
pub fn read_csv(path: &Path) -> Vec<Row> {
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

/// The `--stats` JSON of a run.
pub fn read_stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no stats at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats has no number {key}: {v}"))
}

/// Records of a CSV file: (rows, sum of bidirectional_packets, rows per expiration_id).
pub fn csv_totals(path: &Path) -> (u64, u64, std::collections::BTreeMap<String, u64>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).expect(name);
    let (p, e) = (col("bidirectional_packets"), col("expiration_id"));
    let mut rows = 0;
    let mut packets = 0;
    let mut by_exp = std::collections::BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        rows += 1;
        let n: u64 = rec[p].parse().unwrap();
        assert!(n >= 1, "a record without packets");
        packets += n;
        *by_exp.entry(rec[e].to_string()).or_insert(0) += 1;
    }
    (rows, packets, by_exp)
}
