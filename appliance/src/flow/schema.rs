//! The columns of a record, described once: every sink (CSV, JSON Lines, Parquet, IPFIX) and
//! the scorer take their names, types and values from here.
//!
//! A record's columns, in output order:
//! - the core columns of [`CoreColumn`]'s table (NFStream's names for the 5-tuple and the
//!   per-direction counters, then weir's own): name, type, whether a model may use it as a
//!   feature, and how its value is read from a [`FlowRecord`], one row each;
//! - the extra columns ([`RecordSchema::extra`]: plugin features, then rates), typed by the
//!   plugin's declared kind;
//! - with a model, `prediction`, the score columns, `score_status`, `model_name`,
//!   `model_version`.
//!
//! [`RecordSchema::walk`] gives a record's values in that order, [`RecordSchema::header`] their
//! names and [`RecordSchema::column_types`] their types: the three agree by construction, and
//! the unit tests check that every value the walk gives has its column's type.

use super::record::{FlowRecord, RecordSchema};
use std::net::IpAddr;
use weir_plugin_api::{WEIR_FEATURE_BOOL, WEIR_FEATURE_TEXT, WEIR_FEATURE_U64};

/// A column's type, the same in every sink (Parquet: `BYTE_ARRAY` UTF8, signed `INT64`,
/// `INT64`, `DOUBLE`; text formats: a string, an integer or a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    UInt,
    Float,
}

/// One value of a record's column, borrowed from the record or the schema.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Ip(IpAddr),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Missing: an empty CSV field, JSON `null`, a Parquet null.
    Missing,
}

impl Value<'_> {
    /// The value as a model feature (NaN when missing or text).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::UInt(u) => u as f64,
            Value::Float(x) => x,
            Value::Str(_) | Value::Ip(_) | Value::Missing => f64::NAN,
        }
    }

    /// The type of column this value belongs in (`None`: missing, any column).
    pub fn column_type(self) -> Option<ColumnType> {
        match self {
            Value::Str(_) | Value::Ip(_) => Some(ColumnType::Text),
            Value::Int(_) => Some(ColumnType::Int),
            Value::UInt(_) => Some(ColumnType::UInt),
            Value::Float(_) => Some(ColumnType::Float),
            Value::Missing => None,
        }
    }
}

/// Declares [`CoreColumn`] from its table: one row per column, in output order.
macro_rules! core_columns {
    (|$rec:ident, $schema:ident| $(
        $(#[$doc:meta])* $var:ident $name:literal $ty:ident $feature:literal => $read:expr;
    )*) => {
        /// A core column: the fixed columns every record starts with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum CoreColumn {
            $($(#[$doc])* $var,)*
        }

        impl CoreColumn {
            /// Every core column, in output order.
            pub const ALL: &'static [CoreColumn] = &[$(CoreColumn::$var,)*];

            /// The column's name (its header).
            pub const fn name(self) -> &'static str {
                match self {
                    $(CoreColumn::$var => $name,)*
                }
            }

            pub const fn column_type(self) -> ColumnType {
                match self {
                    $(CoreColumn::$var => ColumnType::$ty,)*
                }
            }

            /// Whether a model may take it as a feature (the numeric columns describing the
            /// traffic, not weir's bookkeeping).
            pub const fn is_feature(self) -> bool {
                match self {
                    $(CoreColumn::$var => $feature,)*
                }
            }

            /// The column's value in a record.
            #[inline(always)]
            pub fn read<'a>(self, $rec: &'a FlowRecord, $schema: &'a RecordSchema) -> Value<'a> {
                match self {
                    $(CoreColumn::$var => $read,)*
                }
            }
        }

        /// Every core column's value of a record, in output order (straight-line code: each
        /// [`CoreColumn::read`] is folded to its row's expression).
        #[inline(always)]
        pub(crate) fn walk_core<'a>(
            $rec: &'a FlowRecord,
            $schema: &'a RecordSchema,
            f: &mut impl FnMut(Value<'a>),
        ) {
            $(f(CoreColumn::$var.read($rec, $schema));)*
        }
    };
}

core_columns! { |r, s|
    // variant                 name                          type   feature  value
    SrcIp                    "src_ip"                        Text   false => Value::Ip(r.src_ip());
    SrcPort                  "src_port"                      UInt   true  => Value::UInt(r.key.src_port.into());
    DstIp                    "dst_ip"                        Text   false => Value::Ip(r.dst_ip());
    DstPort                  "dst_port"                      UInt   true  => Value::UInt(r.key.dst_port.into());
    Protocol                 "protocol"                      UInt   true  => Value::UInt(r.key.protocol.into());
    IpVersion                "ip_version"                    UInt   true  => Value::UInt(r.key.ip_version.into());
    VlanId                   "vlan_id"                       UInt   true  => Value::UInt(r.key.vlan_id.into());
    TunnelId                 "tunnel_id"                     UInt   true  => Value::UInt(r.key.tunnel_id.into());
    BidirectionalFirstSeenMs "bidirectional_first_seen_ms"   UInt   true  => Value::UInt(r.bidirectional.first_seen_ms);
    BidirectionalLastSeenMs  "bidirectional_last_seen_ms"    UInt   true  => Value::UInt(r.bidirectional.last_seen_ms);
    BidirectionalDurationMs  "bidirectional_duration_ms"     UInt   true  => Value::UInt(r.bidirectional.duration_ms());
    BidirectionalPackets     "bidirectional_packets"         UInt   true  => Value::UInt(r.bidirectional.packets);
    BidirectionalBytes       "bidirectional_bytes"           UInt   true  => Value::UInt(r.bidirectional.bytes);
    Src2DstFirstSeenMs       "src2dst_first_seen_ms"         UInt   true  => Value::UInt(r.src2dst.first_seen_ms);
    Src2DstLastSeenMs        "src2dst_last_seen_ms"          UInt   true  => Value::UInt(r.src2dst.last_seen_ms);
    Src2DstDurationMs        "src2dst_duration_ms"           UInt   true  => Value::UInt(r.src2dst.duration_ms());
    Src2DstPackets           "src2dst_packets"               UInt   true  => Value::UInt(r.src2dst.packets);
    Src2DstBytes             "src2dst_bytes"                 UInt   true  => Value::UInt(r.src2dst.bytes);
    Dst2SrcFirstSeenMs       "dst2src_first_seen_ms"         UInt   true  => Value::UInt(r.dst2src.first_seen_ms);
    Dst2SrcLastSeenMs        "dst2src_last_seen_ms"          UInt   true  => Value::UInt(r.dst2src.last_seen_ms);
    Dst2SrcDurationMs        "dst2src_duration_ms"           UInt   true  => Value::UInt(r.dst2src.duration_ms());
    Dst2SrcPackets           "dst2src_packets"               UInt   true  => Value::UInt(r.dst2src.packets);
    Dst2SrcBytes             "dst2src_bytes"                 UInt   true  => Value::UInt(r.dst2src.bytes);
    /// NFStream's `expiration_id`; an interval does not end its flow: empty there.
    ExpirationId             "expiration_id"                 Int    false => match r.interval {
        Some(_) => Value::Missing,
        None => Value::Int(r.expiration as i8 as i64),
    };
    Worker                   "worker"                        UInt   false => Value::UInt(r.worker.into());
    RecordKind               "record_kind"                   Text   false => Value::Str(r.kind().as_str());
    /// The interval's bounds: empty in flow records.
    IntervalStartMs          "interval_start_ms"             UInt   false => match r.interval {
        Some(iv) => Value::UInt(iv.start_ms),
        None => Value::Missing,
    };
    IntervalEndMs            "interval_end_ms"               UInt   false => match r.interval {
        Some(iv) => Value::UInt(iv.end_ms),
        None => Value::Missing,
    };
    Service                  "service"                       Text   false => Value::Str(s.service_name(r.service));
    CommunityId              "community_id"                  Text   false => Value::Str(r.community_id.as_str());
}

/// Every core column name in output order, NFStream's names first.
pub fn core_column_names() -> Vec<String> {
    CoreColumn::ALL
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// Resolve a core column a model may use as a feature, by name.
pub fn core_column(name: &str) -> Option<CoreColumn> {
    CoreColumn::ALL
        .iter()
        .copied()
        .find(|c| c.is_feature() && c.name() == name)
}

/// Where a named numeric column lives in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Core(CoreColumn),
    /// Index into [`FlowRecord::values`].
    Extra(usize),
}

impl RecordSchema {
    /// The type of extra column `i`, from the kind its plugin declared.
    pub fn extra_type(&self, i: usize) -> ColumnType {
        match self.kinds.get(i).copied().unwrap_or(0) {
            WEIR_FEATURE_TEXT => ColumnType::Text,
            WEIR_FEATURE_U64 | WEIR_FEATURE_BOOL => ColumnType::Int,
            _ => ColumnType::Float,
        }
    }

    /// The type of the `prediction` column: the class label, or 0/1 for anomaly models.
    fn prediction_type(&self) -> ColumnType {
        if self.classes.is_empty() {
            ColumnType::UInt
        } else {
            ColumnType::Text
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

    /// Every column's type, in [`RecordSchema::header`] order.
    pub fn column_types(&self) -> Vec<ColumnType> {
        let mut t: Vec<ColumnType> = CoreColumn::ALL.iter().map(|c| c.column_type()).collect();
        t.extend((0..self.extra.len()).map(|i| self.extra_type(i)));
        if self.scored {
            t.push(self.prediction_type());
            t.extend(self.scores.iter().map(|_| ColumnType::Float));
            t.extend([ColumnType::Text; 3]);
        }
        t
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

    /// A numeric column's value, as a model takes it.
    pub fn value(&self, rec: &FlowRecord, col: Column) -> f64 {
        match col {
            Column::Core(c) => c.read(rec, self).as_f64(),
            Column::Extra(i) => rec.values.get(i).copied().unwrap_or(f64::NAN),
        }
    }

    /// A record's `prediction`: its class label, or its 0/1 for anomaly models.
    pub fn prediction<'a>(&'a self, rec: &FlowRecord) -> Value<'a> {
        match rec.prediction {
            Some(p) if !self.classes.is_empty() => {
                Value::Str(self.classes.get(p as usize).map_or("", |s| s.as_str()))
            }
            Some(p) => Value::UInt(p.into()),
            None => Value::Missing,
        }
    }

    /// Walk a record's values in [`RecordSchema::header`] order.
    #[inline]
    pub fn walk<'a>(&'a self, rec: &'a FlowRecord, mut f: impl FnMut(Value<'a>)) {
        walk_core(rec, self, &mut f);
        let mut text = 0;
        for (i, v) in rec.values.iter().enumerate() {
            let ty = self.extra_type(i);
            if ty == ColumnType::Text {
                f(rec.texts.get(text).map_or(Value::Missing, Value::Str));
                text += 1;
            } else if v.is_nan() {
                f(Value::Missing);
            } else if ty == ColumnType::Int {
                f(Value::Int(*v as i64));
            } else {
                f(Value::Float(*v));
            }
        }
        if self.scored {
            f(self.prediction(rec));
            for i in 0..self.scores.len() {
                f(match rec.scores.get(i) {
                    Some(v) if !v.is_nan() => Value::Float(*v),
                    _ => Value::Missing,
                });
            }
            f(Value::Str(rec.score_status.as_str()));
            match &rec.model {
                Some(t) => {
                    f(Value::Str(&t.name));
                    f(Value::Str(&t.version));
                }
                None => {
                    f(Value::Str(""));
                    f(Value::Str(""));
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow::record::{Expiration, IntervalSpan, ModelTag, ScoreStatus, Texts};
    use weir_plugin_api::{FlowKeyV1, WEIR_FEATURE_F64};

    /// A record of `schema` with every value present (texts empty strings, numbers 0).
    pub(crate) fn full_record(schema: &RecordSchema, interval: Option<IntervalSpan>) -> FlowRecord {
        let mut texts = Texts::default();
        for _ in 0..schema.n_texts() {
            texts.push(Some(""));
        }
        FlowRecord {
            key: FlowKeyV1 {
                ip_version: 4,
                ..Default::default()
            },
            expiration: Expiration::Idle,
            worker: 0,
            interval,
            service: 0,
            bidirectional: Default::default(),
            src2dst: Default::default(),
            dst2src: Default::default(),
            values: vec![0.0; schema.extra.len()],
            texts,
            score_status: ScoreStatus::Scored,
            prediction: Some(0),
            scores: vec![0.0; schema.scores.len()],
            icmp: [0; 2],
            community_id: Default::default(),
            model: Some(std::sync::Arc::new(ModelTag {
                name: "m".into(),
                version: "1".into(),
            })),
        }
    }

    /// Schemas with every kind of extra column, scored (labels and 0/1) and not.
    pub(crate) fn schemas() -> Vec<RecordSchema> {
        let plain = RecordSchema {
            extra: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            provider: vec!["p".into(), "p".into(), "q".into(), "rates".into()],
            kinds: vec![
                WEIR_FEATURE_F64,
                WEIR_FEATURE_U64,
                WEIR_FEATURE_TEXT,
                WEIR_FEATURE_BOOL,
            ],
            services: vec!["web".into()],
            ..Default::default()
        };
        let mut labels = plain.clone();
        labels.scored = true;
        labels.scores = vec!["proba_x".into(), "proba_y".into()];
        labels.classes = vec!["x".into(), "y".into()];
        let mut anomaly = plain.clone();
        anomaly.scored = true;
        anomaly.scores = vec!["anomaly_score".into()];
        vec![RecordSchema::default(), plain, labels, anomaly]
    }

    #[test]
    fn the_walk_gives_each_column_a_value_of_its_type() {
        let span = IntervalSpan {
            start_ms: 1,
            end_ms: 2,
        };
        for s in schemas() {
            let types = s.column_types();
            assert_eq!(types.len(), s.header().len());
            for interval in [None, Some(span)] {
                let rec = full_record(&s, interval);
                let mut got = Vec::new();
                s.walk(&rec, |v| got.push(v.column_type()));
                assert_eq!(got.len(), types.len(), "{:?}", s.header());
                for (i, (g, t)) in got.iter().zip(&types).enumerate() {
                    // Missing only where the record kind has no value.
                    let name = &s.header()[i];
                    match g {
                        Some(g) => assert_eq!(g, t, "column {name}"),
                        None => assert!(
                            matches!(
                                (interval, name.as_str()),
                                (Some(_), "expiration_id")
                                    | (None, "interval_start_ms" | "interval_end_ms")
                            ),
                            "column {name} missing"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn core_columns_keep_nfstream_names_and_order() {
        let names = core_column_names();
        assert_eq!(names.len(), 30);
        assert_eq!(
            names[..8],
            [
                "src_ip",
                "src_port",
                "dst_ip",
                "dst_port",
                "protocol",
                "ip_version",
                "vlan_id",
                "tunnel_id"
            ]
        );
        let mut i = 8;
        for dir in ["bidirectional", "src2dst", "dst2src"] {
            for f in [
                "first_seen_ms",
                "last_seen_ms",
                "duration_ms",
                "packets",
                "bytes",
            ] {
                assert_eq!(names[i], format!("{dir}_{f}"));
                assert_eq!(core_column(&names[i]), Some(CoreColumn::ALL[i]));
                i += 1;
            }
        }
        assert_eq!(
            names[i..],
            [
                "expiration_id",
                "worker",
                "record_kind",
                "interval_start_ms",
                "interval_end_ms",
                "service",
                "community_id"
            ]
        );
        // Bookkeeping and text columns are no features.
        for n in ["src_ip", "expiration_id", "worker", "interval_start_ms"] {
            assert_eq!(core_column(n), None, "{n}");
        }
    }

    #[test]
    fn values_read_from_the_record() {
        let s = &schemas()[1];
        let mut r = full_record(s, None);
        r.key.src_port = 40000;
        r.service = 1;
        r.dst2src.first_seen_ms = 10;
        r.dst2src.last_seen_ms = 25;
        assert_eq!(CoreColumn::SrcPort.read(&r, s), Value::UInt(40000));
        assert_eq!(CoreColumn::Service.read(&r, s), Value::Str("web"));
        assert_eq!(s.value(&r, s.column("dst2src_duration_ms").unwrap()), 15.0);
        assert_eq!(CoreColumn::ExpirationId.read(&r, s), Value::Int(0));
        assert_eq!(s.column("c"), None, "a text column is no feature");
    }
}
