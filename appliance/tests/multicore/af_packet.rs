//! Two workers on a port with two RX queues, no NIC: DPDK's net_af_packet with `qpairs=2` on
//! one end of a veth pair inside a network namespace this test creates; tcpreplay sends
//! captures into the other end; SIGTERM ends the run. The queues are spread by the kernel's
//! PACKET_FANOUT_HASH (a symmetric flow hash), which is what weir's `workers.spread = "rss"`
//! path relies on here instead of a NIC's RSS.
//!
//! Checked: the port received exactly the capture's packets (nothing added, nothing lost:
//! IPv6 is disabled in the namespace so the kernel sends no RS/MLD/DAD frames, the veths have
//! no address so nothing answers, and the replay is paced), both queues got packets, every
//! flow was seen by exactly one worker, and per flow (5-tuple) the packets and bytes in each
//! direction equal a one-worker `weir extract` of the same captures. Times are not compared:
//! the run stamps live time. The captures have no IP fragments (af_packet's fanout reassembles
//! them, `PACKET_FANOUT_FLAG_DEFRAG`), no VLAN tags (the kernel moves tags out of the frame),
//! no frame above the veth's 1500-byte MTU, and no 5-tuple that the capture's own idle gaps
//! split into two flows (a paced replay has no such gaps); the test checks the last one.
//!
//! Needs root (network namespaces), `ip` (iproute2) and `tcpreplay`; without them it fails
//! and says so.

use crate::support::netns::Netns;
use crate::support::{oracle::*, paths::*, records::*, run::*};
use std::process::Command;
use std::time::Duration;

const CAPTURES: &[&str] = &["quic.pcap", "synscan.pcap", "dnp3.pcap", "gtp-u.pcap"];

#[test]
fn af_packet_two_queues_each_flow_on_one_worker_and_counts_match_extract() {
    let tcpreplay = Command::new("tcpreplay").arg("--version").output();
    assert!(
        tcpreplay.is_ok(),
        "tcpreplay is not installed (Debian: apt-get install -y tcpreplay)"
    );
    let captures: Vec<_> = CAPTURES.iter().map(|c| pcap(c)).collect();
    let expected_packets: u64 = captures.iter().map(|c| packets_in(c)).sum();
    let dir = tempfile::tempdir().unwrap();
    let oracle = extract(&captures, 1, &dir.path().join("oracle.csv"));
    let mut tuples: Vec<String> = oracle.iter().map(tuple).collect();
    tuples.sort();
    let n = tuples.len();
    tuples.dedup();
    assert_eq!(
        n,
        tuples.len(),
        "a 5-tuple has several flows in the oracle: pick other captures"
    );

    let ns = Netns::with_veth("weirmc", ("wa", "wb"), None)
        .unwrap_or_else(|e| panic!("cannot set up the veth pair: {e}"));
    let records = dir.path().join("run.csv");
    let cfg = dir.path().join("weir.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[eal]
no_huge = true
no_pci = true
memory_mb = 512

[[ports]]
vdev = "net_af_packet0,iface=wa,qpairs=2,framecnt=4096"

[workers]
count = 2
spread = "rss"

[plugins]
dir = "{}"

[sinks]
records = "{}"

[log]
status_interval_s = 0
"#,
            plugin_dir().display(),
            records.display()
        ),
    )
    .unwrap();
    let (mut child, reader) = crate::support::process::weir_run_in_netns(&ns.name, &cfg);
    let replay = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "tcpreplay",
            "-q",
            "-i",
            "wb",
            "--pps",
            "2000",
        ])
        .args(&captures)
        .output()
        .expect("run tcpreplay");
    assert!(
        replay.status.success(),
        "tcpreplay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    // Let the workers take the last packets off the queues, then stop weir as an operator would.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: a plain kill(2) of our own child.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0, "cannot signal weir");
    let status = child.wait().unwrap();
    let log = log_text(reader.join().unwrap().as_bytes());
    assert!(status.success(), "weir run failed ({status}):\n{log}");
    assert!(
        log.contains("path=\"rss\"") && log.contains("2 rx queue(s)"),
        "the log does not show the two-queue path:\n{log}"
    );
    assert!(
        log.contains(&format!("weir run: {expected_packets} packets")),
        "the port did not deliver exactly the {expected_packets} packets sent:\n{log}"
    );
    let per_queue = log
        .lines()
        .find(|l| l.contains("port statistics"))
        .and_then(|l| l.split("per_queue=[").nth(1))
        .and_then(|s| s.split(']').next())
        .unwrap_or_else(|| panic!("no per-queue statistics in the log:\n{log}"))
        .to_string();
    let q: Vec<u64> = per_queue
        .split(',')
        .map(|x| x.trim().parse().unwrap())
        .collect();
    assert!(q.len() == 2 && q.iter().all(|&n| n > 0), "queues {q:?}");

    let got = read_csv(&records);
    let per = assert_one_worker_per_flow(&got, "af_packet run");
    assert!(per.len() == 2, "flows per worker {per:?}");
    let counts = [
        "bidirectional_packets",
        "bidirectional_bytes",
        "src2dst_packets",
        "src2dst_bytes",
        "dst2src_packets",
        "dst2src_bytes",
        "ip_version",
    ];
    let diffs = compare(&oracle, &got, &tuple, Some(&counts));
    assert!(
        diffs.is_empty(),
        "{} differences, first: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );
    eprintln!(
        "queues {q:?}, flows per worker {per:?}, {} flows",
        got.len()
    );
}
