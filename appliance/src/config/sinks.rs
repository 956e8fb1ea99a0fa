//! `[sinks]`: where records and alerts go (files, the IPFIX collector), and how the files
//! are flushed and rotated.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// Flow records file; the format follows the extension (`.csv`, `.jsonl`, `.parquet`);
    /// a directory (ending in `/`) is a partitioned Parquet dataset.
    pub records: Option<PathBuf>,
    /// Alerts file (JSON Lines).
    pub alerts: Option<PathBuf>,
    /// Alerts file format: `jsonl` (weir's lines) or `eve` (Suricata eve.json alert events).
    pub alerts_format: crate::sink::eve::AlertsFormat,
    /// Parquet dataset: close a file at about this many MiB.
    pub parquet_rotate_mb: f64,
    /// Parquet dataset: close a file once it has been open this many seconds.
    pub parquet_rotate_s: f64,
    /// CSV and JSON Lines files (records, alerts): write buffered lines out at least this
    /// often, in seconds (a crash loses at most that much).
    pub flush_s: f64,
    /// CSV records file: move it aside (time-stamped name) and start a new one at about this
    /// many MiB; 0 = never.
    pub csv_rotate_mb: f64,
    /// CSV records file: ... once it has been open this many seconds; 0 = never.
    pub csv_rotate_s: f64,
    /// JSON Lines records file and the alerts file: rotate at about this many MiB; 0 = never.
    pub jsonl_rotate_mb: f64,
    /// JSON Lines records file and the alerts file: rotate after this many seconds; 0 = never.
    pub jsonl_rotate_s: f64,
    /// IPFIX collector (`HOST:PORT`) to export records to (`sink/ipfix`).
    pub ipfix: Option<String>,
    /// Resend IPFIX templates after this many seconds (default 60, 0 = off).
    pub ipfix_template_refresh_s: Option<u64>,
    /// Resend IPFIX templates after this many data messages (default 0 = off).
    pub ipfix_template_refresh_messages: Option<u64>,
    /// IPFIX Observation Domain ID (default 1).
    pub ipfix_observation_domain: Option<u32>,
    /// Largest IPFIX message, octets of UDP payload (default 1400).
    pub ipfix_mtu: Option<u32>,
    /// Private Enterprise Number of weir's own IPFIX elements (default 32473, a placeholder).
    pub ipfix_enterprise_number: Option<u32>,
    /// Feature, rate and score columns to export over IPFIX (`["*"]` = all; default: the rates
    /// and scores).
    pub ipfix_columns: Option<Vec<String>>,
    /// Send at most this many IPFIX messages per second (default 0 = no limit).
    pub ipfix_max_messages_per_s: Option<u32>,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            records: None,
            alerts: None,
            alerts_format: Default::default(),
            parquet_rotate_mb: 128.0,
            parquet_rotate_s: 300.0,
            flush_s: 1.0,
            csv_rotate_mb: 0.0,
            csv_rotate_s: 0.0,
            jsonl_rotate_mb: 0.0,
            jsonl_rotate_s: 0.0,
            ipfix: None,
            ipfix_template_refresh_s: None,
            ipfix_template_refresh_messages: None,
            ipfix_observation_domain: None,
            ipfix_mtu: None,
            ipfix_enterprise_number: None,
            ipfix_columns: None,
            ipfix_max_messages_per_s: None,
        }
    }
}

impl SinksConfig {
    /// The IPFIX export of `[sinks] ipfix*`, checked (`None` without a collector); an error
    /// names the key.
    pub fn ipfix_config(
        &self,
    ) -> Result<Option<crate::sink::ipfix::IpfixConfig>, (&'static str, String)> {
        let Some(collector) = &self.ipfix else {
            return Ok(None);
        };
        let d = crate::sink::ipfix::IpfixConfig::for_collector(collector);
        let c = crate::sink::ipfix::IpfixConfig {
            template_refresh_s: self
                .ipfix_template_refresh_s
                .unwrap_or(d.template_refresh_s),
            template_refresh_messages: self
                .ipfix_template_refresh_messages
                .unwrap_or(d.template_refresh_messages),
            observation_domain: self
                .ipfix_observation_domain
                .unwrap_or(d.observation_domain),
            mtu: self.ipfix_mtu.unwrap_or(d.mtu),
            enterprise_number: self.ipfix_enterprise_number.unwrap_or(d.enterprise_number),
            columns: self.ipfix_columns.clone(),
            max_messages_per_s: self
                .ipfix_max_messages_per_s
                .unwrap_or(d.max_messages_per_s),
            ..d
        };
        c.validate()?;
        Ok(Some(c))
    }

    /// The Parquet dataset rotation.
    pub fn rotation(&self) -> crate::sink::Rotation {
        crate::sink::Rotation::from_config(self.parquet_rotate_mb, self.parquet_rotate_s)
    }

    /// How a CSV or JSON Lines file at `path` is started, flushed and rotated (CSV keys for a
    /// `.csv` file, JSON Lines keys otherwise: the alerts file is JSON Lines).
    pub fn text_options(
        &self,
        path: &std::path::Path,
        start: crate::sink::Start,
    ) -> crate::sink::TextOptions {
        let csv = path.extension().is_some_and(|e| e == "csv");
        let (mb, s) = if csv {
            (self.csv_rotate_mb, self.csv_rotate_s)
        } else {
            (self.jsonl_rotate_mb, self.jsonl_rotate_s)
        };
        crate::sink::TextOptions {
            start,
            flush: std::time::Duration::from_secs_f64(self.flush_s),
            max_bytes: None,
            max_age: None,
        }
        .with_rotation(mb, s)
    }
}
