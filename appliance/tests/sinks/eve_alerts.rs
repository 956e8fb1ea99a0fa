//! `[sinks] alerts_format = "eve"`: every alert line (heavy-hitter and model alerts of a real
//! `weir extract` run) validates against a JSON schema of the fields Suricata documents for
//! eve.json alert events (checked with the `jsonschema` package), and the eve lines are the
//! weir lines one for one, with the records' Community IDs.

use crate::support::{paths::*, records::*, run::*};
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

/// Suricata's eve alert event, as its documentation describes the fields (types, the
/// timestamp's form, the alert and flow objects). Other fields are allowed, as in Suricata.
const EVE_ALERT_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["timestamp", "event_type", "alert"],
  "anyOf": [{"required": ["src_ip"]}, {"required": ["dest_ip"]}],
  "properties": {
    "timestamp": {"type": "string",
                  "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}[+-][0-9]{4}$"},
    "event_type": {"const": "alert"},
    "src_ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
    "dest_ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
    "src_port": {"type": "integer", "minimum": 0, "maximum": 65535},
    "dest_port": {"type": "integer", "minimum": 0, "maximum": 65535},
    "proto": {"type": "string", "minLength": 1},
    "community_id": {"type": "string", "pattern": "^1:[A-Za-z0-9+/]{27}=$"},
    "flow_id": {"type": "integer"},
    "flow": {
      "type": "object",
      "required": ["pkts_toserver", "pkts_toclient", "bytes_toserver", "bytes_toclient", "start"],
      "properties": {
        "pkts_toserver": {"type": "integer", "minimum": 0},
        "pkts_toclient": {"type": "integer", "minimum": 0},
        "bytes_toserver": {"type": "integer", "minimum": 0},
        "bytes_toclient": {"type": "integer", "minimum": 0},
        "start": {"type": "string",
                  "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}[+-][0-9]{4}$"}
      }
    },
    "alert": {
      "type": "object",
      "required": ["action", "gid", "signature_id", "rev", "signature", "category", "severity"],
      "properties": {
        "action": {"enum": ["allowed", "blocked"]},
        "gid": {"type": "integer"},
        "signature_id": {"type": "integer"},
        "rev": {"type": "integer"},
        "signature": {"type": "string", "minLength": 1},
        "category": {"type": "string"},
        "severity": {"type": "integer", "minimum": 1, "maximum": 255}
      }
    }
  },
  "dependentRequired": {"src_port": ["proto"], "dest_port": ["proto"]}
}"#;

const VALIDATE: &str = r#"
import json, sys
import jsonschema
schema = json.loads(open(sys.argv[1]).read())
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
bad = 0
for i, line in enumerate(open(sys.argv[2])):
    for e in v.iter_errors(json.loads(line)):
        bad += 1
        print(f"line {i + 1}: {e.message} at {list(e.absolute_path)}")
sys.exit(1 if bad else 0)
"#;

fn run(
    dir: &Path,
    format: &str,
) -> (
    Vec<serde_json::Value>,
    Vec<std::collections::HashMap<String, String>>,
) {
    let model = crate::support::scoring::fixtures().join("iforest");
    let cfg = dir.join(format!("{format}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[sinks]\nalerts_format = \"{format}\"\n\n\
             [[heavy_hitters]]\nkey = \"flow\"\ntop_k = 2\n\n\
             [[heavy_hitters]]\nkey = \"src_ip\"\nthreshold_pps = 20.0\n\n\
             [[heavy_hitters]]\nkey = \"dst_prefix\"\nthreshold_fraction = 0.3\n\n\
             [model]\ndir = \"{}\"\nort_library = \"{}\"\n",
            model.display(),
            crate::support::scoring::ort_library().display()
        ),
    )
    .unwrap();
    let alerts = dir.join(format!("{format}.alerts"));
    let records = dir.join(format!("{format}.csv"));
    let caps = data_dir().join("pcaps");
    let o = weir()
        .arg("extract")
        .arg(caps.join("google_ssl.pcap"))
        .arg(caps.join("http_ipv6.pcap"))
        .arg(caps.join("skype.pcap"))
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&records)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--plugin-dir")
        .arg(weir_bin().parent().unwrap())
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, read_csv(&records))
}

#[test]
fn eve_alerts_validate_against_suricatas_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (eve, records) = run(tmp.path(), "eve");
    let (weir_lines, _) = run(tmp.path(), "jsonl");
    assert_eq!(eve.len(), weir_lines.len(), "one eve line per alert");

    let schema = tmp.path().join("schema.json");
    std::fs::write(&schema, EVE_ALERT_SCHEMA).unwrap();
    let o = Command::new(crate::support::scoring::python())
        .args(["-c", VALIDATE])
        .arg(&schema)
        .arg(tmp.path().join("eve.alerts"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "eve lines do not validate:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let kind = |e: &serde_json::Value| e["weir"]["kind"].as_str().unwrap_or("").to_string();
    let model: Vec<_> = eve.iter().filter(|e| kind(e) == "model").collect();
    let flow_hh: Vec<_> = eve
        .iter()
        .filter(|e| e["weir"]["key_type"] == "flow")
        .collect();
    assert!(!model.is_empty(), "the model fired no alert");
    assert!(!flow_hh.is_empty(), "no flow heavy-hitter alert");
    assert!(eve.iter().any(|e| e["weir"]["key_type"] == "src_ip"));
    assert!(eve.iter().any(|e| e["weir"]["key_type"] == "dst_prefix"));
    // A model alert is about one record: same flow, same Community ID, same counters.
    let ids: HashSet<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r["community_id"].clone(),
                r["src2dst_packets"].clone(),
                r["dst2src_bytes"].clone(),
            )
        })
        .collect();
    for e in &model {
        assert!(
            e["community_id"].is_string() && e["flow"].is_object(),
            "{e}"
        );
        let key = (
            e["community_id"].as_str().unwrap().to_string(),
            e["flow"]["pkts_toserver"].to_string(),
            e["flow"]["bytes_toclient"].to_string(),
        );
        assert!(ids.contains(&key), "model alert {e} matches no record");
        assert_eq!(
            e["proto"],
            match e["weir"]["protocol"].as_u64().unwrap() {
                6 => "TCP",
                17 => "UDP",
                1 => "ICMP",
                58 => "IPv6-ICMP",
                _ => e["proto"].as_str().unwrap(),
            }
        );
    }
    // Flow heavy hitters (TCP/UDP) carry the Community ID of their flow.
    let record_ids: HashSet<&str> = records.iter().map(|r| r["community_id"].as_str()).collect();
    for e in &flow_hh {
        let c = e["community_id"].as_str().unwrap_or_else(|| panic!("{e}"));
        assert!(
            record_ids.contains(c),
            "heavy hitter {e}: no record has {c}"
        );
    }
}
