//! Prometheus metrics: what the appliance exposes over HTTP, and how it gets there without
//! touching the data path.
//!
//! What it owns: the per-worker publication slot ([`WorkerMetrics`]), the collector that turns
//! every source into the exposition on each scrape ([`Sources`]), and a tiny HTTP server on its
//! own thread ([`MetricsServer`]). Encoding is the `prometheus-client` crate's OpenMetrics text
//! format (<https://prometheus.io/docs/specs/om/open_metrics_spec/>), which Prometheus scrapes
//! natively; names follow Prometheus' conventions
//! (<https://prometheus.io/docs/practices/naming/>): a `weir_` prefix, base units (seconds,
//! bytes), `_total` on counters, and `port`, `queue`, `worker`, `stage`, `plugin` labels.
//!
//! The data path does no metric work per packet: a worker keeps its plain counters
//! ([`crate::worker::WorkerStats`]) and, once per burst, stores them with `Relaxed` into its
//! [`WorkerMetrics`] (single writer, a few dozen plain stores). Its cost table is copied every
//! [`COST_PUBLISH_BURSTS`] bursts into a mutex slot taken with `try_lock` only, so a scrape that
//! holds the slot makes the worker skip that copy instead of waiting. Port, mempool and scoring
//! figures are read by the scraping thread itself (`rte_eth_stats_get` through
//! [`weir_dpdk::StatsHandle`], `rte_mempool_in_use_count`, the scorers' atomics).
//!
//! No client can hold the endpoint: each connection is served on a thread of its own (at most
//! [`MAX_CONNECTIONS`] at once; more are closed at once), under a deadline for the whole
//! request head ([`READ_DEADLINE`]) and one for the whole response ([`WRITE_DEADLINE`]),
//! however slowly the bytes trickle. Stopping the server joins only the accept loop, which
//! never blocks; a connection thread still waiting on a client ends by its deadline alone.

mod encode;
mod families;
mod workers;

pub use encode::{build_info, xstat_is_counter};

use crate::scoring::ScoringStats;
use crate::stats::PublishedStats;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once; one more is closed without an answer.
pub const MAX_CONNECTIONS: usize = 8;
/// The whole request head must arrive within this.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
/// The whole response must be taken within this.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// writer thread.
#[derive(Debug, Default)]
pub struct AlertCounts {
    by_kind: Mutex<BTreeMap<String, u64>>,
}

impl AlertCounts {
    /// Count one alert JSON line by its `kind` (`unknown` when it has none).
    pub fn count_line(&self, line: &str) {
        let kind = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        *self
            .by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A heavy-hitter table's size, for the capacity gauge.
#[derive(Clone, Debug)]
pub struct HeavyHitterInfo {
    pub key: String,
    pub worker: u16,
    pub capacity_keys: u64,
    /// Keys held at the table's last report (stored by the worker once per report).
    pub occupied_keys: Option<Arc<AtomicU64>>,
}

/// Everything the metrics endpoint reads. Fill it at start; the collector reads it on each
/// scrape.
#[derive(Default)]
pub struct Sources {
    pub ports: Vec<weir_dpdk::StatsHandle>,
    /// Configured RX queues per port (for the per-queue counters).
    pub rx_queues: u16,
    pub mempools: Vec<weir_dpdk::Mempool>,
    pub workers: Vec<Arc<PublishedStats>>,
    pub scoring: Option<Arc<ScoringStats>>,
    pub alerts: Option<Arc<AlertCounts>>,
    pub heavy_hitters: Vec<HeavyHitterInfo>,
    /// Records written by the output stage.
    pub records_written: Option<Arc<AtomicU64>>,
    /// Model reloads: (succeeded, failed).
    pub reloads: Option<Arc<ReloadCounts>>,
    /// TSC frequency, for cycles-per-second conversions in dashboards.
    pub tsc_hz: u64,
}

/// Model reloads on SIGHUP.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("ports", &self.ports.len())
            .field("workers", &self.workers.len())
            .finish()
    }
}

pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# encoding failed\n# EOF");
    }
    out
}

/// The HTTP server: answers `GET /metrics` (and `/`), each connection on its own thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `listen` and serve `sources` from a new thread.
    pub fn start(listen: &str, sources: Sources) -> anyhow::Result<MetricsServer> {
        use anyhow::Context;
        let listener = TcpListener::bind(listen)
            .with_context(|| format!("metrics.listen: cannot bind {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(sources));
        let registry = Arc::new(registry);
        let busy = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                                busy.fetch_sub(1, Ordering::AcqRel);
                                tracing::debug!("metrics: too many connections, one closed");
                                continue;
                            }
                            let (registry, busy2) = (registry.clone(), busy.clone());
                            let spawned = std::thread::Builder::new()
                                .name("weir-metrics-conn".into())
                                .spawn(move || {
                                    serve(conn, &registry);
                                    busy2.fetch_sub(1, Ordering::AcqRel);
                                });
                            if spawned.is_err() {
                                busy.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "metrics accept");
                            std::thread::sleep(Duration::from_millis(20))
                        }
                    }
                }
            })?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    /// Stops accepting and joins the accept loop (it polls, so this takes at most ~20 ms);
    /// connection threads are not waited for (each ends by its deadlines).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What is left of a deadline, or None when it passed.
fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Answer one HTTP/1.x request (RFC 9112) and close the connection. Each read and write waits
/// at most what is left of its deadline, so a client sending or reading one byte at a time
/// still cannot keep the thread past [`READ_DEADLINE`] + [`WRITE_DEADLINE`].
fn serve(mut conn: TcpStream, registry: &Registry) {
    let _ = conn.set_nonblocking(false);
    let read_by = Instant::now() + READ_DEADLINE;
    let mut buf = [0u8; 2048];
    let mut got = 0;
    // Read until the end of the request head, the client's end of sending, or a full buffer
    // (only the first line matters). A head still incomplete at the deadline is not answered.
    loop {
        if got == buf.len() {
            break;
        }
        let Some(wait) = left(read_by) else { return };
        let _ = conn.set_read_timeout(Some(wait));
        match conn.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if buf[..got].windows(4).any(|x| x == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    if got == 0 {
        return;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") | ("GET", "/") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(registry),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let write_by = Instant::now() + WRITE_DEADLINE;
    let mut sent = 0;
    while sent < reply.len() {
        let Some(wait) = left(write_by) else { return };
        let _ = conn.set_write_timeout(Some(wait));
        match conn.write(&reply.as_bytes()[sent..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => sent += n,
        }
    }
}

#[cfg(test)]
mod tests;
