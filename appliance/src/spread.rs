//! Spreading flows over workers: choosing, per port, between the device's RSS and weir's
//! software spreader, and the software spreader itself.
//!
//! Both directions of a flow must reach the same worker, since each worker keeps its own flow
//! table (shared-nothing). A NIC does this with symmetric RSS (`Port::configure`, the 0x6d5a
//! key of Woo and Park, 2012). A port that cannot (net_pcap, a single-queue NIC) is read on one
//! RX queue by the main lcore, which parses each frame, hashes its flow key and enqueues the
//! mbuf to that worker's ring; the rings back a net_ring ethdev (`rte_eth_from_rings`), so
//! workers still poll an ethdev queue and cannot tell the two paths apart.
//!
//! The software hash is weir's own [`flow_hash`] of the parsed flow key, not a Toeplitz hash
//! of the outer header: the parsed key is exactly the flow table's key (inner addresses of a
//! tunnel, VLAN id, tunnel id), so "one flow, one worker" holds by construction for every key
//! the parser makes; `flow_hash` is symmetric by construction (the two endpoints are combined
//! with commutative operations) and a few multiplies instead of 36 table lookups; and it is
//! the hash `weir extract --workers N` spreads by. It is keyed with a random key drawn once
//! per process, the one every worker's table uses too, so crafted tuples cannot pile onto one
//! worker or one probe run; which worker a flow lands on therefore differs from run to run
//! (only the `worker` column shows it). Frames the parser refuses (non-IP, broken) go to worker
//! 0, which counts them as skipped.
//!
//! Ring full: with `workers.spread_full = "drop"` (the default) the packet is freed and counted
//! in `spread_ring_full` for its worker, so one slow worker never stalls the others (VPP's
//! handoff queues do the same); with `"wait"` the spreader waits for room, nothing is lost in
//! weir, and the port's own queue fills and drops instead (its `imissed`).
//!
//! Time: after each poll the spreader publishes the newest packet time it handed over
//! ([`Spreader::clock`]), after enqueuing every packet before it; a worker that finds its ring
//! empty moves its clock there, so its flows expire as they would on a worker that got the
//! other packets too.

use crate::config::{Spread, SpreadFull};
use crate::flow::key::flow_hash;
use crate::launch::Burst;
use crate::parse::parse;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use weir_dpdk::{rdtsc, DevInfo, Mbuf, Ring, RxQueue};
use weir_plugin_api::{FlowKeyV1, PacketV1};

/// Drivers whose queues are spread by something other than RSS offloads the device reports,
/// flow-consistently and symmetrically, with the reason logged.
const SELF_SPREADING: &[(&str, &str)] = &[(
    "net_af_packet",
    "the kernel's PACKET_FANOUT_HASH over its qpairs sockets (symmetric flow hash)",
)];

/// How one port's packets reach the workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortPath {
    /// One worker: one RX queue, polled by it.
    Direct,
    /// One RX queue per worker, spread by the device; `why` says what made it the choice.
    Rss { why: String },
    /// One RX queue read by the software spreader.
    Software { why: String },
}

impl PortPath {
    /// `"direct"`, `"rss"` or `"software"`, as logged.
    pub fn name(&self) -> &'static str {
        match self {
            PortPath::Direct => "direct",
            PortPath::Rss { .. } => "rss",
            PortPath::Software { .. } => "software",
        }
    }

    /// RX queues to configure on the port.
    pub fn rx_queues(&self, workers: usize) -> u16 {
        match self {
            PortPath::Rss { .. } => workers as u16,
            _ => 1,
        }
    }
}

/// The driver's own spreading, when it spreads without RSS offloads.
pub fn self_spreading(driver: &str) -> Option<&'static str> {
    SELF_SPREADING
        .iter()
        .find(|(d, _)| *d == driver)
        .map(|(_, why)| *why)
}

/// Choose the path of port `name` for `workers` workers from what the device reports.
/// `Err` is the refusal text (`workers.spread = "rss"` on a port that cannot).
pub fn choose(
    spread: Spread,
    workers: usize,
    name: &str,
    info: &DevInfo,
) -> Result<PortPath, String> {
    if workers <= 1 {
        return Ok(PortPath::Direct);
    }
    let queues_ok = info.max_rx_queues as usize >= workers;
    let hashes = info.flow_type_rss_offloads != 0;
    let own = self_spreading(&info.driver);
    let rss_why = || match (hashes, own) {
        (true, _) => format!(
            "{} RX queues available for {workers} workers, device hashes {:#x}",
            info.max_rx_queues, info.flow_type_rss_offloads
        ),
        (false, Some(own)) => format!(
            "{} RX queues available for {workers} workers, spread by {own}",
            info.max_rx_queues
        ),
        (false, None) => unreachable!("only called when the device can spread"),
    };
    let cannot = if !queues_ok {
        Some(format!(
            "port {name} (driver {}) supports {} RX queue(s) but workers.count is {workers}",
            info.driver, info.max_rx_queues
        ))
    } else if !hashes && own.is_none() {
        Some(format!(
            "port {name} (driver {}) has {} RX queues but reports no RSS hash types, so it \
             cannot spread flows over {workers} workers",
            info.driver, info.max_rx_queues
        ))
    } else {
        None
    };
    match (spread, cannot) {
        (Spread::Rss, Some(why)) => Err(format!(
            "{why}: workers.spread = \"rss\" needs one RX queue per worker spread by the device; \
             set workers.spread = \"software\" (or \"auto\") to spread flows in software from \
             one queue, or lower workers.count to {}",
            info.max_rx_queues.max(1)
        )),
        (Spread::Rss, None) => Ok(PortPath::Rss {
            why: format!("workers.spread = \"rss\": {}", rss_why()),
        }),
        (Spread::Auto, None) => Ok(PortPath::Rss {
            why: format!("workers.spread = \"auto\": {}", rss_why()),
        }),
        (Spread::Auto, Some(why)) => Ok(PortPath::Software {
            why: format!("workers.spread = \"auto\": {why}"),
        }),
        (Spread::Software, _) => Ok(PortPath::Software {
            why: "workers.spread = \"software\"".into(),
        }),
    }
}

/// The worker (of `workers`) for a flow hash. The flow table indexes its slots with the low
/// bits of the same hash, so the worker is taken from the high 32 bits (multiply-shift range
/// reduction): each worker's table still sees uniformly spread low bits.
#[inline]
pub fn worker_of_hash(hash: u64, workers: usize) -> usize {
    (((hash >> 32) * workers as u64) >> 32) as usize
}

/// The worker for one Ethernet frame (`wire_len` long on the wire): its parsed flow key's hash,
/// or worker 0 when the parser refuses the frame (non-IP, malformed). Allocation-free. The
/// software spreader and `weir extract`'s feeder both spread by it.
#[inline]
pub fn worker_of_frame(
    frame: &[u8],
    wire_len: u32,
    workers: usize,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> usize {
    if workers <= 1 {
        return 0;
    }
    match parse(frame, wire_len, 0, pkt, key) {
        Ok(()) => worker_of_hash(flow_hash(key), workers),
        Err(_) => 0,
    }
}

/// Counters of the software spreader (kept and read by the main lcore only).
#[derive(Clone, Debug, Default)]
pub struct SpreadStats {
    /// Packets received from the software-spread ports.
    pub received: u64,
    /// Packets handed to each worker's ring.
    pub to_worker: Vec<u64>,
    /// Packets dropped because that worker's ring was full (`spread_full = "drop"`).
    pub ring_full: Vec<u64>,
    /// Times the spreader waited for room (`spread_full = "wait"`).
    pub waits: u64,
    /// TSC cycles spent in polls that received packets (the spreader's cost).
    pub busy_cycles: u64,
}

/// The software spreader: polls the RX queue of every software-spread port and hands each
/// packet to its worker's ring. Runs on one lcore (the main one); the rings are single-producer.
pub struct Spreader {
    queues: Vec<RxQueue>,
    rings: Vec<Ring>,
    /// Each worker's packets gathered for its ring, sent when `want` are there.
    pending: Vec<Burst>,
    rx: Burst,
    /// Packets asked for per receive and sent per enqueue (`workers.burst`).
    want: usize,
    full: SpreadFull,
    pkt: PacketV1,
    key: FlowKeyV1,
    pub stats: SpreadStats,
    /// The newest packet time (ns) handed over; every packet before it is in a ring.
    clock: Arc<AtomicU64>,
}

impl Spreader {
    /// A spreader from `queues` (one per software port) into `rings` (one per worker; bound as
    /// the RX rings of the net_ring port the workers poll), receiving `burst` packets at a time.
    pub fn new(queues: Vec<RxQueue>, rings: Vec<Ring>, full: SpreadFull, burst: usize) -> Spreader {
        let n = rings.len();
        Spreader {
            queues,
            pending: (0..n).map(|_| Burst::new()).collect(),
            rings,
            rx: Burst::new(),
            want: burst.clamp(1, crate::config::MAX_BURST),
            full,
            pkt: PacketV1::EMPTY,
            key: FlowKeyV1::default(),
            stats: SpreadStats {
                to_worker: vec![0; n],
                ring_full: vec![0; n],
                ..Default::default()
            },
            clock: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The input's time as the spreader has handed it over (ns; 0 before the first packet),
    /// for workers to follow while their rings are empty. Read it (Acquire) *before* polling
    /// the ring: an empty ring then means every packet up to that time was counted.
    pub fn clock(&self) -> Arc<AtomicU64> {
        self.clock.clone()
    }

    /// One burst from each port: hash, sort into per-worker bursts, enqueue. Returns the
    /// packets received. `alive(w)` says whether worker `w` still polls its ring: with
    /// `spread_full = "wait"`, packets for a worker that stopped (`--max-packets`, an error)
    /// are dropped and counted instead of waited for.
    ///
    /// `ts_of` gives a packet's time as the workers will read it.
    #[inline]
    pub fn poll(&mut self, alive: &dyn Fn(usize) -> bool, ts_of: &dyn Fn(&Mbuf) -> u64) -> usize {
        let Spreader {
            queues,
            rings,
            pending,
            rx,
            want,
            full,
            pkt,
            key,
            stats,
            clock,
        } = self;
        let mut newest = 0u64;
        let t0 = rdtsc();
        let n = rings.len();
        let mut got = 0;
        for q in queues.iter_mut() {
            let k = q.rx_burst_up_to(rx, *want);
            if k == 0 {
                continue;
            }
            got += k;
            for m in rx.drain() {
                newest = newest.max(ts_of(&m));
                let w = worker_of_frame(m.data(), m.data().len() as u32, n, pkt, key);
                // A pending burst is sent as soon as it holds `want`, so there is room here.
                if pending[w].push(m).is_err() {
                    stats.ring_full[w] += 1;
                    continue;
                }
                if pending[w].len() >= *want {
                    send(&mut pending[w], &mut rings[w], stats, *full, w, alive);
                }
            }
        }
        stats.received += got as u64;
        if got > 0 {
            stats.busy_cycles += rdtsc().wrapping_sub(t0);
        }
        // Nothing waits in `pending` across polls: a quiet port must not hold packets back.
        for w in 0..n {
            if !pending[w].is_empty() {
                send(&mut pending[w], &mut rings[w], stats, *full, w, alive);
            }
        }
        if newest > clock.load(Ordering::Relaxed) {
            // Release: a worker that reads this time sees every packet enqueued before it.
            clock.store(newest, Ordering::Release);
        }
        got
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.rings.len()
    }
}

/// Enqueue worker `w`'s pending packets, by the ring-full policy.
#[inline]
fn send(
    burst: &mut Burst,
    ring: &mut Ring,
    stats: &mut SpreadStats,
    full: SpreadFull,
    w: usize,
    alive: &dyn Fn(usize) -> bool,
) {
    let mut sent = 0;
    loop {
        match ring.enqueue_burst(burst) {
            Ok(k) => {
                sent += k as u64;
                if burst.is_empty() {
                    break;
                }
                if full == SpreadFull::Wait && alive(w) {
                    stats.waits += 1;
                    std::hint::spin_loop();
                } else {
                    stats.ring_full[w] += burst.len() as u64;
                    burst.clear();
                    break;
                }
            }
            Err(e) => {
                // Only a ring bound the wrong way round fails: a set-up bug, not traffic.
                tracing::error!(worker = w, error = %e, "cannot enqueue to a spread ring");
                stats.ring_full[w] += burst.len() as u64;
                burst.clear();
                break;
            }
        }
    }
    stats.to_worker[w] += sent;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(driver: &str, queues: u16, rss: u64) -> DevInfo {
        DevInfo {
            driver: driver.into(),
            max_rx_queues: queues,
            max_tx_queues: queues,
            hash_key_size: if rss != 0 { 40 } else { 0 },
            reta_size: if rss != 0 { 128 } else { 0 },
            flow_type_rss_offloads: rss,
            rx_offload_capa: 0,
            socket_id: 0,
        }
    }

    #[test]
    fn one_worker_is_direct_whatever_the_setting() {
        for s in [Spread::Auto, Spread::Rss, Spread::Software] {
            assert_eq!(
                choose(s, 1, "p", &info("net_pcap", 1, 0)),
                Ok(PortPath::Direct)
            );
        }
    }

    #[test]
    fn auto_picks_rss_only_when_the_device_can() {
        let nic = info("net_ixgbe", 64, 0x38d34);
        assert_eq!(choose(Spread::Auto, 4, "p", &nic).unwrap().name(), "rss");
        let pcap = info("net_pcap", 1, 0);
        assert_eq!(
            choose(Spread::Auto, 4, "p", &pcap).unwrap().name(),
            "software"
        );
        // Queues but no hash: software.
        let noh = info("net_virtio", 8, 0);
        assert_eq!(
            choose(Spread::Auto, 4, "p", &noh).unwrap().name(),
            "software"
        );
        // af_packet spreads by the kernel's fanout hash.
        let afp = info("net_af_packet", 2, 0);
        assert_eq!(choose(Spread::Auto, 2, "p", &afp).unwrap().name(), "rss");
        assert_eq!(
            choose(Spread::Auto, 3, "p", &afp).unwrap().name(),
            "software"
        );
    }

    #[test]
    fn rss_refusal_names_port_driver_numbers_and_the_alternative() {
        let e = choose(Spread::Rss, 4, "net_pcap0", &info("net_pcap", 1, 0)).unwrap_err();
        for needle in [
            "net_pcap0",
            "driver net_pcap",
            "supports 1 RX queue",
            "workers.count is 4",
            "workers.spread = \"software\"",
        ] {
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
        let e = choose(Spread::Rss, 2, "v0", &info("net_virtio", 8, 0)).unwrap_err();
        assert!(e.contains("no RSS hash types"), "{e}");
    }

    #[test]
    fn worker_choice_uses_high_bits_and_covers_all_workers() {
        // Low bits (the table index) do not decide the worker.
        assert_eq!(worker_of_hash(0x0000_0000_ffff_ffff, 2), 0);
        assert_eq!(worker_of_hash(0xffff_ffff_0000_0000, 2), 1);
        for n in 1..=8 {
            let mut seen = vec![0u32; n];
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                seen[worker_of_hash(x, n)] += 1;
            }
            let expect = 10_000 / n as u32;
            for c in seen {
                assert!(c > expect * 8 / 10 && c < expect * 12 / 10, "{n}: {c}");
            }
        }
    }

    /// An Ethernet frame with an IPv4 or IPv6 header and a TCP (6) or UDP (17) header.
    fn frame(v6: bool, proto: u8, src: &[u8], dst: &[u8], sp: u16, dp: u16) -> Vec<u8> {
        use crate::wire::ethernet::{ethertype, EthernetRepr};
        use crate::wire::ipv4::{protocol, Ipv4Repr};
        use crate::wire::ipv6::Ipv6Repr;
        use crate::wire::tcp::{flags, TcpRepr};
        use crate::wire::udp::UdpRepr;
        let l4_len = if proto == protocol::TCP { 20 } else { 8 };
        let mut f = Vec::new();
        EthernetRepr {
            src_addr: [0; 6],
            dst_addr: [0; 6],
            ethertype: if v6 { ethertype::IPV6 } else { ethertype::IPV4 },
        }
        .push(&mut f);
        if v6 {
            Ipv6Repr {
                src_addr: src.try_into().unwrap(),
                dst_addr: dst.try_into().unwrap(),
                next_header: proto,
                payload_len: l4_len,
                ..Default::default()
            }
            .push(&mut f);
        } else {
            Ipv4Repr {
                src_addr: src.try_into().unwrap(),
                dst_addr: dst.try_into().unwrap(),
                protocol: proto,
                payload_len: l4_len,
                ..Default::default()
            }
            .push(&mut f);
        }
        if proto == protocol::TCP {
            let tcp = TcpRepr {
                src_port: sp,
                dst_port: dp,
                seq_number: 1,
                ack_number: 0,
                flags: flags::ACK,
                window: 0xffff,
            };
            tcp.push(&mut f, &[], None);
        } else {
            UdpRepr {
                src_port: sp,
                dst_port: dp,
            }
            .push(&mut f, &[], None);
        }
        f
    }

    #[test]
    fn both_directions_of_random_ipv4_and_ipv6_flows_go_to_one_worker() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut pkt, mut key) = (PacketV1::EMPTY, FlowKeyV1::default());
        let mut per_worker = [0u32; 4];
        for i in 0..4000 {
            let v6 = i % 2 == 0;
            let proto = if i % 3 == 0 { 17 } else { 6 };
            let alen = if v6 { 16 } else { 4 };
            let a: Vec<u8> = (0..alen).map(|_| rnd() as u8).collect();
            let b: Vec<u8> = (0..alen).map(|_| rnd() as u8).collect();
            let (sp, dp) = (rnd() as u16, rnd() as u16);
            let fwd = frame(v6, proto, &a, &b, sp, dp);
            let rev = frame(v6, proto, &b, &a, dp, sp);
            parse(&fwd, fwd.len() as u32, 0, &mut pkt, &mut key).expect("test frame parses");
            for n in 2..=4 {
                let w = worker_of_frame(&fwd, fwd.len() as u32, n, &mut pkt, &mut key);
                assert_eq!(
                    w,
                    worker_of_frame(&rev, rev.len() as u32, n, &mut pkt, &mut key),
                    "{i}, {n} workers"
                );
                if n == 4 {
                    per_worker[w] += 1;
                }
            }
        }
        // ... and flows are spread evenly.
        assert!(
            per_worker.iter().all(|&c| (800..1200).contains(&c)),
            "{per_worker:?}"
        );
        // Non-IP frames go to worker 0.
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            worker_of_frame(&arp, arp.len() as u32, 4, &mut pkt, &mut key),
            0
        );
    }
}
