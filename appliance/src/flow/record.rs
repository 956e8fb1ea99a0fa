//! Flow records: what a flow becomes when it ends, and the column schema every sink and the
//! scorer share.
//!
//! A record has fixed core columns (NFStream's names for the 5-tuple and the per-direction
//! counters) followed by the plugins' feature columns, the decay-rate columns and, when a model
//! is loaded, score columns. [`RecordSchema`] names every column once, at start, so sinks write
//! headers and the scorer maps a model's feature names to column indices before any traffic.

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

    /// The value of a numeric core column, by index into [`CORE_NUMERIC`].
    pub fn core_value(&self, col: CoreColumn) -> f64 {
        let k = &self.key;
        let d = |c: &DirCounters, f: u8| -> f64 {
            match f {
                0 => c.first_seen_ms as f64,
                1 => c.last_seen_ms as f64,
                2 => c.duration_ms() as f64,
                3 => c.packets as f64,
                _ => c.bytes as f64,
            }
        };
        match col {
            CoreColumn::SrcPort => k.src_port as f64,
            CoreColumn::DstPort => k.dst_port as f64,
            CoreColumn::Protocol => k.protocol as f64,
            CoreColumn::IpVersion => k.ip_version as f64,
            CoreColumn::VlanId => k.vlan_id as f64,
            CoreColumn::TunnelId => k.tunnel_id as f64,
            CoreColumn::Bidirectional(f) => d(&self.bidirectional, f),
            CoreColumn::Src2Dst(f) => d(&self.src2dst, f),
            CoreColumn::Dst2Src(f) => d(&self.dst2src, f),
        }
    }
}

/// A numeric core column (the ones a model may use as a feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreColumn {
    SrcPort,
    DstPort,
    Protocol,
    IpVersion,
    VlanId,
    TunnelId,
    /// 0 first_seen_ms, 1 last_seen_ms, 2 duration_ms, 3 packets, 4 bytes.
    Bidirectional(u8),
    Src2Dst(u8),
    Dst2Src(u8),
}

const DIR_FIELDS: [&str; 5] = [
    "first_seen_ms",
    "last_seen_ms",
    "duration_ms",
    "packets",
    "bytes",
];

/// Every core column name in output order, NFStream's names first.
pub fn core_column_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "src_ip",
        "src_port",
        "dst_ip",
        "dst_port",
        "protocol",
        "ip_version",
        "vlan_id",
        "tunnel_id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for dir in ["bidirectional", "src2dst", "dst2src"] {
        for f in DIR_FIELDS {
            v.push(format!("{dir}_{f}"));
        }
    }
    v.push("expiration_id".into());
    v.push("worker".into());
    // Interval records: the kind, then the interval's bounds (empty in flow records).
    v.push("record_kind".into());
    v.push("interval_start_ms".into());
    v.push("interval_end_ms".into());
    v.push("service".into());
    v.push("community_id".into());
    v
}

/// Resolve a numeric core column by name.
pub fn core_column(name: &str) -> Option<CoreColumn> {
    let simple = match name {
        "src_port" => Some(CoreColumn::SrcPort),
        "dst_port" => Some(CoreColumn::DstPort),
        "protocol" => Some(CoreColumn::Protocol),
        "ip_version" => Some(CoreColumn::IpVersion),
        "vlan_id" => Some(CoreColumn::VlanId),
        "tunnel_id" => Some(CoreColumn::TunnelId),
        _ => None,
    };
    if simple.is_some() {
        return simple;
    }
    let (dir, field) = name.split_once('_')?;
    let f = DIR_FIELDS.iter().position(|x| *x == field)? as u8;
    match dir {
        "bidirectional" => Some(CoreColumn::Bidirectional(f)),
        "src2dst" => Some(CoreColumn::Src2Dst(f)),
        "dst2src" => Some(CoreColumn::Dst2Src(f)),
        _ => None,
    }
}

/// Where a named numeric column lives in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Core(CoreColumn),
    /// Index into [`FlowRecord::values`].
    Extra(usize),
}

/// The columns of every record of one run, fixed at start.
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

    /// Find a numeric column by name (core columns first, then extra ones).
    pub fn column(&self, name: &str) -> Option<Column> {
        if let Some(c) = core_column(name) {
            return Some(Column::Core(c));
        }
        // A text column is never a numeric feature (a model cannot use it).
        self.extra
            .iter()
            .position(|n| n == name)
            .filter(|&i| !self.is_text(i))
            .map(Column::Extra)
    }

    pub fn value(&self, rec: &FlowRecord, col: Column) -> f64 {
        match col {
            Column::Core(c) => rec.core_value(c),
            Column::Extra(i) => rec.values.get(i).copied().unwrap_or(f64::NAN),
        }
    }

    /// All column names in output order.
    pub fn header(&self) -> Vec<String> {
        let mut h = core_column_names();
        h.extend(self.extra.iter().cloned());
        if self.scored {
            h.push("prediction".into());
            h.extend(self.scores.iter().cloned());
            h.push("score_status".into());
            h.push("model_name".into());
            h.push("model_version".into());
        }
        h
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
