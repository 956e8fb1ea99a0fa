//! Alerts as Suricata eve.json alert events (`[sinks] alerts_format = "eve"`), so pipelines
//! that ingest Suricata (Filebeat's and Elastic Agent's suricata module, Logstash, Splunk)
//! take weir's alerts as they are.
//!
//! Each weir alert line (a model alert, or a heavy-hitter alert) becomes one eve object:
//! `timestamp` (ISO 8601 with zone, microseconds, as Suricata writes it), `event_type:
//! "alert"`, `src_ip`, `src_port`, `dest_ip`, `dest_port`, `proto` (the protocol's name),
//! `community_id`, `flow` (`pkts_toserver`, `pkts_toclient`, `bytes_toserver`,
//! `bytes_toclient`, `start`; the client is the flow's first sender) and `alert` (`action`,
//! `gid`, `signature_id`, `rev`, `signature`, `category`, `severity`), plus a `weir` object with
//! the original alert, so nothing is lost. Fields an alert has no value for (a heavy-hitter
//! alert on a destination has no source) are left out.
//!
//! Signature ids are weir's own, from 9,100,000 up (a range no public rule set uses):
//! 9100001 model class rule, 9100002 model anomaly rule, 9200001 heavy-hitter rate threshold,
//! 9200002 heavy-hitter fraction, 9200003 heavy-hitter top-k, 9200004 heavy hitter cleared.
//!
//! Alerts are few (per flow that fires, per report interval), so each line is converted from
//! its JSON text on the alerts thread, never on a worker.

use chrono::{DateTime, Datelike, Timelike};
use serde_json::{json, Map, Value};

/// The alerts file's format (`[sinks] alerts_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertsFormat {
    /// weir's own JSON lines.
    #[default]
    Jsonl,
    /// Suricata eve.json alert events.
    Eve,
}

/// `2024-01-15T10:23:45.123000+0000`: Suricata's timestamp form.
pub fn timestamp(ms: u64) -> String {
    let t = DateTime::from_timestamp_millis(ms.min(i64::MAX as u64) as i64).unwrap_or_default();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+0000",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        (ms % 1000) * 1000
    )
}

/// The protocol name Suricata writes in `proto` (IANA keywords), else the number.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        2 => "IGMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        41 => "IPv6".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// Split a heavy-hitter flow key, `a:p-b:q/proto` (`[v6]:p` for IPv6), into its parts.
fn split_flow_key(key: &str) -> Option<(String, u16, String, u16, u8)> {
    let (ends, proto) = key.rsplit_once('/')?;
    let end = |s: &str| -> Option<(String, u16)> {
        let (ip, port) = s.rsplit_once(':')?;
        Some((
            ip.trim_start_matches('[').trim_end_matches(']').to_string(),
            port.parse().ok()?,
        ))
    };
    // The separator is the '-' after the first endpoint's port.
    let cut = ends.char_indices().find_map(|(i, c)| {
        (c == '-' && end(&ends[..i]).is_some() && end(&ends[i + 1..]).is_some()).then_some(i)
    })?;
    let (a, pa) = end(&ends[..cut])?;
    let (b, pb) = end(&ends[cut + 1..])?;
    Some((a, pa, b, pb, proto.parse().ok()?))
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k)?.as_u64()
}

/// The eve line of one weir alert line; `None` when the line is not a weir alert.
pub fn to_eve(line: &str) -> Option<String> {
    let a: Value = serde_json::from_str(line).ok()?;
    let mut e = Map::new();
    let alert = if a.get("kind").and_then(Value::as_str) == Some("model") {
        e.insert("timestamp".into(), json!(timestamp(u(&a, "last_seen_ms")?)));
        e.insert("event_type".into(), json!("alert"));
        e.insert("src_ip".into(), a.get("src_ip")?.clone());
        e.insert("src_port".into(), a.get("src_port")?.clone());
        e.insert("dest_ip".into(), a.get("dst_ip")?.clone());
        e.insert("dest_port".into(), a.get("dst_port")?.clone());
        e.insert("proto".into(), json!(proto_name(u(&a, "protocol")? as u8)));
        if let Some(c) = a.get("community_id") {
            e.insert("community_id".into(), c.clone());
        }
        e.insert(
            "flow".into(),
            json!({
                "pkts_toserver": u(&a, "src2dst_packets").or(u(&a, "packets")),
                "pkts_toclient": u(&a, "dst2src_packets").unwrap_or(0),
                "bytes_toserver": u(&a, "src2dst_bytes").or(u(&a, "bytes")),
                "bytes_toclient": u(&a, "dst2src_bytes").unwrap_or(0),
                "start": timestamp(u(&a, "first_seen_ms")?),
            }),
        );
        let model = a.get("model").and_then(Value::as_str).unwrap_or("");
        let version = a.get("model_version").and_then(Value::as_str).unwrap_or("");
        let rule = a.get("rule").cloned().unwrap_or(Value::Null);
        let (sid, what) = match rule.get("class").and_then(Value::as_str) {
            Some(class) => (
                9_100_001,
                format!(
                    "class {class} with probability {}",
                    a.get("proba").cloned().unwrap_or(Value::Null)
                ),
            ),
            None => (
                9_100_002,
                format!(
                    "anomaly score {}",
                    a.get("anomaly_score").cloned().unwrap_or(Value::Null)
                ),
            ),
        };
        json!({
            "action": "allowed",
            "gid": 1,
            "signature_id": sid,
            "rev": 1,
            "signature": format!("WEIR model {model} {version}: {what}"),
            "category": "Anomalous flow (weir model)",
            "severity": 2,
        })
    } else {
        // A heavy-hitter alert.
        let key_type = a.get("key_type")?.as_str()?;
        let key = a.get("key")?.as_str()?;
        let kind = a.get("kind")?.as_str()?;
        e.insert("timestamp".into(), json!(timestamp(u(&a, "time_ms")?)));
        e.insert("event_type".into(), json!("alert"));
        let addr = key.split('/').next().unwrap_or(key).to_string();
        match key_type {
            "src_ip" | "src_prefix" => {
                e.insert("src_ip".into(), json!(addr));
            }
            "dst_ip" | "dst_prefix" => {
                e.insert("dest_ip".into(), json!(addr));
            }
            "flow" => {
                let (sa, sp, da, dp, proto) = split_flow_key(key)?;
                e.insert("src_ip".into(), json!(sa));
                e.insert("src_port".into(), json!(sp));
                e.insert("dest_ip".into(), json!(da));
                e.insert("dest_port".into(), json!(dp));
                e.insert("proto".into(), json!(proto_name(proto)));
            }
            _ => return None,
        }
        if let Some(c) = a.get("community_id") {
            e.insert("community_id".into(), c.clone());
        }
        let (sid, severity, what) = match kind {
            "absolute" => (9_200_001, 2, "rate threshold crossed"),
            "fraction" => (9_200_002, 2, "share of all traffic crossed"),
            "top_k" => (9_200_003, 3, "among the top talkers"),
            _ => (9_200_004, 3, "back below its threshold"),
        };
        json!({
            "action": "allowed",
            "gid": 1,
            "signature_id": sid,
            "rev": 1,
            "signature": format!("WEIR heavy hitter {key_type} {key}: {what}"),
            "category": "Heavy hitter (weir rates)",
            "severity": severity,
        })
    };
    e.insert("alert".into(), alert);
    e.insert("weir".into(), a);
    Some(Value::Object(e).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_suricatas_form() {
        assert_eq!(
            timestamp(1_705_314_225_123),
            "2024-01-15T10:23:45.123000+0000"
        );
    }

    #[test]
    fn flow_keys_split_for_both_families() {
        assert_eq!(
            split_flow_key("10.1.2.3:40000-192.168.0.9:80/6"),
            Some(("10.1.2.3".into(), 40000, "192.168.0.9".into(), 80, 6))
        );
        assert_eq!(
            split_flow_key("[2001:db8::1]:53-[2001:db8::2]:5353/17"),
            Some(("2001:db8::1".into(), 53, "2001:db8::2".into(), 5353, 17))
        );
    }

    #[test]
    fn a_heavy_hitter_alert_becomes_an_eve_alert() {
        let line = r#"{"time_ms":1500,"worker":1,"key_type":"src_prefix","key":"10.1.2.0/24","kind":"top_k","rate_pps":2.5,"rate_bps":8000.0,"threshold":0.05}"#;
        let e: Value = serde_json::from_str(&to_eve(line).unwrap()).unwrap();
        assert_eq!(e["event_type"], "alert");
        assert_eq!(e["src_ip"], "10.1.2.0");
        assert_eq!(e["alert"]["signature_id"], 9_200_003);
        assert_eq!(e["weir"]["key"], "10.1.2.0/24");
        assert_eq!(e["timestamp"], "1970-01-01T00:00:01.500000+0000");
    }
}
