//! End to end: `weir extract --model` scores every flow as scikit-learn does.
//!
//! weir extracts records of real captures; the venv's scikit-learn trains a RandomForest on
//! them (labels: nDPI's category from NFStream's records) and writes its own `predict_proba`
//! for every record (the oracle, `models/testing/e2e_oracle.py`); then weir scores the same
//! captures through DPDK, the plugins and ONNX Runtime, and each flow's `proba_<class>` must
//! equal scikit-learn's within 1e-5 and `prediction` must be the most probable class.

use crate::support::{nfstream::*, paths::*, records::*, run::*};
use std::collections::HashMap;
use std::process::Command;

const CAPTURES: &[&str] = &[
    "1kxun.pcap",
    "443-curl.pcap",
    "instagram.pcap",
    "dns_doh.pcap",
    "google_ssl.pcap",
    "ftp.pcap",
    "skype.pcap",
    "youtube_quic.pcap",
    "skype-conference-call.pcap",
    "zoom.pcap",
];

fn extract(cap: &std::path::Path, out: &std::path::Path, model: Option<&std::path::Path>) {
    let plugin_dir = weir_bin().parent().unwrap().to_path_buf();
    let mut c = weir();
    c.arg("extract")
        .arg(cap)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .arg("--plugin-dir")
        .arg(&plugin_dir);
    if let Some(m) = model {
        c.arg("--model").arg(m);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "weir extract {} failed: {}",
        cap.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn extract_scores_match_scikit_learn() {
    let tmp = tempfile::tempdir().unwrap();
    let records = tmp.path().join("records");
    let scored = tmp.path().join("scored");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::create_dir_all(&scored).unwrap();
    let caps: Vec<_> = captures()
        .into_iter()
        .filter(|c| CAPTURES.contains(&c.file_name().unwrap().to_str().unwrap()))
        .collect();
    assert_eq!(caps.len(), CAPTURES.len(), "a listed capture is missing");
    for c in &caps {
        let name = c.file_name().unwrap().to_str().unwrap();
        extract(c, &records.join(format!("{name}.csv")), None);
    }
    let model = tmp.path().join("model");
    let o = Command::new(crate::support::scoring::python())
        .arg(crate::support::scoring::workspace().join("models/testing/e2e_oracle.py"))
        .arg(&model)
        .arg(&records)
        .arg(data_dir().join("expected"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "training the oracle failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The oracle: (capture, flow key) -> scikit-learn's probabilities.
    let oracle_rows = read_csv(&model.join("oracle.csv"));
    let proba_cols: Vec<String> = {
        let mut v: Vec<String> = oracle_rows[0]
            .keys()
            .filter(|k| k.starts_with("proba_"))
            .cloned()
            .collect();
        v.sort();
        v
    };
    assert!(proba_cols.len() >= 2, "a classifier has classes");
    let mut oracle: HashMap<String, &HashMap<String, String>> = HashMap::new();
    for r in &oracle_rows {
        oracle.insert(format!("{}|{}", r["_source"], flow_key(r)), r);
    }

    let mut compared = 0;
    let mut worst = 0f64;
    for c in &caps {
        let name = c.file_name().unwrap().to_str().unwrap();
        let out = scored.join(format!("{name}.csv"));
        extract(c, &out, Some(&model));
        for row in read_csv(&out) {
            let key = format!("{name}.csv|{}", flow_key(&row));
            let want = oracle
                .get(&key)
                .unwrap_or_else(|| panic!("no oracle row for {key}"));
            assert_eq!(row["score_status"], "scored", "{key}");
            let mut best = (String::new(), f64::MIN);
            for col in &proba_cols {
                let got: f64 = row[col].parse().unwrap();
                let exp: f64 = want[col].parse().unwrap();
                worst = worst.max((got - exp).abs());
                assert!(
                    (got - exp).abs() <= 1e-5,
                    "{key}: {col} weir {got}, scikit-learn {exp}"
                );
                if got > best.1 {
                    best = (col.trim_start_matches("proba_").to_string(), got);
                }
            }
            assert_eq!(row["prediction"], best.0, "{key}: prediction is the argmax");
            compared += 1;
        }
    }
    assert_eq!(compared, oracle_rows.len(), "every flow was scored");
    eprintln!("{compared} flows scored, worst |weir - scikit-learn| = {worst:.3e}");
}
