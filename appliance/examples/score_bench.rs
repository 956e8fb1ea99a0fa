//! Scoring throughput and latency with a real model and ONNX Runtime.
//!
//!     cargo run --release -p weir --example score_bench -- MODEL_DIR [SECONDS]
//!
//! 1. Flows scored per second by one scorer (one session, one intra-op thread) for batch sizes
//!    1, 16, 64, 256, 1024, on the flows of the shared captures (NFStream's expected records).
//! 2. Latency from flow end (the record handed to the scoring service) to scored, through
//!    `ScoringService` with one thread, at several offered rates: hdrhistogram p50/p99/p99.9.

#[path = "../tests/support/scoring/records.rs"]
mod records;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use weir::scoring::{Scorer, ScoringConfig, ScoringService};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: score_bench MODEL_DIR [SECONDS]");
        std::process::exit(2);
    };
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let data = records::records();
    let cfg = ScoringConfig::default();
    let mut scorer = match Scorer::new(&dir, &data.schema, &cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let m = scorer.model().clone();
    println!(
        "model {} ({:?}, {} features, {} outputs) on {} flows; {} s per point",
        dir.display(),
        m.spec.task,
        m.spec.features.len(),
        m.spec.score_columns().len(),
        data.records.len(),
        secs
    );
    println!("\n## throughput, one scorer thread\n");
    println!("| batch | flows/s | us per run | us per flow |");
    println!("|------:|--------:|-----------:|------------:|");
    let mut recs = data.records.clone();
    // Repeat the records so the largest batch fits many times.
    while recs.len() < 8192 {
        recs.extend_from_slice(&data.records);
    }
    for batch in [1usize, 16, 64, 256, 1024] {
        let mut start = 0usize;
        let mut runs = 0u64;
        let mut rows = 0u64;
        // Warm-up.
        for _ in 0..3 {
            scorer.score_batch(&mut recs[..batch]).expect("score");
        }
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < secs {
            if start + batch > recs.len() {
                start = 0;
            }
            scorer
                .score_batch(&mut recs[start..start + batch])
                .expect("score");
            start += batch;
            runs += 1;
            rows += batch as u64;
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "| {batch} | {:.0} | {:.1} | {:.2} |",
            rows as f64 / el,
            el * 1e6 / runs as f64,
            el * 1e6 / rows as f64
        );
    }

    println!("\n## latency from flow end to score (ScoringService, 1 thread)\n");
    println!("| batch | max_delay_ms | offered flows/s | scored | p50 us | p99 us | p99.9 us | max us | batches |");
    println!("|------:|-------------:|----------------:|-------:|-------:|-------:|---------:|-------:|--------:|");
    for (batch, delay) in [(256usize, 50u64), (64, 5)] {
        for rate in [1_000u64, 10_000, 50_000] {
            let cfg = ScoringConfig {
                batch,
                max_delay_ms: delay,
                threads: 1,
                ..ScoringConfig::default()
            };
            let mut schema = data.schema.clone();
            let (tx, rx) = unbounded();
            let svc = ScoringService::start(&dir, &mut schema, &cfg, tx, None).expect("start");
            let drain = std::thread::spawn(move || rx.iter().count());
            let input = svc.input();
            let n = ((rate as f64) * secs) as usize;
            let gap = Duration::from_nanos(1_000_000_000 / rate);
            let t0 = Instant::now();
            for i in 0..n {
                let due = t0 + gap * i as u32;
                let now = Instant::now();
                if due > now {
                    // Sleep when far ahead, spin the last stretch for an even pace.
                    if due - now > Duration::from_micros(200) {
                        std::thread::sleep(due - now - Duration::from_micros(100));
                    }
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                }
                let rec = data.records[i % data.records.len()].clone();
                input.submit(rec);
            }
            drop(input);
            let s = svc.finish();
            let out = drain.join().unwrap();
            assert_eq!(out, n, "every record comes out");
            println!(
                "| {batch} | {delay} | {rate} | {} | {} | {} | {} | {} | {} |",
                s.rows,
                s.latency_p50_us,
                s.latency_p99_us,
                s.latency_p999_us,
                s.latency_max_us,
                s.batches
            );
        }
    }
}
