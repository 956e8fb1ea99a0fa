//! Heavy-hitter detections against exact per-key decayed rates, on a generated trace: planted
//! heavy sources (3% of all packets each, every packet a new small flow) over a Zipf background,
//! with one worker and with two workers whose views are merged.

use crate::support::ema::Exact;
use crate::support::rng::SplitMix as Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use weir::rates::{
    merge, relative_error_bound, Alert, AlertKind, DecayTables, HeavyHitterConfig, HeavyHitters,
    KeyType, Merged, PacketKey, RatesConfig, Snapshot,
};

const TAU_MS: u64 = 1000;
const RATE: f64 = 100_000.0; // packets/s over the whole trace
const SECONDS: f64 = 6.0;
const PLANTED: usize = 6;
const PLANTED_SHARE: f64 = 0.03;
const PLANTED_UNTIL_NS: u64 = 4_000_000_000;
const BACKGROUND_KEYS: usize = 20_000;
const THR_PPS: f64 = 2000.0;
const THR_BPS: f64 = 1.2e7;
const THR_FRACTION: f64 = 0.02;
const TOP_K: usize = 10;

struct Pkt {
    ts: u64,
    key: PacketKey,
    bytes: u32,
}

fn v4(a: u32) -> [u8; 16] {
    let mut b = [0; 16];
    b[..4].copy_from_slice(&a.to_be_bytes());
    b
}

fn planted_ip(i: usize) -> u32 {
    0xc633_6400 + i as u32 // 198.51.100.x
}

fn trace(seed: u64) -> Vec<Pkt> {
    let mut rng = Rng(seed);
    // Zipf(1.0) over the background sources.
    let mut cdf = Vec::with_capacity(BACKGROUND_KEYS);
    let mut acc = 0.0;
    for r in 1..=BACKGROUND_KEYS {
        acc += 1.0 / r as f64;
        cdf.push(acc);
    }
    let mut ts = 0.0f64;
    let mut out = Vec::new();
    loop {
        ts += rng.exp(1e9 / RATE);
        // End off a report boundary, so the final report has a time of its own.
        if ts >= (SECONDS - 0.1) * 1e9 {
            break;
        }
        let t = 1_000_000_000 + ts as u64;
        let u = rng.f64();
        let planted = t - 1_000_000_000 < PLANTED_UNTIL_NS && u < PLANTED_SHARE * PLANTED as f64;
        let src = if planted {
            planted_ip((u / PLANTED_SHARE) as usize)
        } else {
            let x = rng.f64() * acc;
            let r = cdf.partition_point(|&c| c < x);
            0x0a00_0000 + (r as u32).wrapping_mul(2_654_435_761) % 0x00ff_ffff
        };
        out.push(Pkt {
            ts: t,
            key: PacketKey {
                src_ip: v4(src),
                dst_ip: v4(0xac10_0000 + rng.below(65536) as u32),
                src_port: 1024 + rng.below(60000) as u16,
                dst_port: [53, 80, 443][rng.below(3) as usize],
                protocol: 17,
                ip_version: 4,
            },
            bytes: 64 + rng.below(1437) as u32,
        });
    }
    out
}

fn src_string(p: &PacketKey) -> String {
    format!(
        "{}.{}.{}.{}",
        p.src_ip[0], p.src_ip[1], p.src_ip[2], p.src_ip[3]
    )
}

fn config() -> HeavyHitterConfig {
    HeavyHitterConfig {
        threshold_pps: Some(THR_PPS),
        threshold_bps: Some(THR_BPS),
        threshold_fraction: Some(THR_FRACTION),
        top_k: Some(TOP_K),
        report_interval_ms: 500,
        capacity: 1024,
        ..HeavyHitterConfig::new(KeyType::SrcIp)
    }
}

/// Exact rates of every source at one report time.
struct Truth {
    pps: HashMap<String, f64>,
    bps: HashMap<String, f64>,
    total_pps: f64,
}

struct Outcome {
    alerts: Vec<Alert>,
    truth: HashMap<u64, Truth>,
}

fn rss(p: &PacketKey, workers: usize) -> usize {
    // A symmetric hash of the 5-tuple, as symmetric RSS would spread flows.
    let a = u32::from_be_bytes([p.src_ip[0], p.src_ip[1], p.src_ip[2], p.src_ip[3]]);
    let b = u32::from_be_bytes([p.dst_ip[0], p.dst_ip[1], p.dst_ip[2], p.dst_ip[3]]);
    let x = (a ^ b) as u64 ^ ((p.src_port ^ p.dst_port) as u64) << 32;
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % workers
}

fn run(trace: &[Pkt], workers: usize) -> Outcome {
    let tables = Arc::new(DecayTables::new(&RatesConfig { tau_ms: TAU_MS }).unwrap());
    let cfg = config();
    cfg.validate(0).unwrap();
    let mut hh = HeavyHitters::for_workers(tables.clone(), &cfg, workers as u16);
    let tau_ns = TAU_MS as f64 * 1e6;
    let iv = cfg.report_interval_ms * 1_000_000;
    let mut exact: HashMap<String, (Exact, Exact)> = HashMap::new();
    let mut total = Exact::default();
    let mut truth = HashMap::new();
    let mut alerts = Vec::new();
    let mut next = (trace[0].ts / iv + 1) * iv;
    let eval = |exact: &HashMap<String, (Exact, Exact)>, total: &Exact, at: u64| {
        let tau_s = TAU_MS as f64 * 1e-3;
        Truth {
            pps: exact
                .iter()
                .map(|(k, (p, _))| (k.clone(), p.at(tau_ns, at) / tau_s))
                .collect(),
            bps: exact
                .iter()
                .map(|(k, (_, b))| (k.clone(), 8.0 * b.at(tau_ns, at) / tau_s))
                .collect(),
            total_pps: total.at(tau_ns, at) / tau_s,
        }
    };
    for p in trace {
        // Workers poll continuously; the report at a boundary sees the packets before it.
        for w in hh.iter_mut() {
            w.poll(p.ts, &mut alerts);
        }
        while p.ts >= next {
            truth.insert(next / 1_000_000, eval(&exact, &total, next));
            next += iv;
        }
        let t = tables.tick(p.ts);
        hh[rss(&p.key, workers)].observe(&p.key, t, p.bytes);
        let e = exact.entry(src_string(&p.key)).or_default();
        e.0.add(tau_ns, p.ts, 1.0);
        e.1.add(tau_ns, p.ts, p.bytes as f64);
        total.add(tau_ns, p.ts, 1.0);
    }
    let end = trace.last().unwrap().ts;
    for w in hh.iter_mut() {
        w.finish(end, &mut alerts);
    }
    truth.insert(end / 1_000_000, eval(&exact, &total, end));
    Outcome { alerts, truth }
}

/// Check the alerts of one run against the truth; returns (mean top-k recall, mean precision,
/// worst relative rate error of the reported top-k keys).
fn judge(o: &Outcome, label: &str) -> (f64, f64, f64) {
    // Allow for the table error, 1e-4 being far above the bound at these rates (~3e-5).
    let slack = 1.0 + 10.0 * relative_error_bound(RATE);
    let mut by_time: HashMap<u64, Vec<&Alert>> = HashMap::new();
    for a in &o.alerts {
        by_time.entry(a.time_ms).or_default().push(a);
    }
    let mut times: Vec<u64> = by_time.keys().copied().collect();
    times.sort();
    assert!(times.len() >= 11, "{label}: only {} reports", times.len());
    let mut active: HashSet<(String, u64)> = HashSet::new();
    let (mut recall_sum, mut precision_sum, mut worst) = (0.0, 0.0, 0.0f64);
    let mut alerted: HashSet<String> = HashSet::new();
    let mut cleared: HashSet<String> = HashSet::new();
    for t in &times {
        let truth = o
            .truth
            .get(t)
            .unwrap_or_else(|| panic!("{label}: a report at {t} ms, no boundary there"));
        let share = |k: &str| truth.pps.get(k).copied().unwrap_or(0.0) / truth.total_pps;
        let pps = |k: &str| truth.pps.get(k).copied().unwrap_or(0.0);
        let bps = |k: &str| truth.bps.get(k).copied().unwrap_or(0.0);
        let mut top = Vec::new();
        for a in &by_time[t] {
            let (exact, thr) = match (a.kind, a.threshold) {
                (AlertKind::TopK, _) => {
                    top.push(a.key.clone());
                    worst = worst.max((a.rate_pps / pps(&a.key) - 1.0).abs());
                    continue;
                }
                (_, x) if x == THR_PPS => (pps(&a.key), THR_PPS),
                (_, x) if x == THR_BPS => (bps(&a.key), THR_BPS),
                (_, x) if x == THR_FRACTION => (share(&a.key), THR_FRACTION),
                _ => panic!("{label}: unexpected threshold in {a:?}"),
            };
            let id = (a.key.clone(), thr.to_bits());
            if a.kind == AlertKind::Cleared {
                assert!(
                    exact < thr * slack,
                    "{label}: {a:?} cleared but the exact value is {exact}"
                );
                assert!(
                    active.remove(&id),
                    "{label}: cleared without an alert: {a:?}"
                );
                cleared.insert(a.key.clone());
            } else {
                assert!(
                    exact >= thr / 2.0,
                    "{label}: {a:?} alerted but the exact value is {exact} < half of {thr}"
                );
                assert!(active.insert(id), "{label}: alerted twice: {a:?}");
                alerted.insert(a.key.clone());
            }
        }
        // Every key above a threshold (by more than the table error) is in alert.
        for (k, &v) in &truth.pps {
            for (thr, x) in [
                (THR_PPS, v),
                (THR_BPS, bps(k)),
                (THR_FRACTION, v / truth.total_pps),
            ] {
                if x >= thr * slack {
                    assert!(
                        active.contains(&(k.clone(), thr.to_bits())),
                        "{label}: at {t} ms {k} is at {x} >= {thr} but not in alert"
                    );
                }
            }
        }
        // Top-k against the exact top-k.
        let mut exact_top: Vec<(&String, f64)> = truth.pps.iter().map(|(k, &v)| (k, v)).collect();
        exact_top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let exact_top: HashSet<&String> = exact_top.iter().take(TOP_K).map(|x| x.0).collect();
        let hits = top.iter().filter(|k| exact_top.contains(k)).count() as f64;
        assert_eq!(top.len(), TOP_K, "{label}: at {t} ms");
        recall_sum += hits / exact_top.len() as f64;
        precision_sum += hits / top.len() as f64;
    }
    for i in 0..PLANTED {
        let ip = planted_ip(i).to_be_bytes();
        let k = format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
        assert!(
            alerted.contains(&k),
            "{label}: planted source {k} never alerted"
        );
        assert!(
            cleared.contains(&k),
            "{label}: planted source {k} never cleared"
        );
    }
    let n = times.len() as f64;
    let (r, p) = (recall_sum / n, precision_sum / n);
    eprintln!(
        "{label}: {} alerts over {} reports; top-{TOP_K} recall {r:.3} precision {p:.3}; \
         worst relative error of reported top-k rates {worst:.2e}",
        o.alerts.len(),
        times.len()
    );
    (r, p, worst)
}

#[test]
fn one_worker_finds_the_planted_sources_and_no_light_key() {
    let tr = trace(1);
    let o = run(&tr, 1);
    let (r, p, worst) = judge(&o, "1 worker");
    assert!(r >= 0.95 && p >= 0.95, "recall {r} precision {p}");
    assert!(worst <= 1e-3, "{worst}");
}

#[test]
fn two_workers_merged_are_judged_on_the_whole_appliance() {
    let tr = trace(2);
    let o = run(&tr, 2);
    let (r, p, worst) = judge(&o, "2 workers");
    assert!(r >= 0.95 && p >= 0.95, "recall {r} precision {p}");
    assert!(worst <= 1e-3, "{worst}");
}

#[test]
fn merge_adds_the_workers_decayed_sums() {
    // Split a trace over two workers by flow; the merged totals and per-key rates equal the
    // exact rates of the whole stream, while each worker alone sees about half of each source.
    let tr = trace(3);
    let tables = Arc::new(DecayTables::new(&RatesConfig { tau_ms: TAU_MS }).unwrap());
    let mut hh = HeavyHitters::for_workers(tables.clone(), &config(), 2);
    let tau_ns = TAU_MS as f64 * 1e6;
    let mut exact: HashMap<String, Exact> = HashMap::new();
    let mut total = Exact::default();
    let mut v_star = 0.0f64;
    let end = 3_000_000_000; // while the planted sources are active
    for p in tr.iter().take_while(|p| p.ts < end) {
        hh[rss(&p.key, 2)].observe(&p.key, tables.tick(p.ts), p.bytes);
        exact
            .entry(src_string(&p.key))
            .or_default()
            .add(tau_ns, p.ts, 1.0);
        v_star = v_star.max(total.add(tau_ns, p.ts, 1.0));
    }
    let mut snaps = [Snapshot::default(), Snapshot::default()];
    for (w, s) in hh.iter_mut().zip(snaps.iter_mut()) {
        w.snapshot_into(end, s);
    }
    let mut m = Merged::default();
    merge(&tables, &[&snaps[0], &snaps[1]], tables.tick(end), &mut m);
    let tau_s = TAU_MS as f64 * 1e-3;
    let exact_total = total.at(tau_ns, end) / tau_s;
    let err = (m.total_pps / exact_total - 1.0).abs();
    assert!(
        err <= relative_error_bound(v_star),
        "total {} vs {exact_total}",
        m.total_pps
    );
    let t = tables.tick(end);
    let halves: f64 = hh.iter().map(|w| w.local_total_pps(t)).sum();
    assert!((halves / m.total_pps - 1.0).abs() < 1e-12);
    for i in 0..PLANTED {
        let ip = planted_ip(i).to_be_bytes();
        let k = format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
        let mk = m
            .keys
            .iter()
            .find(|x| x.key.format(KeyType::SrcIp) == k)
            .unwrap_or_else(|| panic!("{k} missing from the merge"));
        let want = exact[&k].at(tau_ns, end) / tau_s;
        let err = (mk.pps / want - 1.0).abs();
        assert!(
            err <= 10.0 * relative_error_bound(RATE),
            "{k}: {} vs {want}",
            mk.pps
        );
        // Its share of the whole appliance is ~3%, although each worker holds only part of it.
        assert!((mk.pps / m.total_pps - PLANTED_SHARE).abs() < 0.006, "{k}");
        for w in &hh {
            let part = w
                .local_rates(t)
                .iter()
                .find(|x| x.0 == mk.key)
                .map_or(0.0, |x| x.1);
            assert!(
                part < 0.8 * mk.pps,
                "{k}: one worker holds {part} of {}",
                mk.pps
            );
        }
    }
}

#[test]
fn observe_does_not_allocate_and_memory_is_bounded() {
    let tables = Arc::new(DecayTables::new(&RatesConfig::default()).unwrap());
    let mut hh = HeavyHitters::for_workers(tables.clone(), &config(), 1).remove(0);
    assert_eq!(hh.capacity(), 1024);
    assert_eq!(hh.table_bytes(), 1024 * 60);
    // Far more distinct keys than capacity: the table stays at capacity.
    let tr = trace(4);
    for p in tr.iter().take(200_000) {
        hh.observe(&p.key, tables.tick(p.ts), p.bytes);
    }
    let t = tables.tick(tr[199_999].ts);
    assert!(hh.local_rates(t).len() <= 1024);
}
