//! IPFIX export cost on the output thread: records encoded into messages (RFC 7011 data sets),
//! with the default template (key, counters, times, weir's elements, 4 rates: 128-octet
//! records) and with 190 columns (every shipped plugin's features: 1.5 kB records), and the
//! default template through the sink to a loopback UDP socket (one `send` per full message).
//!
//! Each iteration handles 65,536 records; criterion's throughput line gives records per second.
//!
//!     cargo bench -p weir --bench ipfix -- --warm-up-time 1 --measurement-time 3

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::UdpSocket;
use weir::flow::record::{DirCounters, Expiration, FlowRecord, RecordSchema, ScoreStatus};
use weir::sink::ipfix::message::MessageBuf;
use weir::sink::ipfix::template::{Selection, Template, DEFAULT_WEIR_PEN};
use weir::sink::ipfix::{IpfixConfig, IpfixSink};
use weir_plugin_api::FlowKeyV1;

const RECORDS: usize = 65_536;

fn schema(features: usize) -> RecordSchema {
    let mut s = RecordSchema::default();
    for i in 0..features {
        s.extra.push(format!("feature_{i}"));
        s.provider.push("plugin".into());
        s.kinds.push(0);
    }
    for r in ["decay_pps", "decay_bps", "peak_pps", "peak_bps"] {
        s.extra.push(r.into());
        s.provider.push("rates".into());
        s.kinds.push(0);
    }
    s
}

fn records(n_values: usize) -> Vec<FlowRecord> {
    (0..RECORDS as u32)
        .map(|i| {
            let mut key = FlowKeyV1::default();
            key.src_ip[..4].copy_from_slice(&i.to_be_bytes());
            key.dst_ip[..4].copy_from_slice(&[10, 0, 0, 1]);
            key.src_port = i as u16;
            key.dst_port = 443;
            key.protocol = 6;
            key.ip_version = 4;
            let d = DirCounters {
                first_seen_ms: 1_600_000_000_000 + i as u64,
                last_seen_ms: 1_600_000_001_000 + i as u64,
                packets: 10,
                bytes: 1000,
            };
            FlowRecord {
                key,
                expiration: Expiration::Idle,
                worker: 0,
                service: 0,
                interval: None,
                bidirectional: d,
                src2dst: d,
                dst2src: d,
                values: (0..n_values).map(|v| v as f64 * 0.5).collect(),
                texts: Default::default(),
                score_status: ScoreStatus::None,
                prediction: None,
                scores: vec![],
                icmp: [0; 2],
                community_id: Default::default(),
                model: None,
            }
        })
        .collect()
}

fn encode(c: &mut Criterion, name: &str, features: usize, all: bool) {
    let s = schema(features);
    let sel = if all {
        Selection::all(&s)
    } else {
        Selection::default_for(&s)
    };
    let (t, _) = Template::for_schema(&s, &sel, 4, DEFAULT_WEIR_PEN);
    let recs = records(s.extra.len());
    let mtu = if all { 9000 } else { 1400 };
    let mut g = c.benchmark_group("ipfix");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function(name, |b| {
        let mut m = MessageBuf::new(mtu);
        b.iter(|| {
            let mut octets = 0usize;
            for r in &recs {
                let len = t.record_len(r);
                if !m.fits(t.id, len) {
                    octets += m.finish(0, 0, 1).len();
                    m.clear();
                }
                m.set(t.id);
                t.write_record(r, &mut m);
            }
            octets += m.finish(0, 0, 1).len();
            m.clear();
            black_box(octets)
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    encode(c, "encode_default_template", 0, false);
    encode(c, "encode_190_columns", 186, true);
    // Through the sink: a loopback socket nobody reads (the kernel drops what overflows).
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = IpfixConfig::for_collector(&rx.local_addr().unwrap().to_string());
    let s = schema(0);
    let recs = records(s.extra.len());
    let mut sink = IpfixSink::open(&cfg, &s).unwrap();
    let mut g = c.benchmark_group("ipfix");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("sink_to_loopback_udp", |b| {
        b.iter(|| {
            for r in &recs {
                sink.export(r);
            }
            sink.tick();
        })
    });
    g.finish();
    drop(rx);
}

criterion_group!(ipfix, benches);
criterion_main!(ipfix);
