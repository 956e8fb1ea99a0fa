//! # weir-tracegen
//!
//! Deterministic synthetic traffic for weir's performance harness (`perf/bench.sh`): a pcap of
//! N concurrent flows with Zipf-distributed sizes, IMIX packet sizes, TCP handshakes and
//! teardowns, UDP, IPv6, 802.1Q VLANs and planted heavy sources. The same seed and options give
//! the same bytes.
//!
//! - [`rng`]: the seeded PRNG (xoshiro256**).
//! - [`zipf`]: heavy-tailed flow sizes.
//! - [`frame`]: one packet's Ethernet/VLAN/IPv4/IPv6/TCP/UDP frame, built with `weir-wire`.
//! - [`gen`]: the flow model that drives them.
//! - [`pcap`]: the buffered pcap writer.

pub mod frame;
pub mod gen;
pub mod pcap;
pub mod rng;
pub mod zipf;

pub use gen::{Generator, Options, Summary};

/// Generate `o.packets` packets into a pcap written to `out`.
pub fn write_trace<W: std::io::Write>(
    o: &Options,
    snaplen: u32,
    out: W,
) -> std::io::Result<(W, Summary)> {
    let mut g = Generator::new(o.clone());
    let mut w = pcap::PcapWriter::new(out, snaplen)?;
    let mut frame = Vec::with_capacity(2048);
    for _ in 0..o.packets {
        let ts = g.next_packet(&mut frame);
        w.write(ts, &frame)?;
    }
    Ok((w.finish()?, g.summary))
}
