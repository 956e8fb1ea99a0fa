//! EAL on net_null (no hugepages, no PCI): init rules, pools, mbufs, bursts, a port with RSS,
//! queue limits, statistics, lcores and the TSC. One process, one EAL: one test function.

use weir_dpdk::{
    lcore, rss, Eal, Error, MbufBurst, Mempool, Port, PortConfig, RssConfig, DEFAULT_DATA_ROOM,
    SOCKET_ANY,
};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn eal_on_net_null() {
    let eal = Eal::init(&args(&[
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0,1",
        "--log-level=lib.eal:warning",
        "--vdev=net_null0",
        "--vdev=net_null1",
    ]))
    .expect("EAL init");

    // A second init is refused, without touching the running EAL.
    match Eal::init(&args(&["--no-huge"])) {
        Err(Error::EalAlreadyInitialized) => {}
        other => panic!("second init: {other:?}"),
    }

    check_pool_and_mbufs();
    check_null_port_rx();
    check_rss_and_queue_limits();
    check_lcores();
    check_tsc();

    // Everything above has been dropped: the last handle cleans up.
    eal.cleanup().expect("cleanup");
    assert!(Eal::current().is_none());
}

fn check_pool_and_mbufs() {
    let pool = Mempool::new_pktmbuf("null_pool", 511, 0, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap();
    assert_eq!(pool.capacity(), 511);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), 511);

    // Same name twice: a clear error naming the pool.
    let err = Mempool::new_pktmbuf("null_pool", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap_err();
    assert!(err.to_string().contains("null_pool"), "{err}");
    // More than -m 256 can hold.
    let err =
        Mempool::new_pktmbuf("huge_pool", 4_000_000, 0, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap_err();
    assert!(err.to_string().contains("huge_pool"), "{err}");

    let mut m = pool.alloc().unwrap();
    assert_eq!(pool.in_use(), 1);
    m.append(b"hello").unwrap();
    m.append(b", world").unwrap();
    assert_eq!(m.data(), b"hello, world");
    assert_eq!(m.pkt_len(), 12);
    assert_eq!(m.data_len(), 12);
    assert_eq!(m.rss_hash(), None);
    // No tailroom for this much: an error, not a panic; the mbuf is unchanged.
    let err = m.append(&[0u8; 4000]).unwrap_err();
    assert!(err.to_string().contains("tailroom"), "{err}");
    assert_eq!(m.pkt_len(), 12);
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // into_raw hands ownership over; from_raw takes it back; freed once.
    let raw = pool.alloc().unwrap().into_raw();
    assert_eq!(pool.in_use(), 1);
    // SAFETY: `raw` came from into_raw and nothing else owns it.
    drop(unsafe { weir_dpdk::Mbuf::from_raw(raw) });
    assert_eq!(pool.in_use(), 0);

    // Bursts: bulk alloc into the fixed array, all-or-nothing, freed in bulk.
    let mut burst = MbufBurst::<32>::new();
    pool.alloc_bulk(&mut burst, 20).unwrap();
    assert_eq!((burst.len(), pool.in_use()), (20, 20));
    assert!(
        pool.alloc_bulk(&mut burst, 13).is_err(),
        "only 12 slots left"
    );
    pool.alloc_bulk(&mut burst, 12).unwrap();
    assert!(burst.is_full());
    let last = burst.pop().unwrap();
    assert_eq!(burst.len(), 31);
    burst.push(last).unwrap();
    let extra = pool.alloc().unwrap();
    let extra = burst.push(extra).unwrap_err(); // full: given back
    drop(extra);
    for m in burst.iter_mut() {
        m.append(&[7; 3]).unwrap();
    }
    assert!(burst.iter().all(|m| m.data() == [7, 7, 7]));
    assert_eq!(pool.in_use(), 32);
    burst.clear();
    assert_eq!(pool.in_use(), 0);
    pool.alloc_bulk(&mut burst, 5).unwrap();
    drop(burst);
    assert_eq!(pool.in_use(), 0);

    // The pool runs dry: alloc_bulk fails cleanly, alloc gives None.
    let mut bursts: Vec<MbufBurst<32>> = (0..16).map(|_| MbufBurst::new()).collect();
    let mut got = 0;
    for b in &mut bursts {
        if pool.alloc_bulk(b, 32).is_ok() {
            got += 32;
        }
    }
    assert_eq!(got, 480);
    let mut rest = Vec::new();
    while let Some(m) = pool.alloc() {
        rest.push(m);
    }
    assert_eq!(got + rest.len(), 511);
    assert_eq!(pool.available(), 0);
    drop(bursts);
    drop(rest);
    assert_eq!(pool.in_use(), 0);
}

fn check_null_port_rx() {
    let names: Vec<String> = Port::available().into_iter().map(|(_, n)| n).collect();
    assert!(names.contains(&"net_null0".to_string()), "{names:?}");

    let err = Port::by_name("net_nothere0").unwrap_err();
    assert!(err.to_string().contains("net_nothere0"), "{err}");
    assert!(
        err.to_string().contains("net_null0"),
        "lists available ports: {err}"
    );

    let pool = Mempool::new_pktmbuf("null_rx", 1023, 32, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap();
    let mut port = Port::by_name("net_null0").unwrap();
    // One owner per port.
    assert!(matches!(Port::by_id(port.id()), Err(Error::InUse(_))));
    let info = port.dev_info().unwrap();
    assert_eq!(info.driver, "net_null");
    let setup = port.configure(&PortConfig::default()).unwrap();
    assert_eq!((setup.rx_queues, setup.rss.clone()), (1, None));
    eprintln!("{setup}");
    let mut rxq = port.rx_queue_setup(0, 256, SOCKET_ANY, &pool).unwrap();
    assert!(matches!(
        port.rx_queue_setup(0, 256, SOCKET_ANY, &pool),
        Err(Error::InUse(_))
    ));
    port.start().unwrap();
    port.set_promiscuous(true).ok(); // net_null may not support it; must not panic

    let mut burst = MbufBurst::<32>::new();
    let mut total = 0u64;
    for _ in 0..100 {
        let n = rxq.rx_burst(&mut burst);
        assert_eq!(n, burst.len());
        // net_null's default packet size is 64 bytes.
        assert!(burst
            .iter()
            .all(|m| m.pkt_len() == 64 && m.data().len() == 64));
        total += n as u64;
        // The burst owns what it received until the next rx_burst frees it.
        assert_eq!(pool.in_use() as usize, n);
    }
    assert!(total > 0);
    drop(burst);
    assert_eq!(pool.in_use(), 0);
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, total, "{stats:?}");
    assert_eq!(stats.q_ipackets.len(), 1);
    let xstats = port.xstats().unwrap();
    let rx_good = xstats
        .iter()
        .find(|(n, _)| n == "rx_good_packets")
        .map(|x| x.1);
    assert_eq!(rx_good, Some(total), "{xstats:?}");
    port.stop().unwrap();
    assert_eq!(rxq.rx_burst(&mut MbufBurst::<32>::new()), 0, "stopped port");

    // The EAL cannot be cleaned up under live resources.
    let eal = Eal::current().unwrap();
    assert!(matches!(eal.cleanup(), Err(Error::EalInUse(_))));
    drop((rxq, port));
    assert_eq!(pool.in_use(), 0);
}

fn check_rss_and_queue_limits() {
    let mut port = Port::by_name("net_null1").unwrap();
    let info = port.dev_info().unwrap();
    let too_many = info.max_rx_queues + 1;
    let err = port
        .configure(&PortConfig {
            rx_queues: too_many,
            tx_queues: 0,
            rss: None,
        })
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::TooManyQueues { .. }), "{text}");
    assert!(text.contains("net_null1"), "{text}");
    assert!(text.contains(&too_many.to_string()), "{text}");
    assert!(
        text.contains(&format!("at most {}", info.max_rx_queues)),
        "{text}"
    );

    // RSS over 2 queues: hash types are what was asked ∩ what the device offers.
    assert!(
        info.flow_type_rss_offloads != 0,
        "net_null offers RSS: {info:?}"
    );
    let asked = RssConfig::default().hash_types | rss::HASH_IPV6;
    let setup = port
        .configure(&PortConfig {
            rx_queues: 2,
            tx_queues: 0,
            rss: Some(RssConfig { hash_types: asked }),
        })
        .unwrap();
    eprintln!("{setup}");
    let r = setup.rss.clone().expect("rss set up");
    assert_eq!(r.hash_types, asked & info.flow_type_rss_offloads);
    assert_eq!(r.key_len, info.hash_key_size as usize);
    assert_eq!(r.symmetric, info.hash_key_size > 0);
    // Read back from the driver: the hash types it now uses, and our key if it takes one.
    let (key, hf) = port.rss_hash_conf().unwrap();
    assert_eq!(hf, r.hash_types);
    if r.symmetric {
        assert_eq!(key, rss::symmetric_key(r.key_len));
        assert!(setup.to_string().contains("symmetric (0x6d5a)"), "{setup}");
    } else {
        // net_null reports no key size: no key can be given, and the log says so.
        assert!(setup.to_string().contains("device-default"), "{setup}");
    }
}

fn check_lcores() {
    assert_eq!(lcore::lcore_count(), 2);
    let main = lcore::main_lcore();
    assert_eq!(
        lcore::lcore_id(),
        Some(main),
        "init thread is the main lcore"
    );
    let workers: Vec<u32> = lcore::worker_lcores().collect();
    assert_eq!(workers.len(), 1);
    let w = workers[0];
    assert_ne!(w, main);
    assert_eq!(std::thread::spawn(lcore::lcore_id).join().unwrap(), None);

    let (tx, rx) = std::sync::mpsc::channel();
    lcore::remote_launch(w, move || {
        tx.send((lcore::lcore_id(), lcore::socket_id())).unwrap();
        42
    })
    .unwrap();
    assert_eq!(lcore::wait_lcore(w), 42);
    let (id, socket) = rx.recv().unwrap();
    assert_eq!(id, Some(w));
    assert_eq!(socket, lcore::lcore_socket(w));

    // Launching on the main lcore or a non-existent one is an error, not a panic.
    assert!(lcore::remote_launch(main, || 0).is_err());
    assert!(lcore::remote_launch(1000, || 0).is_err());

    // A panicking closure does not unwind into C. (Silence the expected panic message.)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    lcore::remote_launch(w, || panic!("deliberate panic in a worker")).unwrap();
    let code = lcore::wait_lcore(w);
    std::panic::set_hook(hook);
    assert_eq!(code, lcore::LAUNCH_PANICKED);
    lcore::remote_launch(w, || 7).unwrap();
    lcore::mp_wait_lcore();
    assert_eq!(lcore::wait_lcore(w), 7);
}

fn check_tsc() {
    let hz = weir_dpdk::tsc_hz();
    assert!(hz > 1_000_000, "tsc_hz {hz}");
    let t0 = weir_dpdk::rdtsc();
    let wall = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let cycles = weir_dpdk::rdtsc() - t0;
    let secs = cycles as f64 / hz as f64;
    let wall = wall.elapsed().as_secs_f64();
    assert!(
        (secs - wall).abs() < 0.02 + wall * 0.1,
        "tsc {secs} s vs wall {wall} s"
    );
}
