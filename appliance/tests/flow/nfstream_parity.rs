//! `weir extract` against NFStream on every capture of the parity corpus.
//!
//! The parity corpus is two folders: `tests/data/nfstream` (136 captures of NFStream's test
//! suite) and `tests/data/ndpi` (167 more of nDPI's). For each capture weir runs through the real
//! DPDK path (EAL without hugepages, a net_ring port fed from the capture) and its CSV is compared
//! flow by flow with NFStream 6.6's records (`expected/`): the same flows (key and first_seen),
//! equal packets, bytes and times per direction, and, when the flowstats plugin is loaded,
//! NFStream's 48 statistical features within a relative 1e-6.
//!
//! (`tests/multicore/extract.rs` runs the same corpus with one and two workers.)
//!
//! A capture where weir and NFStream legitimately differ is listed in `KNOWN_DIFFERENCES`
//! with the reason (weir must be the one that is right).

use crate::support::{nfstream::*, paths::*, records::*, run::*};
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
    // tests/data/ndpi
    (
        "fuzz-2020-02-16-11740.pcap",
        "17 fuzzed frames whose EtherType is not IP (0x2500, 0x4c00, 0x0834, 0x5800, ...; tshark \
         dissects none of them as IP) or is IPv4 over an IPv6 header: NFStream parses what \
         follows by its version nibble and adds them to flows (5 made-up flows, 12 packets on \
         real ones); weir trusts the EtherType and counts them as not_ip / bad_ip_version",
    ),
    (
        "fuzz-2021-10-13.pcap",
        "its one record is on BSD loopback with address family 0x6c002f00 (tshark: 'Type: \
         Unknown'), neither IPv4 (2) nor an IPv6 value: NFStream takes every family but 2 for \
         IPv6 and makes a flow of the bytes, with 524,501 wire bytes counted as 213 (uint16_t); \
         weir counts the packet as unsupported_linktype. (The file, a pcap 2.0 whose record \
         lengths are swapped as libpcap swaps them, ends inside the next record header: weir \
         reads the record and reports the rest in --stats capture_errors.)",
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
    // A capture cut short (fuzz-2021-10-13.pcap) fails the run once its readable packets are
    // written: that is weir reporting the rest, and the records must still be NFStream's.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let cut_short = stderr.contains("corrupt capture after")
        && stderr.contains("the flows of every packet read were written")
        && out.exists();
    if !o.status.success() && !cut_short {
        return Err(format!(
            "weir extract failed: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}

/// What one capture gave: its folder, whether it equals NFStream, and the failures found.
struct Outcome {
    folder: &'static str,
    equal: bool,
    failures: Vec<String>,
    /// Records were written, and they have the flowstats features.
    with_rows: bool,
    with_stats: bool,
}

fn check(cap: &Path, folder: &'static str, tmp: &Path) -> Outcome {
    let name = cap.file_name().unwrap().to_str().unwrap().to_string();
    let mut o = Outcome {
        folder,
        equal: false,
        failures: Vec::new(),
        with_rows: false,
        with_stats: false,
    };
    let out = tmp.join(format!("{folder}-{name}.csv"));
    if let Err(e) = extract(cap, &out) {
        o.failures.push(format!("{folder}/{name}: {e}"));
        return o;
    }
    let actual = read_csv(&out);
    o.with_rows = !actual.is_empty();
    let expected = read_csv(&expected_csv(cap));
    let mut columns = core_columns();
    if actual
        .first()
        .is_some_and(|r| r.contains_key("bidirectional_mean_ps"))
    {
        columns.extend(flowstats_columns());
        o.with_stats = true;
    }
    let diffs = compare(&expected, &actual, &columns);
    o.equal = diffs.is_empty();
    let known = KNOWN_DIFFERENCES.iter().find(|(n, _)| *n == name);
    match (o.equal, known) {
        (true, None) | (false, Some(_)) => {}
        (true, Some(_)) => o.failures.push(format!(
            "{folder}/{name}: listed as different but now matches"
        )),
        (false, None) => {
            let mut msg = format!("{folder}/{name}: {} differences", diffs.len());
            for d in diffs.iter().take(5) {
                msg.push_str("\n    ");
                msg.push_str(d);
            }
            o.failures.push(msg);
        }
    }
    std::fs::remove_file(&out).ok();
    o
}

#[test]
fn every_capture_matches_nfstream() {
    let mut caps: Vec<(std::path::PathBuf, &'static str)> = Vec::new();
    let nf = captures();
    assert_eq!(nf.len(), 136, "tests/data/nfstream has 136 captures");
    let nd = captures_in(&ndpi_dir());
    assert_eq!(nd.len(), 167, "tests/data/ndpi has 167 captures");
    caps.extend(nf.into_iter().map(|c| (c, "nfstream")));
    caps.extend(nd.into_iter().map(|c| (c, "ndpi")));
    // Every listed capture exists (a renamed file must not leave a stale excuse behind).
    for (n, _) in KNOWN_DIFFERENCES {
        assert!(
            caps.iter().any(|(c, _)| c.file_name().unwrap() == *n),
            "KNOWN_DIFFERENCES names {n}, which is in neither folder"
        );
    }
    // WEIR_PARITY_ONLY=name1,name2 checks only those captures (for quick iteration).
    if let Ok(only) = std::env::var("WEIR_PARITY_ONLY") {
        let only: Vec<&str> = only.split(',').collect();
        caps.retain(|(c, _)| only.contains(&c.file_name().unwrap().to_str().unwrap()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::<Outcome>::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((cap, folder)) = caps.get(i) else {
                    break;
                };
                let o = check(cap, folder, tmp.path());
                outcomes.lock().unwrap().push(o);
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    let failures: Vec<&String> = outcomes.iter().flat_map(|o| &o.failures).collect();
    assert!(
        failures.is_empty(),
        "{} problems on {} captures:\n{}",
        failures.len(),
        caps.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The flowstats plugin (built by the workspace next to the weir binary) must have run on
    // every capture with records: its 48 features are half of what this test checks.
    let with_rows = outcomes.iter().filter(|o| o.with_rows).count();
    let with_stats = outcomes.iter().filter(|o| o.with_stats).count();
    assert!(
        caps.len() < 10 || with_rows * 10 >= caps.len() * 9,
        "only {with_rows} of {} captures gave records",
        caps.len()
    );
    assert_eq!(
        with_stats, with_rows,
        "flowstats features missing from some records: build the workspace first (make build)"
    );
    for folder in ["nfstream", "ndpi"] {
        let of: Vec<&Outcome> = outcomes.iter().filter(|o| o.folder == folder).collect();
        eprintln!(
            "{folder}: {} captures, {} equal to NFStream, {} listed",
            of.len(),
            of.iter().filter(|o| o.equal).count(),
            of.iter().filter(|o| !o.equal).count()
        );
    }
}
