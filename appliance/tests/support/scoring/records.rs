//! Flow records built from NFStream's CSVs (the shared captures' expected records), under
//! the column names weir's records carry: core columns into [`FlowRecord`]'s fields, the
//! flowstats features into `values`. Used by the scoring tests and `examples/score_bench.rs`.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use weir::flow::record::{DirCounters, Expiration, FlowRecord, RecordSchema, ScoreStatus};
use weir::flow::schema::core_column;
use weir_plugin_api::FlowKeyV1;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("appliance/ has a parent")
        .to_path_buf()
}

/// The expected CSVs of the shared captures, sorted (the fixtures' row order).
pub fn record_files() -> Vec<PathBuf> {
    let dir = workspace().join("appliance/tests/data/nfstream/expected");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    v.sort();
    assert!(
        v.len() > 100,
        "expected the 136 NFStream CSVs in {}",
        dir.display()
    );
    v
}

/// Columns of NFStream's CSVs that are not numeric features.
const SKIP: [&str; 6] = [
    "id",
    "expiration_id",
    "src_ip",
    "dst_ip",
    "application_name",
    "application_category_name",
];

/// Records of all shared captures, in fixture order, with the schema a run with the
/// `flowstats` plugin would have. The extra column `_row` (provider "test") holds the global
/// row index so records can be matched after going through threads.
pub struct Records {
    pub schema: RecordSchema,
    pub records: Vec<FlowRecord>,
    /// (file name, row in file) per record.
    pub origin: Vec<(String, usize)>,
}

fn ip16(s: &str) -> ([u8; 16], u8) {
    let mut b = [0u8; 16];
    match s
        .parse::<IpAddr>()
        .unwrap_or_else(|e| panic!("ip {s}: {e}"))
    {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 6),
    }
}

pub fn records() -> Records {
    let files = record_files();
    let mut schema = RecordSchema::default();
    let mut records = Vec::new();
    let mut origin = Vec::new();
    for f in &files {
        let mut rd = csv::Reader::from_path(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let header: Vec<String> = rd
            .headers()
            .expect("header")
            .iter()
            .map(String::from)
            .collect();
        let extra: Vec<String> = header
            .iter()
            .filter(|h| !SKIP.contains(&h.as_str()) && core_column(h).is_none())
            .cloned()
            .collect();
        if schema.extra.is_empty() {
            schema.extra = extra.clone();
            schema.extra.push("_row".into());
            schema.provider = extra.iter().map(|_| "flowstats".to_string()).collect();
            schema.provider.push("test".into());
        } else {
            assert_eq!(&schema.extra[..extra.len()], &extra[..], "{}", f.display());
        }
        let idx = |name: &str| header.iter().position(|h| h == name).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for (row, rec) in rd.records().enumerate() {
            let rec = rec.expect("csv row");
            let num = |n: &str| -> f64 { rec[idx(n)].parse::<f64>().unwrap_or(f64::NAN) };
            let int = |n: &str| -> u64 { rec[idx(n)].parse::<u64>().expect(n) };
            let dir = |d: &str| DirCounters {
                first_seen_ms: int(&format!("{d}_first_seen_ms")),
                last_seen_ms: int(&format!("{d}_last_seen_ms")),
                packets: int(&format!("{d}_packets")),
                bytes: int(&format!("{d}_bytes")),
            };
            let (src, v) = ip16(&rec[idx("src_ip")]);
            let (dst, _) = ip16(&rec[idx("dst_ip")]);
            let key = FlowKeyV1 {
                src_ip: src,
                dst_ip: dst,
                src_port: int("src_port") as u16,
                dst_port: int("dst_port") as u16,
                vlan_id: int("vlan_id") as u16,
                protocol: int("protocol") as u8,
                ip_version: v,
                tunnel_id: int("tunnel_id") as u32,
                reserved: 0,
            };
            let mut values: Vec<f64> = extra.iter().map(|c| num(c)).collect();
            values.push(records.len() as f64);
            let bi = dir("bidirectional");
            // Durations are derived in weir; check the CSV agrees so the features are the same.
            assert_eq!(bi.duration_ms() as f64, num("bidirectional_duration_ms"));
            records.push(FlowRecord {
                key,
                expiration: Expiration::Idle,
                worker: 0,
                service: 0,
                interval: None,
                bidirectional: bi,
                src2dst: dir("src2dst"),
                dst2src: dir("dst2src"),
                values,
                texts: Default::default(),
                score_status: ScoreStatus::None,
                model: None,
                prediction: None,
                scores: Vec::new(),
                icmp: [0; 2],
                community_id: Default::default(),
            });
            origin.push((name.clone(), row));
        }
    }
    Records {
        schema,
        records,
        origin,
    }
}
