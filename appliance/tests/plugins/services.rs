//! Services: flows to services by names learned from the DNS answers of shared captures and by
//! prefixes, checked against `tshark`'s reading of the same answers; and per-service plugin
//! selection, checked against a run without services and against `weir cost --json`.

use crate::support::{nfstream::*, paths::*, records::*, run::*};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

const DNS_CONFIG: &str = r#"
[[services]]
name = "apple"
domains = ["apple.com"]

[[services]]
name = "gapis"
domains = ["googleapis.com", "google.com"]

[[services]]
name = "gstatic"
regex = ['^connectivitycheck\.gstatic\.com$']

[[services]]
name = "zip"
prefixes = ["173.194.0.0/16"]
"#;

/// (service of a name) the oracle's own reading of the rules above.
fn oracle_service(name: &str) -> Option<&'static str> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let under = |s: &str| n == s || n.ends_with(&format!(".{s}"));
    if under("apple.com") {
        Some("apple")
    } else if under("googleapis.com") || under("google.com") {
        Some("gapis")
    } else if n == "connectivitycheck.gstatic.com" {
        Some("gstatic")
    } else {
        None
    }
}

/// One DNS answer as tshark dissects it (`service` None when it answers no query captured).
struct Answer {
    t_ms: u64,
    service: Option<&'static str>,
    addrs: Vec<IpAddr>,
    min_ttl: u64,
    max_ttl: u64,
}

fn tshark_answers(pcap: &Path) -> Vec<Answer> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-Y",
            "udp.srcport == 53 && dns.flags.response == 1 && dns.flags.opcode == 0 && \
             dns.flags.truncated == 0 && dns.flags.rcode == 0 && dns.count.answers > 0",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "frame.time_epoch",
            "-e",
            "dns.qry.name",
            "-e",
            "dns.cname",
            "-e",
            "dns.a",
            "-e",
            "dns.aaaa",
            "-e",
            "dns.resp.ttl",
            "-e",
            "dns.response_to",
        ])
        .output()
        .expect("tshark (in the Makefile's install list) must be installed");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.to_string())
            .collect()
    };
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let get = |i: usize| f.get(i).copied().unwrap_or("");
            let t_ms = (get(0).parse::<f64>().unwrap() * 1000.0).floor() as u64;
            let names: Vec<String> = list(get(1)).into_iter().chain(list(get(2))).collect();
            // weir learns only from an answer to a query it saw (tshark's `response_to`:
            // the query's frame, matched by id and addresses).
            let service = names
                .iter()
                .find_map(|n| oracle_service(n))
                .filter(|_| !get(6).is_empty());
            let addrs = list(get(3))
                .into_iter()
                .chain(list(get(4)))
                .map(|a| a.parse().unwrap())
                .collect();
            // weir caps TTLs at `service_default.dns_max_ttl_s` (default one day).
            let ttls: Vec<u64> = list(get(5))
                .iter()
                .map(|t| t.parse::<u64>().unwrap().min(86_400))
                .collect();
            Answer {
                t_ms,
                service,
                addrs,
                min_ttl: ttls.iter().copied().min().unwrap_or(0),
                max_ttl: ttls.iter().copied().max().unwrap_or(0),
            }
        })
        .collect()
}

/// What the oracle says of an address at time `t`: Some(Some(svc)) learned, Some(None)
/// certainly not learned, None undecidable (an answer in the same ms, or a TTL boundary).
fn learned(answers: &[Answer], ip: IpAddr, t: u64) -> Option<Option<&'static str>> {
    let mut state: Option<Option<&'static str>> = Some(None);
    for a in answers.iter().filter(|a| a.addrs.contains(&ip)) {
        if a.t_ms == t {
            return None;
        }
        if a.t_ms > t {
            break;
        }
        let Some(svc) = a.service else { continue };
        if t <= a.t_ms + a.min_ttl * 1000 {
            state = Some(Some(svc));
        } else if t <= a.t_ms + a.max_ttl * 1000 + 1 {
            return None;
        }
    }
    state
}

fn extract(
    dir: &Path,
    pcap: &Path,
    config: Option<&str>,
    tag: &str,
) -> Vec<HashMap<String, String>> {
    let out = dir.join(format!("{tag}.csv"));
    let mut c = weir();
    c.arg("extract")
        .arg(pcap)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--no-progress"]);
    c.arg("--stats").arg(dir.join(format!("{tag}.stats.json")));
    if let Some(text) = config {
        let p = dir.join(format!("{tag}.toml"));
        std::fs::write(&p, text).unwrap();
        c.arg("--config").arg(p);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "weir extract: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    read_csv(&out)
}

fn stats(dir: &Path, tag: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{tag}.stats.json"))).unwrap())
        .unwrap()
}

#[test]
fn dns_answers_map_later_flows_to_their_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut by_dns = 0;
    let mut by_prefix = 0;
    for cap in ["android.pcap", "iphone.pcap", "alexa-app.pcapng"] {
        let pcap = data_dir().join("pcaps").join(cap);
        let answers = tshark_answers(&pcap);
        assert!(!answers.is_empty(), "{cap}: no DNS answers");
        let rows = extract(dir.path(), &pcap, Some(DNS_CONFIG), cap);
        let st = stats(dir.path(), cap);
        assert_eq!(
            st["services"]["dns_answers"].as_u64().unwrap(),
            answers.len() as u64,
            "{cap}: DNS answers read, weir vs tshark"
        );
        assert_eq!(st["services"]["dns_malformed"], 0, "{cap}");
        let mut checked = 0;
        for r in &rows {
            let t: u64 = r["bidirectional_first_seen_ms"].parse().unwrap();
            let dst: IpAddr = r["dst_ip"].parse().unwrap();
            let src: IpAddr = r["src_ip"].parse().unwrap();
            let in_zip = |ip: IpAddr| matches!(ip, IpAddr::V4(a) if a.octets()[..2] == [173, 194]);
            // weir's order: dst by DNS, dst by prefix, src by DNS, src by prefix.
            let (Some(d), Some(s)) = (learned(&answers, dst, t), learned(&answers, src, t)) else {
                continue;
            };
            let want = d
                .or(in_zip(dst).then_some("zip"))
                .or(s)
                .or(in_zip(src).then_some("zip"))
                .unwrap_or("");
            assert_eq!(
                r["service"], want,
                "{cap}: flow {} -> {} at {t}",
                r["src_ip"], r["dst_ip"]
            );
            checked += 1;
            match want {
                "" => {}
                "zip" => by_prefix += 1,
                _ => by_dns += 1,
            }
        }
        assert!(
            checked * 10 >= rows.len() * 9,
            "{cap}: only {checked} of {} flows decidable",
            rows.len()
        );
    }
    // The captures resolve each of these before connecting: the test is not vacuous.
    assert!(by_dns >= 20, "flows by DNS: {by_dns}");
    assert!(by_prefix >= 1, "flows by prefix: {by_prefix}");
}

#[test]
fn malformed_dns_is_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = data_dir().join("pcaps/malformed_dns.pcap");
    let cfg = "[[services]]\nname = \"any\"\nregex = ['.']\n";
    let rows = extract(dir.path(), &pcap, Some(cfg), "m");
    let plain = extract(dir.path(), &pcap, None, "p");
    assert_eq!(rows.len(), plain.len());
    let st = stats(dir.path(), "m");
    let answers = tshark_answers(&pcap).len() as u64;
    assert_eq!(st["services"]["dns_answers"].as_u64().unwrap(), answers);
    eprintln!("malformed_dns: {}", st["services"]);
}

const SELECT_CONFIG: &str = r#"
[[services]]
name = "gapis"
domains = ["googleapis.com", "google.com"]
plugins = ["splt"]
"#;

fn cost_json(dir: &Path, pcap: &Path, config: Option<&str>, tag: &str) -> serde_json::Value {
    let json = dir.join(format!("{tag}.cost.json"));
    let mut c = weir();
    c.arg("cost").arg(pcap).arg("--json").arg(&json);
    if let Some(text) = config {
        let p = dir.join(format!("{tag}.cost.toml"));
        std::fs::write(&p, text).unwrap();
        c.arg("--config").arg(p);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "weir cost: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    if config.is_some() {
        assert!(text.contains("by service:"), "{text}");
    }
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn row<'a>(cost: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    cost["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
}

#[test]
fn unselected_plugins_are_never_called_and_leave_nan() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = data_dir().join("pcaps/android.pcap");
    let with = extract(dir.path(), &pcap, Some(SELECT_CONFIG), "with");
    let without = extract(dir.path(), &pcap, None, "without");
    assert_eq!(with.len(), without.len());
    let header: Vec<String> = csv::Reader::from_path(dir.path().join("with.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let start = header.iter().position(|h| h == "community_id").unwrap() + 1;
    let end = header.iter().position(|h| h == "decay_pps").unwrap();
    let plugin_cols = &header[start..end];
    let index: HashMap<String, &HashMap<String, String>> =
        without.iter().map(|r| (flow_key(r), r)).collect();
    let (mut selected_flows, mut selected_packets) = (0u64, 0u64);
    for r in &with {
        let plain = index[&flow_key(r)];
        for c in core_columns() {
            assert_eq!(r[&c], plain[&c], "{c}");
        }
        let gapis = r["service"] == "gapis";
        if gapis {
            selected_flows += 1;
            selected_packets += r["bidirectional_packets"].parse::<u64>().unwrap();
        } else {
            assert_eq!(r["service"], "");
        }
        for c in plugin_cols {
            if gapis && !c.starts_with("splt_") {
                assert_eq!(r[c], "", "{c} of a gapis flow must be missing (NaN)");
            } else {
                assert!(
                    values_equal(&r[c], &plain[c]),
                    "{c}: {} vs {}",
                    r[c],
                    plain[c]
                );
            }
        }
        assert!(values_equal(&r["decay_pps"], &plain["decay_pps"]));
    }
    assert!(selected_flows >= 5, "gapis flows: {selected_flows}");

    let cost = cost_json(dir.path(), &pcap, Some(SELECT_CONFIG), "with");
    let base = cost_json(dir.path(), &pcap, None, "without");
    let cells = cost["by_service"].as_array().unwrap();
    let cell = |svc: &str, p: &str| {
        cells
            .iter()
            .find(|c| c["service"] == svc && c["plugin"] == p)
            .unwrap()
    };
    for p in ["flowstats", "tcp", "entropy"] {
        let c = cell("gapis", p);
        assert_eq!(
            (
                c["calls"].as_u64(),
                c["packets"].as_u64(),
                c["flows"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{p}"
        );
        assert_eq!(c["cycles"], 0, "{p}");
        // The plugin saw every other packet: all it saw without services minus the gapis ones.
        assert_eq!(
            row(&cost, p)["packets"].as_u64().unwrap(),
            row(&base, p)["packets"].as_u64().unwrap() - selected_packets,
            "{p}"
        );
        assert_eq!(
            row(&cost, p)["flows"].as_u64().unwrap(),
            row(&base, p)["flows"].as_u64().unwrap() - selected_flows
        );
    }
    // splt still runs on gapis flows, and the by-service cells add up to its row.
    assert_eq!(
        cell("gapis", "splt")["flows"].as_u64().unwrap(),
        selected_flows
    );
    assert!(cell("gapis", "splt")["packets"].as_u64().unwrap() > 0);
    for p in ["flowstats", "splt", "tcp", "entropy"] {
        let sum: u64 = cells
            .iter()
            .filter(|c| c["plugin"] == p)
            .map(|c| c["packets"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, row(&cost, p)["packets"].as_u64().unwrap(), "{p}");
    }
    assert_eq!(row(&cost, "splt")["packets"], row(&base, "splt")["packets"]);
}
