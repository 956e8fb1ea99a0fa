//! `[flows] tcp_teardown`: a TCP flow ends at its RST or at the second direction's FIN, and a
//! later packet of the same 5-tuple starts a new flow. The worker ends torn-down flows after
//! the burst's plugin dispatch (so a teardown does not cut the burst); this checks that the
//! records, with the shipped plugins' features, are exactly those of the same packets handed
//! over one packet per burst (where no deferral can happen), and that the flows split where
//! the packets say.

use crate::support::frames;
use crossbeam_channel::unbounded;
use std::collections::HashMap;
use weir::config::Config;
use weir::flow::record::{Expiration, FlowRecord};
use weir::pipeline::Pipeline;
use weir::wire::ethernet::{ethertype, EthernetRepr};
use weir::wire::ipv4::{protocol, Ipv4Repr};
use weir::wire::tcp::TcpRepr;
use weir::worker::{RawPacket, WorkerStats};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;

/// Ethernet + IPv4 + TCP from host `a` port `pa` to host `b` port `pb`, with `payload` bytes.
fn tcp(a: u8, pa: u16, b: u8, pb: u16, flags: u8, seq: u32, payload: usize) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: [2, 0, 0, 0, 0, a],
        dst_addr: [2, 0, 0, 0, 0, b],
        ethertype: ethertype::IPV4,
    };
    let ip = Ipv4Repr {
        src_addr: [10, 0, 0, a],
        dst_addr: [10, 0, 0, b],
        dont_frag: true,
        ..Default::default()
    };
    let seg = TcpRepr {
        src_port: pa,
        dst_port: pb,
        seq_number: seq,
        ack_number: 0,
        flags,
        window: 0x2000,
    };
    let data: Vec<u8> = (0..payload).map(|i| (i * 7 + a as usize) as u8).collect();
    frames::over_ipv4(eth, ip, protocol::TCP, &frames::tcp(seg, &data))
}

/// Four connections interleaved: 1 closes with FIN both ways and then sends one more ACK
/// (a new flow of the same 5-tuple); 2 is reset and then reopened with a SYN; 3 stays open;
/// 4 sends three RSTs in a row, each a flow of its own that ends at once (the fuzz target's
/// crash: one entry queued for teardown three times in one burst).
fn traffic() -> Vec<(Vec<u8>, u64)> {
    let mut v = Vec::new();
    let mut t = 1_700_000_000_000_000_000u64;
    let mut push = |f: Vec<u8>| {
        t += 1_300_000; // 1.3 ms apart
        v.push((f, t));
    };
    push(tcp(1, 1000, 9, 80, SYN, 0, 0));
    push(tcp(2, 2000, 9, 443, SYN, 0, 0));
    push(tcp(9, 80, 1, 1000, SYN | ACK, 0, 0));
    push(tcp(3, 3000, 9, 22, SYN, 0, 0));
    push(tcp(1, 1000, 9, 80, ACK | PSH, 1, 300));
    push(tcp(9, 443, 2, 2000, SYN | ACK, 0, 0));
    push(tcp(9, 80, 1, 1000, ACK | PSH, 1, 1200));
    push(tcp(2, 2000, 9, 443, ACK | PSH, 1, 500));
    push(tcp(1, 1000, 9, 80, FIN | ACK, 301, 0));
    push(tcp(3, 3000, 9, 22, ACK, 1, 40));
    push(tcp(9, 80, 1, 1000, FIN | ACK, 1201, 0)); // connection 1 torn down here
    push(tcp(9, 443, 2, 2000, RST, 1, 0)); // connection 2 reset here
    push(tcp(1, 1000, 9, 80, ACK, 302, 0)); // same 5-tuple as 1: a new flow
    push(tcp(2, 2000, 9, 443, SYN, 77, 0)); // connection 2 reopened: a new flow
    push(tcp(9, 22, 3, 3000, ACK | PSH, 1, 90));
    push(tcp(2, 2000, 9, 443, ACK, 78, 10));
    for seq in 0..3 {
        push(tcp(4, 4000, 9, 25, RST, seq, 0));
    }
    v
}

/// The records of `traffic()` handed over `burst` packets at a time, the teardowns counted,
/// and the record's feature names; checks the table's own accounting on the way.
fn run(burst: usize) -> (Vec<FlowRecord>, u64, Vec<String>) {
    let mut cfg = Config::default();
    cfg.flows.tcp_teardown = true;
    // The shipped plugins, built beside this test's binary's directory (target/<profile>).
    let (records, stats, names) = run_frames(cfg, &traffic(), burst, 8);
    (records, stats.teardown, names)
}

/// The records of `frames` handed over `burst` packets at a time with `cfg` and the shipped
/// plugins, the worker's counters, and the records' feature names; checks that `flows_created`
/// flows gave as many records and none is left.
fn run_frames(
    mut cfg: Config,
    frames: &[(Vec<u8>, u64)],
    burst: usize,
    flows_created: u64,
) -> (Vec<FlowRecord>, WorkerStats, Vec<String>) {
    cfg.workers.burst = 64;
    let p = Pipeline::new(cfg, None, false).expect("pipeline with the shipped plugins");
    let names = p.schema.extra.clone();
    let (tx, rx) = unbounded();
    let (atx, _arx) = unbounded();
    let mut w = p.worker(0, tx, atx).expect("worker");
    for chunk in frames.chunks(burst) {
        let t = w.burst_start();
        w.process_burst(
            chunk.iter().map(|(f, ts)| RawPacket {
                data: f,
                wire_len: f.len() as u32,
                ts_ns: *ts,
                source: 0,
            }),
            t,
        );
    }
    // A flow ended twice would corrupt the table's count and index (the fuzz target found
    // that once): every flow created gives one record, and none is left.
    assert_eq!(w.stats.flows_created, flows_created, "burst {burst}");
    w.flush_all();
    assert_eq!(w.live_flows(), 0);
    assert_eq!(w.stats.records, flows_created, "burst {burst}");
    let stats = w.stats.clone();
    drop(w);
    (rx.try_iter().flatten().collect(), stats, names)
}

/// A record as comparable text: key, why it ended, counters, every feature's bits.
fn describe(r: &FlowRecord) -> String {
    let bits: Vec<String> = r
        .values
        .iter()
        .map(|v| format!("{:x}", v.to_bits()))
        .collect();
    format!(
        "{:?}:{} -> {:?}:{} {:?} s2d {:?} d2s {:?} [{}]",
        &r.key.src_ip[..4],
        r.key.src_port,
        &r.key.dst_ip[..4],
        r.key.dst_port,
        r.expiration,
        r.src2dst,
        r.dst2src,
        bits.join(",")
    )
}

#[test]
fn teardown_records_do_not_depend_on_the_burst_size() {
    let (one, td_one, _) = run(1);
    let (all, td_all, names) = run(64);
    assert_eq!(td_one, 5);
    assert_eq!(td_all, 5);
    let mut a: Vec<String> = one.iter().map(describe).collect();
    let mut b: Vec<String> = all.iter().map(describe).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "records with bursts of 1 and of 64 packets");

    // Where the flows split, from the packets: 8 flows.
    assert_eq!(all.len(), 8);
    let by_port: HashMap<(u16, String), Vec<&FlowRecord>> =
        all.iter().fold(HashMap::new(), |mut m, r| {
            m.entry((r.key.src_port, format!("{:?}", r.expiration)))
                .or_default()
                .push(r);
            m
        });
    let by_port = |port: u16, why: Expiration| &by_port[&(port, format!("{why:?}"))];
    let c1 = by_port(1000, Expiration::Teardown);
    assert_eq!(c1.len(), 1);
    assert_eq!((c1[0].src2dst.packets, c1[0].dst2src.packets), (3, 3));
    let c1_after = by_port(1000, Expiration::Flush);
    assert_eq!(
        (c1_after[0].src2dst.packets, c1_after[0].dst2src.packets),
        (1, 0)
    );
    let c2 = by_port(2000, Expiration::Teardown);
    assert_eq!((c2[0].src2dst.packets, c2[0].dst2src.packets), (2, 2));
    let c2_after = by_port(2000, Expiration::Flush);
    assert_eq!(
        (c2_after[0].src2dst.packets, c2_after[0].dst2src.packets),
        (2, 0)
    );
    let c4 = by_port(4000, Expiration::Teardown);
    assert_eq!(c4.len(), 3);
    assert!(c4
        .iter()
        .all(|r| (r.src2dst.packets, r.dst2src.packets) == (1, 0)));
    let c3 = by_port(3000, Expiration::Flush);
    assert_eq!((c3[0].src2dst.packets, c3[0].dst2src.packets), (2, 1));
    // The plugins saw every packet of the torn-down flow, the last one included, before it
    // ended: flowstats' FIN counters and largest size, splt's sixth packet.
    let col = |name: &str| {
        let i = names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name}"));
        c1[0].values[i]
    };
    assert_eq!(col("bidirectional_fin_packets"), 2.0);
    assert_eq!(col("dst2src_fin_packets"), 1.0);
    assert_eq!(col("bidirectional_max_ps"), 54.0 + 1200.0);
    assert_eq!(col("splt_direction_5"), 1.0, "the dst2src FIN is packet 5");
    assert_eq!(col("splt_ps_5"), 54.0);
}

/// A full table evicts a flow for every new one. The evicted flow ends at once when none of
/// its packets wait for the plugins in the burst, else the packets before go through the
/// plugins first. Either way the records (counters and every feature's bits) are those of the
/// same packets handed over one at a time: connections sending round-robin into a table too
/// small for them, with the victim's last packet in the same burst (24 connections, 8 flows)
/// or bursts before (80 connections, 40 flows: 80 packets back, more than a burst).
#[test]
fn eviction_records_do_not_depend_on_the_burst_size() {
    for (conns, capacity) in [(24u8, 8u32), (80, 40)] {
        let mut frames = Vec::new();
        let mut t = 1_700_000_000_000_000_000u64;
        // Each round: every connection sends a packet and gets an answer, the payloads
        // varying so the plugins' features (sizes, entropy, splt) tell the packets apart.
        for round in 0..5u32 {
            for c in 0..conns {
                let port = 1000 + c as u16;
                let flags = if round == 0 { SYN } else { ACK | PSH };
                let len = 40 * round as usize + c as usize;
                t += 700_000;
                frames.push((tcp(c + 1, port, 200, 80, flags, round, len), t));
                t += 300_000;
                let back = if round == 0 { SYN | ACK } else { ACK };
                frames.push((tcp(200, 80, c + 1, port, back, round, 7 * c as usize), t));
            }
        }
        let mut cfg = Config::default();
        cfg.flows.capacity = capacity;
        // A connection's flow is always evicted before its next round: one flow per
        // connection and round.
        let flows = 5 * conns as u64;
        let describe_all = |burst: usize| {
            let (recs, stats, _) = run_frames(cfg.clone(), &frames, burst, flows);
            assert_eq!(stats.evicted, flows - capacity as u64, "burst {burst}");
            assert!(recs
                .iter()
                .all(|r| r.src2dst.packets == 1 && r.dst2src.packets == 1));
            let mut d: Vec<String> = recs.iter().map(describe).collect();
            d.sort();
            d
        };
        assert_eq!(describe_all(1), describe_all(64), "{conns} connections");
    }
}
