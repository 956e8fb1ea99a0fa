//! Hand-worked TCP conversations; every expected number is derived in the comments.

use super::*;

/// A segment without header bytes (no options to read).
fn seg(t_us: u64, dir: u8, flags: u8, seq: u32, ack: u32, len: u16, win: u16) -> PacketV1 {
    PacketV1 {
        ts_ns: t_us * 1_000,
        direction: dir,
        protocol: 6,
        tcp_flags: flags,
        tcp_seq: seq,
        tcp_ack: ack,
        payload_len: len,
        tcp_window: win,
        ..PacketV1::EMPTY
    }
}

/// A SYN whose captured TCP header carries MSS, NOP and window scale `ws` options.
fn syn_with_ws(buf: &mut Vec<u8>, pkt: PacketV1, ws: u8) -> PacketV1 {
    buf.clear();
    buf.resize(34 + 20, 0);
    buf.extend_from_slice(&[2, 4, 0x05, 0xb4, 1, 3, 3, ws]);
    PacketV1 {
        data: buf.as_ptr(),
        cap_len: buf.len() as u32,
        l4_off: 34,
        tcp_hdr_len: 28,
        ..pkt
    }
}

fn run(proto: u8, pkts: &[PacketV1]) -> (Vec<f64>, Vec<Verdict>) {
    let mut p = Tcp::create("{}", 0).unwrap();
    let key = FlowKeyV1 {
        protocol: proto,
        ..Default::default()
    };
    let mut s = TcpState::zeroed();
    p.flow_init(&key, &mut s);
    let v = pkts.iter().map(|x| p.update(&mut s, x)).collect();
    let mut out = vec![f64::NAN; FEATURES.len()];
    p.emit(&key, &s, &mut out);
    (out, v)
}

const S: u8 = WEIR_TCP_SYN;
const A: u8 = WEIR_TCP_ACK;

#[test]
fn handshake_rtts_and_scaled_windows() {
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    let pkts = [
        // SYN at 1.000000 s, window 64240, announces shift 7.
        syn_with_ws(&mut b1, seg(1_000_000, 0, S, 1000, 0, 0, 64240), 7),
        // SYN/ACK 20.5 ms later, window 65160, announces shift 8.
        syn_with_ws(&mut b2, seg(1_020_500, 1, S | A, 5000, 1001, 0, 65160), 8),
        // ACK of the SYN/ACK (ack = 5000 + 1) 10.5 ms later: window 502 << 7 = 64256.
        seg(1_031_000, 0, A, 1001, 5001, 0, 502),
        // Server data, window 100 << 8 = 25600.
        seg(1_040_000, 1, A, 5001, 1001, 1000, 100),
    ];
    let (out, v) = run(6, &pkts);
    assert!(v.iter().all(|v| *v == Verdict::Continue));
    assert_eq!(&out[0..6], &[0.0; 6]);
    assert_eq!(out[6], 20.5);
    assert_eq!(out[7], 10.5);
    assert_eq!(out[8], 31.0);
    // src2dst windows: 64240 (SYN: never scaled), 64256.
    assert_eq!(&out[9..12], &[64240.0, 64248.0, 64256.0]);
    // dst2src windows: 65160 (SYN), 25600.
    assert_eq!(&out[12..15], &[25600.0, 45380.0, 65160.0]);
}

#[test]
fn window_scale_needs_both_syns() {
    let mut b1 = Vec::new();
    let pkts = [
        syn_with_ws(&mut b1, seg(0, 0, S, 1, 0, 0, 1000), 7),
        seg(1_000, 1, S | A, 9, 2, 0, 2000), // no option: scaling stays off
        seg(2_000, 0, A, 2, 10, 0, 3),
    ];
    let (out, _) = run(6, &pkts);
    assert_eq!(&out[9..12], &[3.0, 501.5, 1000.0]);
}

#[test]
fn handshake_steps_missing_are_nan_and_last_syn_counts() {
    // Retransmitted SYN at 1 s then 2 s; SYN/ACK at 2.005 s; the ACK has the wrong ack number.
    let pkts = [
        seg(1_000_000, 0, S, 77, 0, 0, 10),
        seg(2_000_000, 0, S, 77, 0, 0, 10),
        seg(2_005_000, 1, S | A, 300, 78, 0, 10),
        seg(2_009_000, 0, A, 78, 999, 0, 10),
    ];
    let (out, _) = run(6, &pkts);
    assert_eq!(out[6], 5.0);
    assert!(out[7].is_nan() && out[8].is_nan());
    // The SYN repeat is one retransmission (SYN occupies one sequence number).
    assert_eq!(out[0], 1.0);
    // Mid-flow capture: nothing of the handshake.
    let (out, _) = run(6, &[seg(0, 0, A, 5, 5, 10, 10), seg(1, 1, A, 5, 15, 0, 10)]);
    assert!(out[6].is_nan() && out[7].is_nan() && out[8].is_nan());
    assert_eq!(&out[12..15], &[10.0, 10.0, 10.0]);
}

#[test]
fn retransmissions_and_out_of_order() {
    let d = |seq: u32, len: u16| seg(0, 0, A, seq, 1, len, 1000);
    let pkts = [
        d(1001, 100), // [1001,1101) high 1101
        d(1101, 100), // [1101,1201) high 1201
        d(1001, 100), // repeat: retransmission 1
        d(1301, 100), // skips [1201,1301): gap opens, high 1401
        d(1201, 50),  // inside the gap: out-of-order 1, gap now [1251,1301)
        d(1251, 50),  // fills the rest: out-of-order 2, gap closed
        d(1201, 100), // gap closed, below high: retransmission 2
        d(1351, 100), // partial overlap [1351,1451) vs high 1401: retransmission 3, high 1451
        d(1451, 0),   // pure ACK: no sequence space, not counted
        d(1451, 0),   // duplicate ACK: still not counted
        d(1451, 10),  // in order
    ];
    let (out, _) = run(6, &pkts);
    assert_eq!(out[0], 3.0);
    assert_eq!(out[2], 2.0);
    assert_eq!(out[1] + out[3], 0.0);
}

#[test]
fn sequence_numbers_wrap() {
    let d = |seq: u32, len: u16| seg(0, 1, A, seq, 1, len, 1000);
    let top = u32::MAX - 49; // [top, top+100) wraps past 2^32
    let pkts = [
        d(top, 100),
        d(50, 100),
        d(top, 100),
        d(250, 10),
        d(150, 100),
    ];
    // in order, in order across the wrap, retransmission, gap [150,250) opened, filled.
    let (out, _) = run(6, &pkts);
    assert_eq!(out[1], 1.0);
    assert_eq!(out[3], 1.0);
}

#[test]
fn zero_windows_exclude_rst() {
    let pkts = [
        seg(0, 1, A, 1, 1, 0, 0),
        seg(1, 1, A, 1, 1, 0, 0),
        seg(2, 1, WEIR_TCP_RST | A, 1, 1, 0, 0),
        seg(3, 0, A, 1, 1, 0, 0),
    ];
    let (out, _) = run(6, &pkts);
    assert_eq!(&out[4..6], &[1.0, 2.0]);
    assert_eq!(&out[12..15], &[0.0, 0.0, 0.0]);
}

#[test]
fn non_tcp_flows_are_all_nan_and_done_at_once() {
    let (out, v) = run(17, &[seg(0, 0, 0, 0, 0, 10, 0)]);
    assert_eq!(v, [Verdict::Done]);
    assert!(out.iter().all(|v| v.is_nan()));
}

#[test]
fn window_scale_parser() {
    let mut b = Vec::new();
    let p = syn_with_ws(&mut b, seg(0, 0, S, 0, 0, 0, 0), 9);
    assert_eq!(window_scale(&p), Some(9));
    let p = syn_with_ws(&mut b, seg(0, 0, S, 0, 0, 0, 0), 30);
    assert_eq!(window_scale(&p), Some(14));
    // Options cut by the capture length: not read past cap_len.
    let mut short = syn_with_ws(&mut b, seg(0, 0, S, 0, 0, 0, 0), 9);
    short.cap_len -= 2;
    assert_eq!(window_scale(&short), None);
    // A zero-length option must not loop forever.
    b.clear();
    b.resize(54, 0);
    b.extend_from_slice(&[8, 0, 0, 0]);
    let p = PacketV1 {
        data: b.as_ptr(),
        cap_len: b.len() as u32,
        l4_off: 34,
        tcp_hdr_len: 24,
        ..PacketV1::EMPTY
    };
    assert_eq!(window_scale(&p), None);
    assert_eq!(window_scale(&seg(0, 0, S, 0, 0, 0, 0)), None);
}

#[test]
fn intervals_count_their_own_segments() {
    use weir_plugin_api::{WEIR_TCP_ACK as A, WEIR_TCP_SYN as S};
    let mut p = Tcp::create("{}", 0).unwrap();
    let key = FlowKeyV1 {
        protocol: 6,
        ..Default::default()
    };
    let mut s = TcpState::zeroed();
    let mut iv = TcpInterval::zeroed();
    p.flow_init(&key, &mut s);
    // Interval 1: handshake, one data segment and its retransmission (src2dst windows 1000,
    // 1000, 3000, 3000 -> min 1000, mean 2000, max 3000).
    let first = [
        seg(0, 0, S, 100, 0, 0, 1000),
        seg(1000, 1, S | A, 500, 101, 0, 800),
        seg(2000, 0, A, 101, 501, 0, 1000),
        seg(3000, 0, A, 101, 501, 10, 3000),
        seg(4000, 0, A, 101, 501, 10, 3000),
    ];
    // Interval 2: one new segment (window 500) and a zero window from dst2src.
    let second = [
        seg(5000, 0, A, 111, 501, 10, 500),
        seg(6000, 1, A, 501, 121, 0, 0),
    ];
    let mut out = vec![f64::NAN; 15];
    for x in &first {
        p.update_with_interval(&mut s, &mut iv, x);
    }
    p.emit_interval(&key, &s, &mut iv, &mut out);
    assert_eq!(out[0], 1.0, "one retransmission in interval 1");
    assert_eq!(out[4..6], [0.0, 0.0]);
    assert_eq!((out[9], out[10], out[11]), (1000.0, 2000.0, 3000.0));
    assert_eq!((out[12], out[13], out[14]), (800.0, 800.0, 800.0));
    assert!((out[8] - 2.0).abs() < 1e-9, "handshake 2 ms: {}", out[8]);
    let mut out = vec![f64::NAN; 15];
    for x in &second {
        p.update_with_interval(&mut s, &mut iv, x);
    }
    p.emit_interval(&key, &s, &mut iv, &mut out);
    assert_eq!(out[0], 0.0, "no retransmission in interval 2");
    assert_eq!(out[5], 1.0, "the zero window");
    assert_eq!((out[9], out[10], out[11]), (500.0, 500.0, 500.0));
    assert_eq!((out[12], out[13], out[14]), (0.0, 0.0, 0.0));
    // The flow's own features still cover both intervals.
    let mut all = vec![f64::NAN; 15];
    p.emit(&key, &s, &mut all);
    assert_eq!((all[0], all[5]), (1.0, 1.0));
    assert_eq!((all[9], all[11]), (500.0, 3000.0));
}
