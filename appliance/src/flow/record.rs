//! Flow records: what a flow becomes when it ends, and the [`RecordSchema`] of a run's records.
//!
//! A record has fixed core columns (NFStream's names for the 5-tuple and the per-direction
//! counters) followed by the plugins' feature columns, the decay-rate columns and, when a model
//! is loaded, score columns. [`RecordSchema`] holds what varies between runs (the extra and
//! score columns), fixed at start; `flow/schema.rs` describes every column (name, type, value)
//! from it, so sinks write headers and the scorer maps a model's feature names to columns
//! before any traffic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weir_plugin_api::FlowKeyV1;

/// Why a flow ended (NFStream's `expiration_id`: 0 idle, 1 active, -1 end of capture/flush).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum Expiration {
    Idle = 0,
    Active = 1,
    /// Flushed at the end of the input or at shutdown.
    Flush = -1,
    /// Evicted because the flow table was full (weir's own; NFStream has no table limit).
    Evicted = 2,
    /// Ended by TCP FIN/RST teardown, when enabled (weir's own).
    Teardown = 3,
}

/// Packet and byte counters and times of one direction (or both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCounters {
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl DirCounters {
    pub fn duration_ms(&self) -> u64 {
        self.last_seen_ms - self.first_seen_ms
    }
}

/// How the score columns of a record were filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScoreStatus {
    /// No model loaded.
    #[default]
    None,
    Scored,
    /// The scorer was behind and the overload policy is `emit_unscored`.
    SkippedOverload,
    /// The model run failed for this batch (logged).
    Error,
    /// The model gave a NaN score or probability for this record (typically from NaN
    /// features): its scores are written as they came, and it never raises an alert.
    NanScore,
}

impl ScoreStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScoreStatus::None => "",
            ScoreStatus::Scored => "scored",
            ScoreStatus::SkippedOverload => "skipped_overload",
            ScoreStatus::Error => "error",
            ScoreStatus::NanScore => "nan_score",
        }
    }
}

/// What a record describes (`record_kind`): a whole flow at its end, or one interval of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Flow,
    Interval,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Flow => "flow",
            RecordKind::Interval => "interval",
        }
    }
}

/// The interval an interval record covers: `[start_ms, end_ms)` of packet time (see
/// `flow/interval.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntervalSpan {
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The model that scored a record, as its `model_name` and `model_version` columns show it.
/// Made by the scorer (`scoring/scorer.rs`) once per model load and shared by every record it
/// scores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelTag {
    pub name: String,
    pub version: String,
}

/// One finished flow, or one interval of a flow (`interval` is set).
#[derive(Clone, Debug)]
pub struct FlowRecord {
    pub key: FlowKeyV1,
    /// For interval records, why the flow ended when this was its last interval, else
    /// [`Expiration::Active`] (sinks write `expiration_id` empty for interval records).
    pub expiration: Expiration,
    pub worker: u16,
    /// Service id (see [`RecordSchema::services`]); 0 = none.
    pub service: u16,
    /// `Some` for an interval record (`record_kind = "interval"`); its counters are the
    /// interval's only. `None` for the flow record at flow end.
    pub interval: Option<IntervalSpan>,
    pub bidirectional: DirCounters,
    pub src2dst: DirCounters,
    pub dst2src: DirCounters,
    /// Plugin features then rate features, in [`RecordSchema::extra`] order (NaN = missing;
    /// always NaN in a text column, whose value is in `texts`).
    pub values: Vec<f64>,
    /// The text columns' values (ABI 1.4 text features), in record order: the j-th text column
    /// of [`RecordSchema::extra`] is `texts.get(j)`. Empty (all missing) in interval records
    /// and when no plugin has text features.
    pub texts: Texts,
    pub score_status: ScoreStatus,
    /// Index into the model's classes (classification) or 0/1 (anomaly: 1 = outlier).
    pub prediction: Option<u32>,
    /// `proba_<class>` per class, or `[anomaly_score]`.
    pub scores: Vec<f64>,
    /// The model that scored it (`model_name`, `model_version`); `None` when no model ran
    /// on it (no model, or skipped under overload). Set by the scorer thread, off the data path.
    pub model: Option<std::sync::Arc<ModelTag>>,
    /// ICMP type and code of the flow's first packet (zero for other protocols): what its
    /// Community ID hashes in place of ports.
    pub icmp: [u8; 2],
    /// The `community_id` column, computed once per record by the worker before it hands
    /// the record over (see `flow/community_id.rs`).
    pub community_id: crate::flow::community_id::CommunityId,
}

/// A record's text values, end to end in one string: one allocation per record however many
/// text columns there are (none when there are none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Texts {
    text: String,
    /// Per value: its end in `text`, with [`Texts::MISSING`] set when it is missing.
    ends: Vec<u32>,
}

impl Texts {
    const MISSING: u32 = 1 << 31;

    /// Bytes held for the values' text (0: never used).
    pub fn capacity_bytes(&self) -> usize {
        self.text.capacity()
    }

    /// Remove every value, keeping the memory (records reuse it).
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    pub fn with_capacity(values: usize, bytes: usize) -> Texts {
        Texts {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(values),
        }
    }

    /// Append the next value (`None`: missing).
    pub fn push(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                self.text.push_str(s);
                self.ends.push(self.text.len() as u32);
            }
            None => self.ends.push(self.text.len() as u32 | Self::MISSING),
        }
    }

    /// Value `j`; `None` when missing or past the end.
    pub fn get(&self, j: usize) -> Option<&str> {
        let end = *self.ends.get(j)?;
        if end & Self::MISSING != 0 {
            return None;
        }
        let start = match j {
            0 => 0,
            _ => (self.ends[j - 1] & !Self::MISSING) as usize,
        };
        self.text.get(start..end as usize)
    }

    /// Values pushed (missing ones included).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

fn ip_of(bytes: &[u8; 16], version: u8) -> IpAddr {
    if version == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

impl FlowRecord {
    pub fn kind(&self) -> RecordKind {
        if self.interval.is_some() {
            RecordKind::Interval
        } else {
            RecordKind::Flow
        }
    }

    pub fn src_ip(&self) -> IpAddr {
        ip_of(&self.key.src_ip, self.key.ip_version)
    }
    pub fn dst_ip(&self) -> IpAddr {
        ip_of(&self.key.dst_ip, self.key.ip_version)
    }
}

/// The columns of every record of one run, fixed at start (every column's name, type and
/// value: `flow/schema.rs`).
#[derive(Clone, Debug, Default)]
pub struct RecordSchema {
    /// Names of [`FlowRecord::values`], in order (plugin features, then rate features).
    pub extra: Vec<String>,
    /// Who provides each extra column (a plugin name, or "rates").
    pub provider: Vec<String>,
    /// How each extra column is written (`WEIR_FEATURE_F64`, `_U64`, `_BOOL`, `_TEXT`).
    pub kinds: Vec<u32>,
    /// Score column names (`prediction` is written separately), empty without a model.
    pub scores: Vec<String>,
    /// Class labels for `prediction`, empty for anomaly models or without a model.
    pub classes: Vec<String>,
    /// Whether a model is loaded (adds `prediction`, score columns, `score_status`,
    /// `model_name` and `model_version`).
    pub scored: bool,
    /// Service names of ids 1.. (the `service` column; id 0 writes "").
    pub services: Vec<String>,
}

impl RecordSchema {
    /// The `service` column of a record ("" when none).
    pub fn service_name(&self, id: u16) -> &str {
        if id == 0 {
            ""
        } else {
            self.services
                .get(id as usize - 1)
                .map_or("", |s| s.as_str())
        }
    }

    /// Whether extra column `i` is text (ABI 1.4): its value is in [`FlowRecord::texts`].
    pub fn is_text(&self, i: usize) -> bool {
        self.kinds.get(i) == Some(&weir_plugin_api::WEIR_FEATURE_TEXT)
    }

    /// Text columns among the extra ones: the length of a flow record's [`FlowRecord::texts`].
    pub fn n_texts(&self) -> usize {
        (0..self.extra.len()).filter(|&i| self.is_text(i)).count()
    }

    /// The text ordinal of extra column `i` (its index into [`FlowRecord::texts`]), when it is
    /// a text column.
    pub fn text_index(&self, i: usize) -> Option<usize> {
        self.is_text(i)
            .then(|| (0..i).filter(|&k| self.is_text(k)).count())
    }
}

#[cfg(test)]
mod tests {
    use super::Texts;

    #[test]
    fn texts_keep_values_and_missing_apart() {
        let mut t = Texts::default();
        t.push(Some("tls"));
        t.push(None);
        t.push(Some(""));
        t.push(Some("ünï"));
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(0), Some("tls"));
        assert_eq!(t.get(1), None);
        assert_eq!(t.get(2), Some(""));
        assert_eq!(t.get(3), Some("ünï"));
        assert_eq!(t.get(4), None);
    }
}
