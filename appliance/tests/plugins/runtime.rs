//! The plugin host at run time: C plugins loaded from a directory, instantiated for a worker,
//! fed bursts of the synthetic traffic, emitting features into their columns; quarantine, done
//! bits and cycle accounting. Expected values are recomputed in the test from the packets
//! themselves (direction and wire length of each packet), not taken from the plugin.

use crate::support::plugins::{build, fresh_plugin_dir, name, Slabs};
use weir::cost::{CostTable, RowId, Stage};
use weir::plugin_host::selftest::SyntheticTraffic;
use weir::plugin_host::{PluginOptions, PluginRegistry, WorkerPlugins};

/// Per flow: packets src->dst, dst->src, bytes, counted from `pkts` (only those `take`s).
fn oracle(t: &SyntheticTraffic, take: impl Fn(usize) -> bool) -> Vec<[f64; 3]> {
    let mut v = vec![[0.0; 3]; t.keys.len()];
    for (i, p) in t.pkts.iter().enumerate() {
        if take(i) {
            let f = &mut v[t.flow_of[i]];
            f[p.direction as usize] += 1.0;
            f[2] += p.wire_len as f64;
        }
    }
    v
}

struct Run {
    reg: PluginRegistry,
    w: WorkerPlugins,
    cost: CostTable,
    slabs: Slabs,
    t: SyntheticTraffic,
}

impl Run {
    fn new(dir: &std::path::Path) -> Run {
        Run::with_options(&PluginOptions::new(dir))
    }

    fn with_options(opts: &PluginOptions) -> Run {
        let (reg, refusals) = PluginRegistry::load(opts).unwrap();
        assert!(refusals.is_empty(), "{refusals:?}");
        let mut w = reg.instantiate(3).unwrap();
        let mut cost = CostTable::new(&reg.cost_rows(), true);
        let t = SyntheticTraffic::new();
        let mut slabs = Slabs::new(reg.layout(), t.keys.len());
        for (i, k) in t.keys.iter().enumerate() {
            // SAFETY: slab i is slab_size bytes at slab_align, owned by this test.
            unsafe { w.flow_init(k, slabs.get(i), &mut cost) };
        }
        Run {
            reg,
            w,
            cost,
            slabs,
            t,
        }
    }

    /// Feed the traffic in bursts of `burst` packets.
    fn feed(&mut self, burst: usize) {
        self.feed_range(0..self.t.pkts.len(), burst);
    }

    /// Feed packets `range` of the traffic in bursts of `burst` packets.
    fn feed_range(&mut self, range: std::ops::Range<usize>, burst: usize) {
        let n = range.end;
        let mut start = range.start;
        while start < n {
            let end = (start + burst).min(n);
            let slabs: Vec<*mut u8> = (start..end)
                .map(|i| self.slabs.get(self.t.flow_of[i]))
                .collect();
            // SAFETY: the slabs were initialised by flow_init; packets point into t's frames.
            unsafe {
                self.w
                    .update_burst(&slabs, &self.t.pkts[start..end], &mut self.cost)
            };
            start = end;
        }
    }

    fn interval_emit(&mut self) -> Vec<Vec<f64>> {
        self.emit_each(true)
    }

    fn emit(&mut self) -> Vec<Vec<f64>> {
        self.emit_each(false)
    }

    /// Every flow's features: its interval's (`interval`) or the whole flow's.
    fn emit_each(&mut self, interval: bool) -> Vec<Vec<f64>> {
        (0..self.t.keys.len())
            .map(|i| {
                let mut out = vec![-1.0; self.w.n_features()];
                let (key, slab) = (&self.t.keys[i], self.slabs.get(i));
                // SAFETY: slab i was initialised by flow_init for key i, not aliased.
                unsafe {
                    if interval {
                        self.w.interval_emit(key, slab, &mut out, &mut self.cost)
                    } else {
                        self.w.flow_emit(key, slab, &mut out, &mut self.cost)
                    }
                };
                out
            })
            .collect()
    }
}

#[test]
fn good_c_plugin_emits_the_counts_of_the_packets_it_saw() {
    let dir = fresh_plugin_dir();
    build(&dir, "libcounter.so", &[]);
    let mut run = Run::new(&dir);
    assert_eq!(
        run.reg.feature_names(),
        [
            "counter_s2d_packets",
            "counter_d2s_packets",
            "counter_bytes"
        ]
    );
    assert_eq!(run.reg.feature_providers(), ["counter"; 3]);
    run.feed(4);
    let want = oracle(&run.t, |_| true);
    let got = run.emit();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.as_slice(), w.as_slice());
    }
    // Flow 0 is the TCP connection: 5 packets out, 4 back.
    assert_eq!(got[0][..2], [5.0, 3.0]);
    let info = &run.reg.describe()[0];
    assert_eq!(info.name, "counter");
    assert_eq!(info.version, "0.0.1-test");
    assert_eq!((info.state_size, info.state_align), (24, 8));
}

/// ABI 1.2: a plugin's interval part is allocated, and its interval update called, only when
/// the run has interval records; the whole-flow features are the same either way.
#[test]
fn interval_part_only_with_interval_records() {
    let dir = fresh_plugin_dir();
    build(&dir, "libcounter.so", &["INTERVAL_TAIL"]);
    let n = SyntheticTraffic::new().pkts.len();
    let half = n / 2;
    let whole = oracle(&SyntheticTraffic::new(), |_| true);

    // Off (the default): the plugin's own 24 bytes, and no interval_emit (NaN columns).
    let mut off = Run::new(&dir);
    assert_eq!(off.reg.describe()[0].state_size, 24);
    off.feed(5);
    assert!(off.interval_emit().iter().flatten().all(|v| v.is_nan()));
    for (g, w) in off.emit().iter().zip(&whole) {
        assert_eq!(g.as_slice(), w.as_slice());
    }

    // On: 24 + 8 bytes, bursts through update_burst_intervals, which counts each interval.
    let mut opts = PluginOptions::new(&dir);
    opts.intervals = true;
    let mut on = Run::with_options(&opts);
    assert_eq!(on.reg.describe()[0].state_size, 32);
    assert_eq!(
        (
            off.reg.layout().state_size(0),
            on.reg.layout().state_size(0)
        ),
        (24, 32)
    );
    on.feed_range(0..half, 5);
    let first = oracle(&on.t, |i| i < half);
    for (g, w) in on.interval_emit().iter().zip(&first) {
        assert_eq!(g[0], w[0] + w[1], "interval 1 packets");
        assert_eq!(g[1..], [0.0, 0.0]);
    }
    on.feed_range(half..n, 5);
    let second = oracle(&on.t, |i| i >= half);
    for (g, w) in on.interval_emit().iter().zip(&second) {
        assert_eq!(g[0], w[0] + w[1], "interval 2 packets");
    }
    for (g, w) in on.emit().iter().zip(&whole) {
        assert_eq!(g.as_slice(), w.as_slice());
    }
}

/// ABI 1.3: the slab holds what each instance's `flow_state_size` answered, not the declared
/// most, and the plugins behind a shrunk state still count exactly. A worker whose instance
/// answers otherwise is quarantined (its slab would be too small) and said why.
#[test]
fn flow_state_size_sizes_the_slab() {
    let dir = fresh_plugin_dir();
    build(
        &dir,
        "liba.so",
        &[&name("a"), "STATE_SIZE=200", "FLOW_STATE_SIZE=24"],
    );
    build(&dir, "libb.so", &[&name("b")]);
    let mut run = Run::new(&dir);
    let l = run.reg.layout();
    assert_eq!((l.state_size(0), l.offset(0), l.offset(1)), (24, 16, 40));
    assert_eq!(l.slab_size(), 64);
    assert_eq!(run.reg.describe()[0].state_size, 24);
    run.feed(7);
    let want = oracle(&run.t, |_| true);
    for (g, w) in run.emit().iter().zip(&want) {
        assert_eq!(g[..3], w[..], "plugin a");
        assert_eq!(g[3..], w[..], "plugin b");
    }

    let dir = fresh_plugin_dir();
    build(
        &dir,
        "liba.so",
        &[
            &name("a"),
            "STATE_SIZE=200",
            "FLOW_STATE_SIZE=24",
            "FLOW_STATE_SIZE_W1=32",
        ],
    );
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(refusals.is_empty(), "{refusals:?}");
    assert!(!reg.instantiate(0).unwrap().quarantined(0));
    let w1 = reg.instantiate(1).unwrap();
    assert!(w1.quarantined(0) && w1.quarantine_count() == 1);
}

#[test]
fn slab_layout_places_each_plugin_after_the_header() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba.so", &[&name("a")]);
    build(
        &dir,
        "libb.so",
        &[&name("b"), "STATE_SIZE=40", "STATE_ALIGN=64"],
    );
    build(&dir, "libc.so", &[&name("c")]);
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(refusals.is_empty(), "{refusals:?}");
    let l = reg.layout();
    assert_eq!((l.offset(0), l.offset(1), l.offset(2)), (16, 64, 104));
    assert_eq!((l.slab_size(), l.slab_align(), l.stride()), (128, 64, 128));
    // Columns follow load order.
    let cols: Vec<_> = reg.plugins().iter().map(|p| p.columns.clone()).collect();
    assert_eq!(cols, [0..3, 3..6, 6..9]);
    // Three plugins in one slab keep separate counts: all three equal the oracle.
    let mut run = Run::new(&dir);
    run.feed(5);
    let want = oracle(&run.t, |_| true);
    for (g, w) in run.emit().iter().zip(&want) {
        for p in 0..3 {
            assert_eq!(&g[p * 3..p * 3 + 3], w.as_slice());
        }
    }
}

#[test]
fn failing_plugin_is_quarantined_and_the_other_plugin_is_unaffected() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba_good.so", &[&name("good")]);
    // Fails on its 7th packet on worker 3 only, so it passes the self-test (worker 0).
    build(
        &dir,
        "libbad.so",
        &[&name("bad"), "FAIL_AT=7", "FAIL_WORKER=3"],
    );
    let mut run = Run::new(&dir);
    run.feed(4); // bursts 0-3, 4-7 (bad fails here), 8-10
    assert!(!run.w.quarantined(0));
    assert!(run.w.quarantined(1));
    assert_eq!(run.w.quarantine_count(), 1);
    let bad = run.cost.find("bad").unwrap();
    assert_eq!((bad.errors, bad.quarantined), (1, 1));
    // It was called for bursts 1 and 2, never again.
    assert_eq!((bad.calls, bad.packets), (2, 8));
    // More traffic does not reach it and does not count it again.
    run.feed(4);
    let bad = run.cost.find("bad").unwrap();
    assert_eq!((bad.calls, bad.errors), (2, 1));
    assert_eq!(run.w.quarantine_count(), 1);
    // good saw everything twice; bad's columns are NaN.
    let once = oracle(&run.t, |_| true);
    for (g, w) in run.emit().iter().zip(&once) {
        let twice: Vec<f64> = w.iter().map(|x| 2.0 * x).collect();
        assert_eq!(&g[..3], twice.as_slice());
        assert!(g[3..].iter().all(|x| x.is_nan()), "{g:?}");
    }
    let good = run.cost.find("good").unwrap();
    assert_eq!((good.calls, good.packets, good.errors), (6, 22, 0));
}

#[test]
fn emit_failure_quarantines_and_gives_nan() {
    // The self-test would refuse a plugin whose emit always fails, so turn the self-test off to
    // reach the run-time path.
    let dir = fresh_plugin_dir();
    build(&dir, "liba_good.so", &[&name("good")]);
    build(&dir, "libbad.so", &[&name("bad"), "EMIT_FAIL"]);
    let mut opts = PluginOptions::new(&dir);
    opts.self_test = false;
    let (reg, _) = PluginRegistry::load(&opts).unwrap();
    let mut w = reg.instantiate(0).unwrap();
    let mut cost = CostTable::new(&reg.cost_rows(), true);
    let t = SyntheticTraffic::new();
    let mut slabs = Slabs::new(reg.layout(), 2);
    let mut outs = Vec::new();
    for i in 0..2 {
        let mut out = vec![0.0; w.n_features()];
        // SAFETY: slab i belongs to this test, initialised before use.
        unsafe {
            w.flow_init(&t.keys[i], slabs.get(i), &mut cost);
            w.flow_emit(&t.keys[i], slabs.get(i), &mut out, &mut cost);
        }
        outs.push(out);
    }
    for o in &outs {
        assert_eq!(&o[..3], &[0.0, 0.0, 0.0]);
        assert!(o[3..].iter().all(|x| x.is_nan()));
    }
    let bad = cost.find("bad").unwrap();
    assert_eq!((bad.errors, bad.quarantined), (1, 1));
    // Quarantined after the first flow: the second flow_init was not counted for it.
    assert_eq!(bad.flows, 1);
    assert_eq!(cost.find("good").unwrap().flows, 2);
}

#[test]
fn done_bit_stops_packets_reaching_a_plugin() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba_all.so", &[&name("all")]);
    build(&dir, "libb_two.so", &[&name("two"), "DONE_AFTER=2"]);
    for burst in [1usize, 4, 11] {
        let mut run = Run::new(&dir);
        run.feed(burst);
        // Model of the host: a packet reaches "two" unless its flow was marked done in an
        // earlier burst; within a burst every packet of a not-yet-done flow reaches it.
        let n = run.t.pkts.len();
        let mut seen = vec![0usize; run.t.keys.len()];
        let mut done = vec![false; run.t.keys.len()];
        let mut reach = vec![false; n];
        let (mut calls, mut packets) = (0u64, 0u64);
        for start in (0..n).step_by(burst) {
            let end = (start + burst).min(n);
            let mut newly = vec![];
            let mut any = false;
            for (r, &f) in reach[start..end].iter_mut().zip(&run.t.flow_of[start..end]) {
                if !done[f] {
                    *r = true;
                    any = true;
                    packets += 1;
                    seen[f] += 1;
                    if seen[f] >= 2 {
                        newly.push(f);
                    }
                }
            }
            calls += any as u64;
            for f in newly {
                done[f] = true;
            }
        }
        let two = run.cost.find("two").unwrap();
        assert_eq!((two.calls, two.packets), (calls, packets), "burst {burst}");
        let all = run.cost.find("all").unwrap();
        assert_eq!(all.packets, n as u64);
        let want_two = oracle(&run.t, |i| reach[i]);
        let want_all = oracle(&run.t, |_| true);
        for (f, g) in run.emit().iter().enumerate() {
            assert_eq!(&g[..3], want_all[f].as_slice());
            assert_eq!(&g[3..], want_two[f].as_slice(), "burst {burst} flow {f}");
        }
        if burst == 1 {
            // One packet per burst: the plugin sees exactly two packets of each flow.
            assert_eq!(packets, 4);
        }
    }
}

#[test]
fn cost_table_counts_calls_packets_and_flows() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba.so", &[&name("a")]);
    build(&dir, "libb.so", &[&name("b")]);
    let mut run = Run::new(&dir);
    run.feed(3); // 11 packets: bursts of 3, 3, 3, 2
    run.emit();
    for name in ["a", "b"] {
        let r = run.cost.find(name).unwrap();
        assert_eq!((r.calls, r.packets, r.flows), (4, 11, 2), "{name}");
        assert_eq!(r.hist.len(), 4);
        assert!(r.cycles > 0);
        assert_eq!(r.state_bytes, 24);
    }
    // Only plugin rows were touched by the host.
    assert_eq!(run.cost.row(Stage::Parse.row()).calls, 0);
    // Bursts longer than MAX_BURST are split into several calls.
    let big = weir::plugin_host::MAX_BURST + 10;
    let slabs: Vec<*mut u8> = (0..big).map(|_| run.slabs.get(0)).collect();
    let pkts: Vec<_> = (0..big).map(|i| run.t.pkts[i % 2 * 2]).collect();
    // SAFETY: slab 0 is initialised; packets point into run.t's frames.
    unsafe { run.w.update_burst(&slabs, &pkts, &mut run.cost) };
    let a = run.cost.row(RowId::plugin(0));
    assert_eq!((a.calls, a.packets), (6, 11 + big as u64));
    // Merged over two workers.
    let merged = CostTable::merge(&[&run.cost, &run.cost]);
    assert_eq!(merged.row(RowId::plugin(1)).packets, 2 * (11 + big as u64));
    let report = merged.format(Some(2.0e9));
    assert!(report.contains("  a") && report.contains("  b"), "{report}");
}

#[test]
fn accounting_off_counts_nothing_but_still_quarantines() {
    let dir = fresh_plugin_dir();
    build(
        &dir,
        "libbad.so",
        &[&name("bad"), "FAIL_AT=3", "FAIL_WORKER=5"],
    );
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(refusals.is_empty(), "{refusals:?}");
    let mut w = reg.instantiate(5).unwrap();
    let mut cost = CostTable::new(&reg.cost_rows(), false);
    let t = SyntheticTraffic::new();
    let mut slabs = Slabs::new(reg.layout(), 2);
    for i in 0..2 {
        // SAFETY: as in the other tests.
        unsafe { w.flow_init(&t.keys[i], slabs.get(i), &mut cost) };
    }
    let s: Vec<*mut u8> = t.flow_of.iter().map(|&f| slabs.get(f)).collect();
    // SAFETY: as above.
    unsafe { w.update_burst(&s, &t.pkts, &mut cost) };
    assert!(w.quarantined(0));
    let r = cost.find("bad").unwrap();
    assert_eq!((r.calls, r.packets, r.cycles), (0, 0, 0));
    assert_eq!(r.errors, 1);
}

#[test]
fn quarantine_is_per_worker_and_logged_once_per_interval() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba_good.so", &[&name("good")]);
    // Fails on every worker but 0 (the self-test's).
    build(
        &dir,
        "libbad.so",
        &[&name("bad"), "FAIL_AT=1", "FAIL_WORKER=1"],
    );
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(refusals.is_empty(), "{refusals:?}");
    let t = SyntheticTraffic::new();
    let mut outs = Vec::new();
    let mut tables = Vec::new();
    // Worker 1 quarantines "bad", worker 2 does not (FAIL_WORKER=1).
    for worker in [1u32, 2] {
        let mut w = reg.instantiate(worker).unwrap();
        let mut cost = CostTable::new(&reg.cost_rows(), true);
        let mut slabs = Slabs::new(reg.layout(), 2);
        for i in 0..2 {
            // SAFETY: test-owned slabs, initialised before use.
            unsafe { w.flow_init(&t.keys[i], slabs.get(i), &mut cost) };
        }
        let s: Vec<*mut u8> = t.flow_of.iter().map(|&f| slabs.get(f)).collect();
        // SAFETY: as above.
        unsafe { w.update_burst(&s, &t.pkts, &mut cost) };
        let mut out = vec![0.0; w.n_features()];
        // SAFETY: as above.
        unsafe { w.flow_emit(&t.keys[0], slabs.get(0), &mut out, &mut cost) };
        assert_eq!(w.quarantined(1), worker == 1);
        outs.push(out);
        tables.push(cost);
    }
    let want = oracle(&t, |_| true)[0];
    assert_eq!(&outs[0][..3], want.as_slice());
    assert!(outs[0][3..].iter().all(|x| x.is_nan()));
    assert_eq!(&outs[1][..3], want.as_slice());
    assert_eq!(&outs[1][3..], want.as_slice());
    let merged = CostTable::merge(&[&tables[0], &tables[1]]);
    let bad = merged.find("bad").unwrap();
    assert_eq!((bad.errors, bad.quarantined), (1, 1));
    // A third worker quarantining within 10 s is counted but not logged.
    let mut w3 = reg.instantiate(1).unwrap();
    let mut cost = CostTable::new(&reg.cost_rows(), true);
    let mut slabs = Slabs::new(reg.layout(), 1);
    // SAFETY: as above.
    unsafe {
        w3.flow_init(&t.keys[0], slabs.get(0), &mut cost);
        w3.update_burst(&[slabs.get(0)], &t.pkts[..1], &mut cost);
    }
    assert!(w3.quarantined(1));
    assert_eq!(reg.plugins()[1].quarantine_logs_suppressed(), 1);
}
