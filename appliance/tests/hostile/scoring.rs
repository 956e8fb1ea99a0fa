//! A scorer slower than the traffic, through `weir extract --model`: a flood
//! of new flows through a small table makes records faster than a model scoring one row per
//! batch can take them. With `overload = "block"` every record is scored and written (the
//! workers wait); with `overload = "emit_unscored"` every record is still written, those that
//! found the queue full marked `skipped_overload` and counted. A model whose batch never fills
//! and whose delay never expires is scored at the end: nothing is held back or lost.
//!
//! Oracles: the flows the test generated and the records file's `score_status` column.

use crate::support::{frames::*, paths::*, pcap::*, records::*, run::*};
use std::collections::BTreeMap;
use std::path::Path;

/// Run extract on `n` random flows with `[model]` settings; returns stats and, from the
/// records file, rows per `score_status` and the packets.
fn scored_flood(
    dir: &Path,
    n: usize,
    model: &str,
) -> (serde_json::Value, BTreeMap<String, u64>, u64, u64) {
    let cap = dir.join("flood.pcap");
    write_pcap(
        &cap,
        &random_flood(n as u64, n),
        1_700_000_000_000_000_000,
        10_000,
    );
    let cfg = dir.join("weir.toml");
    std::fs::write(
        &cfg,
        format!(
            "[flows]\ncapacity = 1024\n\n[model]\ndir = \"{}\"\nort_library = \"{}\"\n{model}",
            crate::support::scoring::fixtures().join("rf").display(),
            crate::support::scoring::ort_library().display()
        ),
    )
    .unwrap();
    let out = dir.join("flows.csv");
    let stats = dir.join("stats.json");
    let o = weir()
        .arg("extract")
        .arg(&cap)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .arg("--quiet")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let mut r = csv::Reader::from_path(&out).unwrap();
    let h = r.headers().unwrap().clone();
    let st = h.iter().position(|c| c == "score_status").unwrap();
    let pk = h.iter().position(|c| c == "bidirectional_packets").unwrap();
    let mut by = BTreeMap::new();
    let (mut rows, mut packets) = (0, 0);
    for rec in r.records() {
        let rec = rec.unwrap();
        *by.entry(rec[st].to_string()).or_insert(0) += 1;
        rows += 1;
        packets += rec[pk].parse::<u64>().unwrap();
    }
    (read_stats(&stats), by, rows, packets)
}

#[test]
fn slow_scorer_with_emit_unscored_loses_nothing() {
    if !plugins_built() {
        panic!("the fixture model needs the flowstats plugin: build the workspace first");
    }
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000u64;
    let (s, by, rows, packets) = scored_flood(
        dir.path(),
        n as usize,
        "batch = 1\nmax_delay_ms = 1\nqueue = 1\nthreads = 1\noverload = \"emit_unscored\"\n",
    );
    eprintln!("stats {s}\nscore_status {by:?}");
    assert_eq!(rows, u(&s, "flows"));
    assert_eq!(packets, n, "every packet in a written record");
    let skipped = by.get("skipped_overload").copied().unwrap_or(0);
    let scored = by.get("scored").copied().unwrap_or(0);
    assert_eq!(scored + skipped, rows, "{by:?}");
    assert!(
        skipped > 0,
        "the scorer kept up: no overload to test ({by:?})"
    );
    assert_eq!(skipped, u(&s["scoring"], "overload_skips"));
    assert_eq!(scored, u(&s["scoring"], "rows"));
}

#[test]
fn slow_scorer_with_block_scores_everything() {
    if !plugins_built() {
        panic!("the fixture model needs the flowstats plugin: build the workspace first");
    }
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000u64;
    let (s, by, rows, packets) = scored_flood(
        dir.path(),
        n as usize,
        "batch = 1\nmax_delay_ms = 1\nqueue = 1\nthreads = 1\noverload = \"block\"\n",
    );
    eprintln!("stats {s}\nscore_status {by:?}");
    assert_eq!(packets, n);
    assert_eq!(by.get("scored").copied(), Some(rows), "{by:?}");
    assert_eq!(u(&s["scoring"], "overload_skips"), 0);
}

#[test]
fn batch_that_never_fills_is_scored_at_the_end() {
    if !plugins_built() {
        panic!("the fixture model needs the flowstats plugin: build the workspace first");
    }
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000u64;
    let t = std::time::Instant::now();
    let (s, by, rows, packets) = scored_flood(
        dir.path(),
        n as usize,
        "batch = 65536\nmax_delay_ms = 3600000\nqueue = 64\noverload = \"block\"\n",
    );
    eprintln!("stats {s}\nscore_status {by:?} in {:?}", t.elapsed());
    assert_eq!(packets, n);
    assert_eq!(by.get("scored").copied(), Some(rows), "{by:?}");
    assert!(t.elapsed() < std::time::Duration::from_secs(120));
}
