//! The records sinks' cost per record, on the output thread (never a worker): CSV, JSON Lines,
//! one Parquet file, and a partitioned Parquet dataset, each writing 16,384 records with the
//! default plugins' columns (entropy, flowstats, splt, tcp and the 4 rates: 169 features, 198
//! columns in all) into a temporary directory. SPLT columns past a flow's packet count are
//! NaN (empty fields, nulls), as in real records.
//! Parquet's time includes closing the file (footer, fsync, rename); CSV's includes a flush.
//! Divide by 16,384 for ns per record (criterion's throughput line gives records/s).
//!
//!     cargo bench -p weir --bench sinks -- --warm-up-time 1 --measurement-time 5
//!
//! On a shared machine wall time says little about what one sink thread can do, so after
//! criterion's lines each sink is also timed by the thread's own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, median of 5 passes): `cpu sink/csv: N records per CPU-second`.
//! `--cpu-only` prints only those; names after it (`--cpu-only csv parquet_file`) time only
//! those sinks (for a profile of one). With `WEIR_BENCH_SINKS_DIR=DIR` the `--cpu-only` files
//! are written there and kept (to compare the output of two builds byte for byte).

use criterion::{criterion_group, Criterion, Throughput};
use weir::flow::record::{DirCounters, Expiration, FlowRecord, RecordSchema};
use weir::sink;
use weir_plugin_api::{WEIR_FEATURE_F64 as F, WEIR_FEATURE_U64 as U};

const RECORDS: usize = 16_384;

/// The default plugins' feature columns, in load order, with their kinds.
fn default_features() -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = Vec::new();
    let dirs = ["bidirectional", "src2dst", "dst2src"];
    for (n, k) in [
        ("src2dst_payload_entropy", F),
        ("dst2src_payload_entropy", F),
        ("src2dst_payload_bytes", U),
        ("dst2src_payload_bytes", U),
        ("src2dst_payload_sampled", U),
        ("dst2src_payload_sampled", U),
    ] {
        v.push((n.into(), k));
    }
    for what in ["ps", "piat_ms"] {
        for d in dirs {
            for (stat, k) in [("min", U), ("mean", F), ("stddev", F), ("max", U)] {
                v.push((format!("{d}_{stat}_{what}"), k));
            }
        }
    }
    for d in dirs {
        for flag in ["syn", "cwr", "ece", "urg", "ack", "psh", "rst", "fin"] {
            v.push((format!("{d}_{flag}_packets"), U));
        }
    }
    for what in ["direction", "ps", "piat_ms"] {
        for i in 0..32 {
            v.push((format!("splt_{what}_{i}"), F));
        }
    }
    for d in ["src2dst", "dst2src"] {
        v.push((format!("tcp_{d}_retransmissions"), U));
    }
    for d in ["src2dst", "dst2src"] {
        v.push((format!("tcp_{d}_out_of_order"), U));
    }
    for d in ["src2dst", "dst2src"] {
        v.push((format!("tcp_{d}_zero_window"), U));
    }
    for n in ["tcp_syn_synack_ms", "tcp_synack_ack_ms", "tcp_handshake_ms"] {
        v.push((n.into(), F));
    }
    for d in ["src2dst", "dst2src"] {
        for (stat, k) in [("min", U), ("mean", F), ("max", U)] {
            v.push((format!("tcp_{d}_window_{stat}"), k));
        }
    }
    for n in ["decay_pps", "decay_bps", "peak_pps", "peak_bps"] {
        v.push((n.into(), F));
    }
    v
}

fn schema() -> RecordSchema {
    let mut s = RecordSchema::default();
    for (name, kind) in default_features() {
        s.extra.push(name);
        s.provider.push("bench".into());
        s.kinds.push(kind);
    }
    s
}

fn records(schema: &RecordSchema) -> Vec<FlowRecord> {
    (0..RECORDS as u64)
        .map(|i| {
            let packets = 1 + i % 50;
            let c = DirCounters {
                first_seen_ms: 1_700_000_000_000 + i * 10,
                last_seen_ms: 1_700_000_000_000 + i * 10 + (i % 977),
                packets,
                bytes: 60 + (i * 37) % 90_000,
            };
            let mut key = weir_plugin_api::FlowKeyV1 {
                ip_version: 4,
                src_port: (1024 + i % 60_000) as u16,
                dst_port: 443,
                protocol: 6,
                ..Default::default()
            };
            key.src_ip[..4].copy_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            key.dst_ip[..4].copy_from_slice(&[192, 0, 2, (i % 200) as u8]);
            let values = schema
                .extra
                .iter()
                .zip(&schema.kinds)
                .enumerate()
                .map(|(j, (name, &kind))| {
                    // SPLT keeps the first 32 packets: later slots are missing.
                    let slot = name.rsplit('_').next().and_then(|s| s.parse::<u64>().ok());
                    let slot = slot.unwrap_or(0);
                    if name.starts_with("splt_") && slot >= packets {
                        f64::NAN
                    } else if name.starts_with("splt_direction") {
                        ((i + slot) % 2) as f64
                    } else if name.starts_with("splt_ps") {
                        (60 + (i * (slot + 7)) % 1455) as f64
                    } else if name.starts_with("splt_piat") {
                        // Microseconds, in ms.
                        ((i * (slot + 3)) % 700_000) as f64 / 1000.0
                    } else if kind == U {
                        ((i * (j as u64 + 3)) % 1500) as f64
                    } else {
                        // Means, deviations, rates: full-precision doubles.
                        (i as f64 + 0.37) / (j + 1) as f64
                    }
                })
                .collect();
            FlowRecord {
                key,
                expiration: Expiration::Idle,
                worker: 0,
                service: 0,
                interval: None,
                bidirectional: c,
                src2dst: c,
                dst2src: c,
                values,
                texts: Default::default(),
                score_status: Default::default(),
                prediction: None,
                scores: vec![],
                icmp: [0; 2],
                community_id: Default::default(),
                model: None,
            }
        })
        .collect()
}

fn sinks(dir: &std::path::Path) -> [(&'static str, std::path::PathBuf); 4] {
    [
        ("csv", dir.join("flows.csv")),
        ("jsonl", dir.join("flows.jsonl")),
        ("parquet_file", dir.join("flows.parquet")),
        ("parquet_dataset", dir.join("dataset/")),
    ]
}

/// Write every record through a new sink at `path` and finish it.
fn write_all(path: &std::path::Path, schema: &RecordSchema, recs: &[FlowRecord]) {
    // A fresh file each time (a CSV or JSON Lines sink may append to an old one).
    if path.is_file() {
        std::fs::remove_file(path).unwrap();
    }
    let mut s = sink::open(path, schema).unwrap();
    for r in recs {
        s.write(r).unwrap();
    }
    s.finish().unwrap();
}

fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Records per CPU-second of the writing thread, median of 5 passes, for the sinks named in
/// `only` (all when empty).
fn cpu_rates(only: &[String]) {
    let schema = schema();
    let recs = records(&schema);
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("WEIR_BENCH_SINKS_DIR").map_or(tmp.path().to_path_buf(), |d| d.into());
    for (name, path) in sinks(&dir) {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        write_all(&path, &schema, &recs);
        let mut rates: Vec<f64> = (0..5)
            .map(|_| {
                let t = thread_cpu_s();
                write_all(&path, &schema, &recs);
                RECORDS as f64 / (thread_cpu_s() - t)
            })
            .collect();
        rates.sort_by(|a, b| a.total_cmp(b));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let size = if path.is_file() {
            format!(" ({:.1} MB)", size as f64 / 1e6)
        } else {
            String::new()
        };
        println!(
            "cpu sink/{name}: {:.0} records per CPU-second{size}",
            rates[2]
        );
    }
}

fn bench(c: &mut Criterion) {
    let schema = schema();
    let recs = records(&schema);
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(10);
    for (name, path) in sinks(dir.path()) {
        g.bench_function(name, |b| b.iter(|| write_all(&path, &schema, &recs)));
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == "--cpu-only") else {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return cpu_rates(&[]);
    };
    cpu_rates(&args[at + 1..]);
}
