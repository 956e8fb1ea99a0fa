//! net_pcap on real captures: every packet of the file arrives, in order, with its bytes,
//! captured length and microsecond timestamp, as read independently by the `pcap-file` crate.
//! Also: queue limits and RSS refusal on a device without RSS.

use std::fs::File;
use std::path::PathBuf;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use weir_dpdk::{
    Eal, Error, MbufBurst, Mempool, Port, PortConfig, RssConfig, RxTimestamp, DEFAULT_DATA_ROOM,
    SOCKET_ANY,
};

/// One packet as the capture file has it: time in µs (what libpcap gives net_pcap), bytes.
struct Expected {
    ts_us: u64,
    data: Vec<u8>,
}

fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../appliance/tests/data/nfstream/pcaps")
        .join(name)
}

fn read_pcap(path: &PathBuf) -> Vec<Expected> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        // libpcap truncates nanosecond captures to microseconds.
        out.push(Expected {
            ts_us: (p.timestamp.as_nanos() / 1000) as u64,
            data: p.data.into_owned(),
        });
    }
    out
}

fn read_pcapng(path: &PathBuf) -> Vec<Expected> {
    let mut r = PcapNgReader::new(File::open(path).unwrap()).unwrap();
    // pcap-file returns the raw 64-bit timestamp as if it were ns; scale it by the
    // interface's if_tsresol (default 10^-6 s) and add if_tsoffset (pcapng spec, 4.2).
    let mut ifaces: Vec<(u8, u64)> = Vec::new();
    let mut out = Vec::new();
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            Block::InterfaceDescription(idb) => {
                let mut resol = 6u8;
                let mut offset = 0u64;
                for o in &idb.options {
                    match o {
                        InterfaceDescriptionOption::IfTsResol(v) => resol = *v,
                        InterfaceDescriptionOption::IfTsOffset(v) => offset = *v,
                        _ => {}
                    }
                }
                ifaces.push((resol, offset));
            }
            Block::EnhancedPacket(EnhancedPacketBlock {
                interface_id,
                timestamp,
                data,
                ..
            }) => {
                let (resol, offset) = ifaces[interface_id as usize];
                let raw = timestamp.as_nanos();
                let units: u128 = if resol & 0x80 == 0 {
                    10u128.pow(u32::from(resol))
                } else {
                    1u128 << (resol & 0x7f)
                };
                let ts_us = raw * 1_000_000 / units + u128::from(offset) * 1_000_000;
                out.push(Expected {
                    ts_us: ts_us as u64,
                    data: data.into_owned(),
                });
            }
            _ => {}
        }
    }
    out
}

#[test]
fn net_pcap_delivers_every_packet_with_its_timestamp() {
    let pcap = capture("instagram.pcap");
    // Nanosecond pcapng (if_tsresol 9): libpcap hands net_pcap microseconds.
    let pcapng = capture("doq_adguard.pcapng");
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        &format!("--vdev=net_pcap0,rx_pcap={}", pcap.display()),
        &format!("--vdev=net_pcap1,rx_pcap={}", pcapng.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _eal = Eal::init(&args).expect("EAL init");
    // Fewer mbufs than packets: bursts must be returned to the pool as we go.
    let pool = Mempool::new_pktmbuf("pcap_pool", 1023, 32, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap();
    let ts = RxTimestamp::register().unwrap();

    let mut pcap0 = Port::by_name("net_pcap0").unwrap();
    check_limits(&mut pcap0);
    let pcap1 = Port::by_name("net_pcap1").unwrap();
    // With and without a TX queue (weir only receives).
    for (port, expected, txq) in [
        (pcap0, read_pcap(&pcap), 1),
        (pcap1, read_pcapng(&pcapng), 0),
    ] {
        assert!(expected.len() > 200, "{port:?}: {} packets", expected.len());
        receive_and_compare(port, &expected, &pool, ts, txq);
    }
    assert_eq!(pool.in_use(), 0);
}

/// Refused configurations leave the port as it was.
fn check_limits(port: &mut Port) {
    let info = port.dev_info().unwrap();
    assert_eq!(info.driver, "net_pcap");
    assert_eq!(info.max_rx_queues, 1, "one rx_pcap= argument, one queue");
    let err = port
        .configure(&PortConfig {
            rx_queues: 2,
            tx_queues: 1,
            rss: None,
        })
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(
        err,
        Error::TooManyQueues {
            requested: 2,
            max: 1,
            ..
        }
    ));
    assert!(msg.contains("net_pcap0") && msg.contains("2 RX") && msg.contains("at most 1"));

    let err = port
        .configure(&PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rss: Some(RssConfig::default()),
        })
        .unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, Error::RssUnsupported { .. }), "{err}");
}

fn receive_and_compare(
    mut port: Port,
    expected: &[Expected],
    pool: &Mempool,
    ts: RxTimestamp,
    tx_queues: u16,
) {
    let name = port.name().to_owned();
    let setup = port
        .configure(&PortConfig {
            rx_queues: 1,
            tx_queues,
            rss: None,
        })
        .unwrap();
    eprintln!("{setup}");
    let mut rxq = port.rx_queue_setup(0, 512, SOCKET_ANY, pool).unwrap();
    for q in 0..tx_queues {
        port.tx_queue_setup(q, 512, SOCKET_ANY).unwrap();
    }
    port.start().unwrap();

    let mut burst = MbufBurst::<32>::new();
    let mut i = 0usize;
    let mut idle = 0u32;
    // net_pcap has no end-of-file signal: stop after many empty polls in a row.
    while idle < 100_000 {
        if rxq.rx_burst(&mut burst) == 0 {
            idle += 1;
            continue;
        }
        idle = 0;
        for m in &burst {
            let e = expected
                .get(i)
                .unwrap_or_else(|| panic!("{name}: more packets than the file"));
            assert_eq!(
                m.pkt_len() as usize,
                e.data.len(),
                "{name} packet {i}: length"
            );
            assert_eq!(
                m.data(),
                &e.data[..m.data_len() as usize],
                "{name} packet {i}: bytes"
            );
            assert_eq!(ts.raw(m), Some(e.ts_us), "{name} packet {i}: µs timestamp");
            assert_eq!(ts.pcap_ns(m), Some(e.ts_us * 1000));
            i += 1;
        }
    }
    assert_eq!(i, expected.len(), "{name}: received vs packets in the file");
    let stats = port.stats().unwrap();
    eprintln!("{name}: {stats:?}");
    assert_eq!(stats.ipackets, expected.len() as u64);
    assert_eq!(stats.rx_nombuf, 0);
    let bytes: u64 = expected.iter().map(|e| e.data.len() as u64).sum();
    assert_eq!(stats.ibytes, bytes, "net_pcap counts captured bytes");
}
