//! Interval records end to end, on a capture generated here so the generator is the
//! oracle: a ten-minute UDP flow (one packet every 500 ms, alternating directions) with a burst
//! of large packets in its seventh minute, among short background flows. With
//! `[intervals] every_ms = 60000`:
//! - the long flow has exactly ten interval records, one per minute, whose counters per
//!   direction are the generator's packets and bytes of that minute, and the burst's minute
//!   shows it (packets, bytes, and flowstats' interval packet sizes against the generator's);
//! - for every flow the interval records add up to its flow record;
//! - a plugin built against the frozen ABI 1.0 header (no `interval_emit`) loads and runs: its
//!   columns are filled in flow records and empty in interval records;
//! - a model trained (scikit-learn, `models/train.py --records interval`) on interval records
//!   scores interval records only and alerts on the burst's minute, from packets well before
//!   the flow's end.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use crate::support::frames::udp4;

const T0_MS: u64 = 1_700_000_040_000; // a whole minute, so the flow's minutes are intervals
const EVERY_MS: u64 = 60_000;
const LONG_SRC: [u8; 4] = [10, 1, 0, 1];
const LONG_DST: [u8; 4] = [10, 2, 0, 1];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.env("RUST_LOG", "warn");
    c
}

fn python() -> PathBuf {
    match std::env::var("WEIR_PYTHON") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace().join(".venv/bin/python"),
    }
}

struct Pkt {
    ts_ns: u64,
    frame: Vec<u8>,
    /// For the long flow: direction (0 src->dst); None for background packets.
    long_dir: Option<u8>,
}

/// The capture: the long flow and 40 background flows, in time order.
fn generate() -> Vec<Pkt> {
    let mut v = Vec::new();
    let long = |dir: u8, payload: usize| {
        if dir == 0 {
            udp4(LONG_SRC, LONG_DST, 5000, 443, payload)
        } else {
            udp4(LONG_DST, LONG_SRC, 443, 5000, payload)
        }
    };
    // The long flow: 1200 packets of 200 payload bytes, 500 ms apart, for 599.5 s.
    for i in 0..1200u64 {
        let dir = (i % 2) as u8;
        v.push(Pkt {
            ts_ns: (T0_MS + i * 500) * 1_000_000 + 1000,
            frame: long(dir, 200),
            long_dir: Some(dir),
        });
    }
    // The burst: 3000 packets of 1400 payload bytes src->dst, 10 ms apart, from 365 s on
    // (all inside the seventh minute, [360 s, 420 s)).
    for i in 0..3000u64 {
        v.push(Pkt {
            ts_ns: (T0_MS + 365_000 + i * 10) * 1_000_000 + 2000,
            frame: long(0, 1400),
            long_dir: Some(0),
        });
    }
    // Background: 40 short flows of 2..30 packets, 1..5 s apart, anywhere in the ten minutes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: u64| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    };
    for f in 0..40u16 {
        let n = 2 + rnd(29);
        let mut t = T0_MS + rnd(590_000);
        let src = [192, 168, 1, f as u8 + 1];
        let dst = [172, 16, 0, (rnd(200) + 1) as u8];
        for j in 0..n {
            let (a, b, sp, dp) = if j % 3 == 2 {
                (dst, src, 53, 20000 + f)
            } else {
                (src, dst, 20000 + f, 53)
            };
            v.push(Pkt {
                ts_ns: t * 1_000_000 + 3000 + f as u64,
                frame: udp4(a, b, sp, dp, 20 + rnd(300) as usize),
                long_dir: None,
            });
            t += 1000 + rnd(4000);
        }
    }
    v.sort_by_key(|p| p.ts_ns);
    v
}

fn write_pcap(path: &Path, pkts: &[Pkt]) {
    let hdr = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), hdr).unwrap();
    for p in pkts {
        w.write_packet(&PcapPacket::new_owned(
            Duration::from_nanos(p.ts_ns),
            p.frame.len() as u32,
            p.frame.clone(),
        ))
        .unwrap();
    }
}

/// A plugin directory with the shipped flowstats and tcp plugins and the test plugin compiled
/// against the frozen ABI 1.0 header, as a 1.0 plugin author built it.
fn plugin_dir(root: &Path) -> PathBuf {
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_weir")).parent().unwrap();
    for so in ["libweir_flowstats.so", "libweir_tcp.so"] {
        std::fs::copy(built.join(so), dir.join(so)).unwrap_or_else(|e| {
            panic!("{so} not built beside weir (cargo build --workspace): {e}")
        });
    }
    // The 1.0 header under the name the plugin source includes.
    let inc = root.join("include-v1.0");
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::copy(
        workspace().join("plugin-api/tests/c/weir_plugin_v1_0.h"),
        inc.join("weir_plugin.h"),
    )
    .unwrap();
    let out = dir.join("libcounter_v1_0.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let res = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-std=c11", "-Wall", "-I"])
        .arg(&inc)
        .arg("-o")
        .arg(&out)
        .arg(workspace().join("appliance/tests/plugins/test_plugin.c"))
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for p in std::fs::read_dir(&dir).unwrap() {
        let p = p.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            h.iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

fn num(r: &HashMap<String, String>, c: &str) -> u64 {
    r.get(c)
        .unwrap_or_else(|| panic!("no column {c}"))
        .parse()
        .unwrap_or_else(|e| panic!("{c} = {:?}: {e}", r[c]))
}

fn is_long(r: &HashMap<String, String>) -> bool {
    r["src_ip"] == "10.1.0.1" && r["dst_ip"] == "10.2.0.1"
}

fn extract(cap: &Path, plugins: &Path, root: &Path, out: &Path, extra: &[&str]) -> String {
    let config = format!("[intervals]\nevery_ms = {EVERY_MS}\n");
    extract_with(&config, cap, plugins, root, out, extra)
}

fn extract_with(
    config: &str,
    cap: &Path,
    plugins: &Path,
    root: &Path,
    out: &Path,
    extra: &[&str],
) -> String {
    let cfg = root.join("weir.toml");
    std::fs::write(&cfg, config).unwrap();
    let o = weir()
        .arg("extract")
        .arg(cap)
        .arg("--config")
        .arg(&cfg)
        .arg("--plugin-dir")
        .arg(plugins)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run weir");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "weir extract failed:\n{err}");
    err
}

const COUNTERS: [&str; 4] = [
    "src2dst_packets",
    "src2dst_bytes",
    "dst2src_packets",
    "dst2src_bytes",
];

#[test]
fn interval_records_of_a_long_flow_add_up_and_alert_before_it_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pkts = generate();
    let cap = root.join("long.pcap");
    write_pcap(&cap, &pkts);
    let plugins = plugin_dir(root);
    let out = root.join("records.csv");
    let log = extract(&cap, &plugins, root, &out, &[]);
    assert!(log.contains("interval records"), "{log}");
    let rows = read_csv(&out);

    // The header: the new columns right after `worker`.
    let mut rd = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    let w = header.iter().position(|h| h == "worker").unwrap();
    assert_eq!(
        header[w + 1..w + 4],
        ["record_kind", "interval_start_ms", "interval_end_ms"]
    );

    // The generator's packets and bytes of the long flow per minute and direction, and its
    // packet sizes per minute.
    let mut want: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    let mut sizes: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for p in &pkts {
        if let Some(d) = p.long_dir {
            let ms = p.ts_ns / 1_000_000;
            let k = (ms - T0_MS) / EVERY_MS;
            let c = want.entry(k).or_default();
            c[2 * d as usize] += 1;
            c[2 * d as usize + 1] += p.frame.len() as u64;
            sizes.entry(k).or_default().push(p.frame.len() as u64);
        }
    }
    assert_eq!(want.len(), 10);

    let long_iv: Vec<_> = rows
        .iter()
        .filter(|r| is_long(r) && r["record_kind"] == "interval")
        .collect();
    assert_eq!(long_iv.len(), 10, "ten minutes, ten interval records");
    for (k, r) in long_iv.iter().enumerate() {
        let k = k as u64;
        let start = T0_MS + k * EVERY_MS;
        assert_eq!(num(r, "interval_start_ms"), start);
        assert_eq!(num(r, "interval_end_ms"), start + EVERY_MS);
        assert_eq!(r["expiration_id"], "", "an interval does not end the flow");
        let got: Vec<u64> = COUNTERS.iter().map(|c| num(r, c)).collect();
        assert_eq!(got, want[&k], "minute {k}: {COUNTERS:?}");
        assert!(num(r, "bidirectional_first_seen_ms") >= start);
        assert!(num(r, "bidirectional_last_seen_ms") < start + EVERY_MS);
        // flowstats' interval packet sizes, against the generator's.
        let s = &sizes[&k];
        let mean = s.iter().sum::<u64>() as f64 / s.len() as f64;
        let got_mean: f64 = r["bidirectional_mean_ps"].parse().unwrap();
        assert!(
            (got_mean - mean).abs() < 1e-9,
            "minute {k}: mean ps {got_mean} vs {mean}"
        );
        assert_eq!(num(r, "bidirectional_max_ps"), *s.iter().max().unwrap());
        assert_eq!(num(r, "bidirectional_min_ps"), *s.iter().min().unwrap());
        // The per-direction flowstats columns are flow-only: NaN (empty) in interval records.
        assert_eq!(r["src2dst_mean_ps"], "");
        // The 1.0 plugin has no interval_emit: its columns are empty here.
        assert_eq!(
            r["counter_s2d_packets"], "",
            "a 1.0 plugin gives NaN in intervals"
        );
        // UDP: tcp's columns are NaN too.
        assert_eq!(r["tcp_src2dst_retransmissions"], "");
    }
    // The burst shows in its minute, and only there.
    let burst = long_iv[6];
    assert_eq!(num(burst, "src2dst_packets"), 60 + 3000);
    for (k, r) in long_iv.iter().enumerate() {
        if k != 6 {
            assert_eq!(num(r, "bidirectional_packets"), 120, "minute {k}");
            assert!(num(r, "bidirectional_max_ps") < 300);
        }
    }
    assert_eq!(num(burst, "bidirectional_max_ps"), 1400 + 42);

    // Every flow: one flow record, whose counters the interval records add up to; the 1.0
    // plugin ran on it (its columns are filled in flow records).
    let key = |r: &HashMap<String, String>| {
        ["src_ip", "src_port", "dst_ip", "dst_port", "protocol"]
            .map(|c| r[c].clone())
            .join("|")
    };
    let mut flows: BTreeMap<String, &HashMap<String, String>> = BTreeMap::new();
    let mut sums: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for r in &rows {
        match r["record_kind"].as_str() {
            "flow" => {
                assert!(flows.insert(key(r), r).is_none(), "two flow records");
                assert_eq!(r["interval_start_ms"], "");
                assert_eq!(num(r, "counter_s2d_packets"), num(r, "src2dst_packets"));
                assert_eq!(num(r, "counter_d2s_packets"), num(r, "dst2src_packets"));
            }
            "interval" => {
                let s = sums.entry(key(r)).or_default();
                for (i, c) in COUNTERS.iter().enumerate() {
                    s[i] += num(r, c);
                }
                s[4] += num(r, "bidirectional_packets");
            }
            other => panic!("record_kind {other:?}"),
        }
    }
    assert_eq!(flows.len(), 41);
    assert_eq!(sums.len(), 41);
    for (k, f) in &flows {
        let s = sums[k];
        let total: Vec<u64> = COUNTERS.iter().map(|c| num(f, c)).collect();
        assert_eq!(s[..4], total[..], "flow {k}: interval sums vs flow record");
        assert_eq!(s[4], num(f, "bidirectional_packets"));
    }
    let long_flow = flows.values().find(|r| is_long(r)).unwrap();
    assert_eq!(num(long_flow, "bidirectional_packets"), 4200);

    // A model of interval records: the burst's minute (oversampled) against every other
    // interval, trained with scikit-learn through train.py.
    let train_csv = root.join("train.csv");
    let mut w = csv::Writer::from_path(&train_csv).unwrap();
    w.write_record([
        "record_kind",
        "bidirectional_packets",
        "bidirectional_bytes",
        "label",
    ])
    .unwrap();
    for r in rows.iter().filter(|r| r["record_kind"] == "interval") {
        let bursty = is_long(r) && num(r, "interval_start_ms") == T0_MS + 6 * EVERY_MS;
        for _ in 0..if bursty { 12 } else { 1 } {
            w.write_record([
                "interval",
                &r["bidirectional_packets"],
                &r["bidirectional_bytes"],
                if bursty { "burst" } else { "normal" },
            ])
            .unwrap();
        }
    }
    // Flow records in the training file are skipped by --records interval.
    for r in rows.iter().filter(|r| r["record_kind"] == "flow") {
        w.write_record([
            "flow",
            &r["bidirectional_packets"],
            &r["bidirectional_bytes"],
            "burst",
        ])
        .unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let model = root.join("model");
    let o = Command::new(python())
        // No MLflow run in the source tree (train.py logs to ./mlruns when it can).
        .env("WEIR_NO_MLFLOW", "1")
        .arg(workspace().join("models/train.py"))
        .arg(&train_csv)
        .args([
            "--records",
            "interval",
            "--features",
            "bidirectional_packets,bidirectional_bytes",
            "--label-column",
            "label",
            "--min-class-samples",
            "1",
            "--n-estimators",
            "10",
            "--alert-class",
            "burst",
            "--alert-min-proba",
            "0.5",
            "--out",
        ])
        .arg(&model)
        .output()
        .expect("run train.py");
    assert!(
        o.status.success(),
        "train.py: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["records"], serde_json::json!(["interval"]));
    assert_eq!(
        meta["metadata"]["rows"],
        12 + rows
            .iter()
            .filter(|r| r["record_kind"] == "interval")
            .count()
            - 1
    );

    let scored = root.join("scored.csv");
    let alerts = root.join("alerts.jsonl");
    extract(
        &cap,
        &plugins,
        root,
        &scored,
        &[
            "--model",
            model.to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
        ],
    );
    let srows = read_csv(&scored);
    assert_eq!(srows.len(), rows.len());
    for r in &srows {
        let want = if r["record_kind"] == "interval" {
            "scored"
        } else {
            ""
        };
        assert_eq!(r["score_status"], want, "model.json records = [interval]");
    }
    let flow_end = num(long_flow, "bidirectional_last_seen_ms");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let long_alerts: Vec<_> = lines.iter().filter(|a| a["src_ip"] == "10.1.0.1").collect();
    assert_eq!(
        long_alerts.len(),
        1,
        "one alert, on the burst's minute: {lines:?}"
    );
    let a = long_alerts[0];
    assert_eq!(a["record_kind"], "interval");
    assert_eq!(a["interval_start_ms"], T0_MS + 6 * EVERY_MS);
    // Raised from the burst's interval: its packets end minutes before the flow does.
    let seen = a["last_seen_ms"].as_u64().unwrap();
    assert!(seen < T0_MS + 7 * EVERY_MS);
    assert!(
        a["interval_end_ms"].as_u64().unwrap() + 2 * EVERY_MS < flow_end,
        "the alert's interval ends {} ms before the flow",
        flow_end - a["interval_end_ms"].as_u64().unwrap()
    );
}

/// Per-service schedules (Traffic Refinery's per-service collection frequency): the long flow's
/// service takes two-minute intervals, the background flows' service none, other flows the
/// global minute; counters per interval still follow the generator and add up to the flow.
#[test]
fn each_service_keeps_its_own_interval_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pkts = generate();
    let cap = root.join("long.pcap");
    write_pcap(&cap, &pkts);
    let plugins = plugin_dir(root);
    let out = root.join("records.csv");
    let config = format!(
        "[intervals]\nevery_ms = {EVERY_MS}\n\n\
         [[services]]\nname = \"long\"\nprefixes = [\"10.2.0.0/16\"]\nevery_ms = 120000\n\n\
         [[services]]\nname = \"quiet\"\nprefixes = [\"172.16.0.0/24\"]\nevery_ms = 0\n"
    );
    extract_with(&config, &cap, &plugins, root, &out, &[]);
    let rows = read_csv(&out);

    let two_min = 2 * EVERY_MS;
    let mut want: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    for p in &pkts {
        if let Some(d) = p.long_dir {
            let k = (p.ts_ns / 1_000_000 - T0_MS) / two_min;
            let c = want.entry(k).or_default();
            c[2 * d as usize] += 1;
            c[2 * d as usize + 1] += p.frame.len() as u64;
        }
    }
    let long_iv: Vec<_> = rows
        .iter()
        .filter(|r| is_long(r) && r["record_kind"] == "interval")
        .collect();
    assert_eq!(long_iv.len(), 5, "ten minutes in two-minute intervals");
    for (k, r) in long_iv.iter().enumerate() {
        assert_eq!(r["service"], "long");
        let start = T0_MS + k as u64 * two_min;
        assert_eq!(num(r, "interval_start_ms"), start);
        assert_eq!(num(r, "interval_end_ms"), start + two_min);
        let got: Vec<u64> = COUNTERS.iter().map(|c| num(r, c)).collect();
        assert_eq!(got, want[&(k as u64)], "interval {k}: {COUNTERS:?}");
    }
    let long_flow: Vec<_> = rows
        .iter()
        .filter(|r| is_long(r) && r["record_kind"] == "flow")
        .collect();
    assert_eq!(long_flow.len(), 1);
    for c in COUNTERS {
        let sum: u64 = long_iv.iter().map(|r| num(r, c)).sum();
        assert_eq!(
            sum,
            num(long_flow[0], c),
            "{c}: intervals add up to the flow"
        );
    }
    let background: Vec<_> = rows.iter().filter(|r| !is_long(r)).collect();
    assert!(background.len() >= 40, "{}", background.len());
    for r in &background {
        assert_eq!(r["service"], "quiet", "{r:?}");
        assert_eq!(
            r["record_kind"], "flow",
            "every_ms = 0: no interval records"
        );
    }
}
