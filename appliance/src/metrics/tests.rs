use super::*;
use crate::cost::CostTable;
use crate::stats::WorkerStats;

fn get(addr: SocketAddr, request: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn serves_metrics_and_refuses_the_rest() {
    let w = Arc::new(PublishedStats::default());
    let stats = WorkerStats {
        packets: 7,
        flows_created: 2,
        ..WorkerStats::default()
    };
    w.publish(&stats, 2);
    let alerts = Arc::new(AlertCounts::default());
    alerts.count_line(r#"{"kind":"top_k","key":"10.0.0.1"}"#);
    alerts.count_line(r#"{"kind":"top_k"}"#);
    alerts.count_line("not json");
    let srv = MetricsServer::start(
        "127.0.0.1:0",
        Sources {
            workers: vec![w.clone()],
            alerts: Some(alerts),
            ..Sources::default()
        },
    )
    .unwrap();
    let a = srv.local_addr();
    let ok = get(a, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("application/openmetrics-text"));
    assert!(
        ok.contains("weir_worker_packets_total{worker=\"0\"} 7\n"),
        "{ok}"
    );
    assert!(
        ok.contains("weir_worker_active_flows{worker=\"0\"} 2\n"),
        "{ok}"
    );
    assert!(ok.contains("weir_alerts_total{kind=\"top_k\"} 2\n"), "{ok}");
    assert!(
        ok.contains("weir_alerts_total{kind=\"unknown\"} 1\n"),
        "{ok}"
    );
    assert!(ok.contains("# TYPE weir_worker_packets counter"), "{ok}");
    assert!(ok.trim_end().ends_with("# EOF"));
    // The body is exactly Content-Length bytes.
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    // Counters published later show up in the next scrape.
    w.publish(
        &WorkerStats {
            packets: 9,
            ..stats
        },
        0,
    );
    assert!(get(a, "GET /metrics HTTP/1.0\r\n\r\n")
        .contains("weir_worker_packets_total{worker=\"0\"} 9\n"));
    assert!(get(a, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(a, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    drop(srv);
    assert!(TcpStream::connect(a).is_err(), "listener closed on drop");
}

#[test]
fn cost_copy_is_skipped_while_a_scrape_holds_the_slot() {
    let mut cost = CostTable::new(&[("p".to_string(), 8)], true);
    let row = crate::cost::RowId::plugin(0);
    cost.account(row, 10, 1000);
    let w = PublishedStats::default();
    w.offer_cost(&cost);
    let rows = w.cost_rows();
    let p = rows.iter().find(|r| r.name == "p").unwrap();
    assert!(p.is_plugin);
    assert_eq!((p.packets, p.cycles), (10, 1000));
    cost.account(row, 5, 500);
    {
        let _held = w.lock_cost();
        // The worker must not wait: it skips this copy.
        w.offer_cost(&cost);
    }
    assert_eq!(
        w.cost_rows()
            .iter()
            .find(|r| r.name == "p")
            .unwrap()
            .packets,
        10
    );
    w.offer_cost(&cost);
    assert_eq!(
        w.cost_rows()
            .iter()
            .find(|r| r.name == "p")
            .unwrap()
            .packets,
        15
    );
}

#[test]
fn a_silent_or_slow_client_cannot_hold_the_endpoint() {
    let srv = MetricsServer::start("127.0.0.1:0", Sources::default()).unwrap();
    let a = srv.local_addr();
    // One client connects and sends nothing; another sends a byte at a time, slower than
    // the read deadline allows for the whole head.
    let silent = TcpStream::connect(a).unwrap();
    let mut slow = TcpStream::connect(a).unwrap();
    let trickle = std::thread::spawn(move || {
        let t0 = Instant::now();
        for b in b"GET /metrics HTTP/1.1\r\n" {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        // The server gave up on it: it answers nothing and closes.
        let mut s = String::new();
        let _ = slow.read_to_string(&mut s);
        (s, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    // Meanwhile scrapes are answered at once.
    for _ in 0..3 {
        let t0 = Instant::now();
        let ok = get(a, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
    let (s, took) = trickle.join().unwrap();
    assert!(
        s.is_empty(),
        "a request past its deadline was answered: {s}"
    );
    assert!(took < READ_DEADLINE + Duration::from_secs(8), "{took:?}");
    // More clients than the cap: the extra ones are closed, the server goes on.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS + 2)
        .map(|_| TcpStream::connect(a).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // Stopping does not wait for the silent clients.
    let t0 = Instant::now();
    drop(srv);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    drop((silent, held));
}

#[test]
fn listen_errors_name_the_key() {
    let e = MetricsServer::start("256.0.0.1:1", Sources::default())
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("metrics.listen"), "{e:#}");
}

#[test]
fn build_info_names_versions_and_xstats_are_typed() {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Sources::default()));
    let text = render(&registry);
    // The DPDK version against pkg-config's, the ABI against the plugin API's constants.
    let dpdk = std::process::Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .expect("pkg-config");
    let dpdk = String::from_utf8_lossy(&dpdk.stdout).trim().to_string();
    let line = format!(
        "weir_build_info{{version=\"{}\",dpdk_version=\"{dpdk}\",abi=\"{}.{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        weir_plugin_api::WEIR_ABI_MAJOR,
        weir_plugin_api::WEIR_ABI_MINOR
    );
    assert!(text.contains(&line), "no {line} in:\n{text}");
    assert!(text.contains("# TYPE weir_build_info gauge"), "{text}");
    // The generic ethdev xstats every PMD has are counters; readings are not.
    for c in [
        "rx_good_packets",
        "rx_good_bytes",
        "rx_missed_errors",
        "rx_mbuf_allocation_errors",
        "rx_q0_packets",
        "rx_q0_errors",
        "rx_size_1519_to_max_packets",
        "mac_remote_errors",
        "rx_xoff_packets",
    ] {
        assert!(xstat_is_counter(c), "{c}");
    }
    for g in ["tx_pp_jitter", "tx_pp_wander", "temperature", "rx_q0_level"] {
        assert!(!xstat_is_counter(g), "{g}");
    }
}

#[test]
fn every_worker_counter_reaches_the_exposition() {
    // Each counter a distinct value: each must be some worker sample's value.
    let mut s = WorkerStats::default();
    for (i, v) in s.values_mut().into_iter().enumerate() {
        *v = 1000 + i as u64;
    }
    for (i, v) in s.skipped.counts.iter_mut().enumerate() {
        *v = 2000 + i as u64;
    }
    let w = Arc::new(PublishedStats::default());
    w.publish(&s, 3);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Sources {
        workers: vec![w],
        ..Sources::default()
    }));
    let text = render(&registry);
    let worker_values: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("weir_worker_") && l.contains("worker=\"0\""))
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    for (name, v) in WorkerStats::NAMES.iter().zip(s.values()) {
        assert!(
            worker_values.contains(&v.to_string().as_str()),
            "counter {name} ({v}) not in /metrics:\n{text}"
        );
    }
    for (reason, v) in s.skipped.iter() {
        assert!(
            text.contains(&format!(
                "weir_worker_parse_skipped_packets_total{{worker=\"0\",reason=\"{reason}\"}} {v}\n"
            )),
            "{reason}"
        );
    }
    let value = |name: &str| 1000 + WorkerStats::NAMES.iter().position(|n| *n == name).unwrap();
    let families = [
        (
            "weir_worker_interval_records_total{worker=\"0\"}",
            "interval_records",
        ),
        (
            "weir_worker_service_flows_total{worker=\"0\",by=\"none\"}",
            "flows_without_service",
        ),
        (
            "weir_worker_filtered_packets_total{worker=\"0\"}",
            "filtered",
        ),
        (
            "weir_worker_plugin_text_refused_total{worker=\"0\",reason=\"too_long\"}",
            "text_too_long",
        ),
    ];
    for (family, counter) in families {
        let line = format!("{family} {}\n", value(counter));
        assert!(text.contains(&line), "{line:?} not in /metrics:\n{text}");
    }
}
