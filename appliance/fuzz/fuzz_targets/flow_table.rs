//! Fuzz the flow-key and flow-table path: a sequence of packets through a real
//! `weir::worker::Worker` (built by `weir::pipeline::Pipeline`) with a tiny table, so that
//! collisions, idle and active expiry, TCP teardown and eviction (or `table_full` with
//! `eviction = "none"`) all happen within a few packets.
//!
//! Oracle (the accounting every record rests on): every packet received is accepted into a
//! flow or counted as skipped (by reason) or `table_full`; after the final flush the packets in
//! the records equal the packets accepted, each record's directions add up to its total, and
//! the table never holds more flows than its capacity.
//!
//! With `WEIR_FUZZ_PLUGIN_DIR` set (fuzz.mk sets it to the release build), the shipped plugins
//! see every packet too, so the plugin host's packet view and the plugins' own parsing of it
//! are fuzzed through the same inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use weir::config::{Config, Eviction};
use weir::pipeline::Pipeline;
use weir::worker::RawPacket;

const CAPACITY: u32 = 4;

/// One pipeline per eviction policy, loaded once (plugins are dlopen'ed only once).
fn pipeline(eviction: Eviction, teardown: bool) -> &'static Pipeline {
    static P: OnceLock<Vec<Pipeline>> = OnceLock::new();
    let all = P.get_or_init(|| {
        let dir = std::env::var_os("WEIR_FUZZ_PLUGIN_DIR").map(std::path::PathBuf::from);
        let mut v = Vec::new();
        for ev in [Eviction::Oldest, Eviction::None] {
            for td in [false, true] {
                let mut cfg = Config::default();
                cfg.flows.capacity = CAPACITY;
                cfg.flows.idle_timeout_s = 1.0;
                cfg.flows.active_timeout_s = 3.0;
                cfg.flows.eviction = ev;
                cfg.flows.tcp_teardown = td;
                cfg.flows.wheel_granularity_ms = 10;
                cfg.workers.burst = 8;
                v.push(Pipeline::new(cfg, dir.clone(), dir.is_none()).expect("pipeline"));
            }
        }
        v
    });
    let i = match eviction {
        Eviction::Oldest => 0,
        Eviction::None => 2,
    } + teardown as usize;
    &all[i]
}

/// Build a frame from a few fuzz bytes: Ethernet + IPv4/IPv6 + TCP/UDP/ICMP over a small
/// address and port space (so flows collide and return), or raw bytes.
fn frame(op: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let kind = op[0];
    if kind & 0x80 != 0 {
        // Raw bytes after the header: whatever the fuzzer wants the parser to see.
        out.extend_from_slice(&op[1..]);
        return;
    }
    let v6 = kind & 0x40 != 0;
    let proto = [6u8, 17, 1, 58][((kind >> 4) & 3) as usize];
    let a = op.get(1).copied().unwrap_or(0) & 3;
    let b = op.get(2).copied().unwrap_or(0) & 3;
    let sport = 1000 + (op.get(3).copied().unwrap_or(0) & 3) as u16;
    let dport = 80 + (op.get(4).copied().unwrap_or(0) & 1) as u16;
    let flags = op.get(5).copied().unwrap_or(0x10);
    let payload = op.get(6..).unwrap_or(&[]);
    let (l4_len, l4): (usize, Vec<u8>) = match proto {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = flags;
            t[14] = 0xff;
            (20, t)
        }
        17 => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&dport.to_be_bytes());
            u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            (8, u)
        }
        _ => (8, vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1]),
    };
    let l4_total = l4_len + payload.len();
    out.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    if v6 {
        out.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        out.extend_from_slice(&(l4_total as u16).to_be_bytes());
        out.push(proto);
        out.push(64);
        for x in [a, b] {
            let mut ip = [0u8; 16];
            ip[0] = 0x20;
            ip[1] = 0x01;
            ip[15] = x + 1;
            out.extend_from_slice(&ip);
        }
    } else {
        out.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        out.extend_from_slice(&((20 + l4_total) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        out.extend_from_slice(&[10, 0, 0, a + 1, 10, 0, 0, b + 1]);
    }
    out.extend_from_slice(&l4);
    out.extend_from_slice(payload);
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let eviction = if data[0] & 1 == 0 {
        Eviction::Oldest
    } else {
        Eviction::None
    };
    let p = pipeline(eviction, data[0] & 2 != 0);
    let (rec_tx, rec_rx) = crossbeam_channel::unbounded();
    let (alert_tx, _alert_rx) = crossbeam_channel::unbounded();
    let mut w = p.worker(0, rec_tx, alert_tx).expect("worker");

    // Ops: [len][dt][bytes; len]; dt advances the clock (x 10 ms, x 500 ms when odd so that
    // idle and active timeouts fire).
    let mut frames: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut now_ns = 1_700_000_000_000_000_000u64;
    let mut rest = &data[1..];
    while rest.len() >= 3 && frames.len() < 512 {
        let len = (rest[0] as usize).min(rest.len() - 2);
        let dt = rest[1] as u64;
        let op = &rest[2..2 + len.max(1).min(rest.len() - 2)];
        rest = &rest[2 + op.len()..];
        now_ns += if dt & 1 == 1 { dt * 500 } else { dt * 10 } * 1_000_000;
        let mut f = Vec::new();
        frame(op, &mut f);
        frames.push((f, now_ns));
    }
    let burst = 8;
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
        assert!(w.live_flows() <= CAPACITY);
    }
    w.flush_all();
    assert_eq!(w.live_flows(), 0);
    let s = w.stats.clone();
    drop(w);
    let mut packets = 0u64;
    let mut records = 0u64;
    for batch in rec_rx.try_iter() {
        for r in batch {
            records += 1;
            assert!(r.bidirectional.packets >= 1);
            assert_eq!(
                r.src2dst.packets + r.dst2src.packets,
                r.bidirectional.packets
            );
            assert!(r.bidirectional.first_seen_ms <= r.bidirectional.last_seen_ms);
            packets += r.bidirectional.packets;
        }
    }
    assert_eq!(s.packets, frames.len() as u64);
    assert_eq!(s.packets, s.accepted + s.skipped.total() + s.table_full);
    assert_eq!(packets, s.accepted, "packets in records vs accepted");
    assert_eq!(records, s.records);
    assert_eq!(records, s.flows_created);
    match eviction {
        Eviction::Oldest => assert_eq!(s.table_full, 0),
        Eviction::None => assert_eq!(s.evicted, 0),
    }
});
