//! Checks against an independent oracle: a plain two-pass mean and variance over the same
//! packet list, computed here without any incremental update.

use super::*;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// (min, mean, sample stddev with `ddof` = 1, max) by two passes; zeros for an empty list.
fn oracle(xs: &[f64], min_n_for_std: usize) -> [f64; 4] {
    if xs.is_empty() {
        return [0.0; 4];
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() >= min_n_for_std {
        xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let min = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    [min, mean, var.sqrt(), max]
}

fn gaps(ts: &[u64]) -> Vec<f64> {
    ts.windows(2).map(|w| (w[1] - w[0]) as f64).collect()
}

fn pkt(ts_ns: u64, dir: u8, len: u32, flags: u8) -> PacketV1 {
    PacketV1 {
        ts_ns,
        wire_len: len,
        direction: dir,
        tcp_flags: flags,
        protocol: 6,
        ..PacketV1::EMPTY
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn run(pkts: &[PacketV1]) -> Vec<f64> {
    let mut s = FlowStats::default();
    let mut p = Flowstats;
    for x in pkts {
        assert_eq!(p.update(&mut s, x), Verdict::Continue);
    }
    let mut out = vec![f64::NAN; 48];
    p.emit(&FlowKeyV1::default(), &s, &mut out);
    out
}

#[test]
fn random_flows_match_two_pass_oracle() {
    let mut rng = Lcg(7);
    for trial in 0..200 {
        let n = (rng.next() % 40) as usize + (trial % 3);
        let mut t = 1_600_000_000_000_000_000u64 + rng.next();
        let mut pkts = Vec::new();
        for _ in 0..n {
            // Gaps from sub-millisecond to seconds, so truncation to ms matters.
            t += rng.next() % [900_000, 5_000_000, 3_000_000_000][(rng.next() % 3) as usize];
            let dir = u8::from(matches!(rng.next() % 3, 0));
            pkts.push(pkt(
                t,
                dir,
                54 + (rng.next() % 1460) as u32,
                rng.next() as u8,
            ));
        }
        let out = run(&pkts);

        let mut want = Vec::new();
        let sel = |f: &dyn Fn(&PacketV1) -> bool| -> Vec<PacketV1> {
            pkts.iter().filter(|p| f(p)).cloned().collect()
        };
        let groups = [
            sel(&|_| true),
            sel(&|p| p.direction == 0),
            sel(&|p| p.direction == 1),
        ];
        for g in &groups {
            let sizes: Vec<f64> = g.iter().map(|p| p.wire_len as f64).collect();
            want.extend(oracle(&sizes, 2));
        }
        for g in &groups {
            let ts: Vec<u64> = g.iter().map(|p| p.ts_ns / 1_000_000).collect();
            want.extend(oracle(&gaps(&ts), 2));
        }
        let count = |g: &[PacketV1], bit: u8| g.iter().filter(|p| p.tcp_flags & bit != 0).count();
        for g in &groups {
            for bit in FLAG_ORDER {
                want.push(count(g, bit) as f64);
            }
        }
        assert_eq!(want.len(), 48);
        for (i, (o, w)) in out.iter().zip(&want).enumerate() {
            assert!(
                close(*o, *w),
                "trial {trial} n {n} column {i}: got {o}, want {w}"
            );
        }
    }
}

#[test]
fn empty_and_single_packet_directions_are_zero_like_nfstream() {
    // One src2dst packet: no dst2src packets at all.
    let out = run(&[pkt(5_000_000_123, 0, 68, WEIR_TCP_SYN)]);
    assert_eq!(&out[0..4], &[68.0, 68.0, 0.0, 68.0]); // bidirectional ps
    assert_eq!(&out[4..8], &[68.0, 68.0, 0.0, 68.0]); // src2dst ps
    assert_eq!(&out[8..12], &[0.0; 4]); // dst2src ps: no packets -> 0
    assert_eq!(&out[12..24], &[0.0; 12]); // piat: no gaps -> 0
    assert_eq!(out[24], 1.0); // bidirectional_syn_packets
    assert_eq!(out[32], 1.0); // src2dst_syn_packets
    assert_eq!(out[40], 0.0); // dst2src_syn_packets
    assert_eq!(out.iter().filter(|v| **v != 0.0).count(), 8);
}

#[test]
fn two_packets_give_one_gap_and_zero_piat_stddev() {
    // The first row of 1kxun.pcap.csv: two 68-byte packets 102 ms apart.
    let out = run(&[
        pkt(1_470_104_373_025_400_000, 0, 68, 0),
        pkt(1_470_104_373_127_999_000, 0, 68, 0),
    ]);
    assert_eq!(&out[12..16], &[102.0, 102.0, 0.0, 102.0]);
    assert_eq!(&out[16..20], &[102.0, 102.0, 0.0, 102.0]);
    assert_eq!(&out[20..24], &[0.0; 4]);
}

#[test]
fn flag_columns_follow_nfstream_order() {
    let all = [
        WEIR_TCP_SYN,
        WEIR_TCP_CWR,
        WEIR_TCP_ECE,
        WEIR_TCP_URG,
        WEIR_TCP_ACK,
        WEIR_TCP_PSH,
        WEIR_TCP_RST,
        WEIR_TCP_FIN,
    ];
    // k+1 dst2src packets with flag k set.
    let mut pkts = vec![pkt(0, 0, 60, 0)];
    for (k, f) in all.iter().enumerate() {
        for _ in 0..=k {
            pkts.push(pkt(1_000_000, 1, 60, *f));
        }
    }
    let out = run(&pkts);
    for k in 0..8 {
        let name = FEATURES[40 + k].name.to_str().unwrap();
        assert_eq!(out[40 + k], (k + 1) as f64, "{name}");
        assert_eq!(out[24 + k], (k + 1) as f64);
        assert_eq!(out[32 + k], 0.0);
    }
    assert_eq!(FEATURES[40].name.to_str().unwrap(), "dst2src_syn_packets");
    assert_eq!(FEATURES[47].name.to_str().unwrap(), "dst2src_fin_packets");
}

#[test]
fn forty_eight_features_with_nfstream_names() {
    assert_eq!(FEATURES.len(), 48);
    let header = include_str!("../../../appliance/tests/data/nfstream/expected/1kxun.pcap.csv")
        .lines()
        .next()
        .unwrap();
    let cols: Vec<&str> = header.split(',').collect();
    let start = cols
        .iter()
        .position(|c| *c == "bidirectional_min_ps")
        .unwrap();
    let names: Vec<&str> = FEATURES.iter().map(|f| f.name.to_str().unwrap()).collect();
    assert_eq!(names, &cols[start..start + 48]);
}

#[test]
fn config_is_checked() {
    assert!(Flowstats::create("{}", 0).is_ok());
    assert!(Flowstats::create(" { } ", 0).is_ok());
    let e = Flowstats::create("{\"n\":3}", 0).err().unwrap();
    assert!(e.contains("no options"), "{e}");
}

#[test]
fn intervals_match_a_two_pass_oracle_and_leave_the_flow_features_alone() {
    let mut rng = Lcg(7);
    let mut t = 1_000_000_000_000u64;
    let pkts: Vec<PacketV1> = (0..300)
        .map(|_| {
            t += rng.next() % 50_000_000;
            pkt(
                t,
                (rng.next() % 2) as u8,
                60 + (rng.next() % 1400) as u32,
                0x10,
            )
        })
        .collect();
    let cuts = [0usize, 17, 18, 150, 300];
    let mut s = FlowStats::default();
    let mut iv = IntervalStats::default();
    let mut p = Flowstats;
    for w in cuts.windows(2) {
        for x in &pkts[w[0]..w[1]] {
            p.update_with_interval(&mut s, &mut iv, x);
        }
        let mut out = vec![f64::NAN; 48];
        p.emit_interval(&FlowKeyV1::default(), &s, &mut iv, &mut out);
        let sizes: Vec<f64> = pkts[w[0]..w[1]].iter().map(|x| x.wire_len as f64).collect();
        let want = oracle(&sizes, 2);
        for i in 0..4 {
            assert!(
                close(out[i], want[i]),
                "interval {w:?} ps {i}: {} vs {}",
                out[i],
                want[i]
            );
        }
        // Gaps ending in the interval: the first one reaches back to the previous interval.
        let from = w[0].saturating_sub(1);
        let ts: Vec<u64> = pkts[from..w[1]].iter().map(|x| x.ts_ms()).collect();
        let want = oracle(&gaps(&ts), 2);
        for i in 0..4 {
            assert!(close(out[12 + i], want[i]), "interval {w:?} piat {i}");
        }
        assert!(out[4..12].iter().chain(&out[16..]).all(|v| v.is_nan()));
    }
    // The whole-flow features are those of a flow that never had intervals, bit for bit.
    let whole = run(&pkts);
    let mut out = vec![f64::NAN; 48];
    p.emit(&FlowKeyV1::default(), &s, &mut out);
    assert_eq!(
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
