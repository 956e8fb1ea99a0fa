//! A thin safe layer over DPDK (`weir-dpdk-sys`) for weir's data plane.
//!
//! It owns: EAL start and cleanup ([`Eal`]), packet mempools ([`Mempool`]), owned mbufs and
//! allocation-free bursts of them ([`Mbuf`], [`MbufBurst`]), Ethernet ports with RX queues,
//! symmetric RSS set-up and counters ([`Port`], [`RxQueue`]), SP/SC rings of mbufs and ports
//! made from them ([`Ring`], [`Port::from_rings`]), dynamic mbuf fields for timestamps and
//! capture metadata ([`RxTimestamp`], [`MetaField`]), lcores ([`lcore`]), the TSC ([`tsc`]),
//! a software symmetric Toeplitz hash ([`rss::Toeplitz`]), hugepage memory for large tables
//! ([`HugeMem`]), and libpcap's filter compiler
//! ([`bpf::compile_pcap_filter`]). Packet parsing, flows and everything above live in the
//! `weir` appliance.
//!
//! Ownership rules: an [`Mbuf`] is freed exactly once (on drop, or by whoever takes it with
//! `into_raw`); pools, ports and rings keep the EAL alive; a pool dropped while mbufs are out
//! is leaked rather than freed under them; each port and each RX queue has one handle.
//! Nothing on the receive path allocates.
//!
//! ```no_run
//! use weir_dpdk::{Eal, Mempool, MbufBurst, Port, PortConfig, RxTimestamp, SOCKET_ANY};
//!
//! let args: Vec<String> = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf",
//!     "--vdev=net_pcap0,rx_pcap=capture.pcap"].iter().map(|s| s.to_string()).collect();
//! let eal = Eal::init(&args)?;
//! let pool = Mempool::new_pktmbuf("rx0", 8191, 256, weir_dpdk::DEFAULT_DATA_ROOM, SOCKET_ANY)?;
//! let mut port = Port::by_name("net_pcap0")?;
//! let setup = port.configure(&PortConfig { rx_queues: 1, tx_queues: 0, rss: None })?;
//! println!("{setup}");
//! let mut rxq = port.rx_queue_setup(0, 0, SOCKET_ANY, &pool)?;
//! port.start()?;
//! let ts = RxTimestamp::register()?;
//! let mut burst = MbufBurst::<32>::new();
//! while rxq.rx_burst(&mut burst) > 0 {
//!     for m in &burst {
//!         let _ = (m.data(), m.pkt_len(), ts.pcap_ns(m));
//!     }
//! }
//! println!("{:?}", port.stats()?);
//! # drop((rxq, port, pool, eal));
//! # Ok::<(), weir_dpdk::Error>(())
//! ```

//! The offline path: a feeder thread fills mbufs with exact capture metadata and pushes them
//! through a ring into an ethdev that a worker lcore polls like any port.
//!
//! ```no_run
//! use weir_dpdk::{lcore, MbufBurst, Mempool, MetaField, Port, PortConfig, Ring, WeirMeta};
//! # fn f(pool: Mempool) -> weir_dpdk::Result<()> {
//! let meta = MetaField::register()?;
//! let mut ring = Ring::new("feed0", 4096, weir_dpdk::SOCKET_ANY)?;
//! let mut port = Port::from_rings("feed", &[&ring], &[], weir_dpdk::SOCKET_ANY)?; // net_ring_feed
//! port.configure(&PortConfig::default())?;
//! let mut rxq = port.rx_queue_setup(0, 0, weir_dpdk::SOCKET_ANY, &pool)?;
//! port.start()?;
//! let worker = lcore::worker_lcores().next().expect("EAL -l with a worker");
//! lcore::remote_launch(worker, move || {
//!     let mut burst = MbufBurst::<32>::new();
//!     loop {
//!         rxq.rx_burst(&mut burst);
//!         for m in &burst {
//!             let _exact = meta.get(m); // Some(WeirMeta { ts_ns, wire_len })
//!         }
//!         # break;
//!     }
//!     0
//! })?;
//! // Feeder (any thread): fill, tag, enqueue; retry while the ring is full.
//! let mut m = pool.alloc().expect("pool not empty");
//! m.append(&[0u8; 60])?;
//! meta.set(&mut m, WeirMeta { ts_ns: 1_700_000_000_123_456_789, wire_len: 60 });
//! let mut out = MbufBurst::<32>::new();
//! out.push(m).ok();
//! while !out.is_empty() {
//!     ring.enqueue_burst(&mut out)?;
//! }
//! lcore::wait_lcore(worker);
//! # Ok(()) }
//! ```

pub mod bpf;
pub mod dynfield;
pub mod eal;
pub mod error;
pub mod lcore;
pub mod mbuf;
pub mod memory;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod rss;
pub mod tsc;

pub use dynfield::{MetaField, RxTimestamp, WeirMeta};
pub use eal::Eal;
pub use error::{Error, Result};
pub use mbuf::{Drain, Mbuf, MbufBurst, Segments};
pub use memory::HugeMem;
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, SOCKET_ANY};
pub use port::{
    DevInfo, FrameLimits, LinkStatus, Port, PortConfig, PortSetup, PortStats, RssConfig, RssSetup,
    RxOptions, RxQueue, StatsHandle,
};

/// The DPDK version weir was built against.
pub const DPDK_VERSION: &str = weir_dpdk_sys::DPDK_VERSION;
pub use ring::Ring;
pub use tsc::{rdtsc, tsc_hz};

/// Raw bindings, for what this crate does not wrap.
pub use weir_dpdk_sys as sys;
