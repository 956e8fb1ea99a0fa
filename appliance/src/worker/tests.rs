//! Worker tests that need its internals.

use super::*;
use crate::wire::ethernet::{ethertype, EthernetRepr};
use crate::wire::ipv4::{protocol, Ipv4Repr};
use crate::wire::udp::UdpRepr;
use crossbeam_channel::{unbounded, Receiver};

/// A worker with no plugins and a table of `capacity` flows, and its record channel.
fn worker(capacity: u32) -> (Worker, Receiver<Vec<FlowRecord>>) {
    let mut cfg = Config::default();
    cfg.flows.capacity = capacity;
    let tables = Arc::new(DecayTables::new(&cfg.rates).unwrap());
    let n_values = FlowRates::default().features(&tables).len();
    let s = WorkerSettings::from_config(&cfg, 0, n_values, (0, 8));
    let (tx, rx) = unbounded();
    let (atx, _arx) = unbounded();
    let cost = CostTable::new(&[], true);
    (Worker::new(s, None, cost, tables, Vec::new(), tx, atx), rx)
}

/// Ethernet + IPv4 + UDP from 10.0.x.y:sport to 10.1.0.1:53, 8 payload bytes.
fn udp_frame(i: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + 8 + 8);
    EthernetRepr {
        src_addr: [0; 6],
        dst_addr: [0; 6],
        ethertype: ethertype::IPV4,
    }
    .push(&mut f);
    Ipv4Repr {
        src_addr: [10, 0, (i >> 8) as u8, i as u8],
        dst_addr: [10, 1, 0, 1],
        protocol: protocol::UDP,
        payload_len: 8 + 8,
        ..Default::default()
    }
    .push(&mut f);
    UdpRepr {
        src_port: 1024 + (i >> 16) as u16,
        dst_port: 53,
    }
    .push(&mut f, &[0; 8], None);
    f
}

/// `n` one-packet flows at time `ts_ns`, in bursts of 64.
fn start_flows(w: &mut Worker, n: u32, ts_ns: u64) {
    let frames: Vec<Vec<u8>> = (0..n).map(udp_frame).collect();
    for chunk in frames.chunks(64) {
        let t = w.burst_start();
        w.process_burst(
            chunk.iter().map(|f| RawPacket {
                data: f,
                wire_len: f.len() as u32,
                ts_ns,
                source: 0,
            }),
            t,
        );
    }
}

/// A time jump past the idle timeout expires the whole table at once; its records reach
/// the output side in batches of at most FLUSH_BATCH, none lost, both when the clock
/// moves without packets (`advance_time`) and when a packet brings the new time.
#[test]
fn mass_expiry_hands_records_over_in_bounded_batches() {
    const FLOWS: u32 = 3000;
    let t0 = 1_700_000_000_000_000_000u64;
    let jump = 1_000 * 1_000_000_000; // far beyond the 120 s idle timeout
    for by_packet in [false, true] {
        let (mut w, rx) = worker(4096);
        start_flows(&mut w, FLOWS, t0);
        assert_eq!(w.live_flows(), FLOWS);
        let before: usize = rx.try_iter().map(|b| b.len()).sum();
        assert_eq!(before, 0, "no flow has ended yet");
        if by_packet {
            // One packet of a new flow, a long time later.
            let f = udp_frame(FLOWS + 1);
            let t = w.burst_start();
            w.process_burst(
                [RawPacket {
                    data: &f,
                    wire_len: f.len() as u32,
                    ts_ns: t0 + jump,
                    source: 0,
                }],
                t,
            );
        } else {
            w.advance_time(t0 + jump);
        }
        // The last partial batch may wait for more records (SEND_EVERY_NS): the end of
        // input sends it, with the new flow's record when a packet brought the time.
        w.flush_all();
        let batches: Vec<Vec<FlowRecord>> = rx.try_iter().collect();
        let total: usize = batches.iter().map(|b| b.len()).sum();
        let new_flow = usize::from(by_packet);
        assert_eq!(
            total,
            FLOWS as usize + new_flow,
            "every flow has its record"
        );
        assert!(
            batches.iter().all(|b| b.len() <= FLUSH_BATCH),
            "largest batch {} (by_packet {by_packet})",
            batches.iter().map(|b| b.len()).max().unwrap_or(0)
        );
        let idle = batches
            .iter()
            .flatten()
            .filter(|r| r.expiration == Expiration::Idle)
            .count();
        assert_eq!(idle, FLOWS as usize);
        assert_eq!(w.stats.expired_idle, FLOWS as u64);
    }
}

/// The filter stage over a burst longer than its stack buffer (MAX_BURST frames): every frame
/// is judged once, rejected ones only counted (packets, bytes, filtered), kept ones parsed and
/// counted into flows; per source, a source without a filter keeps everything; a rejected
/// packet's later time does not move the clock.
#[test]
fn filter_stage_counts_what_it_rejects_and_keeps_the_rest() {
    let mut cfg = Config::default();
    // Source 0: [capture] filter; source 1: a port with its own; source 2: a port without.
    cfg.capture.filter = Some("udp and src host 10.0.0.7".into());
    for f in [Some("udp"), None] {
        cfg.ports.push(crate::config::PortConfig {
            pci: None,
            vdev: Some("net_null0".into()),
            rx_desc: 1024,
            mtu: None,
            filter: f.map(str::to_string),
        });
    }
    let filters = crate::filter::Filters::new(
        cfg.capture.filter.as_deref(),
        cfg.ports.iter().map(|p| p.filter.as_deref()),
    )
    .unwrap();
    let (mut w, rx) = worker(4096);
    w.attach_filters(filters);
    let frames: Vec<Vec<u8>> = (0..1200).map(udp_frame).collect();
    let t0 = 1_700_000_000_000_000_000u64;
    let t = w.burst_start();
    w.process_burst(
        frames.iter().enumerate().map(|(i, f)| RawPacket {
            data: f,
            wire_len: f.len() as u32,
            // Frame 1100 (rejected) is the latest packet: it must not move the clock.
            ts_ns: t0 + if i == 1100 { 10_000_000_000 } else { 0 },
            source: 0,
        }),
        t,
    );
    // Only 10.0.0.7 passes [capture] filter.
    assert_eq!(w.stats.packets, 1200);
    assert_eq!(w.stats.filtered, 1199);
    assert_eq!(w.stats.accepted, 1);
    assert_eq!(w.stats.bytes, 1200 * frames[0].len() as u64);
    assert_eq!(w.last_ts_ns, t0);
    assert_eq!(w.cost.row(Stage::Filter.row()).packets, 1200);
    assert_eq!(w.cost.row(Stage::Parse.row()).packets, 1);
    // Source 1 (`udp`) and source 2 (no filter, [capture] filter's) and a source past the
    // configured ones (no filter at all).
    for (source, kept) in [(1u16, 10u64), (2, 1), (9, 10)] {
        let before = (w.stats.accepted, w.stats.filtered);
        let t = w.burst_start();
        w.process_burst(
            frames[..10].iter().map(|f| RawPacket {
                data: f,
                wire_len: f.len() as u32,
                ts_ns: t0,
                source,
            }),
            t,
        );
        assert_eq!(w.stats.accepted - before.0, kept, "source {source}");
        assert_eq!(w.stats.filtered - before.1, 10 - kept, "source {source}");
    }
    w.flush_all();
    let records: usize = rx.try_iter().map(|b| b.len()).sum();
    assert_eq!(records, 10, "the ten flows of frames 0..10");
}
