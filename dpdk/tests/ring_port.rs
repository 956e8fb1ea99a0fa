//! A ring-backed ethdev, as `weir extract` uses it: a feeder fills mbufs with our metadata
//! dynfield and enqueues them to rte_rings; a worker lcore and a plain thread read them back
//! through `rte_eth_rx_burst` in order, with exact metadata, and every mbuf comes back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_dpdk::{
    lcore, Eal, Error, MbufBurst, Mempool, MetaField, Port, PortConfig, Ring, RxQueue, WeirMeta,
    DEFAULT_DATA_ROOM, SOCKET_ANY,
};

const N: u64 = 20_000;
const QUEUES: u64 = 2;

fn meta_of(seq: u64) -> WeirMeta {
    WeirMeta {
        // Not a multiple of 1000: the field keeps nanoseconds.
        ts_ns: 1_600_000_000_000_000_000 + seq * 1_234_567 + seq % 997,
        wire_len: 64 + ((seq * 7) % 1400) as u32,
    }
}

/// Reads queue `q` until it has all its packets; returns an error text on the first mismatch.
fn receive(mut rxq: RxQueue, meta: MetaField) -> Result<u64, String> {
    let q = u64::from(rxq.queue_id());
    let mut next = q; // the feeder sends seq to queue seq % QUEUES
    let mut burst = MbufBurst::<32>::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < N {
        if Instant::now() > deadline {
            return Err(format!("queue {q}: timed out at seq {next}"));
        }
        rxq.rx_burst(&mut burst);
        for m in &burst {
            let seq = u64::from_le_bytes(m.data()[..8].try_into().unwrap());
            if seq != next {
                return Err(format!("queue {q}: got seq {seq}, expected {next}"));
            }
            if m.pkt_len() != 60 || m.data()[8..] != [seq as u8; 52] {
                return Err(format!("queue {q}: seq {seq}: payload differs"));
            }
            if meta.get(m) != Some(meta_of(seq)) {
                return Err(format!("queue {q}: seq {seq}: meta {:?}", meta.get(m)));
            }
            next += QUEUES;
        }
    }
    Ok((next - q) / QUEUES)
}

#[test]
fn ring_port_feeds_workers_in_order_with_exact_meta() {
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0,1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _eal = Eal::init(&args).expect("EAL init");
    let pool = Mempool::new_pktmbuf("ring_pool", 2047, 32, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap();
    let meta = MetaField::register().unwrap();
    assert_eq!(
        MetaField::register().unwrap(),
        meta,
        "registration is idempotent"
    );

    check_plain_ring(&pool, meta);
    check_attached(meta);

    let mut rings: Vec<Ring> = (0..QUEUES)
        .map(|q| Ring::new(&format!("feed{q}"), 512, SOCKET_ANY).unwrap())
        .collect();
    let refs: Vec<&Ring> = rings.iter().collect();
    let mut port = Port::from_rings("weir_feed", &refs, &[], SOCKET_ANY).unwrap();
    assert_eq!(port.name(), "net_ring_weir_feed", "DPDK's naming");
    let err = Port::by_name("net_ring_weir_feed").unwrap_err();
    assert!(matches!(err, Error::InUse(_)), "{err}");
    // A bound ring cannot be bound twice, nor dequeued by its handle (the port does that).
    assert!(matches!(
        Port::from_rings("again", &refs[..1], &[], SOCKET_ANY),
        Err(Error::InUse(_))
    ));
    let err = rings[0]
        .dequeue_burst(&mut MbufBurst::<4>::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("feed0") && err.to_string().contains("weir_feed"),
        "{err}"
    );

    let info = port.dev_info().unwrap();
    assert_eq!(
        (info.driver.as_str(), info.max_rx_queues),
        ("net_ring", QUEUES as u16)
    );
    let setup = port
        .configure(&PortConfig {
            rx_queues: QUEUES as u16,
            tx_queues: 0,
            rss: None,
        })
        .unwrap();
    eprintln!("{setup}");
    let q0 = port.rx_queue_setup(0, 0, SOCKET_ANY, &pool).unwrap();
    let q1 = port.rx_queue_setup(1, 0, SOCKET_ANY, &pool).unwrap();
    port.start().unwrap();

    // Queue 0 on the worker lcore (EAL thread), queue 1 on a plain thread.
    let worker = lcore::worker_lcores().next().expect("a worker lcore");
    let result0 = Arc::new(Mutex::new(None));
    let r0 = Arc::clone(&result0);
    lcore::remote_launch(worker, move || {
        let r = receive(q0, meta);
        let code = if r.is_ok() { 0 } else { 1 };
        *r0.lock().unwrap() = Some(r);
        code
    })
    .unwrap();
    let t1 = std::thread::spawn(move || receive(q1, meta));

    // The feeder: bulk-allocate, fill, set meta, enqueue with back-pressure (retry when full).
    let mut burst = MbufBurst::<32>::new();
    let mut seq = 0u64;
    let mut per_queue: Vec<MbufBurst<32>> = (0..QUEUES).map(|_| MbufBurst::new()).collect();
    while seq < N {
        let n = (N - seq).min(32) as usize;
        while pool.alloc_bulk(&mut burst, n).is_err() {
            std::thread::yield_now(); // receivers return mbufs as they go
        }
        while let Some(mut m) = burst.pop() {
            // pop takes from the end: fill in reverse so seq ascends in send order
            let s = seq + burst.len() as u64;
            let mut payload = [s as u8; 60];
            payload[..8].copy_from_slice(&s.to_le_bytes());
            m.append(&payload).unwrap();
            meta.set(&mut m, meta_of(s));
            per_queue_slot(&mut per_queue, s).push(m).unwrap();
        }
        seq += n as u64;
        for (q, b) in per_queue.iter_mut().enumerate() {
            // Reverse fill order above; restore ascending order before enqueueing.
            b.as_mut_slice()
                .sort_by_key(|m| u64::from_le_bytes(m.data()[..8].try_into().unwrap()));
            while !b.is_empty() {
                if rings[q].enqueue_burst(b).unwrap() == 0 {
                    std::thread::yield_now();
                }
            }
        }
    }

    let got1 = t1.join().unwrap().unwrap();
    assert_eq!(
        lcore::wait_lcore(worker),
        0,
        "{:?}",
        result0.lock().unwrap()
    );
    let got0 = result0.lock().unwrap().take().unwrap().unwrap();
    assert_eq!(got0 + got1, N);
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, N, "{stats:?}");
    // The same counters read from a reporting thread.
    let handle = port.stats_handle();
    let from_thread = std::thread::spawn(move || handle.stats().unwrap())
        .join()
        .unwrap();
    assert_eq!(from_thread, stats);
    assert_eq!(stats.q_ipackets, vec![N / QUEUES; QUEUES as usize]);
    drop(port);
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf came back");
}

fn per_queue_slot(per_queue: &mut [MbufBurst<32>], seq: u64) -> &mut MbufBurst<32> {
    &mut per_queue[(seq % QUEUES) as usize]
}

/// A free ring: ownership moves in and out; what is left inside is freed with the ring.
fn check_plain_ring(pool: &Mempool, meta: MetaField) {
    let mut ring = Ring::new("plain", 8, SOCKET_ANY).unwrap();
    assert_eq!(ring.capacity(), 8);
    let mut burst = MbufBurst::<16>::new();
    pool.alloc_bulk(&mut burst, 10).unwrap();
    for (i, m) in burst.iter_mut().enumerate() {
        assert_eq!(meta.get(m), None, "fresh mbufs carry no meta");
        meta.set(
            m,
            WeirMeta {
                ts_ns: i as u64,
                wire_len: i as u32,
            },
        );
    }
    assert_eq!(ring.enqueue_burst(&mut burst).unwrap(), 8, "ring holds 8");
    assert_eq!(burst.len(), 2, "the rest stays in the burst");
    assert_eq!(meta.get(&burst[0]).unwrap().ts_ns, 8, "in order");
    let extra = burst.pop().unwrap();
    let back = ring
        .enqueue(extra)
        .unwrap()
        .expect_err("full ring gives the mbuf back");
    burst.push(back).unwrap();
    assert_eq!(ring.count(), 8);
    let mut out = MbufBurst::<4>::new();
    assert_eq!(ring.dequeue_burst(&mut out).unwrap(), 4);
    let got: Vec<u64> = out.iter().map(|m| meta.get(m).unwrap().ts_ns).collect();
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(pool.in_use(), 10);
    drop(out);
    drop(burst);
    assert_eq!(pool.in_use(), 4);
    drop(ring);
    assert_eq!(pool.in_use(), 0, "mbufs left in a dropped ring are freed");
}

/// External buffers: an attached mbuf's data is the caller's bytes themselves (same address,
/// nothing copied) through a ring and back; freeing detaches it and returns the mbuf, again
/// and again; the bytes are never written (append refuses, nothing else writes).
fn check_attached(meta: MetaField) {
    let ext = Mempool::new_extbuf("ext_pool", 63, 0, SOCKET_ANY).unwrap();
    // Frames of 1 byte to the 64 KiB limit, in one buffer as in a mapped capture.
    let lens = [1usize, 60, 1514, 9000, u16::MAX as usize];
    let buf: Vec<u8> = (0..lens.iter().sum::<usize>())
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let before = buf.clone();
    let mut ring = Ring::new("attached", 8, SOCKET_ANY).unwrap();
    for round in 0..3 {
        let mut burst = MbufBurst::<8>::new();
        let mut at = 0;
        for (i, &len) in lens.iter().enumerate() {
            let bytes = &buf[at..at + len];
            at += len;
            // SAFETY: `buf` outlives every mbuf of this round (all freed below) and is only read.
            let mut m = unsafe { ext.alloc_attached(bytes) }.expect("an mbuf");
            assert!(m.is_external());
            assert!(m.append(&[0]).is_err(), "no room after an external buffer");
            meta.set(
                &mut m,
                WeirMeta {
                    ts_ns: i as u64,
                    wire_len: len as u32,
                },
            );
            burst.push(m).unwrap();
        }
        assert_eq!(ring.enqueue_burst(&mut burst).unwrap(), lens.len());
        let mut out = MbufBurst::<8>::new();
        assert_eq!(ring.dequeue_burst(&mut out).unwrap(), lens.len());
        let mut at = 0;
        for (i, m) in out.iter().enumerate() {
            let len = lens[i];
            assert_eq!(
                m.data().as_ptr(),
                buf[at..].as_ptr(),
                "round {round}: not copied"
            );
            assert_eq!((m.pkt_len() as usize, m.nb_segs()), (len, 1));
            assert_eq!(m.data(), &buf[at..at + len]);
            assert_eq!(meta.get(m).unwrap().wire_len as usize, len);
            at += len;
        }
        assert_eq!(ext.in_use(), lens.len() as u32);
        drop(out);
        assert_eq!(ext.in_use(), 0, "round {round}: freed mbufs come back");
    }
    assert_eq!(buf, before, "the bytes were never written");
    // A detached mbuf is a plain empty one again: its own (empty) room, not the old buffer.
    let mut plain = MbufBurst::<1>::new();
    ext.alloc_bulk(&mut plain, 1).unwrap();
    assert!(!plain[0].is_external() && plain[0].data().is_empty());
}
