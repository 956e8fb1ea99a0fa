//! Regression tests for the faults hostile input found. Each names what went wrong before its
//! fix.

use crate::support::frames;
use std::path::Path;
use weir::config::Config;
use weir::wire::ethernet::ethertype;
use weir::wire::ipv4::{protocol, Ipv4Repr};

/// An absurd timeout (1e300 s, inf) was accepted: in milliseconds it saturated to u64::MAX and
/// `now_ms + idle_ms` wrapped the flow's deadline into the past, so every flow ended as idle
/// at the next expiry run (and the timer-wheel size computation overflowed in debug builds).
/// Found while writing the config fuzz target's oracle. Now refused, naming the key.
#[test]
fn unbounded_timeouts_are_refused() {
    for (key, value) in [
        ("idle_timeout_s", "1e300"),
        ("idle_timeout_s", "inf"),
        ("active_timeout_s", "1e300"),
        ("active_timeout_s", "nan"),
        ("idle_timeout_s", "0"),
    ] {
        let text = format!("[flows]\n{key} = {value}\nwheel_granularity_ms = 1\n");
        let e = Config::parse(&text, Path::new("t.toml"))
            .err()
            .unwrap_or_else(|| panic!("{key} = {value} accepted"));
        let msg = e.to_string();
        assert!(msg.contains(&format!("flows.{key}")), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }
    // Large but sane timeouts stay accepted, and the worker settings derived from them do
    // not overflow.
    let c = Config::parse(
        "[flows]\nidle_timeout_s = 315360000\nactive_timeout_s = 315360000\nwheel_granularity_ms = 1\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let s = weir::worker::WorkerSettings::from_config(&c, 0, 0, (0, 8));
    assert_eq!(s.idle_ms, 315_360_000_000);
    assert!(s.table.wheel_slots <= 1 << 20);
}

/// A pcapng file: one section, one Ethernet interface with the given options (code, value),
/// and one UDP packet per `(timestamp high, low)` pair.
fn pcapng(options: &[(u16, Vec<u8>)], stamps: &[(u32, u32)]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let len = (12 + body.len().div_ceil(4) * 4) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + (4 - body.len() % 4) % 4, 0);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = vec![1, 0, 0, 0, 0, 0, 0, 0];
    for (code, v) in options {
        idb.extend_from_slice(&code.to_le_bytes());
        idb.extend_from_slice(&(v.len() as u16).to_le_bytes());
        idb.extend_from_slice(v);
        idb.resize(idb.len() + (4 - v.len() % 4) % 4, 0);
    }
    idb.extend_from_slice(&[0, 0, 0, 0]);
    block(&mut out, 1, &idb);
    for &(hi, lo) in stamps {
        let ip = Ipv4Repr {
            src_addr: [10, 0, 0, 1],
            dst_addr: [10, 0, 0, 2],
            ident: 1,
            ..Default::default()
        };
        let udp = frames::udp(5000, 6000, &[1, 2, 3, 4]);
        let frame = frames::over_ipv4(frames::ether(ethertype::IPV4), ip, protocol::UDP, &udp);
        let mut epb = Vec::new();
        for v in [0, hi, lo, frame.len() as u32, frame.len() as u32] {
            epb.extend_from_slice(&v.to_le_bytes());
        }
        epb.extend_from_slice(&frame);
        block(&mut out, 6, &epb);
    }
    out
}

/// `weir extract` on one capture: (exit success, stderr, the records' first_seen_ms values).
fn extract_first_seen(cap: &Path) -> (bool, String, Vec<String>) {
    let out = cap.with_extension("csv");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .env("RUST_LOG", "warn")
        .args(["extract", "--no-plugins", "--quiet", "--out"])
        .arg(&out)
        .arg(cap)
        .output()
        .unwrap();
    let mut seen = Vec::new();
    if let Ok(mut r) = csv::Reader::from_path(&out) {
        let col = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "bidirectional_first_seen_ms")
            .unwrap();
        for rec in r.records() {
            seen.push(rec.unwrap()[col].to_string());
        }
    }
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o.status.success(), err, seen)
}

/// pcapng times wrapped silently: `if_tsoffset = 2^63-1` (seconds) times 1e9 wrapped in
/// 64 bits and gave a record with `bidirectional_first_seen_ms = 0` and exit 0; a 2^-n
/// `if_tsresol` truncated a 128-bit product to 64 bits; `10^-0` saturated to u64::MAX ns. A
/// time outside 1970..2262 is now clamped to the nearer end (never wrapped), and the first
/// such packet is named in a warning with the file.
#[test]
fn pcapng_times_out_of_range_are_clamped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let tsoff = |s: i64| (14u16, s.to_le_bytes().to_vec());
    let latest_ms = (i64::MAX / 1_000_000).to_string();
    // (name, interface options, second packet's timestamp, first packet clamped, the
    // first-seen times of the records). The first packet has raw time 0; where the second is
    // clamped to 2262 the first flow went idle long before, so it makes a second record.
    type Case = (
        &'static str,
        Vec<(u16, Vec<u8>)>,
        (u32, u32),
        u32,
        Vec<String>,
    );
    let late = || vec!["0".to_string(), latest_ms.clone()];
    let cases: [Case; 4] = [
        (
            "tsoffset_max",
            vec![tsoff(i64::MAX)],
            (0, 1_000_000),
            1,
            vec![latest_ms.clone()],
        ),
        (
            "tsoffset_before_1970",
            vec![tsoff(-100)],
            (0, 1_000_000),
            1,
            vec!["0".into()],
        ),
        // 2^36 s in 2^-0 s units: 6.9e19 ns, past u64 (it wrapped).
        ("tsresol_2pow0", vec![(9, vec![0x80])], (0x10, 0), 2, late()),
        // 2^63 s in 10^-0 s units (it saturated to u64::MAX).
        (
            "tsresol_1s",
            vec![(9, vec![0])],
            (0x8000_0000, 0),
            2,
            late(),
        ),
    ];
    for (name, opts, stamp, clamped, first_seen) in cases {
        let cap = dir.path().join(format!("{name}.pcapng"));
        std::fs::write(&cap, pcapng(&opts, &[(0, 0), stamp])).unwrap();
        let (ok, err, seen) = extract_first_seen(&cap);
        assert!(ok, "{name}: {err}");
        assert!(err.contains(&*cap.display().to_string()), "{name}: {err}");
        let want = format!("packet {clamped}: time out of range");
        assert!(err.contains(&want), "{name}: {err}");
        let mut seen = seen;
        seen.sort();
        assert_eq!(seen, first_seen, "{name}: {err}");
    }
    // In range, the options are applied exactly: 10^-9 s units plus a 1000 s offset.
    let cap = dir.path().join("ns_offset.pcapng");
    let raw: u64 = 1_700_000_000_123_456_789;
    let bytes = pcapng(
        &[(9, vec![9]), tsoff(1000)],
        &[((raw >> 32) as u32, raw as u32)],
    );
    std::fs::write(&cap, bytes).unwrap();
    let (ok, err, seen) = extract_first_seen(&cap);
    assert!(ok, "{err}");
    assert_eq!(
        seen,
        vec![((raw + 1_000_000_000_000) / 1_000_000).to_string()]
    );
}
