//! `weir-tracegen`: write a deterministic synthetic pcap for weir's performance harness.

use anyhow::{Context, Result};
use clap::Parser;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;
use weir_tracegen::{write_trace, Options};

/// Write a deterministic synthetic trace (pcap, microsecond timestamps, Ethernet).
///
/// Packets are drawn from N concurrent flows (each packet from a live flow picked uniformly at
/// random; a finished flow is replaced at once). Background flows carry a Zipf-distributed
/// number of data packets; TCP flows open with SYN, SYN-ACK, ACK and close with FIN, FIN, ACK
/// (or one RST); UDP flows send datagrams both ways. Data frames take IMIX sizes (60, 590,
/// 1514 bytes without FCS, 7:4:1 unless --imix). A share of all packets comes from planted heavy sources in
/// 198.18.0.0/15, each spread over many small one-way flows (1-8 UDP datagrams, or a lone TCP
/// SYN). Background addresses are in 10.0.0.0/8 and 2001:db8::/32. The same seed and options
/// give the same bytes.
#[derive(Parser, Debug)]
#[command(name = "weir-tracegen", version)]
struct Cli {
    /// Output pcap file.
    #[arg(long, short)]
    out: PathBuf,
    /// Total packets to write.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    packets: u64,
    /// Concurrent (live) background flows.
    #[arg(long, short = 'f', default_value_t = 10_000)]
    flows: u32,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf exponent of data packets per flow (P(k) ∝ k^-s).
    #[arg(long, default_value_t = 1.5)]
    zipf_s: f64,
    /// Smallest number of data packets of a background flow.
    #[arg(long, default_value_t = 1)]
    min_flow_packets: u32,
    /// Largest number of data packets of a background flow.
    #[arg(long, default_value_t = 100_000)]
    max_flow_packets: u32,
    /// Share of background flows that are UDP (the rest are TCP).
    #[arg(long, default_value_t = 0.2)]
    udp_fraction: f64,
    /// Share of background flows over IPv6.
    #[arg(long, default_value_t = 0.2)]
    ipv6_fraction: f64,
    /// Share of background flows with an 802.1Q tag (random VLAN id per flow).
    #[arg(long, default_value_t = 0.1)]
    vlan_fraction: f64,
    /// Share of TCP flows that end with a RST instead of FIN/FIN/ACK.
    #[arg(long, default_value_t = 0.05)]
    rst_fraction: f64,
    /// Number of planted heavy sources.
    #[arg(long, default_value_t = 4)]
    heavy_sources: u32,
    /// Share of all packets sent by the heavy sources together (split evenly).
    #[arg(long, default_value_t = 0.12)]
    heavy_share: f64,
    /// Mean packet rate of the trace's clock (packets per second of packet time).
    #[arg(long, default_value_t = 1_000_000.0)]
    pps: f64,
    /// Time of the first packet, seconds since the epoch.
    #[arg(long, default_value_t = 1_700_000_000)]
    start_s: u64,
    /// Compute TCP and UDP checksums (the IPv4 header checksum is always written).
    #[arg(long)]
    checksums: bool,
    /// Cut captured frames to this many bytes (the original length stays in each record).
    #[arg(long, default_value_t = 65535)]
    snaplen: u32,
    /// Weights of the data frame sizes 60, 590 and 1514 bytes, as A:B:C (the simple IMIX is
    /// 7:4:1, a 358-byte mean; 5:3:3 gives about 520 bytes, nearer an Internet link's).
    #[arg(long, default_value = "7:4:1", value_parser = parse_imix)]
    imix: [u32; 3],
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_imix(s: &str) -> std::result::Result<[u32; 3], String> {
    let v: Vec<u32> = s
        .split(':')
        .map(|x| x.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("--imix {s}: {e} (want three weights A:B:C)"))?;
    match v[..] {
        [a, b, c] if a + b + c > 0 => Ok([a, b, c]),
        _ => Err(format!("--imix {s}: want three weights A:B:C, not all 0")),
    }
}

fn main() -> Result<()> {
    let c = Cli::parse();
    for (name, v) in [
        ("--udp-fraction", c.udp_fraction),
        ("--ipv6-fraction", c.ipv6_fraction),
        ("--vlan-fraction", c.vlan_fraction),
        ("--rst-fraction", c.rst_fraction),
        ("--heavy-share", c.heavy_share),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&v),
            "{name} must be between 0 and 1, got {v}"
        );
    }
    anyhow::ensure!(c.zipf_s > 0.0, "--zipf-s must be positive");
    anyhow::ensure!(c.pps > 0.0, "--pps must be positive");
    anyhow::ensure!(c.snaplen >= 60, "--snaplen must be at least 60");
    anyhow::ensure!(
        c.min_flow_packets <= c.max_flow_packets && c.max_flow_packets <= 50_000_000,
        "--min-flow-packets must not exceed --max-flow-packets (at most 50000000)"
    );
    let o = Options {
        seed: c.seed,
        packets: c.packets,
        flows: c.flows.max(1),
        zipf_s: c.zipf_s,
        min_flow_packets: c.min_flow_packets,
        max_flow_packets: c.max_flow_packets,
        udp_fraction: c.udp_fraction,
        ipv6_fraction: c.ipv6_fraction,
        vlan_fraction: c.vlan_fraction,
        rst_fraction: c.rst_fraction,
        heavy_sources: c.heavy_sources,
        heavy_share: c.heavy_share,
        pps: c.pps,
        start_s: c.start_s,
        checksums: c.checksums,
        imix: c.imix,
    };
    let file =
        File::create(&c.out).with_context(|| format!("cannot create {}", c.out.display()))?;
    let t0 = Instant::now();
    let (file, s) = write_trace(&o, c.snaplen, file)
        .with_context(|| format!("cannot write {}", c.out.display()))?;
    file.sync_data().ok();
    let secs = t0.elapsed().as_secs_f64();
    if !c.quiet {
        let heavy: Vec<String> = s
            .heavy_ips
            .iter()
            .map(|ip| Ipv4Addr::from(*ip).to_string())
            .collect();
        eprintln!(
            "weir-tracegen: {} packets, {} bytes, {} flows started ({} TCP), mean flow size {:.1} data packets, {:.3} s of packet time -> {}",
            s.packets,
            s.bytes,
            s.flows,
            s.tcp_flows,
            s.mean_flow_packets,
            (s.last_ts_ns - c.start_s * 1_000_000_000) as f64 / 1e9,
            c.out.display()
        );
        eprintln!(
            "weir-tracegen: heavy sources [{}] sent {} packets ({:.2}%)",
            heavy.join(", "),
            s.heavy_packets,
            100.0 * s.heavy_packets as f64 / s.packets.max(1) as f64
        );
        eprintln!(
            "weir-tracegen: {:.2} s, {:.2} M packets/s",
            secs,
            s.packets as f64 / secs / 1e6
        );
    }
    Ok(())
}
