//! weir's capture filter (`weir::filter::Filter::matches`) over the frames of one capture, in
//! a tight loop, measured as `perf/bpf_engines.c` measures DPDK's rte_bpf (JIT and
//! interpreter) and libpcap's bpf_filter over the same frames: the least TSC cycles of 20
//! blocks of ROUNDS passes, after a warm-up block. `perf/bpf_engines.sh` runs both.
//!
//!     cargo bench -p weir --bench filter -- CAPTURE EXPR [ROUNDS]

use std::hint::black_box;
use std::path::Path;
use weir::capture::{to_ethernet, CaptureReader};
use weir::filter::Filter;

fn main() {
    // cargo bench passes `--bench`; the capture and the expression follow.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(path), Some(expr)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cargo bench -p weir --bench filter -- CAPTURE EXPR [ROUNDS]");
        return;
    };
    let rounds: u64 = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(20);
    // The frames as the worker gets them: weir's capture reader (pcap or pcapng), other link
    // types given an Ethernet header as the extract feeder does.
    let mut rd = CaptureReader::open(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut frames: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut scratch = Vec::new();
    while let Some(f) = rd
        .next_with(|p| {
            to_ethernet(p.linktype, p.data, &mut scratch).map(|d| (d.to_vec(), p.orig_len))
        })
        .unwrap_or_else(|e| panic!("{path}: {e}"))
    {
        frames.extend(f);
    }
    let f = Filter::compile(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
    let mut best = u64::MAX;
    let mut accepted = 0u64;
    for block in 0..=20 {
        let t0 = weir_dpdk::rdtsc();
        for _ in 0..rounds {
            let mut a = 0u64;
            for (data, wire_len) in &frames {
                a += f.matches(black_box(data), black_box(*wire_len)) as u64;
            }
            accepted = black_box(a);
        }
        let c = weir_dpdk::rdtsc() - t0;
        if block > 0 {
            best = best.min(c);
        }
    }
    println!(
        "{} frames of {path}, filter {expr:?}\n{:<34} accepted {:>6}  {:>7.1} cycles/packet",
        frames.len(),
        "weir interpreter (filter.rs)",
        accepted,
        best as f64 / (frames.len() as f64 * rounds as f64)
    );
}
