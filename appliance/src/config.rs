//! weir's configuration file (TOML).
//!
//! Every section and key is optional and has a default; unknown keys and wrong types are
//! refused with the key, line and column (toml's own error), and values that parse but make no
//! sense are refused by [`Config::validate`] with the key's dotted name and line. The reference
//! of every key is `deploy/docs/config.md` (kept in sync by `appliance/tests/ops/config.rs`).

mod sinks;

pub use sinks::SinksConfig;

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub eal: EalConfig,
    /// `[capture]`: what is read (the capture filter).
    pub capture: CaptureConfig,
    pub ports: Vec<PortConfig>,
    pub workers: WorkersConfig,
    pub flows: FlowsConfig,
    pub intervals: crate::flow::interval::IntervalsConfig,
    pub plugins: PluginsConfig,
    pub rates: crate::rates::RatesConfig,
    pub heavy_hitters: Vec<crate::rates::HeavyHitterConfig>,
    pub model: Option<crate::scoring::ScoringConfig>,
    pub sinks: SinksConfig,
    pub log: LogConfig,
    pub cost: CostConfig,
    pub metrics: MetricsConfig,
    /// `[[services]]`: flows to services by prefix or DNS name, plugins per service.
    pub services: Vec<crate::services::ServiceConfig>,
    /// `[service_default]`: plugins of flows with no service, DNS learning.
    pub service_default: crate::services::ServiceDefaults,
}

/// DPDK EAL arguments. `weir extract` adds its own vdev and memory arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// Extra EAL arguments, passed as given (e.g. `["--huge-dir", "/mnt/huge"]`).
    pub args: Vec<String>,
    /// Memory in MB for `-m` when running without hugepages (`no_huge = true`).
    pub memory_mb: u32,
    /// Run without hugepages (`--no-huge`): for tests, offline analysis, virtual devices. With
    /// hugepages the flow tables come from DPDK's hugepage heap (see `flow::mapped`).
    pub no_huge: bool,
    /// Skip PCI probing (`--no-pci`): offline analysis with virtual devices only.
    pub no_pci: bool,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            args: vec![],
            memory_mb: 1024,
            no_huge: false,
            no_pci: false,
        }
    }
}

/// `[capture]`: which packets weir looks at.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// A libpcap filter expression (`tcp port 443 or udp port 53`): only the packets it
    /// accepts reach flows, plugins and rates; the others are counted (`filtered`). Applies to
    /// `weir extract` (where `--filter` overrides it) and to every port of `weir run` without
    /// its own `filter`.
    pub filter: Option<String>,
}

/// One port to read from: a PCI address or a virtual device string.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// A PCI address (`0000:03:00.0`) or an ethdev name.
    #[serde(default)]
    pub pci: Option<String>,
    /// A virtual device (`net_pcap0,rx_pcap=/data/x.pcap`), passed to EAL as `--vdev`.
    #[serde(default)]
    pub vdev: Option<String>,
    /// RX descriptors per queue.
    #[serde(default = "default_rx_desc")]
    pub rx_desc: u16,
    /// The largest IP packet to receive whole (bytes, without the Ethernet header): sizes the
    /// mbufs, or turns on scattered RX where the device can. Unset: the device's MTU (for
    /// net_af_packet, the kernel interface's).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// A libpcap filter expression for this port's packets (in place of `[capture] filter`).
    #[serde(default)]
    pub filter: Option<String>,
}

/// The largest `ports[].mtu`: a frame must fit an mbuf's 16-bit data room.
pub const MAX_MTU: u32 = 65_000;

fn default_rx_desc() -> u16 {
    1024
}

/// The largest `workers.burst`: receive bursts are arrays of this many mbuf pointers, of which
/// `workers.burst` are filled.
pub const MAX_BURST: usize = 512;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Number of worker lcores (one RX queue each per port).
    pub count: u32,
    /// CPU cores for the workers (`[2, 3]`); empty = the next free cores after the main one.
    pub cores: Vec<u32>,
    /// Packets per receive burst (at most [`MAX_BURST`]): every RX queue a worker polls, and
    /// the software spreader's, is asked for at most this many at a time.
    pub burst: u16,
    /// Mbufs in each worker's mempool.
    pub mbufs: u32,
    /// How flows are spread over the workers on each port (see `spread.rs`).
    pub spread: Spread,
    /// Software spreading: what to do when a worker's ring is full.
    pub spread_full: SpreadFull,
    /// Software spreading: mbufs each worker's ring holds.
    pub spread_ring: u32,
}

/// `workers.spread`: who spreads flows over the workers of a port.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// The port's RSS when it has a queue per worker and hashes IP flows, else software.
    #[default]
    Auto,
    /// One RX queue per worker, spread by the device (symmetric RSS); refused when the port
    /// has fewer queues than workers.
    Rss,
    /// One RX queue, read by the main lcore, which hashes each packet's flow symmetrically and
    /// hands it to its worker over a ring.
    Software,
}

/// `workers.spread_full`: software spreading when a worker's ring is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpreadFull {
    /// Drop the packet and count it (`spread_ring_full`): a slow worker never stalls the others.
    #[default]
    Drop,
    /// Wait for room: nothing is lost in weir, but one slow worker stalls every worker and the
    /// port drops instead (its `imissed`); for replays and tests.
    Wait,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            count: 1,
            cores: vec![],
            burst: 64,
            mbufs: 8191,
            spread: Spread::Auto,
            spread_full: SpreadFull::Drop,
            spread_ring: 4096,
        }
    }
}

/// What to do when a worker's flow table is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    /// End the least recently active flow (its record says `expiration_id = 2`).
    #[default]
    Oldest,
    /// Keep existing flows; count and skip packets of new flows (`table_full`).
    None,
}

/// Largest idle or active timeout accepted (10 years, in seconds).
pub const MAX_TIMEOUT_S: f64 = 315_360_000.0;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Flows per worker (preallocated).
    pub capacity: u32,
    /// A flow ends when no packet came for this long (NFStream's default: 120 s).
    pub idle_timeout_s: f64,
    /// A flow is cut when it has lasted this long (NFStream's default: 1800 s).
    pub active_timeout_s: f64,
    /// End TCP flows at RST, or once both sides sent FIN (NFStream does not).
    pub tcp_teardown: bool,
    pub eviction: Eviction,
    /// Width of a timer-wheel slot: expiry runs at most this late (never early).
    pub wheel_granularity_ms: u64,
    /// Decapsulate GTP-U, CAPWAP data and TZSP: flows are the inner packets' (NFStream's
    /// `decode_tunnels`, also on by default).
    pub decode_tunnels: bool,
    /// Make the whole table (entries, index, plugin state) resident before the first packet,
    /// so no packet pays a first-touch page fault. It costs the whole table's memory and its
    /// zeroing at start (about 290 MB per worker at the default capacity). Unset: off in
    /// `weir run`; in `weir extract` and `weir cost`, on when the captures are at least
    /// 1 KiB per flow of table (they will fill it), off for smaller ones.
    pub prefault: Option<bool>,
    /// Put a prefaulted table (`prefault`) on the system's reserved 2 MiB hugepages
    /// (`vm.nr_hugepages`) when enough of them are free, else on anonymous memory as without
    /// it. A DPDK host reserves that pool; its pages stay resident between runs, so making a
    /// table resident there is a matter of ms where fresh memory can take a second per
    /// 300 MB on a virtual machine. `false` leaves the pool to others.
    pub reserved_hugepages: bool,
    /// Seed of the `community_id` column (Community ID v1; 0 is Zeek's and Suricata's
    /// default).
    pub community_id_seed: u16,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            capacity: 262_144,
            idle_timeout_s: 120.0,
            active_timeout_s: 1800.0,
            tcp_teardown: false,
            eviction: Eviction::Oldest,
            wheel_granularity_ms: 100,
            decode_tunnels: true,
            prefault: None,
            reserved_hugepages: true,
            community_id_seed: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory of `*.so` plugins; default `PREFIX/lib/weir/plugins` beside `PREFIX/bin/weir`,
    /// else `/usr/lib/weir/plugins`, else the directory of the
    /// `weir` executable (so a build tree's plugins are found).
    pub dir: Option<PathBuf>,
    /// Plugins (by name) that must load: a refusal stops weir.
    pub required: Vec<String>,
    /// Only these plugins (by name); empty = all.
    pub enabled: Vec<String>,
    /// Never these plugins (by name).
    pub disabled: Vec<String>,
    /// Largest per-flow state a plugin may ask for, in bytes.
    pub max_state_bytes: Option<u32>,
    /// Per-plugin configuration tables: `[plugins.config.splt] n = 8`.
    pub config: toml::Table,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter (`info`, `weir=debug`, ...); `RUST_LOG` overrides it. Unset: `info`
    /// for `weir run`, `warn` for the one-shot commands.
    pub level: Option<String>,
    /// Seconds between status lines during `weir run` (0 = none).
    pub status_interval_s: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: None,
            status_interval_s: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// Cycle accounting per stage and plugin (one TSC read per stage per burst).
    pub enabled: bool,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig { enabled: true }
    }
}

/// The Prometheus metrics endpoint of `weir run` (see `metrics.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve metrics over HTTP during `weir run`.
    pub enabled: bool,
    /// Address and port to listen on; loopback by default (put a proxy or a pod network in
    /// front rather than exposing it).
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// A configuration error: what is wrong, where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}: key `{key}`{line}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        line: String,
        message: String,
    },
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text (`path` is only used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    // Long: one check per key, in the file's section order, each refusal naming its key.
    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            line: match locate(text, key) {
                Some(l) => format!(" (line {l})"),
                None => String::new(),
            },
            message,
        };
        if self.flows.capacity == 0 {
            return Err(bad("flows.capacity", "must be at least 1".into()));
        }
        // Bounded above too: deadlines are `now_ms + timeout_ms` in u64, and an unbounded
        // timeout (1e300, inf) would wrap them into the past and end every flow at once.
        let timeout_ok = |t: f64| t > 0.0 && t <= MAX_TIMEOUT_S;
        if !timeout_ok(self.flows.idle_timeout_s) {
            return Err(bad(
                "flows.idle_timeout_s",
                format!("must be > 0 and at most {MAX_TIMEOUT_S} (10 years)"),
            ));
        }
        if !timeout_ok(self.flows.active_timeout_s) {
            return Err(bad(
                "flows.active_timeout_s",
                format!("must be > 0 and at most {MAX_TIMEOUT_S} (10 years)"),
            ));
        }
        if self.intervals.every_ms > crate::flow::interval::MAX_EVERY_MS {
            return Err(bad(
                "intervals.every_ms",
                format!(
                    "must be at most {} (one year); 0 turns interval records off",
                    crate::flow::interval::MAX_EVERY_MS
                ),
            ));
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.every_ms.unwrap_or(0) > crate::flow::interval::MAX_EVERY_MS {
                return Err(bad(
                    &format!("services[{i}].every_ms"),
                    format!(
                        "must be at most {} (one year); 0 turns interval records off for it",
                        crate::flow::interval::MAX_EVERY_MS
                    ),
                ));
            }
        }
        if self.flows.wheel_granularity_ms == 0 {
            return Err(bad("flows.wheel_granularity_ms", "must be >= 1".into()));
        }
        if let Some(l) = &self.log.level {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(l) {
                return Err(bad(
                    "log.level",
                    format!("{l:?} is not a tracing filter (e.g. \"info\", \"weir=debug\"): {e}"),
                ));
            }
        }
        if self.workers.count == 0 {
            return Err(bad("workers.count", "must be at least 1".into()));
        }
        if !self.workers.cores.is_empty() && self.workers.cores.len() != self.workers.count as usize
        {
            return Err(bad(
                "workers.cores",
                format!(
                    "lists {} cores but workers.count is {}",
                    self.workers.cores.len(),
                    self.workers.count
                ),
            ));
        }
        if self.workers.burst == 0 || usize::from(self.workers.burst) > MAX_BURST {
            return Err(bad(
                "workers.burst",
                format!("must be between 1 and {MAX_BURST}"),
            ));
        }
        if !(64..=1 << 20).contains(&self.workers.spread_ring) {
            return Err(bad(
                "workers.spread_ring",
                "must be between 64 and 1048576".into(),
            ));
        }
        if self.eal.memory_mb < 64 {
            return Err(bad("eal.memory_mb", "must be at least 64".into()));
        }
        if let Err(e) = self.rates.validate() {
            return Err(bad(&e.path, e.reason));
        }
        for (i, h) in self.heavy_hitters.iter().enumerate() {
            if let Err(e) = h.validate(i) {
                return Err(bad(&e.path, e.reason));
            }
        }
        if let Some(m) = &self.model {
            if let Err(e) = m.validate() {
                return Err(bad("model", e.to_string()));
            }
        }
        // At least one row's worth, at most a terabyte.
        if !(self.sinks.parquet_rotate_mb >= 0.001 && self.sinks.parquet_rotate_mb <= 1e6) {
            return Err(bad(
                "sinks.parquet_rotate_mb",
                "must be between 0.001 and 1000000".into(),
            ));
        }
        if !(self.sinks.parquet_rotate_s >= 1.0 && self.sinks.parquet_rotate_s <= MAX_TIMEOUT_S) {
            return Err(bad(
                "sinks.parquet_rotate_s",
                format!("must be between 1 and {MAX_TIMEOUT_S} (10 years)"),
            ));
        }
        if !(self.sinks.flush_s >= 0.01 && self.sinks.flush_s <= 3600.0) {
            return Err(bad(
                "sinks.flush_s",
                "must be between 0.01 and 3600 seconds".into(),
            ));
        }
        for (key, v, max) in [
            ("sinks.csv_rotate_mb", self.sinks.csv_rotate_mb, 1e6),
            ("sinks.jsonl_rotate_mb", self.sinks.jsonl_rotate_mb, 1e6),
            ("sinks.csv_rotate_s", self.sinks.csv_rotate_s, MAX_TIMEOUT_S),
            (
                "sinks.jsonl_rotate_s",
                self.sinks.jsonl_rotate_s,
                MAX_TIMEOUT_S,
            ),
        ] {
            if !(v == 0.0 || (v >= 0.001 && v <= max)) {
                return Err(bad(
                    key,
                    format!("must be 0 (never rotate) or between 0.001 and {max}"),
                ));
            }
        }
        if let Err((key, message)) = self.sinks.ipfix_config() {
            return Err(bad(key, message));
        }
        if self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "metrics.listen",
                format!(
                    "`{}` is not an address:port (e.g. \"127.0.0.1:9464\" or \"[::1]:9464\")",
                    self.metrics.listen
                ),
            ));
        }
        if let Err(e) = crate::services::ServiceRules::new(&self.services, &self.service_default) {
            return Err(bad(&e.key, e.reason));
        }
        // Compiled by libpcap now, so a bad expression is refused before any packet.
        if let Some(e) = &self.capture.filter {
            if let Err(m) = crate::filter::Filter::compile(e) {
                return Err(bad("capture.filter", m));
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(e) = &p.filter {
                if let Err(m) = crate::filter::Filter::compile(e) {
                    return Err(bad(&format!("ports[{i}].filter"), m));
                }
            }
            if p.pci.is_some() == p.vdev.is_some() {
                return Err(bad(
                    "ports",
                    format!("port #{} needs exactly one of `pci` or `vdev`", i + 1),
                ));
            }
            if let Some(m) = p.mtu {
                if !(68..=MAX_MTU).contains(&m) {
                    return Err(bad(
                        &format!("ports[{i}].mtu"),
                        format!("{m} is not between 68 and {MAX_MTU}"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn idle_timeout_ms(&self) -> u64 {
        (self.flows.idle_timeout_s * 1000.0).round() as u64
    }

    pub fn active_timeout_ms(&self) -> u64 {
        (self.flows.active_timeout_s * 1000.0).round() as u64
    }
}

/// The 1-based line of a dotted key (`section.key`, or `array[i].key` for the i-th
/// `[[array]]` table) in TOML text, found by scanning for the section header and then the key;
/// the header's line when the key is not written; `None` when neither is.
pub fn locate(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (s, k),
        None => ("", dotted),
    };
    // `name[i]` addresses the i-th `[[name]]` table.
    let (section, index) = match section.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (section, None),
    };
    let mut seen = 0usize;
    let mut header_line = None;
    let mut in_target = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let array = t.starts_with("[[");
            let current = t.trim_matches(|c| c == '[' || c == ']').trim();
            if section.is_empty() && current == key {
                return Some(n + 1);
            }
            in_target = current == section
                && match index {
                    Some(i) if array => {
                        seen += 1;
                        seen == i + 1
                    }
                    Some(_) => false,
                    None => true,
                };
            if in_target {
                header_line = Some(n + 1);
            }
            continue;
        }
        if in_target {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    return Some(n + 1);
                }
            }
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("weir.toml"))
    }

    #[test]
    fn empty_config_has_nfstream_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.idle_timeout_ms(), 120_000);
        assert_eq!(c.active_timeout_ms(), 1_800_000);
        assert_eq!(c.workers.count, 1);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[flows]\ncapacity = 10\nidle_timeot_s = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idle_timeot_s"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_filters_name_key_line_and_libpcaps_message() {
        let e = parse("[flows]\nidle_timeout_s = 5\n[capture]\nfilter = \"tcp port\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("capture.filter") && e.contains("line 4") && e.contains("syntax error"),
            "{e}"
        );
        let e = parse("[[ports]]\nvdev = \"net_null0\"\n[[ports]]\nvdev = \"net_null1\"\nfilter = \"ip6 and\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ports[1].filter") && e.contains("line 5"), "{e}");
        let c = parse("[capture]\nfilter = \"udp port 53\"\n").unwrap();
        assert_eq!(c.capture.filter.as_deref(), Some("udp port 53"));
    }

    #[test]
    fn wrong_type_names_line() {
        let e = parse("[workers]\ncount = \"two\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let e = parse("# c\n[flows]\n\ncapacity = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flows.capacity"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn heavy_hitter_error_names_the_table_and_line() {
        let text = "[[heavy_hitters]]\nkey = \"src_ip\"\ntop_k = 5\n\n[[heavy_hitters]]\nkey = \"src_prefix\"\nprefix_len = 40\ntop_k = 3\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("heavy_hitters[1].prefix_len"), "{e}");
        assert!(e.contains("line 7"), "{e}");
    }

    #[test]
    fn service_errors_name_key_and_line() {
        let text = "[[services]]\nname = \"a\"\n\n[[services]]\nname = \"b\"\nprefixes = [\"10.0.0.1/8\"]\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("services[1].prefixes"), "{e}");
        assert!(e.contains("line 6") && e.contains("host bits"), "{e}");
        let e = parse("[[services]]\nname = \"v\"\nregex = [\"(\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("services[0].regex") && e.contains("line 3"),
            "{e}"
        );
        let e = parse("[service_default]\ndns_capacity = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("service_default.dns_capacity") && e.contains("line 2"),
            "{e}"
        );
        let c = parse("[[services]]\nname = \"v\"\ndomains = [\"x.com\"]\nplugins = [\"splt\"]\n[service_default]\nplugins = []\n").unwrap();
        assert_eq!(
            c.services[0].plugins.as_deref(),
            Some(&["splt".to_string()][..])
        );
    }

    #[test]
    fn interval_length_is_checked() {
        assert_eq!(parse("").unwrap().intervals.every_ms, 0, "off by default");
        let c = parse("[intervals]\nevery_ms = 10000\n").unwrap();
        assert_eq!(c.intervals.every_ms, 10_000);
        let e = parse("[intervals]\n\nevery_ms = 99999999999999\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("intervals.every_ms") && e.contains("line 3"),
            "{e}"
        );
        let e = parse("[intervals]\nevery = 5\n").unwrap_err().to_string();
        assert!(e.contains("every"), "{e}");
        let e = parse("[[services]]\nname = \"v\"\nevery_ms = 99999999999999\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("services[0].every_ms") && e.contains("line 3"),
            "{e}"
        );
    }

    #[test]
    fn port_needs_one_source() {
        let e = parse("[[ports]]\nrx_desc = 512\n").unwrap_err().to_string();
        assert!(e.contains("pci") && e.contains("vdev"), "{e}");
    }
}
