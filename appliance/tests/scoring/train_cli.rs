//! `models/train.py` as a user runs it: records in, a model directory weir loads out.
//! Checks model.json against facts computed here (the data fingerprint with `sha256sum`, the
//! classes and rare-class grouping from the CSVs' label column), and that a labels file joined
//! on the flow key gives the same model as the label column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::scoring::{config, python, record_files, records, workspace};
use weir::flow::record::ScoreStatus;
use weir::scoring::Scorer;

fn train(args: &[&str], out: &Path) -> serde_json::Value {
    let o = Command::new(python())
        .arg(workspace().join("models/train.py"))
        // MLflow tracking is tested in models/tests; here it would only write ./mlruns.
        .env("WEIR_NO_MLFLOW", "1")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run train.py");
    assert!(
        o.status.success(),
        "train.py failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap()
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Label counts straight from the CSVs.
fn label_counts(files: &[PathBuf]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for f in files {
        let mut rd = csv::Reader::from_path(f).unwrap();
        let i = rd
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "application_category_name")
            .unwrap();
        for r in rd.records() {
            *m.entry(r.unwrap()[i].to_string()).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn train_from_label_column_and_from_labels_file() {
    let files = record_files();
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<String> = files
        .iter()
        .map(|p| p.display().to_string())
        .chain(["--n-estimators", "10", "--min-class-samples", "20"].map(String::from))
        .collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = tmp.path().join("a");
    let meta = train(&argv, &a);

    assert_eq!(meta["format"], "weir-model/1");
    assert_eq!(meta["task"], "classification");
    assert_eq!(meta["input"], "X");
    // Fingerprint: sha256 of each input file, as sha256sum computes it.
    for f in files.iter().take(5) {
        let name = f.file_name().unwrap().to_string_lossy();
        assert_eq!(
            meta["metadata"]["data"]["files"][&*name],
            sha256(f),
            "{name}"
        );
    }
    // Classes: every label with >= 20 flows, plus "Other" for the rest, sorted (sklearn's order).
    let counts = label_counts(&files);
    let mut want: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n >= 20)
        .map(|(c, _)| c.clone())
        .collect();
    let rare: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n < 20)
        .map(|(c, _)| c.clone())
        .collect();
    assert!(!rare.is_empty());
    want.push("Other".into());
    want.sort();
    let classes: Vec<String> = meta["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(classes, want);
    let grouped: Vec<&str> = meta["metadata"]["grouped_as_other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(grouped, rare);
    assert!(meta["metadata"]["sklearn"]
        .as_str()
        .unwrap()
        .starts_with('1'));
    assert!(meta["metadata"]["skl2onnx"].is_string());
    let acc = meta["metadata"]["metrics"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5 && acc <= 1.0, "accuracy {acc}");

    // weir loads and scores with it.
    let data = records();
    let mut scorer = Scorer::new(&a, &data.schema, &config()).expect("weir loads train.py's model");
    let mut recs = data.records[..300].to_vec();
    scorer.score_batch(&mut recs).unwrap();
    for r in &recs {
        assert_eq!(r.score_status, ScoreStatus::Scored);
        let sum: f64 = r.scores.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
    }

    // The same records without their label column, and a labels file keyed on the flow key.
    let py = r#"
import sys, glob, pandas as pd
src, out = sys.argv[1:3]
d = pd.concat([pd.read_csv(f) for f in sorted(glob.glob(src + '/*.csv'))], ignore_index=True)
key = ['src_ip','src_port','dst_ip','dst_port','protocol','vlan_id','tunnel_id','bidirectional_first_seen_ms']
d[key + ['application_category_name']].rename(columns={'application_category_name': 'cat'}).sample(frac=1, random_state=1).to_csv(out + '/labels.csv', index=False)
d.drop(columns=['id', 'application_name', 'application_category_name']).to_parquet(out + '/records.parquet')
"#;
    let dir = files[0].parent().unwrap();
    let st = Command::new(python())
        .args(["-c", py])
        .arg(dir)
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    let b = tmp.path().join("b");
    let pq = tmp.path().join("records.parquet").display().to_string();
    let labels = tmp.path().join("labels.csv").display().to_string();
    let meta_b = train(
        &[
            &pq,
            "--labels",
            &labels,
            "--label-column",
            "cat",
            "--n-estimators",
            "10",
            "--min-class-samples",
            "20",
        ],
        &b,
    );
    assert_eq!(meta_b["classes"], meta["classes"]);
    assert_eq!(meta_b["metadata"]["rows"], meta["metadata"]["rows"]);
    assert!(meta_b["metadata"]["data"]["labels_sha256"].is_string());
}

#[test]
fn train_refuses_nonsense() {
    let tmp = tempfile::tempdir().unwrap();
    let f = record_files()[0].display().to_string();
    for (args, want) in [
        (
            vec![f.as_str(), "--features", "bidirectional_packets,nope"],
            "features not in the records",
        ),
        (
            vec![f.as_str(), "--features", "src_ip"],
            "not usable as features",
        ),
        (
            vec![f.as_str(), "--estimator", "iforest"],
            "add --task anomaly",
        ),
        (
            vec![f.as_str(), "--label-column", "nope"],
            "no label column",
        ),
        (vec!["/nonexistent.csv"], "no such records file"),
    ] {
        let o = Command::new(python())
            .arg(workspace().join("models/train.py"))
            .env("WEIR_NO_MLFLOW", "1")
            .args(&args)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
}
