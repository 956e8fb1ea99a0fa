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
