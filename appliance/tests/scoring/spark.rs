//! The Spark training path end to end: weir extracts records of shared captures
//! into one Parquet dataset (one `weir extract` per capture, all into the same directory);
//! `models/spark/train_spark.py` runs in Spark local mode on that directory (labels: nDPI's
//! category from NFStream's records, joined on the flow key) and writes a `weir-model/1`
//! directory; `weir models inspect` loads it; `weir extract --model` scores the captures into
//! Parquet, and every record's probabilities must equal scikit-learn's `predict_proba` of the
//! fitted estimator within 1e-5 (`models/testing/spark_oracle.py`).
//!
//! Needs pyspark (models/requirements.txt) and a Java runtime (Makefile APT_PACKAGES).

use crate::support::{paths::*, records::*, run::*};
use std::path::{Path, PathBuf};
use std::process::Command;

const CAPTURES: &[&str] = &[
    "1kxun.pcap",
    "443-curl.pcap",
    "instagram.pcap",
    "dns_doh.pcap",
    "google_ssl.pcap",
    "skype.pcap",
    "zoom.pcap",
];

fn extract(cap: &Path, out: &Path, model: Option<&Path>) {
    let mut c = weir();
    c.arg("extract")
        .arg(cap)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .arg("--plugin-dir")
        .arg(weir_bin().parent().unwrap());
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

fn python(args: &[&std::ffi::OsStr]) -> String {
    let o = Command::new(crate::support::scoring::python())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn spark_job_trains_a_model_weir_scores_as_scikit_learn() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = PathBuf::from(format!("{}/records/", tmp.path().display()));
    let labels = tmp.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    let caps: Vec<PathBuf> = CAPTURES
        .iter()
        .map(|n| data_dir().join("pcaps").join(n))
        .collect();
    let mut flows = 0;
    for c in &caps {
        extract(c, &dataset, None);
        let e = expected_csv(c);
        flows += read_csv(&e).len();
        std::fs::copy(&e, labels.join(e.file_name().unwrap())).unwrap();
    }

    let model = tmp.path().join("model");
    let est = tmp.path().join("estimator.joblib");
    let summary = tmp.path().join("summary.json");
    let ws = crate::support::scoring::workspace();
    let out = python(&[
        ws.join("models/spark/train_spark.py").as_os_str(),
        dataset.as_os_str(),
        "--labels".as_ref(),
        labels.as_os_str(),
        "--out".as_ref(),
        model.as_os_str(),
        "--master".as_ref(),
        "local[2]".as_ref(),
        "--n-estimators".as_ref(),
        "20".as_ref(),
        "--min-class-samples".as_ref(),
        "5".as_ref(),
        "--summary".as_ref(),
        summary.as_os_str(),
        "--save-estimator".as_ref(),
        est.as_os_str(),
    ]);
    eprintln!("{out}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    // Spark read every file of the dataset: one or more per capture.
    assert!(
        s["input_files"].as_u64().unwrap() >= caps.len() as u64,
        "{s}"
    );
    let read = s["records_read"].as_u64().unwrap();
    let labelled = s["labelled"].as_u64().unwrap();
    assert!(read > 0 && labelled > 0 && labelled <= read, "{s}");
    // Most of weir's flows are NFStream's flows (the parity test says which differ).
    assert!(
        labelled as f64 >= 0.9 * flows as f64,
        "{labelled} of {flows} NFStream flows labelled"
    );
    assert_eq!(
        s["sampled"], s["labelled"],
        "small data: nothing sampled away"
    );
    let hourly: u64 = s["per_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["flows"].as_u64().unwrap())
        .sum();
    assert_eq!(
        hourly, labelled,
        "the hourly aggregate counts every labelled flow"
    );

    // weir loads the model directory...
    let o = weir()
        .args(["models", "inspect"])
        .arg(&model)
        .arg("--plugin-dir")
        .arg(weir_bin().parent().unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "weir models inspect: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // ... and scores every flow as scikit-learn does.
    let mut scored = Vec::new();
    for c in &caps {
        let p = tmp.path().join(format!(
            "{}.parquet",
            c.file_name().unwrap().to_string_lossy()
        ));
        extract(c, &p, Some(&model));
        scored.push(p);
    }
    let oracle = ws.join("models/testing/spark_oracle.py");
    let mut args: Vec<&std::ffi::OsStr> =
        vec![oracle.as_os_str(), est.as_os_str(), model.as_os_str()];
    args.extend(scored.iter().map(|p| p.as_os_str()));
    let verdict: serde_json::Value = serde_json::from_str(&python(&args)).unwrap();
    eprintln!("weir against scikit-learn: {verdict}");
    assert_eq!(verdict["rows"].as_u64().unwrap(), read);
    assert!(verdict["classes"].as_u64().unwrap() >= 2);
}
