//! `weir extract`'s feeder hands the frames of a mapped capture to the workers without copying
//! them (mbufs attached to the mapping). Copying every frame (`WEIR_TEST_COPY_FRAMES=1`, the
//! feeder as it was) must give byte-identical records, plugin columns included, on a pcapng,
//! captures with big (jumbo/TSO) frames, a frame past the 65,407-byte mbuf limit, and
//! non-Ethernet link types; and `--stats` must show which frames were attached and which
//! copied, so zero-copy cannot silently fall back to copying everything.

use crate::support::frames::udp4;
use crate::support::paths::{ndpi_pcap, pcap, plugin_dir, plugins_built};
use crate::support::pcap::{read_frames, write_pcap, Pkt};
use crate::support::run::weir;
use std::path::Path;

/// `weir extract capture` with one worker; the records' bytes and the `--stats` JSON.
fn extract(capture: &Path, dir: &Path, copy: bool) -> (Vec<u8>, serde_json::Value) {
    let tag = if copy { "copy" } else { "zc" };
    let out = dir.join(format!("{tag}.csv"));
    let stats = dir.join(format!("{tag}.json"));
    let mut c = weir();
    c.arg("extract")
        .arg(capture)
        .arg("--out")
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .args(["--workers", "1", "--quiet", "--no-progress"]);
    if plugins_built() {
        c.arg("--plugin-dir").arg(plugin_dir());
    } else {
        eprintln!("plugins not built (make build): comparing without plugin columns");
        c.arg("--no-plugins");
    }
    if copy {
        c.env("WEIR_TEST_COPY_FRAMES", "1");
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{}: {}",
        capture.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (std::fs::read(&out).unwrap(), v)
}

/// Runs both ways; returns the zero-copy run's (frames_zero_copy, frames_copied).
fn same_records_both_ways(capture: &Path) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (zc, zs) = extract(capture, dir.path(), false);
    let (cp, cs) = extract(capture, dir.path(), true);
    let name = capture.display();
    assert!(zc.len() > 100, "{name}: records expected");
    assert!(
        zc == cp,
        "{name}: records differ with and without zero-copy"
    );
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}"));
    let frames = n(&zs, "packets_read") - n(&zs["skipped"], "unsupported_linktype");
    assert_eq!(n(&zs, "frames_zero_copy") + n(&zs, "frames_copied"), frames);
    assert_eq!(
        (n(&cs, "frames_zero_copy"), n(&cs, "frames_copied")),
        (0, frames),
        "{name}: the copying run copies every frame"
    );
    (n(&zs, "frames_zero_copy"), n(&zs, "frames_copied"))
}

#[test]
fn zero_copy_records_equal_copied_records() {
    // Ethernet, pcapng and pcap with frames up to 29,696 bytes: every frame attached.
    for c in [ndpi_pcap("http.pcapng"), pcap("webex.pcap")] {
        let frames = read_frames(&c).len() as u64;
        assert_eq!(same_records_both_ways(&c), (frames, 0), "{}", c.display());
    }
    // Linux cooked (pcap) and raw IP (pcapng): every frame gets an Ethernet header, a copy.
    for c in [ndpi_pcap("dns2tcp_tunnel.pcap"), ndpi_pcap("bets.pcapng")] {
        let (zc, copied) = same_records_both_ways(&c);
        assert_eq!(zc, 0, "{}", c.display());
        assert!(copied > 0, "{}", c.display());
    }
    // One UDP flow of frames of 60, 9,000 and 65,407 bytes (the longest kept whole: attached)
    // and 65,549 bytes (cut to 65,407: copied).
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    let pkts: Vec<Pkt> = [18, 8958, 65365, 65507]
        .iter()
        .map(|&payload| {
            let f = udp4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 5001, payload);
            Pkt {
                wire_len: f.len() as u32,
                data: f,
            }
        })
        .collect();
    assert_eq!(pkts[2].data.len(), 65407);
    write_pcap(&big, &pkts, 1_700_000_000_000_000_000, 1_000_000);
    assert_eq!(same_records_both_ways(&big), (3, 1));
}
