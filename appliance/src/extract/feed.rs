//! `weir extract`'s feeder, on the main lcore: read every capture (pcap or pcapng), put each
//! packet in an mbuf with its exact metadata (wire length, nanosecond time) in weir's dynamic
//! field, spread it by its flow's hash (`spread::worker_of_frame`, as the software spreader
//! does) and enqueue it to its worker's ring, `workers.burst` at a time. It waits when a ring
//! or a mempool is full (backpressure, never loss) and publishes the time it has read up to.
//!
//! A packet of a mapped capture is not copied: its mbuf is attached to its bytes in the
//! mapping (a DPDK external buffer, [`Mempool::alloc_attached`]). Copied are only the frames
//! that are not bytes of a mapping: a capture read through a buffer (a pipe, a pcap read
//! record by record), a frame given an Ethernet header (other link types), and a frame longer
//! than [`MAX_FRAME`] (cut to fit, as before). The mappings stay mapped until every worker has
//! returned ([`LentMaps`]). The workers only read packet data (`&[u8]`, plugins get a `const`
//! pointer), so the read-only private mapping is enough. `--stats` counts both kinds
//! (`frames_zero_copy`, `frames_copied`).
//!
//! Test-only hook: `WEIR_TEST_COPY_FRAMES=1` copies every frame (the tests compare both ways'
//! records byte for byte).

use crate::capture::{to_ethernet, CaptureMap, CaptureReader, HashHeadStart};
use crate::cli::ExtractArgs;
use crate::launch::Burst;
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weir_dpdk::{Mbuf, Mempool, MetaField, Port, PortConfig, Ring, RxQueue, WeirMeta, SOCKET_ANY};
use weir_plugin_api::{FlowKeyV1, PacketV1};

/// Ring size per worker (mbufs in flight between the feeder and one worker).
pub(super) const RING_SIZE: u32 = 4096;
/// Data room of the regular mbufs (headroom included).
pub(super) const DATA_ROOM: u16 = 2048 + 128;
/// Data room of the few mbufs for frames larger than a regular one (TSO/GRO captures).
pub(super) const BIG_DATA_ROOM: u16 = u16::MAX;
/// The longest frame kept whole (longer ones are cut to this, copied or not: a zero-copy run
/// gives the records of a copying one).
pub(super) const MAX_FRAME: usize = BIG_DATA_ROOM as usize - 128;
/// A mapped capture's pages are given back this many bytes per worker behind the reader:
/// packets before it may still be in the rings, read by the workers. A full ring of 2 KB
/// frames; a ring of bigger ones only costs faults (a page given back is read again from the
/// page cache), and more lag would only keep more of the file resident.
const RELEASE_LAG_PER_WORKER: usize = RING_SIZE as usize * 2048;
/// The feeder publishes the input's time every this many packets (and at the end): each time
/// it first enqueues the partial bursts of every worker.
const CLOCK_EVERY: u64 = 1024;

/// A packet on its way into a ring: its mbuf (or why there is none), worker, wire length.
type Feeding = (Result<(Mbuf, bool)>, usize, u32);

#[derive(Default)]
pub(super) struct Fed {
    pub packets: u64,
    /// Captures that could not be read to their end: what went wrong, and after how much.
    pub capture_errors: Vec<String>,
    pub unsupported_linktype: u64,
    pub truncated_to_mbuf: u64,
    /// Frames handed to the workers without a copy (attached to the mapped capture's bytes).
    pub zero_copy: u64,
    /// Frames copied into an mbuf (not mapped, given an Ethernet header, or cut to fit).
    pub copied: u64,
    pub interrupted: bool,
    /// (sha256, bytes) of each capture read to its end, in order (`None` when not hashed).
    pub hashes: Vec<Option<(String, u64)>>,
}

/// Waiting with nothing to do: spin briefly (a burst is usually microseconds away), then
/// yield, then sleep, so an idle worker or a blocked feeder gives its CPU to the threads
/// doing work (on a machine with few cores they share one). (Yielding for a whole
/// millisecond before sleeping was tried: twice the system time, no shorter runs.)
#[derive(Default)]
pub(super) struct Backoff {
    polls: u32,
}

impl Backoff {
    const SPIN: u32 = 64;
    const YIELD: u32 = 256;

    #[inline]
    pub fn wait(&mut self) {
        self.polls = self.polls.saturating_add(1);
        if self.polls <= Self::SPIN {
            std::hint::spin_loop();
        } else if self.polls <= Self::YIELD {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    #[inline]
    pub fn reset(&mut self) {
        self.polls = 0;
    }
}

/// The mapped captures that mbufs point into. They are unmapped only by
/// [`LentMaps::release`], once every worker has returned; dropped any other way (an error or a
/// panic unwinding past the feeder while workers may still run) they stay mapped until the
/// process exits, so no worker can ever read unmapped memory.
#[derive(Default)]
pub(super) struct LentMaps(Vec<CaptureMap>);

impl LentMaps {
    /// Unmap them. Call only when no mbuf pointing into them will be read again (the workers
    /// returned; the mbufs still in rings are only freed, which reads no packet data).
    pub fn release(mut self) {
        self.0.clear();
    }
}

impl Drop for LentMaps {
    fn drop(&mut self) {
        for m in self.0.drain(..) {
            std::mem::forget(m);
        }
    }
}

/// The feeder's mempools: mbufs to copy frames into (regular and big), and data-less mbufs to
/// attach to mapped frames.
pub(super) struct Pools {
    pub regular: LazyPool,
    pub big: LazyPool,
    pub attached: Mempool,
}

/// A copy pool, created when a frame first needs it. A mapped Ethernet capture never does,
/// and the copy pools cost most of a short run's start-up and exit beyond the EAL's own:
/// DPDK initialises every mbuf's header (a page fault every 4 KB of the ~20 MB of the regular
/// pool, ~30 ms) and zeroes a pool's whole area when it is freed (~9 ms for the big pool). A
/// capture that needs copies gets the same full-size pools as before (the rings fill with
/// copied frames as they did).
pub(super) struct LazyPool {
    name: &'static str,
    n: u32,
    cache: u32,
    data_room: u16,
    pool: std::cell::OnceCell<Mempool>,
}

impl LazyPool {
    fn new(name: &'static str, n: u32, cache: u32, data_room: u16) -> LazyPool {
        LazyPool {
            name,
            n,
            cache,
            data_room,
            pool: std::cell::OnceCell::new(),
        }
    }

    /// The pool, created at the first call.
    fn get(&self) -> Result<&Mempool> {
        if let Some(p) = self.pool.get() {
            return Ok(p);
        }
        let p = Mempool::new_pktmbuf(self.name, self.n, self.cache, self.data_room, SOCKET_ANY)?;
        tracing::debug!(
            pool = self.name,
            mbufs = self.n,
            "extract: copy pool created"
        );
        Ok(self.pool.get_or_init(|| p))
    }
}

/// The feeder's side of the data path: its mempools, one ring per worker, and the net_ring
/// port behind them whose RX queue `w` worker `w` polls.
pub(super) struct FeedPort {
    pub pools: Pools,
    pub rings: Vec<Ring>,
    pub port: Port,
    pub queues: Vec<RxQueue>,
}

/// Set up the feeder's pools, rings and port for `n_workers` workers receiving `burst` at a
/// time.
pub(super) fn feed_port(n_workers: usize, burst: usize) -> Result<FeedPort> {
    // Enough for full rings, the workers' bursts and the feeder's pending ones.
    let in_flight = (RING_SIZE * n_workers as u32 + 4 * burst as u32 * n_workers as u32 + 1024)
        .next_power_of_two()
        - 1;
    // The ring PMD allocates no mbufs (its RX queues are the rings), but ethdev wants a pool
    // with a data room for each RX queue: one mbuf's worth, not a copy pool created for it.
    let rxq_pool = Mempool::new_pktmbuf("weir_feed_rxq", 1, 0, DATA_ROOM, SOCKET_ANY)?;
    let attached = Mempool::new_extbuf("weir_feed_ext", in_flight, 256, SOCKET_ANY)?;
    let mut rings = Vec::with_capacity(n_workers);
    for i in 0..n_workers {
        rings.push(Ring::new(&format!("weir_feed{i}"), RING_SIZE, SOCKET_ANY)?);
    }
    let mut port = Port::from_rings(
        "weir_feed",
        &rings.iter().collect::<Vec<_>>(),
        &[],
        SOCKET_ANY,
    )?;
    port.configure(&PortConfig {
        rx_queues: n_workers as u16,
        tx_queues: 0,
        rss: None,
    })?;
    let mut queues = Vec::with_capacity(n_workers);
    for q in 0..n_workers {
        queues.push(port.rx_queue_setup(q as u16, 1024, SOCKET_ANY, &rxq_pool)?);
    }
    port.start()?;
    tracing::info!(
        workers = n_workers,
        port = port.name(),
        "extract: capture feeder -> net_ring port -> {} worker(s)",
        n_workers
    );
    Ok(FeedPort {
        pools: Pools {
            regular: LazyPool::new("weir_feed", in_flight, 256, DATA_ROOM),
            big: LazyPool::new("weir_feed_big", 127, 0, BIG_DATA_ROOM),
            attached,
        },
        rings,
        port,
        queues,
    })
}

/// The progress bar on a terminal: bytes read of `total`, or only bytes read when a capture
/// is a pipe (`total` unknown).
pub(super) fn progress_bar(
    args: &ExtractArgs,
    total: Option<u64>,
) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if args.no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let (pb, template) = match total {
        Some(t) => (
            indicatif::ProgressBar::new(t),
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {bytes} read ({bytes_per_sec}) {msg}",
        ),
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}

/// Read every capture into the rings. Returns when all was fed, on a signal (`stop`) or when
/// a worker died (`died`). The mapped captures whose bytes went out without a copy are added
/// to `lent`. With `hash`, every capture is hashed as it is read (the manifest's), the first
/// one going on from the hash begun while DPDK started.
#[allow(clippy::too_many_arguments)]
pub(super) fn feed(
    captures: &[std::path::PathBuf],
    pools: &Pools,
    lent: &mut LentMaps,
    meta: &MetaField,
    rings: &mut [Ring],
    burst: usize,
    stop: &AtomicBool,
    input_clock: &AtomicU64,
    died: &AtomicBool,
    pb: Option<indicatif::ProgressBar>,
    filter: Option<&crate::filter::Filter>,
    mut hash: Option<HashHeadStart>,
) -> Result<Fed> {
    let hashing = hash.is_some();
    let n = rings.len();
    // Each worker's packets gathered for its ring, enqueued `workers.burst` at a time.
    let mut pending: Vec<Burst> = (0..n).map(|_| Burst::new()).collect();
    let mut fed = Fed::default();
    let mut scratch = Vec::with_capacity(65536);
    let mut last_ts = 0u64;
    let mut progress = 0u64;
    let mut pkt = PacketV1::EMPTY;
    let mut key = FlowKeyV1::default();
    let zero_copy = std::env::var_os("WEIR_TEST_COPY_FRAMES").is_none_or(|v| v != "1");
    for path in captures {
        let head = hash.take_if(|h| h.is_of(path));
        let (mut rd, map) = open_capture(path, (hashing, head), zero_copy.then_some(n), lent)?;
        loop {
            if stop.load(Ordering::Relaxed) || died.load(Ordering::Acquire) {
                fed.interrupted = true;
                break;
            }
            let item = rd.next_with(|p| -> Option<Feeding> {
                progress += p.data.len() as u64 + 16;
                let frame = to_ethernet(p.linktype, p.data, &mut scratch)?;
                // NFStream's clock: packet time never goes backwards across the input. Only
                // packets the capture filter keeps move it (the workers run the filter on the
                // data path; this is the input's clock, as in the file `tcpdump -w` writes).
                if filter.is_none_or(|f| f.matches(frame, p.orig_len)) {
                    last_ts = last_ts.max(p.ts_ns);
                }
                let worker =
                    crate::spread::worker_of_frame(frame, p.orig_len, n, &mut pkt, &mut key);
                let m = match &map {
                    Some(map) if frame.len() <= MAX_FRAME && map.holds(frame) => {
                        // SAFETY: `frame` is bytes of `map`, which `lent` keeps mapped until
                        // every worker has returned (or forever); the file's bytes do not
                        // change under a private mapping unless the file itself is rewritten
                        // (as for any mmap reader), and the workers only read packet data.
                        let attach = |p: &Mempool| unsafe { p.alloc_attached(frame) };
                        alloc_wait(&pools.attached, attach, rings, &mut pending, died)
                            .map(|m| (m, false))
                    }
                    _ => alloc_copy(pools, frame, rings, &mut pending, died),
                };
                Some((m, worker, p.orig_len))
            });
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    // A capture cut short or corrupt after some packets: what was read counts
                    // (its flows are written), the next captures are read, and the run ends
                    // with this error (and `capture_errors` in --stats).
                    tracing::warn!(error = %e, "capture not read to its end");
                    fed.capture_errors.push(e.to_string());
                    break;
                }
            };
            let Some(item) = item else { break };
            let Some((m, w, orig_len)) = item else {
                fed.unsupported_linktype += 1;
                continue;
            };
            let (mut m, truncated) = m?;
            fed.count_frame(&m, truncated);
            meta.set(
                &mut m,
                WeirMeta {
                    ts_ns: last_ts,
                    wire_len: orig_len,
                },
            );
            fed.packets += 1;
            if pending[w].push(m).is_err() {
                unreachable!("pending burst flushed when full");
            }
            if pending[w].len() >= burst {
                push_all(&mut rings[w], &mut pending[w], died);
            }
            if fed.packets % CLOCK_EVERY == 0 {
                publish_clock(rings, &mut pending, input_clock, last_ts, died);
            }
            if fed.packets % 4096 == 0 {
                if let Some(pb) = &pb {
                    pb.set_position(progress);
                }
            }
        }
        if fed.interrupted {
            break;
        }
        fed.hashes.push(rd.finish_hash());
    }
    publish_clock(rings, &mut pending, input_clock, last_ts, died);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if fed.truncated_to_mbuf > 0 {
        tracing::warn!(
            packets = fed.truncated_to_mbuf,
            "frames longer than {} bytes were cut to fit an mbuf (their wire length is kept)",
            MAX_FRAME
        );
    }
    Ok(fed)
}

/// Open one capture: hashed as it is read (no second pass) when a manifest will want it
/// (`hash`; not for `weir cost`), going on from its head start if it has one, and with its
/// mapping lent for zero-copy frames to `workers` workers (kept alive in `lent`) unless
/// `workers` is `None`.
fn open_capture(
    path: &std::path::Path,
    (hash, head): (bool, Option<HashHeadStart>),
    workers: Option<usize>,
    lent: &mut LentMaps,
) -> Result<(CaptureReader, Option<CaptureMap>)> {
    let mut rd = if hash {
        CaptureReader::hash_as_read(path, head)?
    } else {
        CaptureReader::open(path)?
    };
    let map = workers.and_then(|n| rd.lend_mapping(RELEASE_LAG_PER_WORKER * n));
    if let Some(m) = &map {
        lent.0.push(m.clone());
    }
    Ok((rd, map))
}

impl Fed {
    /// Count a frame on its way to a worker: cut to fit, attached or copied.
    fn count_frame(&mut self, m: &Mbuf, truncated: bool) {
        if truncated {
            self.truncated_to_mbuf += 1;
        }
        if m.is_external() {
            self.zero_copy += 1;
        } else {
            self.copied += 1;
        }
    }
}

/// Enqueue every pending burst, then tell the workers the input has been read up to `ts_ns`.
fn publish_clock(
    rings: &mut [Ring],
    pending: &mut [Burst],
    input_clock: &AtomicU64,
    ts_ns: u64,
    died: &AtomicBool,
) {
    for (w, p) in pending.iter_mut().enumerate() {
        push_all(&mut rings[w], p, died);
    }
    // Release: a worker that reads this time sees every packet enqueued before it.
    input_clock.store(ts_ns, Ordering::Release);
}

/// An mbuf holding a copy of `frame` (cut to [`MAX_FRAME`]; the flag says if it was).
fn alloc_copy(
    pools: &Pools,
    frame: &[u8],
    rings: &mut [Ring],
    pending: &mut [Burst],
    died: &AtomicBool,
) -> Result<(Mbuf, bool)> {
    let big = frame.len() > DATA_ROOM as usize - 128;
    let p = if big { &pools.big } else { &pools.regular }.get()?;
    let mut m = alloc_wait(p, Mempool::alloc, rings, pending, died)?;
    let len = frame.len().min(MAX_FRAME);
    m.append(&frame[..len])?;
    Ok((m, len < frame.len()))
}

/// An mbuf of `pool` from `alloc`. Waits (pushing what is pending so workers can free mbufs)
/// while the pool is empty: backpressure, never loss; unless a worker died (`died`), whose
/// ring would never give its mbufs back.
#[inline]
fn alloc_wait(
    pool: &Mempool,
    alloc: impl Fn(&Mempool) -> Option<Mbuf>,
    rings: &mut [Ring],
    pending: &mut [Burst],
    died: &AtomicBool,
) -> Result<Mbuf> {
    let mut idle = Backoff::default();
    loop {
        if let Some(m) = alloc(pool) {
            return Ok(m);
        }
        if died.load(Ordering::Acquire) {
            bail!("a worker panicked: feeding stopped");
        }
        for (w, b) in pending.iter_mut().enumerate() {
            push_all(&mut rings[w], b, died);
        }
        idle.wait();
    }
}

/// Enqueue everything in `burst`, waiting while the ring is full; once a worker died
/// (`died`) whatever is left is freed instead (the run is failing, and a dead worker's ring
/// never drains).
fn push_all(ring: &mut Ring, burst: &mut Burst, died: &AtomicBool) {
    while !burst.is_empty() {
        match ring.enqueue_burst(burst) {
            Ok(0) if died.load(Ordering::Acquire) => {
                burst.clear();
                break;
            }
            // Full: a ring is milliseconds of its worker's work. Sleep until a quarter of it
            // is free rather than spin or yield for each burst's worth of room, CPU that the
            // workers need where cores are few.
            Ok(0) => {
                let room = ring.capacity() / 4;
                while ring.capacity() - ring.count() < room && !died.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot enqueue to the feed ring");
                break;
            }
        }
    }
}
