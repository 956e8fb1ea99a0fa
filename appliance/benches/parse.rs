//! weir's parser (`weir::parse::parse`) and flow hash over the frames of one capture, in a tight
//! loop with the frames in cache: the parse stage's compute alone, without the cache misses of
//! a frame's first read that `weir cost` also counts on the parse row. The least TSC cycles of
//! 20 blocks of ROUNDS passes, after a warm-up block.
//!
//!     cargo bench -p weir --bench parse -- CAPTURE [ROUNDS]

use std::hint::black_box;
use std::path::Path;
use weir::capture::{to_ethernet, CaptureReader};
use weir::flow::key::flow_hash;
use weir::parse::parse;
use weir_plugin_api::{FlowKeyV1, PacketV1};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(path) = args.first() else {
        eprintln!("usage: cargo bench -p weir --bench parse -- CAPTURE [ROUNDS]");
        return;
    };
    let rounds: u64 = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(20);
    // At most 4096 frames: they stay in L2 with the rest of the loop's data.
    let mut rd = CaptureReader::open(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut frames: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut scratch = Vec::new();
    while frames.len() < 4096 {
        let Some(f) = rd
            .next_with(|p| {
                to_ethernet(p.linktype, p.data, &mut scratch).map(|d| (d.to_vec(), p.orig_len))
            })
            .unwrap_or_else(|e| panic!("{path}: {e}"))
        else {
            break;
        };
        frames.extend(f);
    }
    let mut best = u64::MAX;
    let mut ok = 0u64;
    for block in 0..=20 {
        let t0 = weir_dpdk::rdtsc();
        for _ in 0..rounds {
            let mut a = 0u64;
            for (data, wire_len) in &frames {
                let mut pkt = PacketV1::EMPTY;
                let mut key = FlowKeyV1::default();
                if parse(black_box(data), *wire_len, 0, &mut pkt, &mut key).is_ok() {
                    a = a.wrapping_add(flow_hash(&key) | 1);
                    black_box(&pkt);
                }
            }
            ok = black_box(a);
        }
        let c = weir_dpdk::rdtsc() - t0;
        if block > 0 {
            best = best.min(c);
        }
    }
    println!(
        "{} frames of {path} (checksum {ok:x})\nparse + flow_hash  {:>7.1} cycles/packet",
        frames.len(),
        best as f64 / (frames.len() as f64 * rounds as f64)
    );
}
