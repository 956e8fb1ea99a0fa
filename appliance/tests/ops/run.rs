//! `weir run` on a DPDK virtual device (net_pcap over a shared capture, no hugepages, no PCI)
//! with the metrics endpoint: scraped over HTTP on loopback while it runs, the counters must
//! move and agree with the capture (counted here with `pcap-file`) and with the records file
//! weir writes; the Grafana dashboard may only query metrics that exposition really has; and a
//! model reload (SIGHUP) under continuous traffic must lose no record.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP GET of /metrics; `None` while the server is not up.
fn scrape(port: u16) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    let (head, body) = s.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.trim_end().ends_with("# EOF"), "no # EOF:\n{body}");
    Some(body.to_string())
}

/// Samples of an exposition: `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse::<f64>().expect("sample value"))
        })
        .collect()
}

/// Sum of every sample of metric `name` (all label sets).
fn total(s: &HashMap<String, f64>, name: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| v)
        .sum()
}

fn get(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:?}", s.keys().collect::<Vec<_>>()))
}

fn pcap_packets(p: &Path) -> (u64, u64) {
    let f = std::fs::File::open(p).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let (mut n, mut bytes) = (0, 0);
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.unwrap();
        n += 1;
        // net_pcap counts the captured length.
        bytes += pkt.data.len() as u64;
    }
    (n, bytes)
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("weir.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn spawn(cfg: &Path, duration_s: u64) -> Child {
    crate::support::run::weir()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--duration-s", &duration_s.to_string()])
        // Info level: the status lines and the reload message.
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir run")
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "weir run failed:\n{err}");
    err
}

/// The records file: (rows, sum of bidirectional_packets, score_status counts).
fn read_records(p: &Path) -> (u64, u64, HashMap<String, u64>) {
    let mut rd = csv::Reader::from_path(p).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n);
    let pk = col("bidirectional_packets").expect("bidirectional_packets column");
    let st = col("score_status");
    let (mut rows, mut packets) = (0, 0);
    let mut status = HashMap::new();
    for r in rd.records() {
        let r = r.unwrap();
        rows += 1;
        packets += r[pk].parse::<u64>().unwrap();
        if let Some(i) = st {
            *status.entry(r[i].to_string()).or_default() += 1;
        }
    }
    (rows, packets, status)
}

fn eal_and_model(model: &Path) -> String {
    format!(
        "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 512\n\n[model]\ndir = \"{}\"\nort_library = \"{}\"\n",
        model.display(),
        crate::support::scoring::ort_library().display()
    )
}

#[test]
fn scrape_during_run_agrees_with_capture_and_records() {
    let tmp = tempfile::tempdir().unwrap();
    let capture = crate::support::paths::data_dir().join("pcaps/instagram.pcap");
    let (cap_packets, cap_bytes) = pcap_packets(&capture);
    let records = tmp.path().join("flows.csv");
    let port = free_port();
    let model = crate::support::scoring::fixtures().join("rf");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}\n[flows]\nidle_timeout_s = 1\n\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n\n[sinks]\nrecords = \"{}\"\nalerts = \"{}\"\n\n[[heavy_hitters]]\nkey = \"src_ip\"\nthreshold_pps = 1\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[log]\nstatus_interval_s = 1\n",
            eal_and_model(&model),
            capture.display(),
            records.display(),
            tmp.path().join("alerts.jsonl").display(),
        ),
    );
    let child = spawn(&cfg, 8);

    // Scrape until the whole capture went through and every flow ended (once the link is
    // quiet, packet time moves on from the last packet by the real time since, and the idle
    // timeout is 1 s).
    let t0 = Instant::now();
    let mut history: Vec<HashMap<String, f64>> = Vec::new();
    let mut last_text;
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(7),
            "capture not consumed in time"
        );
        std::thread::sleep(Duration::from_millis(100));
        let Some(text) = scrape(port) else { continue };
        let s = samples(&text);
        let done = total(&s, "weir_port_rx_packets_total") as u64 == cap_packets
            && total(&s, "weir_worker_active_flows") == 0.0
            && total(&s, "weir_records_written_total") > 0.0
            && total(&s, "weir_records_written_total") == total(&s, "weir_worker_records_total");
        history.push(s);
        last_text = text;
        if done {
            break;
        }
    }
    // Counters never go backwards between scrapes.
    for pair in history.windows(2) {
        for (k, v) in &pair[0] {
            if k.contains("_total") && !k.contains("xstat") {
                let later = pair[1].get(k).copied().unwrap_or(0.0);
                assert!(later >= *v, "{k} went from {v} to {later}");
            }
        }
    }
    let s = history.last().unwrap();
    // Port counters against the capture, counted independently.
    assert_eq!(
        get(s, "weir_port_rx_packets_total{port=\"net_pcap0\"}") as u64,
        cap_packets
    );
    assert_eq!(
        get(s, "weir_port_rx_bytes_total{port=\"net_pcap0\"}") as u64,
        cap_bytes
    );
    assert_eq!(total(s, "weir_port_rx_missed_packets_total"), 0.0);
    // The heavy-hitter table reported the sources it tracks (the capture has a handful).
    let occupied = total(s, "weir_heavy_hitter_occupied_keys");
    assert!(
        occupied >= 1.0 && occupied <= total(s, "weir_heavy_hitter_capacity_keys"),
        "heavy-hitter occupancy {occupied}"
    );
    assert_eq!(total(s, "weir_worker_packets_total") as u64, cap_packets);
    // Every packet is in a flow, skipped by a named reason, or refused by a full table.
    let accepted = total(s, "weir_worker_flow_packets_total");
    assert_eq!(
        accepted
            + total(s, "weir_worker_parse_skipped_packets_total")
            + total(s, "weir_worker_table_full_packets_total"),
        cap_packets as f64
    );
    assert_eq!(
        total(s, "weir_worker_flows_created_total"),
        total(s, "weir_worker_flows_ended_total")
    );
    // Per-stage and per-plugin cost moved.
    assert!(get(s, "weir_stage_packets_total{worker=\"0\",stage=\"parse\"}") as u64 == cap_packets);
    assert!(
        get(
            s,
            "weir_plugin_cycles_total{worker=\"0\",plugin=\"flowstats\"}"
        ) > 0.0
    );
    assert!(
        get(
            s,
            "weir_plugin_packets_total{worker=\"0\",plugin=\"flowstats\"}"
        ) == accepted
    );
    // Scoring: every record went through the model.
    let written = get(s, "weir_records_written_total");
    assert_eq!(get(s, "weir_scoring_rows_total"), written);
    assert_eq!(get(s, "weir_scoring_latency_seconds_count"), written);
    assert!(get(s, "weir_scoring_batches_total") >= 1.0);
    // The latency histogram's buckets are cumulative and end at the count.
    let mut buckets: Vec<(f64, f64)> = s
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix("weir_scoring_latency_seconds_bucket{le=\"")?;
            let le = le.trim_end_matches("\"}");
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                },
                *v,
            ))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, written));
    assert!(
        total(s, "weir_alerts_total") > 0.0,
        "threshold_pps = 1 raises alerts"
    );
    assert!(get(s, "weir_mempool_available_mbufs{pool=\"weir_rx0\"}") > 0.0);

    let err = finish(child);
    // The records file holds what the metrics said, and nothing was added at shutdown.
    let (rows, packets, status) = read_records(&records);
    assert_eq!(rows as f64, written, "{err}");
    assert_eq!(packets as f64, accepted);
    assert_eq!(
        status.get("scored").copied().unwrap_or(0),
        rows,
        "{status:?}"
    );
    let status_lines = err
        .lines()
        .filter(|l| l.contains(" status ") && l.contains("active_flows") && l.contains("missed"))
        .count();
    assert!(
        status_lines >= 3,
        "a status line every second for 8 s:\n{err}"
    );

    // The dashboard only queries metrics this exposition has.
    let exported: BTreeSet<&str> = last_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let dash = dashboard_metric_names();
    assert!(dash.len() >= 8, "few metrics in the dashboard: {dash:?}");
    let missing: Vec<&String> = dash
        .iter()
        .filter(|m| !exported.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard queries unknown metrics {missing:?}; weir exports {exported:?}"
    );
}

/// Every `weir_*` name in the PromQL expressions of the Grafana dashboard and of the
/// Prometheus alerting rules.
fn dashboard_metric_names() -> BTreeSet<String> {
    let mon = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let p = mon.join("grafana/weir-dashboard.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(mon.join("weir-alerts.yml")).unwrap())
            .unwrap();
    let rules = serde_json::to_value(rules).unwrap();
    let mut exprs = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "expr" {
                        if let Some(s) = x.as_str() {
                            out.push(s.to_string());
                        }
                    }
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&v, &mut exprs);
    assert!(!exprs.is_empty(), "no expr in {}", p.display());
    let n = exprs.len();
    walk(&rules, &mut exprs);
    assert!(exprs.len() > n, "no expr in weir-alerts.yml");
    let mut names = BTreeSet::new();
    for e in exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while let Some(off) = e[i..].find("weir_") {
            let start = i + off;
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            // Skip label values or substrings of other identifiers.
            if start == 0
                || !(b[start - 1].is_ascii_alphanumeric()
                    || b[start - 1] == b'_'
                    || b[start - 1] == b'"')
            {
                names.insert(e[start..end].to_string());
            }
            i = end;
        }
    }
    names
}

#[test]
fn model_reload_under_traffic_loses_no_record() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = crate::support::scoring::fixtures();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in ["model.onnx", "model.json"] {
        std::fs::copy(fixtures.join("rf").join(f), model.join(f)).unwrap();
    }
    let capture = crate::support::paths::data_dir().join("pcaps/instagram.pcap");
    let records = tmp.path().join("flows.csv");
    let port = free_port();
    // infinite_rx replays the capture for ever; a short active timeout turns the endless
    // traffic into a steady stream of records.
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\n[flows]\nactive_timeout_s = 0.05\n\n[sinks]\nrecords = \"{}\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            eal_and_model(&model),
            capture.display(),
            records.display(),
        ),
    );
    let child = spawn(&cfg, 9);
    let pid = child.id() as i32;
    // Wait for scored records to flow, then swap the model files and signal.
    let t0 = Instant::now();
    let before = loop {
        assert!(t0.elapsed() < Duration::from_secs(5), "no records scored");
        std::thread::sleep(Duration::from_millis(100));
        if let Some(t) = scrape(port) {
            let s = samples(&t);
            if total(&s, "weir_scoring_rows_total") > 0.0 {
                break s;
            }
        }
    };
    // Swap in `name`'s files atomically, signal, and wait until the reload counters move.
    let reload = |name: &str, seen: f64| {
        for f in ["model.onnx", "model.json"] {
            let tmpf = model.join(format!("{f}.new"));
            std::fs::copy(fixtures.join(name).join(f), &tmpf).unwrap();
            std::fs::rename(&tmpf, model.join(f)).unwrap();
        }
        // SAFETY: signalling the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(8),
                "reload of {name} not seen"
            );
            std::thread::sleep(Duration::from_millis(100));
            if let Some(t) = scrape(port) {
                let s = samples(&t);
                if total(&s, "weir_model_reloads_total") > seen {
                    return s;
                }
            }
        }
    };
    // Same classes, another model: swapped in.
    let after = reload("gb", 0.0);
    assert_eq!(get(&after, "weir_model_reloads_total{result=\"ok\"}"), 1.0);
    assert_eq!(
        get(&after, "weir_model_reloads_total{result=\"failed\"}"),
        0.0
    );
    // An anomaly model has other score columns than the records file: refused, gb stays.
    let after = reload("iforest", 1.0);
    assert_eq!(get(&after, "weir_model_reloads_total{result=\"ok\"}"), 1.0);
    assert_eq!(
        get(&after, "weir_model_reloads_total{result=\"failed\"}"),
        1.0
    );
    let err = finish(child);
    assert!(err.contains("model reloaded"), "{err}");
    assert!(err.contains("model reload refused"), "{err}");
    // weir's own summary line: "N packets (M in flows) -> R flow records".
    let line = err
        .lines()
        .find(|l| l.starts_with("weir run:"))
        .unwrap_or_else(|| panic!("no summary:\n{err}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    let (in_flows, reported) = (nums[1], nums[2]);
    let (rows, packets, status) = read_records(&records);
    assert!(rows > total(&before, "weir_records_written_total") as u64);
    assert_eq!(rows, reported, "{line}");
    assert_eq!(
        packets, in_flows,
        "every accepted packet is in a written record"
    );
    assert_eq!(
        status.get("scored").copied().unwrap_or(0),
        rows,
        "every record scored, none lost or errored across the swap: {status:?}"
    );
}

/// Every counter a worker keeps reaches /metrics: the interval records and the `[[services]]`
/// counters, scraped once the capture went through and every flow ended, against the records
/// file (interval rows; flows with a service) and against `weir extract --stats` on the same
/// capture and rules (DNS answers are counted per packet, so both paths must agree).
#[test]
fn scrape_has_interval_records_and_service_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let capture = crate::support::paths::data_dir().join("pcaps/android.pcap");
    let (cap_packets, _) = pcap_packets(&capture);
    let records = tmp.path().join("flows.csv");
    let port = free_port();
    let rules = "[intervals]\nevery_ms = 1000\n\n[[services]]\nname = \"gapis\"\ndomains = [\"googleapis.com\", \"google.com\"]\n\n[[services]]\nname = \"zip\"\nprefixes = [\"173.194.0.0/16\"]\n";
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 512\n\n[flows]\nidle_timeout_s = 1\n\n{rules}\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n\n[sinks]\nrecords = \"{}\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            capture.display(),
            records.display(),
        ),
    );
    let child = spawn(&cfg, 6);
    let t0 = Instant::now();
    let s = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "capture not consumed in time"
        );
        std::thread::sleep(Duration::from_millis(100));
        let Some(text) = scrape(port) else { continue };
        let s = samples(&text);
        if total(&s, "weir_worker_packets_total") as u64 == cap_packets
            && total(&s, "weir_worker_active_flows") == 0.0
            && total(&s, "weir_records_written_total") > 0.0
            && total(&s, "weir_records_written_total") == total(&s, "weir_worker_records_total")
        {
            break s;
        }
    };
    let err = finish(child);

    // Interval records: the rows of kind "interval" in the records file.
    let mut rd = csv::Reader::from_path(&records).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (kind, service) = (col("record_kind"), col("service"));
    let (mut intervals, mut flows, mut with_service) = (0u64, 0u64, 0u64);
    for r in rd.records() {
        let r = r.unwrap();
        if &r[kind] == "interval" {
            intervals += 1;
        } else {
            flows += 1;
            with_service += u64::from(!r[service].is_empty());
        }
    }
    assert!(intervals > 0, "no interval records:\n{err}");
    assert_eq!(
        total(&s, "weir_worker_interval_records_total") as u64,
        intervals
    );
    // Every flow started once, found its service one way or none.
    let by = |how: &str| {
        get(
            &s,
            &format!("weir_worker_service_flows_total{{worker=\"0\",by=\"{how}\"}}"),
        ) as u64
    };
    assert_eq!(by("dns") + by("prefix") + by("none"), flows);
    assert_eq!(total(&s, "weir_worker_flows_created_total") as u64, flows);
    assert_eq!(by("dns") + by("prefix"), with_service);
    assert!(by("dns") > 0 && by("prefix") > 0, "{s:?}");

    // DNS learning as `weir extract --stats` counts it on the same capture and rules.
    let xcfg = tmp.path().join("extract.toml");
    std::fs::write(&xcfg, rules).unwrap();
    let stats = tmp.path().join("stats.json");
    let o = crate::support::run::weir()
        .arg("extract")
        .arg(&capture)
        .arg("--out")
        .arg(tmp.path().join("x.csv"))
        .arg("--config")
        .arg(&xcfg)
        .args(["--quiet", "--no-progress", "--stats"])
        .arg(&stats)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    for name in [
        "dns_answers",
        "dns_malformed",
        "dns_unsolicited",
        "dns_learned",
        "dns_replaced_live",
    ] {
        assert_eq!(
            total(&s, &format!("weir_worker_{name}_total")) as u64,
            x["services"][name].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            x["worker_counters"][name], x["services"][name],
            "--stats worker_counters.{name}"
        );
    }
    assert!(total(&s, "weir_worker_dns_learned_total") > 0.0);
    assert_eq!(
        x["worker_counters"]["interval_records"],
        x["interval_records"]
    );
}
