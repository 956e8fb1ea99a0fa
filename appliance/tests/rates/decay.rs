//! The table-based decay counters against an exact f64 EMA (`V <- V*exp(-dt/tau) + w`):
//! every value stays within `relative_error_bound(V*)`, V* being the largest count just before
//! an event of the stream.

use crate::support::ema::Exact;
use crate::support::rng::SplitMix as Rng;
use weir::rates::{
    relative_error_bound, DecayCounter, DecayTables, FlowRates, RatesConfig, Tick, TAU_TICKS,
};

struct Checked {
    max_err_pkts: f64,
    max_err_bytes: f64,
    /// Largest error as a share of the bound in force at the time.
    max_share: f64,
    v_star: f64,
}

/// Feed `(ts_ns, bytes)` events to table counters, a `FlowRates` and the exact oracle; assert
/// the bound after every event and for the flow features.
fn check(tau_ms: u64, events: &[(u64, u32)], what: &str) -> Checked {
    let tables = DecayTables::new(&RatesConfig { tau_ms }).unwrap();
    let tau_ns = tau_ms as f64 * 1e6;
    let mut pk = DecayCounter::default();
    let mut by = DecayCounter::default();
    let mut flow = FlowRates::default();
    let (mut ep, mut eb) = (Exact::default(), Exact::default());
    let mut out = Checked {
        max_err_pkts: 0.0,
        max_err_bytes: 0.0,
        max_share: 0.0,
        v_star: 0.0,
    };
    let (mut v_star_b, mut w_min) = (0.0f64, f64::MAX);
    let (mut peak_p, mut peak_b) = (0.0f64, 0.0f64);
    for (i, &(ts, w)) in events.iter().enumerate() {
        let t = tables.tick(ts);
        pk.add(&tables, t);
        by.add_weighted(&tables, t, w);
        flow.on_packet(&tables, t, w);
        let before = if i == 0 { 0.0 } else { ep.add(tau_ns, ts, 1.0) };
        let before_b = if i == 0 {
            0.0
        } else {
            eb.add(tau_ns, ts, w as f64)
        };
        if i == 0 {
            ep = Exact { v: 1.0, t_ns: ts };
            eb = Exact {
                v: w as f64,
                t_ns: ts,
            };
        }
        out.v_star = out.v_star.max(before);
        v_star_b = v_star_b.max(before_b);
        w_min = w_min.min(w as f64);
        peak_p = peak_p.max(ep.v);
        peak_b = peak_b.max(eb.v);
        // For bytes the carried share is V/(V+w) <= V*/(V*+w_min): V*/w_min events' worth.
        let bound_p = relative_error_bound(out.v_star);
        let bound_b = relative_error_bound(v_star_b / w_min);
        let err_p = (pk.value(&tables, t) / ep.v - 1.0).abs();
        let err_b = (by.value(&tables, t) / eb.v - 1.0).abs();
        assert!(
            err_p <= bound_p,
            "{what}: event {i}: packets error {err_p:e} > bound {bound_p:e} (V* {})",
            out.v_star
        );
        assert!(
            err_b <= bound_b,
            "{what}: event {i}: bytes error {err_b:e} > bound {bound_b:e}"
        );
        out.max_err_pkts = out.max_err_pkts.max(err_p);
        out.max_err_bytes = out.max_err_bytes.max(err_b);
        out.max_share = out.max_share.max(err_p / bound_p).max(err_b / bound_b);
    }
    // Flow features at the last packet, and the peaks (kept to 2^-24 of tau).
    let tau_s = tau_ms as f64 * 1e-3;
    let [pps, bps, ppk, bpk] = flow.features(&tables);
    let bound = relative_error_bound(out.v_star.max(v_star_b / w_min)) + 2f64.powi(-23);
    for (got, want, name) in [
        (pps, ep.v / tau_s, "decay_pps"),
        (bps, 8.0 * eb.v / tau_s, "decay_bps"),
        (ppk, peak_p / tau_s, "peak_pps"),
        (bpk, 8.0 * peak_b / tau_s, "peak_bps"),
    ] {
        let err = (got / want - 1.0).abs();
        assert!(
            err <= bound,
            "{what}: {name} {got} vs exact {want}: {err:e} > {bound:e}"
        );
    }
    eprintln!(
        "{what}: V* {:.0}, max rel error packets {:.2e} bytes {:.2e}, worst share of bound {:.2}",
        out.v_star, out.max_err_pkts, out.max_err_bytes, out.max_share
    );
    out
}

fn periodic(start: u64, period_ns: u64, n: u64, w: u32) -> Vec<(u64, u32)> {
    (0..n).map(|i| (start + i * period_ns, w)).collect()
}

#[test]
fn periodic_streams_match_the_closed_form() {
    let tau_ms = 1000;
    let tau_ns = 1e9;
    for (period_ns, n) in [
        (2_000_000_000u64, 40u64),
        (1_000_000, 20_000),
        (10_000, 400_000),
        (5_000, 1_000_000),
    ] {
        let ev = periodic(1_000_000_000, period_ns, n, 1500);
        let c = check(tau_ms, &ev, &format!("periodic {period_ns} ns x {n}"));
        // The oracle itself against the closed form V_n = (1 - q^n)/(1 - q).
        let q = (-(period_ns as f64) / tau_ns).exp();
        let closed = (1.0 - q.powf(n as f64)) / (1.0 - q);
        let mut e = Exact::default();
        for &(ts, _) in &ev {
            e.add(tau_ns, ts, 1.0);
        }
        assert!((e.v / closed - 1.0).abs() < 1e-9, "{} vs {closed}", e.v);
        // And the table counter against the closed form directly.
        let tables = DecayTables::new(&RatesConfig { tau_ms }).unwrap();
        let mut pk = DecayCounter::default();
        for &(ts, _) in &ev {
            pk.add(&tables, tables.tick(ts));
        }
        let last = tables.tick(ev.last().unwrap().0);
        let err = (pk.value(&tables, last) / closed - 1.0).abs();
        assert!(err <= relative_error_bound(c.v_star) + 1e-9, "{err:e}");
    }
}

#[test]
fn poisson_streams_with_byte_weights() {
    let mut rng = Rng(7);
    for (tau_ms, rate) in [(1000u64, 2e4f64), (100, 3e3), (10, 5e4)] {
        let mut ts = 5_000_000_000u64;
        let mean_ns = 1e9 / rate;
        let ev: Vec<(u64, u32)> = (0..200_000)
            .map(|_| {
                ts += rng.exp(mean_ns) as u64;
                let w = match rng.below(100) {
                    0 => 65535,
                    1..=3 => 9000,
                    _ => 40 + rng.below(1461) as u32,
                };
                (ts, w)
            })
            .collect();
        check(tau_ms, &ev, &format!("poisson {rate}/s tau {tau_ms} ms"));
    }
}

#[test]
fn bursts_of_simultaneous_events() {
    // 500 packets with one timestamp, every 0.3 tau, 30 times: V jumps by 500 at once.
    let mut ev = Vec::new();
    for b in 0..30u64 {
        for _ in 0..500 {
            ev.push((1_000_000 + b * 300_000_000, 64));
        }
    }
    let c = check(1000, &ev, "bursts");
    assert!(c.v_star > 500.0);
}

#[test]
fn an_idle_gap_resets_the_counter_exactly() {
    let tables = DecayTables::new(&RatesConfig { tau_ms: 1000 }).unwrap();
    let mut pk = DecayCounter::default();
    let mut flow = FlowRates::default();
    for i in 0..10_000u64 {
        let t = tables.tick(i * 100_000);
        pk.add(&tables, t);
        flow.on_packet(&tables, t, 100);
    }
    let peak = flow.features(&tables)[2];
    // The old count (V ~ 6300, ln V ~ 8.8) decays below e^-22.9 (the rho cut-off, half a tick
    // of s) after tau*(ln V + 22.9) < 32 tau.
    let gap_ns = 1_000_000_000 + 32 * 1_000_000_000;
    let t = tables.tick(gap_ns);
    pk.add(&tables, t);
    flow.on_packet(&tables, t, 100);
    assert_eq!(pk.s(), Some(t.0), "counter did not restart at t");
    assert_eq!(pk.value(&tables, t), 1.0);
    let [pps, bps, ppk, _] = flow.features(&tables);
    assert_eq!(pps, 1.0);
    // tau*ln(100) is rounded to the tick: 2^-33 relative.
    assert!((bps / 800.0 - 1.0).abs() < 1e-9, "{bps}");
    assert_eq!(ppk, peak, "the peak is kept across the gap");
    // A shorter gap (10 tau) keeps the tail: e^-10 of the old count remains.
    let mut c = DecayCounter::default();
    c.add(&tables, Tick(0));
    c.add(&tables, Tick(10 * TAU_TICKS));
    let want = 1.0 + (-10f64).exp();
    assert!(
        (c.value(&tables, Tick(10 * TAU_TICKS)) / want - 1.0).abs() <= relative_error_bound(1.0)
    );
}

#[test]
fn ticks_wrap_around_without_error() {
    // tau = 1 ms: ticks wrap at 2^64 ticks = 2^32 ms of packet time; run a stream across it.
    let wrap_ns = ((1u128 << 64) * 1_000_000 / (1u128 << 32)) as u64;
    let tables = DecayTables::new(&RatesConfig { tau_ms: 1 }).unwrap();
    let start = wrap_ns - 10_000_000;
    assert!(
        tables.tick(start).0 > tables.tick(start + 20_000_000).0,
        "no wrap"
    );
    let mut rng = Rng(11);
    let mut ts = start;
    let ev: Vec<(u64, u32)> = (0..40_000)
        .map(|_| {
            ts += rng.exp(500.0) as u64;
            (ts, 60 + rng.below(1400) as u32)
        })
        .collect();
    check(1, &ev, "across the tick wrap (tau 1 ms)");
    // Large absolute times (year 2255 in ns since the epoch) at tau = 1 s.
    let ev = periodic(9_000_000_000_000_000_000, 20_000, 200_000, 1000);
    check(1000, &ev, "large times");
}

#[test]
fn out_of_order_packets_are_still_exact_sums() {
    // A reordered pair (later timestamp first) is a valid log-sum-exp; the flow's "now" stays
    // at the latest time.
    let tables = DecayTables::new(&RatesConfig { tau_ms: 1000 }).unwrap();
    let mut f = FlowRates::default();
    f.on_packet(&tables, tables.tick(2_000_000_000), 100);
    f.on_packet(&tables, tables.tick(1_500_000_000), 100);
    let want = 1.0 + (-0.5f64).exp();
    let pps = f.features(&tables)[0];
    assert!(
        (pps / want - 1.0).abs() <= relative_error_bound(1.0),
        "{pps} vs {want}"
    );
}

#[test]
fn the_bound_is_as_documented() {
    // The figures quoted in the module docs.
    for (v, want) in [(1e3, 8.4e-6), (1e5, 3.1e-5), (1e6, 2.4e-4), (1e7, 2.3e-3)] {
        let b = relative_error_bound(v);
        assert!(
            (b / want - 1.0).abs() < 0.05,
            "V* {v}: bound {b:e}, docs say {want:e}"
        );
    }
}
