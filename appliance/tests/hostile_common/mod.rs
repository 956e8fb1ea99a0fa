//! Shared by the `hostile_*` tests: writing generated captures, running `weir` with
//! `--stats`, reading records back, sampling a process's resident memory, and a small
//! deterministic random generator (no dependency, reproducible by seed).
#![allow(dead_code)]

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

pub fn weir() -> Command {
    let mut c = Command::new(weir_bin());
    c.env("RUST_LOG", "warn");
    c
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nfstream")
}

/// xorshift64*: deterministic, good enough to spread 5-tuples.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A frame and its length on the wire.
#[derive(Clone)]
pub struct Pkt {
    pub data: Vec<u8>,
    pub wire_len: u32,
}

/// Write a classic Ethernet pcap (ns resolution), one packet per `step_ns` from `t0_ns`.
pub fn write_pcap(path: &Path, pkts: &[Pkt], t0_ns: u64, step_ns: u64) {
    let hdr = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), hdr).unwrap();
    for (i, p) in pkts.iter().enumerate() {
        let ts = t0_ns + i as u64 * step_ns;
        w.write_packet(&PcapPacket::new_owned(
            Duration::from_nanos(ts),
            p.wire_len,
            p.data.clone(),
        ))
        .unwrap();
    }
}

/// Ethernet + IPv4 + UDP with `payload` bytes of payload.
pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = 20 + 8 + payload;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(f.len() + payload, 0xab);
    f
}

/// `n` UDP packets of random 5-tuples (each a new flow, almost surely).
pub fn random_flood(seed: u64, n: usize) -> Vec<Pkt> {
    let mut r = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let x = r.next();
            let y = r.next();
            let f = udp4(
                [10, (x >> 8) as u8, (x >> 16) as u8, x as u8],
                [172, 16, (y >> 8) as u8, y as u8],
                (x >> 24) as u16 | 1024,
                (y >> 16) as u16,
                (y >> 40) as usize % 64,
            );
            let wire_len = f.len() as u32;
            Pkt { data: f, wire_len }
        })
        .collect()
}

/// The `--stats` JSON of a run.
pub fn read_stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no stats at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats has no number {key}: {v}"))
}

/// Records of a CSV file: (rows, sum of bidirectional_packets, rows per expiration_id).
pub fn csv_totals(path: &Path) -> (u64, u64, std::collections::BTreeMap<String, u64>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).expect(name);
    let (p, e) = (col("bidirectional_packets"), col("expiration_id"));
    let mut rows = 0;
    let mut packets = 0;
    let mut by_exp = std::collections::BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        rows += 1;
        let n: u64 = rec[p].parse().unwrap();
        assert!(n >= 1, "a record without packets");
        packets += n;
        *by_exp.entry(rec[e].to_string()).or_insert(0) += 1;
    }
    (rows, packets, by_exp)
}

/// Resident memory (VmRSS, KiB) of a process, if it still runs.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Run a child to its end, sampling VmRSS every `every`; returns its output and the samples.
pub fn run_sampled(mut cmd: Command, every: Duration) -> (Output, Vec<u64>) {
    let mut child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let pid = child.id();
    let mut samples = Vec::new();
    // Drain stderr on a thread so a chatty child never blocks on a full pipe.
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            break;
        }
        if let Some(k) = vm_rss_kib(pid) {
            samples.push(k);
        }
        assert!(Instant::now() < deadline, "weir ran for 10 minutes");
        std::thread::sleep(every);
    }
    let mut out = child.wait_with_output().unwrap();
    out.stderr = reader.join().unwrap();
    (out, samples)
}

/// The shipped plugins' directory (beside the weir binary) when they were built.
pub fn plugins_built() -> bool {
    weir_bin()
        .parent()
        .map(|d| d.join("libweir_flowstats.so").exists())
        .unwrap_or(false)
}
