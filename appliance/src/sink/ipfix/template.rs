//! weir's IPFIX templates: which Information Element carries which record column, and how a
//! record is encoded in a Data Record of its template (RFC 7011 §3.4.1, §3.4.3).
//!
//! One template per IP version (IPv4 and IPv6 addresses have their own elements) and per
//! record schema: a template lists the core columns and the selected named columns
//! ([`Selection`]: by default the rates and the scores; `sinks.ipfix_columns` picks plugin
//! features too), so they travel with the flow key.
//!
//! **Standard elements** (IANA registry, RFC 7012 §5): `sourceIPv4Address` (8) /
//! `sourceIPv6Address` (27), `destinationIPv4Address` (12) / `destinationIPv6Address` (28),
//! `sourceTransportPort` (7), `destinationTransportPort` (11), `protocolIdentifier` (4),
//! `vlanId` (58), `ipVersion` (60), `flowEndReason` (136), `flowStartMilliseconds` (152) and
//! `flowEndMilliseconds` (153) for the biflow as a whole (its first and last packet, as YAF
//! exports them), `packetDeltaCount` (2) and `octetDeltaCount` (1) for the forward direction
//! (src to dst: the flow's initiator, RFC 5103 §5.1).
//!
//! **Reverse elements** (RFC 5103 §6.1): the same element ids in the reverse PEN 29305 for the
//! reverse direction (dst to src): `reversePacketDeltaCount` and `reverseOctetDeltaCount`.
//! The per-direction times are weir's own elements (4 to 6 below), not RFC 5103's
//! `reverseFlowStartMilliseconds`/`reverseFlowEndMilliseconds`: nfdump 1.7 maps the reverse
//! counters to its out packets/bytes but reads any other reverse element as its forward
//! counterpart, so a reverse flowStart would overwrite the flow's start there.
//!
//! **weir's enterprise elements** (the PEN of `sinks.ipfix_enterprise_number`, by default
//! 32473, the number RFC 5612 reserves for documentation: a placeholder until weir has its own):
//!
//! | id | name | type | column |
//! | --- | --- | --- | --- |
//! | 1 | `weirExpirationId` | signed8 | `expiration_id` |
//! | 2 | `weirWorker` | unsigned16 | `worker` |
//! | 3 | `weirTunnelId` | unsigned32 | `tunnel_id` |
//! | 4 | `weirForwardFlowEndMilliseconds` | dateTimeMilliseconds | `src2dst_last_seen_ms` |
//! | 5 | `weirReverseFlowStartMilliseconds` | dateTimeMilliseconds | `dst2src_first_seen_ms` (0: no reverse packet) |
//! | 6 | `weirReverseFlowEndMilliseconds` | dateTimeMilliseconds | `dst2src_last_seen_ms` |
//! | 7 | `weirPrediction` | string | `prediction` (the class label, as in CSV) |
//! | 8 | `weirScoreStatus` | string | `score_status` |
//! | 9 | `weirCommunityId` | string, 30 octets | `community_id` (Community ID v1) |
//! | 1024 + FNV-1a(name) mod 31744 | the column's name | float64 (NaN = missing) | every numeric plugin feature, rate and score column |
//! | 1024 + FNV-1a(name) mod 31744 | the column's name | string, variable length (empty = missing) | every text plugin feature (ABI 1.4) |
//!
//! The id of a named column is derived from its name alone (32-bit FNV-1a of the UTF-8 name),
//! so it stays the same whatever other plugins are loaded; two names that hash to one id (none
//! of the shipped columns do, see the tests) are resolved by taking the next free id in column
//! order, logged as a warning at start.

use super::message::MessageBuf;
use crate::flow::record::{Expiration, FlowRecord, RecordSchema};
use crate::flow::schema::{CoreColumn, Value};
use std::net::IpAddr;

/// Private Enterprise Number of RFC 5103's reverse Information Elements.
pub const REVERSE_PEN: u32 = 29305;
/// The PEN RFC 5612 reserves for documentation: weir's placeholder.
pub const DEFAULT_WEIR_PEN: u32 = 32473;
/// The Enterprise bit of a field specifier's element id (RFC 7011 §3.2).
const ENTERPRISE_BIT: u16 = 0x8000;
/// Field length meaning "variable length" (RFC 7011 §7).
pub const VARLEN: u16 = 0xffff;
/// Template ids: IPv4 then IPv6 records.
pub const TEMPLATE_V4: u16 = 256;
pub const TEMPLATE_V6: u16 = 257;

/// IANA Information Element ids (RFC 7012 and the IANA IPFIX registry).
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const VLAN_ID: u16 = 58;
    pub const IP_VERSION: u16 = 60;
    pub const FLOW_END_REASON: u16 = 136;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
}

/// weir's enterprise element ids with a fixed meaning (see the module doc).
pub mod weir_ie {
    pub const EXPIRATION_ID: u16 = 1;
    pub const WORKER: u16 = 2;
    pub const TUNNEL_ID: u16 = 3;
    pub const FORWARD_FLOW_END_MILLISECONDS: u16 = 4;
    pub const REVERSE_FLOW_START_MILLISECONDS: u16 = 5;
    pub const REVERSE_FLOW_END_MILLISECONDS: u16 = 6;
    pub const PREDICTION: u16 = 7;
    pub const SCORE_STATUS: u16 = 8;
    pub const COMMUNITY_ID: u16 = 9;
    /// Named columns get ids from here up.
    pub const FIRST_NAMED: u16 = 1024;
}

/// A field specifier (RFC 7011 §3.2): element id, length, enterprise number (0 = IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub id: u16,
    pub len: u16,
    pub pen: u32,
}

impl FieldSpec {
    /// Octets of this specifier in a template record.
    pub fn spec_len(&self) -> usize {
        if self.pen == 0 {
            4
        } else {
            8
        }
    }
}

/// Where a field's value comes from in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// A core column of the record schema, encoded in the field's length.
    Core(CoreColumn),
    /// `flowEndReason`, from the record's expiration.
    FlowEndReason,
    /// `weirExpirationId`: the record's expiration, also in interval records (where the
    /// `expiration_id` column is empty: a fixed-length field cannot be).
    Expiration,
    /// `values[i]`: a plugin feature or a rate.
    Extra(usize),
    /// `texts.get(j)`: a text plugin feature (ABI 1.4), a variable-length string.
    Text(usize),
    Prediction,
    /// `scores[i]`.
    Score(usize),
    ScoreStatus,
}

/// One template: its id, fields, and the octets of its fixed-length part.
#[derive(Clone, Debug)]
pub struct Template {
    pub id: u16,
    fields: Vec<(FieldSpec, Source)>,
    fixed_len: usize,
    varlen: bool,
    /// The records' schema (service names, prediction labels).
    schema: RecordSchema,
}

/// 32-bit FNV-1a: a stable hash of a column name.
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The enterprise id a column name hashes to (before collisions are resolved).
pub fn named_id(name: &str) -> u16 {
    weir_ie::FIRST_NAMED + (fnv1a(name) % (0x8000 - weir_ie::FIRST_NAMED as u32)) as u16
}

/// Enterprise ids of named columns, in order: each its [`named_id`], or on a collision the
/// next free id (wrapping within the named range). Returns the ids and the collided names.
pub fn named_ids<'a>(names: impl IntoIterator<Item = &'a str>) -> (Vec<u16>, Vec<String>) {
    let mut used = std::collections::HashSet::new();
    let mut ids = Vec::new();
    let mut collided = Vec::new();
    for name in names {
        let mut id = named_id(name);
        if used.contains(&id) {
            collided.push(name.to_string());
            while used.contains(&id) {
                id = if id == 0x7fff {
                    weir_ie::FIRST_NAMED
                } else {
                    id + 1
                };
            }
        }
        used.insert(id);
        ids.push(id);
    }
    (ids, collided)
}

/// `flowEndReason` (IANA registry, RFC 5102 §5.11.3) of a record's expiration.
pub fn flow_end_reason(e: Expiration) -> u8 {
    match e {
        Expiration::Idle => 0x01,
        Expiration::Active => 0x02,
        Expiration::Teardown => 0x03,
        Expiration::Flush => 0x04,
        Expiration::Evicted => 0x05,
    }
}

/// Which named columns (plugin features, rates, scores) a template carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Indices into [`RecordSchema::extra`], in schema order.
    pub extra: Vec<usize>,
    /// Indices into [`RecordSchema::scores`].
    pub scores: Vec<usize>,
}

impl Selection {
    /// The default: the rate columns and every score column.
    pub fn default_for(schema: &RecordSchema) -> Selection {
        Selection {
            extra: (0..schema.extra.len())
                .filter(|&i| schema.provider.get(i).map(|p| p.as_str()) == Some("rates"))
                .collect(),
            scores: if schema.scored {
                (0..schema.scores.len()).collect()
            } else {
                vec![]
            },
        }
    }

    /// Every named column.
    pub fn all(schema: &RecordSchema) -> Selection {
        Selection {
            extra: (0..schema.extra.len()).collect(),
            scores: if schema.scored {
                (0..schema.scores.len()).collect()
            } else {
                vec![]
            },
        }
    }

    /// The columns named in `names` (`"*"` = all), or the first name that is not a column of
    /// these records.
    pub fn named(schema: &RecordSchema, names: &[String]) -> Result<Selection, String> {
        if names.iter().any(|n| n == "*") {
            return Ok(Selection::all(schema));
        }
        let mut sel = Selection {
            extra: vec![],
            scores: vec![],
        };
        for n in names {
            if let Some(i) = schema.extra.iter().position(|c| c == n) {
                sel.extra.push(i);
            } else if let Some(i) = schema.scores.iter().position(|c| c == n) {
                if schema.scored {
                    sel.scores.push(i);
                }
            } else {
                return Err(n.clone());
            }
        }
        sel.extra.sort_unstable();
        sel.extra.dedup();
        sel.scores.sort_unstable();
        sel.scores.dedup();
        Ok(sel)
    }

    /// The selected column names in template order (extra, then scores).
    pub fn names<'a>(&self, schema: &'a RecordSchema) -> Vec<&'a str> {
        let mut v: Vec<&str> = self
            .extra
            .iter()
            .map(|&i| schema.extra[i].as_str())
            .collect();
        v.extend(self.scores.iter().map(|&i| schema.scores[i].as_str()));
        v
    }
}

impl Template {
    /// The IPv4 (`ip_version == 4`) or IPv6 template for a schema; `pen` is weir's enterprise
    /// number. Also returns the column names whose hashed id collided.
    pub fn for_schema(
        schema: &RecordSchema,
        sel: &Selection,
        ip_version: u8,
        pen: u32,
    ) -> (Template, Vec<String>) {
        let std = |id, len| FieldSpec { id, len, pen: 0 };
        let rev = |id, len| FieldSpec {
            id,
            len,
            pen: REVERSE_PEN,
        };
        let weir = |id, len| FieldSpec { id, len, pen };
        let v4 = ip_version == 4;
        let core = |spec, c| (spec, Source::Core(c));
        let (src_ip, dst_ip) = if v4 {
            (
                std(ie::SOURCE_IPV4_ADDRESS, 4),
                std(ie::DESTINATION_IPV4_ADDRESS, 4),
            )
        } else {
            (
                std(ie::SOURCE_IPV6_ADDRESS, 16),
                std(ie::DESTINATION_IPV6_ADDRESS, 16),
            )
        };
        let mut f: Vec<(FieldSpec, Source)> = vec![
            core(src_ip, CoreColumn::SrcIp),
            core(dst_ip, CoreColumn::DstIp),
            core(std(ie::SOURCE_TRANSPORT_PORT, 2), CoreColumn::SrcPort),
            core(std(ie::DESTINATION_TRANSPORT_PORT, 2), CoreColumn::DstPort),
            core(std(ie::PROTOCOL_IDENTIFIER, 1), CoreColumn::Protocol),
            core(std(ie::VLAN_ID, 2), CoreColumn::VlanId),
            core(std(ie::IP_VERSION, 1), CoreColumn::IpVersion),
            core(
                std(ie::FLOW_START_MILLISECONDS, 8),
                CoreColumn::BidirectionalFirstSeenMs,
            ),
            core(
                std(ie::FLOW_END_MILLISECONDS, 8),
                CoreColumn::BidirectionalLastSeenMs,
            ),
            core(std(ie::PACKET_DELTA_COUNT, 8), CoreColumn::Src2DstPackets),
            core(std(ie::OCTET_DELTA_COUNT, 8), CoreColumn::Src2DstBytes),
            core(rev(ie::PACKET_DELTA_COUNT, 8), CoreColumn::Dst2SrcPackets),
            core(rev(ie::OCTET_DELTA_COUNT, 8), CoreColumn::Dst2SrcBytes),
            (std(ie::FLOW_END_REASON, 1), Source::FlowEndReason),
            (weir(weir_ie::EXPIRATION_ID, 1), Source::Expiration),
            core(weir(weir_ie::WORKER, 2), CoreColumn::Worker),
            core(weir(weir_ie::TUNNEL_ID, 4), CoreColumn::TunnelId),
            core(
                weir(weir_ie::FORWARD_FLOW_END_MILLISECONDS, 8),
                CoreColumn::Src2DstLastSeenMs,
            ),
            core(
                weir(weir_ie::REVERSE_FLOW_START_MILLISECONDS, 8),
                CoreColumn::Dst2SrcFirstSeenMs,
            ),
            core(
                weir(weir_ie::REVERSE_FLOW_END_MILLISECONDS, 8),
                CoreColumn::Dst2SrcLastSeenMs,
            ),
            core(
                weir(weir_ie::COMMUNITY_ID, crate::flow::community_id::LEN as u16),
                CoreColumn::CommunityId,
            ),
        ];
        let (ids, collided) = named_ids(sel.names(schema));
        let mut ids = ids.into_iter();
        for &i in &sel.extra {
            let id = ids.next().expect("one id per named column");
            match schema.text_index(i) {
                Some(j) => f.push((weir(id, VARLEN), Source::Text(j))),
                None => f.push((weir(id, 8), Source::Extra(i))),
            }
        }
        if schema.scored {
            f.push((weir(weir_ie::PREDICTION, VARLEN), Source::Prediction));
            for &i in &sel.scores {
                let id = ids.next().expect("one id per named column");
                f.push((weir(id, 8), Source::Score(i)));
            }
            f.push((weir(weir_ie::SCORE_STATUS, VARLEN), Source::ScoreStatus));
        }
        let fixed_len = f
            .iter()
            .filter(|(s, _)| s.len != VARLEN)
            .map(|(s, _)| s.len as usize)
            .sum();
        let varlen = f.iter().any(|(s, _)| s.len == VARLEN);
        let t = Template {
            id: if v4 { TEMPLATE_V4 } else { TEMPLATE_V6 },
            fields: f,
            fixed_len,
            varlen,
            schema: schema.clone(),
        };
        (t, collided)
    }

    /// The field specifiers, in order.
    pub fn specs(&self) -> impl Iterator<Item = FieldSpec> + '_ {
        self.fields.iter().map(|(s, _)| *s)
    }

    /// Octets of this template's Template Record (§3.4.1): id, field count, specifiers.
    pub fn definition_len(&self) -> usize {
        4 + self.specs().map(|s| s.spec_len()).sum::<usize>()
    }

    /// Write the Template Record into the open Template Set.
    pub fn write_definition(&self, m: &mut MessageBuf) {
        m.put_u16(self.id);
        m.put_u16(self.fields.len() as u16);
        for s in self.specs() {
            if s.pen == 0 {
                m.put_u16(s.id);
                m.put_u16(s.len);
            } else {
                m.put_u16(s.id | ENTERPRISE_BIT);
                m.put_u16(s.len);
                m.put_u32(s.pen);
            }
        }
    }

    /// The smallest Data Record of this template (variable-length fields empty).
    pub fn min_record_len(&self) -> usize {
        self.fixed_len + self.fields.iter().filter(|(s, _)| s.len == VARLEN).count()
    }

    /// The `prediction` column as text, as CSV writes it (the label, or 0/1; "" when none),
    /// formatted into `buf` (no allocation).
    fn prediction_text<'a>(&'a self, rec: &FlowRecord, buf: &'a mut [u8; 20]) -> &'a [u8] {
        match self.schema.prediction(rec) {
            Value::Str(s) => s.as_bytes(),
            Value::UInt(p) => {
                let mut at = buf.len();
                let mut p = p;
                loop {
                    at -= 1;
                    buf[at] = b'0' + (p % 10) as u8;
                    p /= 10;
                    if p == 0 {
                        break;
                    }
                }
                &buf[at..]
            }
            _ => b"",
        }
    }

    /// Octets of `rec`'s Data Record (§3.4.3).
    pub fn record_len(&self, rec: &FlowRecord) -> usize {
        if !self.varlen {
            return self.fixed_len;
        }
        let mut n = self.fixed_len;
        for (_, src) in &self.fields {
            n += match *src {
                Source::Prediction => {
                    super::message::varlen_size(self.prediction_text(rec, &mut [0; 20]).len())
                }
                Source::ScoreStatus => super::message::varlen_size(rec.score_status.as_str().len()),
                Source::Text(j) => {
                    super::message::varlen_size(rec.texts.get(j).map_or(0, str::len))
                }
                _ => 0,
            };
        }
        n
    }

    /// Write `rec` as a Data Record into the open Data Set (the caller checked that
    /// [`Template::record_len`] octets fit).
    pub fn write_record(&self, rec: &FlowRecord, m: &mut MessageBuf) {
        for (spec, src) in &self.fields {
            match *src {
                Source::Core(c) => put_fixed(m, c.read(rec, &self.schema), spec.len),
                Source::FlowEndReason => m.put_u8(flow_end_reason(rec.expiration)),
                Source::Expiration => m.put_u8(rec.expiration as i8 as u8),
                Source::Extra(i) => m.put_f64(rec.values.get(i).copied().unwrap_or(f64::NAN)),
                Source::Text(j) => m.put_varlen(rec.texts.get(j).unwrap_or("").as_bytes()),
                Source::Score(i) => m.put_f64(rec.scores.get(i).copied().unwrap_or(f64::NAN)),
                Source::Prediction => m.put_varlen(self.prediction_text(rec, &mut [0; 20])),
                Source::ScoreStatus => m.put_varlen(rec.score_status.as_str().as_bytes()),
            }
            debug_assert!(spec.len == VARLEN || spec.len > 0);
        }
        m.count_data_record();
    }
}

/// A core column's value in a fixed-length field of `len` octets, in network order: an
/// address in its 4 or 16 octets, an integer in `len` octets, text in its bytes (cut or padded
/// with zeros to `len`), a missing value as zeros.
fn put_fixed(m: &mut MessageBuf, v: Value<'_>, len: u16) {
    let len = len as usize;
    match v {
        Value::Ip(ip) => {
            let o = match ip {
                IpAddr::V4(a) => {
                    let mut o = [0u8; 16];
                    o[..4].copy_from_slice(&a.octets());
                    o
                }
                IpAddr::V6(a) => a.octets(),
            };
            m.put_bytes(&o[..len.min(16)]);
        }
        Value::UInt(u) => put_int(m, u, len),
        Value::Int(i) => put_int(m, i as u64, len),
        Value::Float(x) => put_int(m, x.to_bits(), len),
        Value::Str(s) => {
            let b = &s.as_bytes()[..s.len().min(len)];
            m.put_bytes(b);
            put_int(m, 0, len - b.len());
        }
        Value::Missing => put_int(m, 0, len),
    }
}

/// The low `len` octets of `v`, most significant first (zeros before them past 8 octets).
#[inline]
fn put_int(m: &mut MessageBuf, v: u64, len: usize) {
    match len {
        1 => m.put_u8(v as u8),
        2 => m.put_u16(v as u16),
        4 => m.put_u32(v as u32),
        8 => m.put_u64(v),
        _ => {
            for i in (0..len).rev() {
                m.put_u8(if i < 8 { (v >> (8 * i)) as u8 } else { 0 });
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::flow::record::{DirCounters, ScoreStatus};
    use weir_plugin_api::FlowKeyV1;

    pub(crate) fn record(v: u8) -> FlowRecord {
        let mut key = FlowKeyV1::default();
        if v == 4 {
            key.src_ip[..4].copy_from_slice(&[10, 0, 0, 1]);
            key.dst_ip[..4].copy_from_slice(&[10, 0, 0, 2]);
        } else {
            key.src_ip = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            key.dst_ip = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        }
        key.src_port = 40000;
        key.dst_port = 443;
        key.protocol = 6;
        key.ip_version = v;
        key.vlan_id = 12;
        FlowRecord {
            key,
            expiration: Expiration::Idle,
            worker: 1,
            service: 0,
            interval: None,
            bidirectional: DirCounters {
                first_seen_ms: 1_600_000_000_000,
                last_seen_ms: 1_600_000_000_900,
                packets: 5,
                bytes: 700,
            },
            src2dst: DirCounters {
                first_seen_ms: 1_600_000_000_000,
                last_seen_ms: 1_600_000_000_800,
                packets: 3,
                bytes: 300,
            },
            dst2src: DirCounters {
                first_seen_ms: 1_600_000_000_100,
                last_seen_ms: 1_600_000_000_900,
                packets: 2,
                bytes: 400,
            },
            values: vec![1.5, f64::NAN],
            texts: Default::default(),
            score_status: ScoreStatus::None,
            prediction: None,
            scores: vec![],
            icmp: [0; 2],
            community_id: Default::default(),
            model: None,
        }
    }

    pub(crate) fn schema() -> RecordSchema {
        RecordSchema {
            extra: vec!["decay_pps".into(), "udps.payload".into()],
            provider: vec!["rates".into(), "x".into()],
            kinds: vec![0, 0],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{record, schema};
    use super::*;
    use crate::flow::record::ScoreStatus;

    #[test]
    fn text_columns_are_variable_length_strings() {
        // A text column (ABI 1.4) between two numeric ones: a VARLEN field whose bytes are the
        // record's text, empty when missing; the numeric columns keep their 8 bytes.
        let mut sc = schema();
        sc.extra.insert(1, "application_name".into());
        sc.provider.insert(1, "ndpi".into());
        sc.kinds.insert(1, weir_plugin_api::WEIR_FEATURE_TEXT);
        let (t, _) = Template::for_schema(&sc, &Selection::all(&sc), 4, DEFAULT_WEIR_PEN);
        let specs: Vec<FieldSpec> = t.specs().collect();
        let n = specs.len();
        assert_eq!(
            [specs[n - 3].len, specs[n - 2].len, specs[n - 1].len],
            [8, VARLEN, 8]
        );
        let mut rec = record(4);
        rec.values = vec![1.5, f64::NAN, 2.5];
        let fixed = t.record_len(&rec) - 1; // a missing text takes one length octet
        rec.texts.push(Some("TLS.YouTube"));
        assert_eq!(t.record_len(&rec), fixed + 1 + 11);
        let mut m = MessageBuf::new(1400);
        m.set(t.id);
        t.write_record(&rec, &mut m);
        let b = m.finish(0, 0, 1).to_vec();
        // After the message and set headers; the set may end in padding.
        assert!(b.len() >= 20 + t.record_len(&rec));
        let r = &b[20..20 + t.record_len(&rec)];
        // The tail: decay_pps (8), the text (1 + 11), the last number (8).
        let tail = &r[r.len() - 8 - 12..];
        assert_eq!(tail[0], 11);
        assert_eq!(&tail[1..12], b"TLS.YouTube");
        assert_eq!(f64::from_be_bytes(tail[12..20].try_into().unwrap()), 2.5);
    }

    #[test]
    fn ipv4_template_definition_and_record() {
        let (t, collided) =
            Template::for_schema(&schema(), &Selection::all(&schema()), 4, DEFAULT_WEIR_PEN);
        assert!(collided.is_empty());
        // 12 standard + 2 reverse + 7 weir fixed + 2 named fields.
        assert_eq!(t.specs().count(), 23);
        let std_fields = t.specs().filter(|s| s.pen == 0).count();
        assert_eq!(std_fields, 12);
        assert_eq!(
            t.definition_len(),
            4 + std_fields * 4 + (23 - std_fields) * 8
        );
        // addresses 4+4, ports 2+2, proto 1, vlan 2, version 1, 2 times 16, 4 counters 32,
        // end reason 1, weir 1+2+4+8+8+8+30, 2 named 16.
        assert_eq!(
            t.record_len(&record(4)),
            8 + 4 + 1 + 2 + 1 + 16 + 32 + 1 + 31 + 30 + 16
        );
        let mut m = MessageBuf::new(1400);
        m.set(t.id);
        t.write_record(&record(4), &mut m);
        let b = m.finish(0, 0, 1).to_vec();
        let r = &b[20..];
        assert_eq!(&r[0..4], &[10, 0, 0, 1]);
        assert_eq!(&r[4..8], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([r[8], r[9]]), 40000);
        assert_eq!(u16::from_be_bytes([r[10], r[11]]), 443);
        assert_eq!(r[12], 6);
        assert_eq!(u16::from_be_bytes([r[13], r[14]]), 12);
        assert_eq!(r[15], 4);
        let u64_at = |at: usize| u64::from_be_bytes(r[at..at + 8].try_into().unwrap());
        assert_eq!(u64_at(16), 1_600_000_000_000);
        assert_eq!(u64_at(24), 1_600_000_000_900);
        assert_eq!(
            [u64_at(32), u64_at(40), u64_at(48), u64_at(56)],
            [3, 300, 2, 400]
        );
        assert_eq!(r[64], 0x01, "idle timeout");
        assert_eq!(r[65], 0, "expiration_id 0");
        assert_eq!(u16::from_be_bytes([r[66], r[67]]), 1, "worker");
        assert_eq!(u64_at(72), 1_600_000_000_800, "src2dst_last_seen_ms");
        assert_eq!(
            [u64_at(80), u64_at(88)],
            [1_600_000_000_100, 1_600_000_000_900]
        );
        assert_eq!(&r[96..126], record(4).community_id.as_bytes());
        assert_eq!(f64::from_bits(u64_at(126)), 1.5);
        assert!(f64::from_bits(u64_at(134)).is_nan());
    }

    #[test]
    fn template_record_uses_enterprise_bit_and_pen() {
        let (t, _) = Template::for_schema(&schema(), &Selection::all(&schema()), 6, 99);
        let mut m = MessageBuf::new(1400);
        m.set(crate::sink::ipfix::message::TEMPLATE_SET_ID);
        t.write_definition(&mut m);
        let b = m.finish(0, 0, 0).to_vec();
        let d = &b[20..];
        assert_eq!(u16::from_be_bytes([d[0], d[1]]), TEMPLATE_V6);
        assert_eq!(u16::from_be_bytes([d[2], d[3]]) as usize, t.specs().count());
        // The first field: sourceIPv6Address, 16 octets, no enterprise number.
        assert_eq!(&d[4..8], &[0, 27, 0, 16]);
        // The reverse packetDeltaCount: 0x8002, 8 octets, PEN 29305.
        let specs: Vec<FieldSpec> = t.specs().collect();
        let at = 4 + specs[..11].iter().map(|s| s.spec_len()).sum::<usize>();
        assert_eq!(&d[at..at + 4], &[0x80, 0x02, 0, 8]);
        assert_eq!(
            u32::from_be_bytes(d[at + 4..at + 8].try_into().unwrap()),
            29305
        );
        assert_eq!(
            b.len(),
            20 + t.definition_len() + crate::sink::ipfix::message::padding(4 + t.definition_len())
        );
    }

    #[test]
    fn scored_records_carry_label_and_status_as_strings() {
        let mut s = schema();
        s.scored = true;
        s.scores = vec!["proba_web".into(), "proba_dns".into()];
        s.classes = vec!["web".into(), "dns".into()];
        let (t, _) = Template::for_schema(&s, &Selection::all(&s), 4, DEFAULT_WEIR_PEN);
        let mut r = record(4);
        r.prediction = Some(1);
        r.scores = vec![0.25, 0.75];
        r.score_status = ScoreStatus::Scored;
        let len = t.record_len(&r);
        assert_eq!(len, t.min_record_len() + 3 + 6);
        let mut m = MessageBuf::new(1400);
        m.set(t.id);
        t.write_record(&r, &mut m);
        let b = m.finish(0, 0, 0).to_vec();
        assert_eq!(
            b.len(),
            20 + len + crate::sink::ipfix::message::padding(4 + len)
        );
        let rec = &b[20..20 + len];
        let fixed_before = t.fixed_len - 16; // the two score fields follow the label
        assert_eq!(rec[fixed_before], 3);
        assert_eq!(&rec[fixed_before + 1..fixed_before + 4], b"dns");
        assert_eq!(&rec[len - 7..], b"\x06scored");
    }

    #[test]
    fn anomaly_predictions_are_their_number_as_text() {
        // No class labels: `prediction` is the number, as CSV writes it.
        let mut s = schema();
        s.scored = true;
        s.scores = vec!["anomaly_score".into()];
        let (t, _) = Template::for_schema(&s, &Selection::all(&s), 4, DEFAULT_WEIR_PEN);
        let fixed_before = t.fixed_len - 8; // the score field follows the label
        for (p, text) in [
            (Some(0), "0"),
            (Some(1), "1"),
            (Some(u32::MAX), "4294967295"),
            (None, ""),
        ] {
            let mut r = record(4);
            r.prediction = p;
            r.scores = vec![0.5];
            let len = t.record_len(&r);
            assert_eq!(len, t.min_record_len() + text.len());
            let mut m = MessageBuf::new(1400);
            m.set(t.id);
            t.write_record(&r, &mut m);
            let b = m.finish(0, 0, 0).to_vec();
            let rec = &b[20..20 + len];
            assert_eq!(rec[fixed_before] as usize, text.len());
            assert_eq!(
                &rec[fixed_before + 1..fixed_before + 1 + text.len()],
                text.as_bytes()
            );
        }
    }

    #[test]
    fn named_ids_are_stable_and_collisions_resolved() {
        let (a, _) = named_ids(["decay_pps", "peak_bps"]);
        let (b, _) = named_ids(["x", "decay_pps", "y", "peak_bps"]);
        assert_eq!(a[0], b[1]);
        assert_eq!(a[1], b[3]);
        assert!(a
            .iter()
            .all(|&id| (weir_ie::FIRST_NAMED..0x8000).contains(&id)));
        let (c, collided) = named_ids(["same", "same"]);
        assert_eq!(collided, vec!["same".to_string()]);
        assert_ne!(c[0], c[1]);
    }

    #[test]
    fn selection_defaults_to_rates_and_scores_and_refuses_unknown_names() {
        let mut s = schema();
        s.scored = true;
        s.scores = vec!["proba_a".into()];
        let d = Selection::default_for(&s);
        assert_eq!(d.names(&s), vec!["decay_pps", "proba_a"]);
        let n = Selection::named(&s, &["udps.payload".into()]).unwrap();
        assert_eq!(n.names(&s), vec!["udps.payload"]);
        assert_eq!(
            Selection::named(&s, &["*".into()]).unwrap(),
            Selection::all(&s)
        );
        assert_eq!(Selection::named(&s, &["nope".into()]).unwrap_err(), "nope");
        let (t, _) = Template::for_schema(&s, &d, 4, DEFAULT_WEIR_PEN);
        // 21 core fields, decay_pps, prediction, proba_a, score_status.
        assert_eq!(t.specs().count(), 25);
    }

    #[test]
    fn flow_end_reasons_follow_the_iana_registry() {
        assert_eq!(flow_end_reason(Expiration::Idle), 1);
        assert_eq!(flow_end_reason(Expiration::Active), 2);
        assert_eq!(flow_end_reason(Expiration::Teardown), 3);
        assert_eq!(flow_end_reason(Expiration::Flush), 4);
        assert_eq!(flow_end_reason(Expiration::Evicted), 5);
    }
}
