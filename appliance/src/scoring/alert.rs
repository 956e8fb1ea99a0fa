//! The model's alert rule (`model.json` `alert`) turned into alert JSON lines (kind `model`).

use serde_json::json;

use super::model::{AlertSpec, ModelSpec};
use crate::flow::record::{FlowRecord, ScoreStatus};

/// A checked rule: the class is resolved to its probability column once.
#[derive(Clone, Debug)]
pub enum AlertRule {
    Class {
        index: usize,
        class: String,
        min_proba: f64,
    },
    MaxScore {
        max_score: f64,
    },
}

impl AlertRule {
    /// The rule of a model, if it has one (`ModelSpec::load` checked the class exists).
    pub fn of(spec: &ModelSpec) -> Option<AlertRule> {
        match spec.alert.as_ref()? {
            AlertSpec::Class { class, min_proba } => Some(AlertRule::Class {
                index: spec.classes.iter().position(|c| c == class)?,
                class: class.clone(),
                min_proba: *min_proba,
            }),
            AlertSpec::MaxScore { max_score } => Some(AlertRule::MaxScore {
                max_score: *max_score,
            }),
        }
    }

    /// The alert line for a scored record, or None when the rule does not fire. A record that
    /// was not scored, or whose score is missing or NaN, never fires: each comparison is
    /// written so that NaN fails it (`p < min` alone lets NaN through).
    pub fn check(&self, model: &ModelSpec, r: &FlowRecord) -> Option<String> {
        if r.score_status != ScoreStatus::Scored {
            return None;
        }
        let (rule, value) = match self {
            AlertRule::Class {
                index,
                class,
                min_proba,
            } => {
                let p = *r.scores.get(*index)?;
                if p.is_nan() || p < *min_proba {
                    return None;
                }
                (
                    json!({"class": class, "min_proba": min_proba}),
                    json!({"proba": p}),
                )
            }
            AlertRule::MaxScore { max_score } => {
                let s = *r.scores.first()?;
                if s.is_nan() || s > *max_score {
                    return None;
                }
                (json!({"max_score": max_score}), json!({"anomaly_score": s}))
            }
        };
        let prediction = match (r.prediction, model.classes.is_empty()) {
            (Some(p), false) => json!(model.classes.get(p as usize)),
            (Some(p), true) => json!(if p == 1 { "outlier" } else { "inlier" }),
            (None, _) => serde_json::Value::Null,
        };
        // The same name and version as the record's `model_name`, `model_version`.
        let (name, version) = match &r.model {
            Some(t) => (t.name.as_str(), t.version.as_str()),
            None => (model.name.as_str(), model.version.as_str()),
        };
        let mut line = json!({
            "kind": "model",
            "model": name,
            "model_version": version,
            "rule": rule,
            "prediction": prediction,
            "first_seen_ms": r.bidirectional.first_seen_ms,
            "last_seen_ms": r.bidirectional.last_seen_ms,
            "src_ip": r.src_ip().to_string(),
            "src_port": r.key.src_port,
            "dst_ip": r.dst_ip().to_string(),
            "dst_port": r.key.dst_port,
            "protocol": r.key.protocol,
            "vlan_id": r.key.vlan_id,
            "tunnel_id": r.key.tunnel_id,
            "packets": r.bidirectional.packets,
            "bytes": r.bidirectional.bytes,
            "src2dst_packets": r.src2dst.packets,
            "src2dst_bytes": r.src2dst.bytes,
            "dst2src_packets": r.dst2src.packets,
            "dst2src_bytes": r.dst2src.bytes,
            "community_id": r.community_id.as_str(),
        });
        if let (Some(obj), Some(v)) = (line.as_object_mut(), value.as_object()) {
            obj.extend(v.clone());
            // Which record fired: a flow at its end, or one interval of a flow still going on.
            obj.insert("record_kind".into(), json!(r.kind().as_str()));
            if let Some(iv) = r.interval {
                obj.insert("interval_start_ms".into(), json!(iv.start_ms));
                obj.insert("interval_end_ms".into(), json!(iv.end_ms));
            }
        }
        Some(line.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::ipfix::template::tests_support::record;

    fn spec(json: serde_json::Value) -> ModelSpec {
        serde_json::from_value(json).unwrap()
    }

    fn scored(scores: Vec<f64>) -> FlowRecord {
        let mut r = record(4);
        r.score_status = ScoreStatus::Scored;
        r.prediction = Some(0);
        r.scores = scores;
        r
    }

    #[test]
    fn nan_or_missing_scores_never_alert() {
        let clf = spec(serde_json::json!({
            "format": "weir-model/1", "name": "m", "task": "classification",
            "features": ["a"], "classes": ["benign", "attack"],
            "alert": {"class": "attack", "min_proba": 0.5}
        }));
        let rule = AlertRule::of(&clf).unwrap();
        assert!(rule.check(&clf, &scored(vec![0.1, 0.9])).is_some());
        assert!(rule.check(&clf, &scored(vec![0.9, 0.1])).is_none());
        assert!(rule.check(&clf, &scored(vec![0.5, f64::NAN])).is_none());
        assert!(rule.check(&clf, &scored(vec![0.5])).is_none());
        assert!(rule.check(&clf, &scored(vec![])).is_none());
        let mut nan = scored(vec![0.1, 0.9]);
        nan.score_status = ScoreStatus::NanScore;
        assert!(rule.check(&clf, &nan).is_none());

        let iso = spec(serde_json::json!({
            "format": "weir-model/1", "name": "m", "task": "anomaly",
            "features": ["a"], "alert": {"max_score": -0.1}
        }));
        let rule = AlertRule::of(&iso).unwrap();
        assert!(rule.check(&iso, &scored(vec![-0.5])).is_some());
        assert!(rule.check(&iso, &scored(vec![0.2])).is_none());
        assert!(rule.check(&iso, &scored(vec![f64::NAN])).is_none());
        assert!(rule.check(&iso, &scored(vec![])).is_none());
    }
}
