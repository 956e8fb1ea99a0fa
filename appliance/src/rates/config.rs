//! The `[rates]` table and the `[[heavy_hitters]]` array of weir's configuration, with their
//! defaults and validation.
//!
//! ```toml
//! [rates]
//! tau_ms = 1000              # decay time constant (default 1000 ms)
//!
//! [[heavy_hitters]]
//! key = "src_ip"             # src_ip | dst_ip | src_prefix | dst_prefix | flow
//! prefix_len = 24            # *_prefix keys only: IPv4 prefix length (default 24)
//! prefix_len_v6 = 64         # *_prefix keys only: IPv6 prefix length (default 64)
//! threshold_pps = 50000      # optional: absolute packet rate, packets/s
//! threshold_bps = 1e9        # optional: absolute bit rate, bits/s
//! threshold_fraction = 0.05  # optional: share of the whole appliance's packet rate
//! top_k = 10                 # optional: report the k fastest keys each interval
//! report_interval_ms = 1000  # how often thresholds are checked and top-k reported (default 1000)
//! capacity = 4096            # keys tracked per worker (default 4096, rounded up, see below)
//! ```
//!
//! At least one of the four detections must be set. `capacity` is rounded up to a power of two
//! number of 8-way buckets (minimum 8 keys).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A configuration value that cannot be used, naming the key and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// Where the value is, e.g. `rates.tau_ms` or `heavy_hitters[1].prefix_len`.
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Largest accepted `tau_ms` (one hour). Longer windows are not a rate any more.
pub const MAX_TAU_MS: u64 = 3_600_000;

fn default_tau_ms() -> u64 {
    1000
}
fn default_report_interval_ms() -> u64 {
    1000
}
fn default_capacity() -> usize {
    4096
}

/// `[rates]`: the decay model shared by per-flow rates and heavy hitters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesConfig {
    /// Decay time constant tau in milliseconds (default 1000). A rate is the decayed count of
    /// events divided by tau, so it reacts within about tau.
    #[serde(default = "default_tau_ms")]
    pub tau_ms: u64,
}

impl Default for RatesConfig {
    fn default() -> Self {
        RatesConfig {
            tau_ms: default_tau_ms(),
        }
    }
}

impl RatesConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tau_ms == 0 || self.tau_ms > MAX_TAU_MS {
            return Err(ConfigError::new(
                "rates.tau_ms",
                format!("{} is out of range 1..={MAX_TAU_MS}", self.tau_ms),
            ));
        }
        Ok(())
    }
}

/// What a heavy-hitter table aggregates packets by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    SrcIp,
    DstIp,
    SrcPrefix,
    DstPrefix,
    /// The bidirectional 5-tuple (both directions count for one key).
    Flow,
}

impl KeyType {
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyType::SrcIp => "src_ip",
            KeyType::DstIp => "dst_ip",
            KeyType::SrcPrefix => "src_prefix",
            KeyType::DstPrefix => "dst_prefix",
            KeyType::Flow => "flow",
        }
    }

    fn is_prefix(&self) -> bool {
        matches!(self, KeyType::SrcPrefix | KeyType::DstPrefix)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[heavy_hitters]]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeavyHitterConfig {
    pub key: KeyType,
    /// IPv4 prefix length for `src_prefix`/`dst_prefix` (1..=32, default 24).
    #[serde(default)]
    pub prefix_len: Option<u8>,
    /// IPv6 prefix length for `src_prefix`/`dst_prefix` (1..=128, default 64).
    #[serde(default)]
    pub prefix_len_v6: Option<u8>,
    /// Alert when a key's packet rate reaches this many packets/s.
    #[serde(default)]
    pub threshold_pps: Option<f64>,
    /// Alert when a key's bit rate reaches this many bits/s.
    #[serde(default)]
    pub threshold_bps: Option<f64>,
    /// Alert when a key's packet rate reaches this share (0 < f <= 1) of the total packet rate
    /// of the whole appliance.
    #[serde(default)]
    pub threshold_fraction: Option<f64>,
    /// Report the k keys with the highest packet rate every report interval.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Thresholds are checked and top-k reported every this many ms of packet time
    /// (default 1000).
    #[serde(default = "default_report_interval_ms")]
    pub report_interval_ms: u64,
    /// Keys tracked per worker (default 4096).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// `[flows] community_id_seed`, set by the pipeline (not a key of this table).
    #[serde(skip)]
    pub community_id_seed: u16,
}

/// Largest accepted `capacity` per worker (about 60 MiB of table).
pub const MAX_CAPACITY: usize = 1 << 20;

impl HeavyHitterConfig {
    /// A table with only `key` set and defaults elsewhere (no detection: set one before use).
    pub fn new(key: KeyType) -> Self {
        HeavyHitterConfig {
            key,
            prefix_len: None,
            prefix_len_v6: None,
            threshold_pps: None,
            threshold_bps: None,
            threshold_fraction: None,
            top_k: None,
            report_interval_ms: default_report_interval_ms(),
            capacity: default_capacity(),
            community_id_seed: 0,
        }
    }

    /// IPv4 prefix length in use (24 unless set; 32 for non-prefix keys).
    pub fn v4_prefix(&self) -> u8 {
        if self.key.is_prefix() {
            self.prefix_len.unwrap_or(24)
        } else {
            32
        }
    }

    /// IPv6 prefix length in use (64 unless set; 128 for non-prefix keys).
    pub fn v6_prefix(&self) -> u8 {
        if self.key.is_prefix() {
            self.prefix_len_v6.unwrap_or(64)
        } else {
            128
        }
    }

    /// Check the table `heavy_hitters[index]`.
    pub fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let at = |field: &str| format!("heavy_hitters[{index}].{field}");
        for (field, len, max) in [
            ("prefix_len", self.prefix_len, 32u8),
            ("prefix_len_v6", self.prefix_len_v6, 128u8),
        ] {
            if let Some(len) = len {
                if !self.key.is_prefix() {
                    return Err(ConfigError::new(
                        at(field),
                        format!(
                            "only used with key = \"src_prefix\" or \"dst_prefix\", not \"{}\"",
                            self.key
                        ),
                    ));
                }
                if len == 0 || len > max {
                    return Err(ConfigError::new(
                        at(field),
                        format!("{len} is out of range 1..={max}"),
                    ));
                }
            }
        }
        for (field, v) in [
            ("threshold_pps", self.threshold_pps),
            ("threshold_bps", self.threshold_bps),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(ConfigError::new(at(field), format!("{v} must be > 0")));
                }
            }
        }
        if let Some(f) = self.threshold_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(ConfigError::new(
                    at("threshold_fraction"),
                    format!("{f} must be in (0, 1]"),
                ));
            }
        }
        if self.capacity < 8 || self.capacity > MAX_CAPACITY {
            return Err(ConfigError::new(
                at("capacity"),
                format!("{} is out of range 8..={MAX_CAPACITY}", self.capacity),
            ));
        }
        if let Some(k) = self.top_k {
            if k == 0 || k > self.capacity {
                return Err(ConfigError::new(
                    at("top_k"),
                    format!("{k} is out of range 1..=capacity ({})", self.capacity),
                ));
            }
        }
        if self.report_interval_ms == 0 || self.report_interval_ms > MAX_TAU_MS {
            return Err(ConfigError::new(
                at("report_interval_ms"),
                format!(
                    "{} is out of range 1..={MAX_TAU_MS}",
                    self.report_interval_ms
                ),
            ));
        }
        if self.threshold_pps.is_none()
            && self.threshold_bps.is_none()
            && self.threshold_fraction.is_none()
            && self.top_k.is_none()
        {
            return Err(ConfigError::new(
                format!("heavy_hitters[{index}]"),
                "no detection set: give at least one of threshold_pps, threshold_bps, \
                 threshold_fraction, top_k",
            ));
        }
        Ok(())
    }
}

/// Validate `[rates]` and every `[[heavy_hitters]]` table.
pub fn validate_all(rates: &RatesConfig, hh: &[HeavyHitterConfig]) -> Result<(), ConfigError> {
    rates.validate()?;
    for (i, h) in hh.iter().enumerate() {
        h.validate(i)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        rates: RatesConfig,
        #[serde(default)]
        heavy_hitters: Vec<HeavyHitterConfig>,
    }

    fn parse(s: &str) -> Result<File, String> {
        let f: File = toml::from_str(s).map_err(|e| e.to_string())?;
        validate_all(&f.rates, &f.heavy_hitters).map_err(|e| e.to_string())?;
        Ok(f)
    }

    #[test]
    fn the_issue_example_parses_with_integer_thresholds() {
        let f = parse(
            r#"
            [rates]
            tau_ms = 1000

            [[heavy_hitters]]
            key = "src_prefix"
            prefix_len = 24
            threshold_pps = 50000
            threshold_bps = 1e9
            threshold_fraction = 0.05
            top_k = 10
            report_interval_ms = 1000
            capacity = 4096
            "#,
        )
        .unwrap();
        let h = &f.heavy_hitters[0];
        assert_eq!(h.key, KeyType::SrcPrefix);
        assert_eq!(h.threshold_pps, Some(50000.0));
        assert_eq!(h.threshold_bps, Some(1e9));
        assert_eq!((h.v4_prefix(), h.v6_prefix()), (24, 64));
    }

    #[test]
    fn defaults_apply() {
        let f = parse("[[heavy_hitters]]\nkey = \"dst_ip\"\ntop_k = 3\n").unwrap();
        assert_eq!(f.rates.tau_ms, 1000);
        let h = &f.heavy_hitters[0];
        assert_eq!((h.report_interval_ms, h.capacity), (1000, 4096));
        assert_eq!((h.v4_prefix(), h.v6_prefix()), (32, 128));
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("[rates]\ntau_ms = 0\n", "rates.tau_ms"),
            ("[rates]\ntau_m = 5\n", "unknown field `tau_m`"),
            (
                "[[heavy_hitters]]\nkey = \"src_prefix\"\nprefix_len = 33\ntop_k = 1\n",
                "heavy_hitters[0].prefix_len: 33 is out of range 1..=32",
            ),
            (
                "[[heavy_hitters]]\nkey = \"src_ip\"\nprefix_len = 8\ntop_k = 1\n",
                "heavy_hitters[0].prefix_len: only used with",
            ),
            ("[[heavy_hitters]]\nkey = \"src_ip\"\n", "no detection set"),
            (
                "[[heavy_hitters]]\nkey = \"port\"\ntop_k = 1\n",
                "unknown variant `port`",
            ),
            (
                "[[heavy_hitters]]\nkey = \"flow\"\nthreshold_fraction = 1.5\n",
                "heavy_hitters[0].threshold_fraction: 1.5 must be in (0, 1]",
            ),
            (
                "[[heavy_hitters]]\nkey = \"flow\"\ntop_k = 10\ncapacity = 4\n",
                "heavy_hitters[0].capacity",
            ),
            (
                "[[heavy_hitters]]\nkey = \"flow\"\nthreshold_pps = -1\n",
                "heavy_hitters[0].threshold_pps",
            ),
        ];
        for (text, want) in cases {
            let err = match parse(text) {
                Ok(_) => panic!("accepted: {text}"),
                Err(e) => e,
            };
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
    }
}
