//! `weir extract --workers 2` against `--workers 1` on every capture of the parity corpus
//! (`tests/data/nfstream` and `tests/data/ndpi`).
//!
//! The feeder spreads packets over two workers by the symmetric flow hash; each worker keeps
//! its own flow table. Shared-nothing is only correct if both directions of every flow reach
//! the same worker, so: every flow (5-tuple, VLAN, tunnel) must appear on exactly one worker,
//! and the records, compared as sets of rows without the `worker` column, must equal the
//! one-worker run's in every column: counters, times, every plugin feature, decay rates and
//! `expiration_id` (every worker's clock follows the input's time, so a flow whose idle
//! deadline passed ends as idle whichever worker holds it).
//!
//! The ndpi plugin's columns are the exception, bounded: nDPI's detection module (one per
//! worker) keeps caches across flows (addresses of hosts it identified earlier, which its TINC,
//! STUN/Zoom and Telegram dissectors consult), so a flow's label can depend on which other
//! flows its worker saw, as it does between NFStream's meters. They may differ on at most
//! [`NDPI_CAPTURES_DIFFERING`] captures (3 on the bundled corpus).

use crate::support::{oracle::*, paths::*};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The ndpi plugin's columns (see the module doc).
const NDPI_COLUMNS: [&str; 7] = [
    "application_name",
    "application_category_name",
    "requested_server_name",
    "ndpi_master_protocol_id",
    "ndpi_app_protocol_id",
    "application_is_guessed",
    "ndpi_dissected_packets",
];
/// Captures whose ndpi columns may differ between one and two workers.
const NDPI_CAPTURES_DIFFERING: usize = 5;

#[test]
fn two_workers_give_the_one_worker_records_on_every_capture() {
    let mut captures: Vec<_> = std::fs::read_dir(pcap(""))
        .unwrap()
        .chain(std::fs::read_dir(ndpi_pcap("")).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    captures.sort();
    assert_eq!(
        captures.len(),
        136 + 167,
        "the parity corpus has 303 captures"
    );
    let dir = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let ndpi_differing = Mutex::new(Vec::new());
    let spread = Mutex::new((0usize, 0usize)); // flows on worker 0, on worker 1
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = captures.get(i) else { break };
                let name = c.file_name().unwrap().to_string_lossy().to_string();
                let one = extract(
                    std::slice::from_ref(c),
                    1,
                    &dir.path().join(format!("{name}.1.csv")),
                );
                let two = extract(
                    std::slice::from_ref(c),
                    2,
                    &dir.path().join(format!("{name}.2.csv")),
                );
                let per = assert_one_worker_per_flow(&two, &name);
                {
                    let mut sp = spread.lock().unwrap();
                    sp.0 += per.get("0").copied().unwrap_or(0);
                    sp.1 += per.get("1").copied().unwrap_or(0);
                }
                // Every column but `worker`, expiration_id included.
                let cols: Vec<&str> = one
                    .first()
                    .map(|r| {
                        r.keys()
                            .map(|k| k.as_str())
                            .filter(|k| *k != "worker" && !NDPI_COLUMNS.contains(k))
                            .collect()
                    })
                    .unwrap_or_default();
                let diffs = compare(&one, &two, &key_with_time, Some(&cols));
                let has_ndpi = one.first().is_some_and(|r| r.contains_key(NDPI_COLUMNS[0]));
                if has_ndpi && !compare(&one, &two, &key_with_time, Some(&NDPI_COLUMNS)).is_empty()
                {
                    ndpi_differing.lock().unwrap().push(name.clone());
                }
                if !diffs.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "{name}: {}",
                        diffs[..diffs.len().min(5)].join("; ")
                    ));
                }
            });
        }
    });
    let (w0, w1) = *spread.lock().unwrap();
    eprintln!(
        "{} captures; flows on worker 0: {w0}, on worker 1: {w1}",
        captures.len()
    );
    // Both workers get a fair share of the flows (the hash spreads).
    assert!(w0 > (w0 + w1) / 3 && w1 > (w0 + w1) / 3, "{w0} vs {w1}");
    let nd = ndpi_differing.into_inner().unwrap();
    eprintln!("ndpi columns differ on {} captures: {nd:?}", nd.len());
    assert!(
        nd.len() <= NDPI_CAPTURES_DIFFERING,
        "ndpi columns differ on {nd:?}"
    );
    let f = failures.into_inner().unwrap();
    assert!(
        f.is_empty(),
        "{} captures differ:\n{}",
        f.len(),
        f.join("\n")
    );
}
