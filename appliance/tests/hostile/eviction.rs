//! Eviction is fair to active flows: ten UDP flows sending every 10 ms keep their entries while
//! a flood of one-packet flows from spoofed sources, ten times the table's size, churns through
//! `[flows] capacity = 1024`. With eviction by creation order they came out as hundreds of
//! evicted pieces; evicting the least recently active flow, each is one record, ended by the end
//! of the input, with every packet it sent.
//!
//! Oracle: the generated capture (which packets belong to which flow, and how many flood flows
//! there are) and the records file.

use crate::support::rng::XorShift as Rng;
use crate::support::{frames::*, records::*, run::*};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::collections::HashMap;
use std::time::Duration;

const CAPACITY: u64 = 1024;
const STEADY: u16 = 10;
const FLOOD: u64 = 10 * CAPACITY;
const T0_NS: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// The capture, in time order: steady flow `i` (10.0.0.1:(5000 + i) -> 10.9.9.9:53) sends at
/// every 10 ms from 0 to 1200 ms; the flood's one-packet flows (spoofed 100.x.y.z sources)
/// arrive evenly from 100 ms to 1100 ms, about 100 between two packets of a steady flow.
fn capture() -> Vec<(u64, Vec<u8>)> {
    let mut pkts = Vec::new();
    for tick in 0..=120u64 {
        for i in 0..STEADY {
            pkts.push((
                tick * 10 * MS + i as u64 * 1000,
                udp4([10, 0, 0, 1], [10, 9, 9, 9], 5000 + i, 53, 40),
            ));
        }
    }
    let mut r = Rng(0xf100d);
    for n in 0..FLOOD {
        let x = r.next();
        pkts.push((
            100 * MS + n * (1000 * MS / FLOOD) + 500,
            udp4(
                [100, (n >> 16) as u8, (n >> 8) as u8, n as u8],
                [10, 9, 9, 9],
                (x as u16) | 1024,
                53,
                (x >> 40) as usize % 32,
            ),
        ));
    }
    pkts.sort_by_key(|p| p.0);
    pkts
}

#[test]
fn a_flood_ten_times_the_table_does_not_evict_the_active_flows() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("flood.pcap");
    let hdr = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    let pkts = capture();
    let mut w = PcapWriter::with_header(std::fs::File::create(&cap).unwrap(), hdr).unwrap();
    for (t, f) in &pkts {
        w.write_packet(&PcapPacket::new(
            Duration::from_nanos(T0_NS + t),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    drop(w);
    let cfg = dir.path().join("weir.toml");
    std::fs::write(
        &cfg,
        format!("[flows]\ncapacity = {CAPACITY}\neviction = \"oldest\"\n\n[workers]\ncount = 1\n"),
    )
    .unwrap();
    let out = dir.path().join("flows.csv");
    let stats = dir.path().join("stats.json");
    let mut cmd = weir();
    cmd.arg("extract")
        .arg(&cap)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .arg("--quiet")
        .arg("--no-plugins");
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = read_stats(&stats);

    // The steady flows' records, by source port.
    let mut steady: HashMap<u16, Vec<(u64, String)>> = HashMap::new();
    let mut rows = 0u64;
    let mut r = csv::Reader::from_path(&out).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|c| c == n).expect(n);
    let (sip, sp, pk, ex) = (
        col("src_ip"),
        col("src_port"),
        col("bidirectional_packets"),
        col("expiration_id"),
    );
    for rec in r.records() {
        let rec = rec.unwrap();
        rows += 1;
        if &rec[sip] == "10.0.0.1" {
            steady
                .entry(rec[sp].parse().unwrap())
                .or_default()
                .push((rec[pk].parse().unwrap(), rec[ex].to_string()));
        }
    }
    let pieces: usize = steady.values().map(Vec::len).sum();
    eprintln!("stats: {s}\nsteady flows' records: {pieces}");
    assert_eq!(steady.len(), STEADY as usize);
    for (port, recs) in &steady {
        assert_eq!(
            recs,
            &vec![(121, "-1".to_string())],
            "steady flow from port {port} was cut"
        );
    }
    // Every flood flow but those still in the table at the end was evicted.
    assert_eq!(u(&s, "flows_created"), FLOOD + STEADY as u64);
    assert_eq!(u(&s, "evicted"), FLOOD - (CAPACITY - STEADY as u64));
    assert_eq!(rows, FLOOD + STEADY as u64);
    assert_eq!(u(&s, "accepted"), pkts.len() as u64);
}
