//! `weir extract` against NFStream on every shared capture.
//!
//! For each capture in `tests/data/nfstream/pcaps`, weir runs through the real DPDK path (EAL
//! without hugepages, a net_ring port fed from the capture) and its CSV is compared flow by
//! flow with NFStream 6.6's records (`expected/`): the same flows (key and first_seen), equal
//! packets, bytes and times per direction, and, when the flowstats plugin is loaded, NFStream's
//! 48 statistical features within a relative 1e-6.
//!
//! A capture where weir and NFStream legitimately differ is listed in `KNOWN_DIFFERENCES`
//! with the reason (weir must be the one that is right).

mod common;

use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Captures whose records differ from NFStream's, and why weir is right there.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "ajp.pcap",
        "12 Cisco FabricPath frames (EtherType 0x8903): NFStream ignores the EtherType and reads \
         bytes of the inner MAC header as an IPv4 header with IHL 0, inventing two protocol-80 \
         flows; weir trusts the EtherType and counts them as not_ip",
    ),
    (
        "fuzz-2021-06-07-c6c72a0a56.pcap",
        "a record with a wire length of 4,093,509,168 bytes: NFStream keeps packet sizes in a \
         uint16_t and counts it as 65,072; weir counts the wire length it was given",
    ),
    (
        "dhcp_big_endian.pcapng",
        "its timestamps are 4.7e18 microseconds (year ~152,000), past the range of weir's \
         nanosecond packet clock (signed 64 bits, year 2262): weir clamps them (with a warning \
         naming the file and packet), so its times and durations differ; NFStream keeps \
         milliseconds; flows, packets and bytes are equal",
    ),
    (
        "dhcp_little_endian.pcapng",
        "same timestamps as dhcp_big_endian.pcapng (year ~152,000), past weir's clock range",
    ),
];

fn flowstats_columns() -> Vec<String> {
    let mut v = Vec::new();
    for d in ["bidirectional", "src2dst", "dst2src"] {
        for s in ["min", "mean", "stddev", "max"] {
            v.push(format!("{d}_{s}_ps"));
        }
    }
    for d in ["bidirectional", "src2dst", "dst2src"] {
        for s in ["min", "mean", "stddev", "max"] {
            v.push(format!("{d}_{s}_piat_ms"));
        }
    }
    for d in ["bidirectional", "src2dst", "dst2src"] {
        for f in ["syn", "cwr", "ece", "urg", "ack", "psh", "rst", "fin"] {
            v.push(format!("{d}_{f}_packets"));
        }
    }
    v
}

fn extract(capture: &Path, out: &Path) -> Result<(), String> {
    let plugin_dir = weir_bin().parent().unwrap().to_path_buf();
    let o = weir()
        .arg("extract")
        .arg(capture)
        .arg("--out")
        .arg(out)
        .arg("--plugin-dir")
        .arg(&plugin_dir)
        .arg("--quiet")
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "weir extract failed: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}

#[test]
fn every_capture_matches_nfstream() {
    let mut caps = captures();
    assert_eq!(caps.len(), 136, "the shared test data has 136 captures");
    // WEIR_PARITY_ONLY=name1,name2 checks only those captures (for quick iteration).
    if let Ok(only) = std::env::var("WEIR_PARITY_ONLY") {
        let only: Vec<&str> = only.split(',').collect();
        caps.retain(|c| only.contains(&c.file_name().unwrap().to_str().unwrap()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let checked_stats = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(cap) = caps.get(i) else { break };
                let name = cap.file_name().unwrap().to_str().unwrap().to_string();
                let out = tmp.path().join(format!("{name}.csv"));
                if let Err(e) = extract(cap, &out) {
                    failures.lock().unwrap().push(format!("{name}: {e}"));
                    continue;
                }
                let actual = read_csv(&out);
                let expected = read_csv(&expected_csv(cap));
                let mut columns = core_columns();
                if actual
                    .first()
                    .is_some_and(|r| r.contains_key("bidirectional_mean_ps"))
                {
                    columns.extend(flowstats_columns());
                    checked_stats.fetch_add(1, Ordering::Relaxed);
                }
                let diffs = compare(&expected, &actual, &columns);
                let known = KNOWN_DIFFERENCES.iter().find(|(n, _)| *n == name);
                match (diffs.is_empty(), known) {
                    (true, None) => {}
                    (true, Some(_)) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{name}: listed as different but now matches")),
                    (false, Some(_)) => {}
                    (false, None) => {
                        let mut msg = format!("{name}: {} differences", diffs.len());
                        for d in diffs.iter().take(5) {
                            msg.push_str("\n    ");
                            msg.push_str(d);
                        }
                        failures.lock().unwrap().push(msg);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    // The flowstats plugin (built by the workspace next to the weir binary) must have run on
    // every capture: its 48 features are half of what this test checks.
    assert_eq!(
        checked_stats.load(Ordering::Relaxed),
        caps.len(),
        "flowstats features missing from some records: build the workspace first (make build)"
    );
    assert!(
        failures.is_empty(),
        "{} of {} captures differ from NFStream:\n{}",
        failures.len(),
        caps.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} captures match NFStream ({} with flowstats features)",
        caps.len(),
        checked_stats.load(Ordering::Relaxed)
    );
}
