//! weir's scores equal scikit-learn's (the oracle) on every flow of the shared captures.
//!
//! `models/testing/make_fixtures.py` trains RandomForest, GradientBoosting,
//! StandardScaler+LogisticRegression and IsolationForest on the flows' features, exports them
//! as weir models and writes sklearn's `predict_proba` / `decision_function` per flow. Here
//! weir loads each model with the real ONNX Runtime, scores records built from the same flows
//! (features reached through weir's column mapping), and every score must be within 1e-5.

use std::collections::HashMap;

use crate::support::scoring::{config, fixtures, oracle, records};
use crossbeam_channel::unbounded;
use weir::flow::record::{FlowRecord, ScoreStatus};
use weir::scoring::{Overload, Scorer, ScoringConfig, ScoringService};

const TOL: f64 = 1e-5;

/// Compare scored records (with their global row in the `_row` column) with the oracle.
fn compare(model: &str, recs: &[FlowRecord], row_col: usize) {
    let (cols, rows) = oracle(model);
    assert_eq!(rows.len(), recs.len(), "{model}: oracle rows vs records");
    let mut worst = 0.0f64;
    for r in recs {
        assert_eq!(
            r.score_status,
            ScoreStatus::Scored,
            "{model}: unscored record"
        );
        let i = r.values[row_col] as usize;
        let (src, row, want) = &rows[i];
        assert_eq!(
            r.scores.len(),
            want.len(),
            "{model}: score columns {cols:?}"
        );
        for (k, (got, exp)) in r.scores.iter().zip(want).enumerate() {
            let d = (got - exp).abs();
            worst = worst.max(d);
            assert!(
                d <= TOL,
                "{model}: {src} row {row}: {} weir {got} sklearn {exp} (|diff| {d})",
                cols[k]
            );
        }
        if cols == ["anomaly_score"] {
            // prediction 1 = outlier: sklearn's predict is -1 exactly when decision < 0.
            let s = want[0];
            if s.abs() > TOL {
                assert_eq!(
                    r.prediction,
                    Some(u32::from(s < 0.0)),
                    "{model}: {src} row {row}"
                );
            }
        } else {
            let p = r.prediction.expect("prediction") as usize;
            let best = want.iter().cloned().fold(f64::MIN, f64::max);
            assert!(
                want[p] >= best - TOL,
                "{model}: {src} row {row}: predicted class {p} is not sklearn's argmax"
            );
        }
    }
    eprintln!(
        "{model}: {} flows, max |weir - sklearn| = {worst:.3e}",
        recs.len()
    );
}

fn score_direct(model: &str, batch: usize) {
    let data = records();
    let dir = fixtures().join(model);
    let mut scorer =
        Scorer::new(&dir, &data.schema, &config()).unwrap_or_else(|e| panic!("{model}: {e}"));
    let mut recs = data.records.clone();
    for chunk in recs.chunks_mut(batch) {
        scorer.score_batch(chunk).expect("score batch");
    }
    let row_col = data.schema.extra.len() - 1;
    compare(model, &recs, row_col);
}

#[test]
fn random_forest_matches_sklearn() {
    score_direct("rf", 256);
}

#[test]
fn gradient_boosting_matches_sklearn() {
    score_direct("gb", 97);
}

#[test]
fn scaler_logistic_regression_pipeline_matches_sklearn() {
    score_direct("logreg", 1);
}

#[test]
fn isolation_forest_matches_sklearn() {
    score_direct("iforest", 1024);
}

/// Through the threaded service: every record comes out once, scored as sklearn says, and the
/// model's alert rule fires exactly for the flows sklearn puts above the threshold.
fn through_service(model: &str, threads: usize, batch: usize) {
    let data = records();
    let mut schema = data.schema.clone();
    let cfg = ScoringConfig {
        threads,
        batch,
        max_delay_ms: 5,
        queue: 64,
        ..config()
    };
    let (out_tx, out_rx) = unbounded();
    let (al_tx, al_rx) = unbounded();
    let svc = ScoringService::start(
        &fixtures().join(model),
        &mut schema,
        &cfg,
        out_tx,
        Some(al_tx),
    )
    .unwrap_or_else(|e| panic!("{model}: {e}"));
    let (cols, rows) = oracle(model);
    assert!(schema.scored);
    assert_eq!(schema.scores, cols, "schema score columns are the oracle's");
    let input = svc.input();
    let n = data.records.len();
    let feeder = std::thread::spawn(move || {
        for r in data.records {
            assert!(input.submit(r));
        }
    });
    let mut got: Vec<FlowRecord> = Vec::with_capacity(n);
    while got.len() < n {
        got.push(out_rx.recv().expect("record out"));
    }
    feeder.join().unwrap();
    let stats = svc.finish();
    assert!(out_rx.try_recv().is_err(), "no extra records");
    let row_col = schema.extra.len() - 1;
    let mut seen = HashMap::new();
    for r in &got {
        *seen.entry(r.values[row_col] as usize).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), n, "every record exactly once");
    compare(model, &got, row_col);
    assert_eq!(stats.rows, n as u64);
    assert_eq!(stats.overload_skips, 0);
    assert_eq!(stats.errors, 0);
    assert!(stats.batches >= (n / batch) as u64);
    assert!(stats.latency_p50_us > 0 && stats.latency_p99_us >= stats.latency_p50_us);

    // Alerts: the fixtures set {"class": "Web", "min_proba": 0.9} / {"max_score": -0.05}.
    let alerts: Vec<serde_json::Value> = al_rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).expect("alert is JSON"))
        .collect();
    let anomaly = cols == ["anomaly_score"];
    let (col, threshold) = if anomaly {
        (0, -0.05)
    } else {
        let c = cols
            .iter()
            .position(|c| c == "proba_Web")
            .expect("Web class");
        (c, 0.9)
    };
    let fires = |v: f64| {
        if anomaly {
            v <= threshold
        } else {
            v >= threshold
        }
    };
    let borderline = rows
        .iter()
        .filter(|(_, _, v)| (v[col] - threshold).abs() <= TOL)
        .count();
    let expected = rows.iter().filter(|(_, _, v)| fires(v[col])).count();
    assert!(
        expected > 0,
        "{model}: the oracle has flows the rule fires on"
    );
    assert!(
        alerts.len().abs_diff(expected) <= borderline,
        "{model}: {} alerts, sklearn says {expected} ({borderline} borderline)",
        alerts.len()
    );
    assert_eq!(stats.alerts as usize, alerts.len());
    for a in &alerts {
        assert_eq!(a["kind"], "model");
        assert_eq!(a["model"], format!("fixture-{model}"));
    }
}

#[test]
fn service_two_threads_random_forest() {
    through_service("rf", 2, 64);
}

#[test]
fn service_isolation_forest_alerts() {
    through_service("iforest", 1, 256);
}

/// `emit_unscored`: a full queue sends records on unscored, counted, and none is lost.
#[test]
fn overload_emit_unscored_loses_nothing() {
    let data = records();
    let mut schema = data.schema.clone();
    let cfg = ScoringConfig {
        threads: 1,
        batch: 1,
        max_delay_ms: 0,
        queue: 1,
        overload: Overload::EmitUnscored,
        ..config()
    };
    let (out_tx, out_rx) = unbounded();
    let svc = ScoringService::start(&fixtures().join("gb"), &mut schema, &cfg, out_tx, None)
        .expect("start");
    let input = svc.input();
    let n = data.records.len();
    for r in data.records {
        assert!(input.submit(r));
    }
    drop(input);
    let stats = svc.finish();
    let got: Vec<FlowRecord> = out_rx.try_iter().collect();
    assert_eq!(got.len(), n, "every record comes out");
    let skipped = got
        .iter()
        .filter(|r| r.score_status == ScoreStatus::SkippedOverload)
        .count();
    let scored = got
        .iter()
        .filter(|r| r.score_status == ScoreStatus::Scored)
        .count();
    assert_eq!(skipped + scored, n);
    assert_eq!(stats.overload_skips as usize, skipped);
    assert_eq!(stats.rows as usize, scored);
    assert!(
        skipped > 0,
        "a queue of 1 against batch-of-1 GB runs must overflow"
    );
    assert!(got
        .iter()
        .filter(|r| r.score_status == ScoreStatus::SkippedOverload)
        .all(|r| r.prediction.is_none() && r.scores.is_empty()));
}

/// `block`: the same pressure makes the caller wait; everything is scored.
#[test]
fn overload_block_scores_everything() {
    let data = records();
    let mut schema = data.schema.clone();
    let cfg = ScoringConfig {
        threads: 1,
        batch: 8,
        max_delay_ms: 1,
        queue: 1,
        overload: Overload::Block,
        ..config()
    };
    let (out_tx, out_rx) = unbounded();
    let svc = ScoringService::start(&fixtures().join("logreg"), &mut schema, &cfg, out_tx, None)
        .expect("start");
    let input = svc.input();
    let n = data.records.len();
    for r in data.records {
        assert!(input.submit(r));
    }
    drop(input);
    let stats = svc.finish();
    let got: Vec<FlowRecord> = out_rx.try_iter().collect();
    assert_eq!(got.len(), n);
    assert_eq!(stats.overload_skips, 0);
    compare("logreg", &got, schema.extra.len() - 1);
}

/// `weir models inspect` names every feature's provider and the outputs weir reads.
#[test]
fn inspect_lists_features_and_providers() {
    let data = records();
    let text = weir::scoring::inspect_with(&fixtures().join("rf"), &data.schema, &config())
        .expect("inspect");
    assert!(text.contains("weir-model/1"), "{text}");
    assert!(
        text.contains("probabilities") && text.contains("-> proba_<class>"),
        "{text}"
    );
    assert!(
        text.contains("X: ") && text.contains("(fed by weir)"),
        "{text}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("rf/model.json")).unwrap())
            .unwrap();
    for f in meta["features"].as_array().unwrap() {
        let f = f.as_str().unwrap();
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(f))
            .unwrap_or_else(|| panic!("feature {f} not listed:\n{text}"));
        let want = if weir::flow::schema::core_column(f).is_some() {
            "core"
        } else {
            "flowstats"
        };
        assert!(line.trim_end().ends_with(want), "{line}");
    }
}

/// A partial batch is scored once its oldest record has waited `max_delay_ms`, without the
/// input closing; a full batch goes at once.
#[test]
fn deadline_flushes_a_partial_batch() {
    let data = records();
    let mut schema = data.schema.clone();
    let cfg = ScoringConfig {
        threads: 1,
        batch: 256,
        max_delay_ms: 20,
        ..config()
    };
    let (out_tx, out_rx) = unbounded();
    let svc = ScoringService::start(&fixtures().join("rf"), &mut schema, &cfg, out_tx, None)
        .expect("start");
    let input = svc.input();
    let t0 = std::time::Instant::now();
    for r in data.records[..10].iter().cloned() {
        assert!(input.submit(r));
    }
    for _ in 0..10 {
        let r = out_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("partial batch flushed by the deadline");
        assert_eq!(r.score_status, ScoreStatus::Scored);
    }
    let waited = t0.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(20),
        "flushed before the deadline: {waited:?}"
    );
    assert_eq!(svc.stats().snapshot().batches, 1);
    // A full batch does not wait for the deadline (1 s here).
    drop(input);
    let _ = svc.finish();
    let cfg = ScoringConfig {
        max_delay_ms: 1000,
        batch: 16,
        ..cfg
    };
    let (out_tx, out_rx) = unbounded();
    let svc = ScoringService::start(&fixtures().join("rf"), &mut schema, &cfg, out_tx, None)
        .expect("start");
    let input = svc.input();
    let t0 = std::time::Instant::now();
    for r in data.records[..16].iter().cloned() {
        assert!(input.submit(r));
    }
    for _ in 0..16 {
        out_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("full batch");
    }
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    drop(input);
    assert_eq!(svc.finish().batches, 1);
}
