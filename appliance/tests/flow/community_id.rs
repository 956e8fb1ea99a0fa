//! The `community_id` column against the reference implementation of Community ID v1 (the
//! `communityid` Python package, run by `tests/support/community_id_reference.py`):
//!
//! - every record of every shared capture, seed 0, with the ICMP type and code of each ICMP
//!   flow's first packet taken from tshark's dissection of the capture;
//! - a synthetic capture with one ICMP and one ICMPv6 flow of every type (0..=255), plus TCP,
//!   UDP and a portless protocol, with a non-zero seed from the config.

use crate::support::frames;
use crate::support::{paths::*, records::*, run::*};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use weir::wire::ethernet::ethertype;
use weir::wire::ipv4::Ipv4Repr;
use weir::wire::ipv6::Ipv6Repr;

fn python() -> PathBuf {
    match std::env::var("WEIR_PYTHON") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
    }
}

fn extract(capture: &Path, out: &Path, config: Option<&Path>) -> Result<(), String> {
    let mut c = weir();
    c.arg("extract")
        .arg(capture)
        .arg("--out")
        .arg(out)
        .arg("--no-plugins")
        .arg("--quiet");
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    let o = c.output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "weir extract {} failed: {}\n{}",
            capture.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}

/// Run the reference checker on `job`; returns its summary.
fn reference(dir: &Path, job: serde_json::Value) -> serde_json::Value {
    let job_path = dir.join("job.json");
    std::fs::write(&job_path, job.to_string()).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/community_id_reference.py");
    let o = Command::new(python())
        .arg(&script)
        .arg(&job_path)
        .output()
        .expect("run the Python reference (WEIR_PYTHON or .venv with `communityid`)");
    let out = String::from_utf8_lossy(&o.stdout);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| {
        panic!(
            "reference checker: {e}\nstdout: {out}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(
        o.status.success(),
        "community_id differs from the reference: {:#}",
        summary["mismatches"]
    );
    summary
}

#[test]
fn every_parity_capture_matches_the_reference() {
    let caps = captures();
    assert_eq!(caps.len(), 136);
    let tmp = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let jobs = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(cap) = caps.get(i) else { break };
                let name = cap.file_name().unwrap().to_str().unwrap();
                let out = tmp.path().join(format!("{name}.csv"));
                match extract(cap, &out, None) {
                    Ok(()) => jobs.lock().unwrap().push(serde_json::json!({
                        "csv": out, "pcap": cap, "icmp": null
                    })),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    let s = reference(
        tmp.path(),
        serde_json::json!({"seed": 0, "jobs": jobs.into_inner().unwrap()}),
    );
    eprintln!("{s}");
    assert!(s["records"].as_u64().unwrap() > 4000, "{s}");
    assert!(s["icmp_records"].as_u64().unwrap() > 0, "{s}");
    assert!(s["icmpv6_records"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["unmatched_icmp"].as_array().unwrap().len(), 0, "{s}");
}

const T0_NS: u64 = 1_700_000_000_000_000_000;

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        dont_frag: true,
        ..Default::default()
    };
    frames::over_ipv4(frames::ether(ethertype::IPV4), ip, proto, l4)
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, l4: &[u8]) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        ..Default::default()
    };
    frames::over_ipv6(frames::ether(ethertype::IPV6), ip, next, l4)
}

fn v6(a: u16, b: u16) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[0] = 0xfd;
    x[12..14].copy_from_slice(&a.to_be_bytes());
    x[14..16].copy_from_slice(&b.to_be_bytes());
    x
}

#[test]
fn every_icmp_type_and_a_seed_match_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("icmp.pcap");
    let mut frames = Vec::new();
    // (src, dst, first ms) -> (type, code) of each ICMP flow's first packet.
    let mut icmp = BTreeMap::new();
    for t in 0..=255u8 {
        let code = t % 5;
        let msg = [t, code, 0, 0, 0, 1, 0, 1];
        let (s4, d4) = ([10, t, 0, 1], [10, 255 - t, 0, 2]);
        let ms = T0_NS / 1_000_000 + frames.len() as u64;
        icmp.insert(
            format!(
                "{}|{}|{ms}",
                std::net::Ipv4Addr::from(s4),
                std::net::Ipv4Addr::from(d4)
            ),
            [t, code],
        );
        frames.push(ipv4(s4, d4, 1, &msg));
        // Half the IPv6 flows from the larger address, so the ordering is exercised.
        let (s6, d6) = if t % 2 == 0 {
            (v6(t as u16, 1), v6(0, 2))
        } else {
            (v6(0, 3), v6(t as u16, 4))
        };
        let ms = T0_NS / 1_000_000 + frames.len() as u64;
        icmp.insert(
            format!(
                "{}|{}|{ms}",
                std::net::Ipv6Addr::from(s6),
                std::net::Ipv6Addr::from(d6)
            ),
            [t, code],
        );
        frames.push(ipv6(s6, d6, 58, &msg));
    }
    let tcp = {
        let mut h = vec![
            0xc3, 0x50, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
        ];
        h.extend_from_slice(&[0, 0, 0, 0]);
        h
    };
    frames.push(ipv4([192, 168, 1, 9], [10, 0, 0, 1], 6, &tcp));
    frames.push(ipv6(v6(9, 9), v6(1, 1), 6, &tcp));
    frames.push(ipv4(
        [10, 9, 9, 9],
        [10, 9, 9, 8],
        17,
        &[0, 53, 0x30, 0x39, 0, 8, 0, 0],
    ));
    // GRE: no ports in the hash.
    frames.push(ipv4([10, 7, 7, 7], [10, 7, 7, 1], 47, &[0, 0, 0x08, 0]));
    let hdr = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(&pcap).unwrap(), hdr).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_nanos(T0_NS + i as u64 * 1_000_000),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    drop(w);
    let cfg = tmp.path().join("weir.toml");
    std::fs::write(&cfg, "[flows]\ncommunity_id_seed = 4242\n").unwrap();
    let out = tmp.path().join("icmp.csv");
    extract(&pcap, &out, Some(&cfg)).unwrap();
    assert_eq!(read_csv(&out).len(), frames.len());
    let s = reference(
        tmp.path(),
        serde_json::json!({"seed": 4242, "jobs": [{"csv": out, "pcap": pcap, "icmp": icmp}]}),
    );
    assert_eq!(s["records"].as_u64().unwrap(), frames.len() as u64, "{s}");
    assert_eq!(s["icmp_records"].as_u64().unwrap(), 256, "{s}");
    assert_eq!(s["icmpv6_records"].as_u64().unwrap(), 256, "{s}");
}
