//! The records sinks' cost per record, on the output thread (never a worker): CSV, one
//! Parquet file, and a partitioned Parquet dataset, each writing 16,384 records with the
//! flowstats-sized feature set (48 features plus 4 rates) into a temporary directory.
//! Parquet's time includes closing the file (footer, fsync, rename); CSV's includes a flush.
//! Divide by 16,384 for ns per record (criterion's throughput line gives records/s).
//!
//!     cargo bench -p weir --bench sinks -- --warm-up-time 1 --measurement-time 5

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir::flow::record::{DirCounters, Expiration, FlowRecord, RecordSchema};
use weir::sink;

const RECORDS: usize = 16_384;

fn schema() -> RecordSchema {
    let mut s = RecordSchema::default();
    for i in 0..52 {
        s.extra.push(format!("feature_{i}"));
        s.provider.push("bench".into());
        // A third integer features (counters), the rest doubles, as flowstats has.
        s.kinds.push(if i % 3 == 0 {
            weir_plugin_api::WEIR_FEATURE_U64
        } else {
            weir_plugin_api::WEIR_FEATURE_F64
        });
    }
    s
}

fn records(n_extra: usize) -> Vec<FlowRecord> {
    (0..RECORDS as u64)
        .map(|i| {
            let c = DirCounters {
                first_seen_ms: 1_700_000_000_000 + i * 10,
                last_seen_ms: 1_700_000_000_000 + i * 10 + (i % 977),
                packets: 1 + i % 50,
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
            FlowRecord {
                key,
                expiration: Expiration::Idle,
                worker: 0,
                service: 0,
                interval: None,
                bidirectional: c,
                src2dst: c,
                dst2src: c,
                values: (0..n_extra)
                    .map(|j| {
                        if j % 3 == 0 {
                            (i % 100) as f64
                        } else {
                            i as f64 / (j + 1) as f64
                        }
                    })
                    .collect(),
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

fn bench(c: &mut Criterion) {
    let schema = schema();
    let recs = records(schema.extra.len());
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(10);
    for (name, path) in [
        ("csv", dir.path().join("flows.csv")),
        ("parquet_file", dir.path().join("flows.parquet")),
        ("parquet_dataset", dir.path().join("dataset/")),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = sink::open(&path, &schema).unwrap();
                for r in &recs {
                    s.write(r).unwrap();
                }
                s.finish().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
