//! One rate update, three ways (after Qrator Labs' comparison, 2017): a naive EMA with exp(),
//! the decay model computed with exp()/log1p(), and the table-based decay model; plus weir's
//! per-packet users of the tables (per-flow rates, a heavy-hitter table).
//!
//! 4096 keys, a random key per event, packet times increasing so each key sees about 50 events
//! per tau. Each iteration runs 65,536 updates; divide the time by 65,536 for ns per update
//! (criterion's throughput line gives the rate).
//!
//!     cargo bench -p weir --bench decay -- --warm-up-time 1 --measurement-time 3

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use weir::rates::{
    DecayTables, FlowRates, HeavyHitterConfig, HeavyHitters, KeyType, PacketKey, RatesConfig,
};

const KEYS: usize = 4096;
const EVENTS: usize = 65_536;
const TAU_NS: f64 = 1e9;

struct Event {
    key: u32,
    ts_ns: u64,
    bytes: u32,
}

fn events() -> Vec<Event> {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let dt = (TAU_NS / (KEYS as f64 * 50.0)) as u64;
    (0..EVENTS)
        .map(|i| Event {
            key: (next() % KEYS as u64) as u32,
            ts_ns: 1_000_000_000 + i as u64 * dt,
            bytes: 64 + (next() % 1437) as u32,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ev = events();
    let tables = Arc::new(DecayTables::new(&RatesConfig { tau_ms: 1000 }).unwrap());
    let mut g = c.benchmark_group("rate_update_4096_keys");
    g.throughput(Throughput::Elements(EVENTS as u64));

    // V <- V*exp(-dt/tau) + 1, per key: value and last time.
    let mut naive = vec![(0.0f64, 0.0f64); KEYS];
    g.bench_function("naive_ema_exp", |b| {
        b.iter(|| {
            for e in &ev {
                let t = e.ts_ns as f64 * 1e-9;
                let k = &mut naive[e.key as usize];
                k.0 = k.0 * (-(t - k.1) / 1.0).exp() + 1.0;
                k.1 = t;
            }
            black_box(&naive);
        })
    });

    // s' = max(s, t) + tau*ln(1 + exp(-|s - t|/tau)), in f64 seconds.
    let mut s_f = vec![f64::NEG_INFINITY; KEYS];
    g.bench_function("decay_exp_log1p", |b| {
        b.iter(|| {
            for e in &ev {
                let t = e.ts_ns as f64 * 1e-9;
                let s = &mut s_f[e.key as usize];
                let d = (*s - t).abs();
                *s = s.max(t) + (-d).exp().ln_1p();
            }
            black_box(&s_f);
        })
    });

    // The same with integer ticks and the rho table.
    let mut s_t = vec![0u64; KEYS];
    g.bench_function("decay_table", |b| {
        b.iter(|| {
            for e in &ev {
                let t = tables.tick(e.ts_ns);
                let s = &mut s_t[e.key as usize];
                *s = tables.combine(*s, t.0);
            }
            black_box(&s_t);
        })
    });

    // weir's per-flow update: packets and bytes counters and peaks (two table updates).
    let mut flows = vec![FlowRates::default(); KEYS];
    g.bench_function("flow_rates_on_packet", |b| {
        b.iter(|| {
            for e in &ev {
                let t = tables.tick(e.ts_ns);
                flows[e.key as usize].on_packet(&tables, t, e.bytes);
            }
            black_box(&flows);
        })
    });

    // One heavy-hitter table (src_ip, 4096 keys tracked), 4096 sources.
    let cfg = HeavyHitterConfig {
        top_k: Some(10),
        ..HeavyHitterConfig::new(KeyType::SrcIp)
    };
    let mut hh = HeavyHitters::for_workers(tables.clone(), &cfg, 1).remove(0);
    let pkts: Vec<PacketKey> = ev
        .iter()
        .map(|e| {
            let mut src = [0u8; 16];
            src[..4].copy_from_slice(&(0x0a00_0000 + e.key).to_be_bytes());
            PacketKey {
                src_ip: src,
                ip_version: 4,
                protocol: 6,
                ..PacketKey::default()
            }
        })
        .collect();
    g.bench_function("heavy_hitters_observe", |b| {
        b.iter(|| {
            for (e, p) in ev.iter().zip(&pkts) {
                hh.observe(p, tables.tick(e.ts_ns), e.bytes);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
