//! A model directory (`weir-model/1`): `model.json` parsed and checked, and the ONNX graph's
//! input and outputs checked against it. See `models/README.md` for the format.
//!
//! Refused, naming the file and the reason: no `model.json`, another `format`, an unknown
//! `task`, a classifier without classes, an alert naming no class of the model, a
//! `model.onnx` that ONNX Runtime cannot load, an input that is not a 2-D float tensor (a
//! double input is refused, not cast: weir feeds float32, re-export with a float32 sample),
//! an input width other than the number of features, a classifier exported with ZipMap, or no
//! probability / score output of the right width.

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};
use serde::Deserialize;

use super::error::{Result, ScoringError};
use super::runtime::Runtime;
use crate::flow::record::RecordKind;

pub const FORMAT: &str = "weir-model/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Anomaly,
}

/// `model.json`'s `alert`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AlertSpec {
    /// Alert when the probability of `class` is at least `min_proba`.
    Class { class: String, min_proba: f64 },
    /// Alert when the anomaly score is at most `max_score` (sklearn: lower = more abnormal).
    MaxScore { max_score: f64 },
}

/// `model.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelSpec {
    pub format: String,
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub task: Task,
    /// Feature names in model input order.
    pub features: Vec<String>,
    /// Class labels in the order of the probability output (classification only).
    #[serde(default)]
    pub classes: Vec<String>,
    /// The ONNX input name (optional when the graph has one input).
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub alert: Option<AlertSpec>,
    /// Which records the model scores: `["flow"]` (the default, so older models load as they
    /// did), `["interval"]` or both. Records of another kind pass unscored (`score_status`
    /// empty).
    #[serde(default = "default_records")]
    pub records: Vec<RecordKind>,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

fn default_records() -> Vec<RecordKind> {
    vec![RecordKind::Flow]
}

impl ModelSpec {
    /// Read and check `DIR/model.json`.
    pub fn load(dir: &Path) -> Result<ModelSpec> {
        let path = dir.join("model.json");
        let bad = |reason: String| ScoringError::ModelJson {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read: {e}")))?;
        // Check the format before the schema, so another format is named as such.
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        match raw.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(bad(format!(
                    "format is \"{other}\", this weir reads \"{FORMAT}\""
                )))
            }
            None => return Err(bad(format!("no \"format\" (expected \"{FORMAT}\")"))),
        }
        let spec: ModelSpec =
            serde_json::from_value(raw).map_err(|e| bad(format!("invalid: {e}")))?;
        if spec.features.is_empty() {
            return Err(bad("\"features\" is empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = spec.features.iter().find(|f| !seen.insert(f.as_str())) {
            return Err(bad(format!("feature `{d}` is listed twice")));
        }
        if spec.records.is_empty() {
            return Err(bad(
                "\"records\" is empty: list \"flow\", \"interval\" or both".into(),
            ));
        }
        match spec.task {
            Task::Classification if spec.classes.is_empty() => {
                return Err(bad("a classification model needs \"classes\"".into()))
            }
            Task::Anomaly if !spec.classes.is_empty() => {
                return Err(bad("an anomaly model has no \"classes\"".into()))
            }
            _ => {}
        }
        match (&spec.alert, spec.task) {
            (Some(AlertSpec::Class { class, min_proba }), Task::Classification) => {
                if !spec.classes.contains(class) {
                    return Err(bad(format!(
                        "alert class `{class}` is not one of \"classes\""
                    )));
                }
                if !(0.0..=1.0).contains(min_proba) {
                    return Err(bad(format!("alert min_proba {min_proba} is not in [0, 1]")));
                }
            }
            (Some(AlertSpec::MaxScore { max_score }), Task::Anomaly) if max_score.is_finite() => {}
            (Some(a), t) => {
                return Err(bad(format!("alert {a:?} does not fit a {t:?} model")));
            }
            (None, _) => {}
        }
        Ok(spec)
    }

    /// Whether the model scores records of `kind`.
    pub fn scores_kind(&self, kind: RecordKind) -> bool {
        self.records.contains(&kind)
    }

    /// The score columns this model adds to records (after `prediction`).
    pub fn score_columns(&self) -> Vec<String> {
        match self.task {
            Task::Classification => self.classes.iter().map(|c| format!("proba_{c}")).collect(),
            Task::Anomaly => vec!["anomaly_score".into()],
        }
    }
}

/// Which graph outputs the scorer reads.
#[derive(Clone, Debug)]
pub struct ModelIo {
    pub input: String,
    pub width: usize,
    /// Probabilities [N, classes] or anomaly scores [N] / [N, 1].
    pub scores: String,
    /// The predicted label (int64): anomaly models' -1/1. Classifiers use argmax of scores.
    pub label: Option<String>,
}

fn describe(t: &ValueType) -> String {
    t.to_string()
}

/// The static size of the last axis, if the graph gives one.
fn last_dim(t: &ValueType) -> Option<i64> {
    t.tensor_shape()
        .and_then(|s| s.last().copied())
        .filter(|d| *d > 0)
}

impl ModelIo {
    /// Check a session's inputs and outputs against `spec`.
    pub fn check(spec: &ModelSpec, session: &Session, onnx: &Path) -> Result<ModelIo> {
        let (input, width) = Self::check_input(spec, session, onnx)?;
        let (scores, label) = Self::check_outputs(spec, session, onnx)?;
        Ok(ModelIo {
            input,
            width,
            scores,
            label: if spec.task == Task::Anomaly {
                label
            } else {
                None
            },
        })
    }

    /// The one input: a 2-D float32 tensor as wide as the features; its name and width.
    fn check_input(spec: &ModelSpec, session: &Session, onnx: &Path) -> Result<(String, usize)> {
        let bad = |reason: String| ScoringError::Onnx {
            path: onnx.to_path_buf(),
            reason,
        };
        let inputs = session.inputs();
        let input = match &spec.input {
            Some(name) => inputs.iter().find(|i| i.name() == name).ok_or_else(|| {
                bad(format!(
                    "model.json names input `{name}` but the graph's inputs are {:?}",
                    inputs.iter().map(|i| i.name()).collect::<Vec<_>>()
                ))
            })?,
            None if inputs.len() == 1 => &inputs[0],
            None => {
                return Err(bad(format!(
                    "the graph has {} inputs; name one in model.json \"input\"",
                    inputs.len()
                )))
            }
        };
        if inputs.len() != 1 {
            return Err(bad(format!(
                "the graph has {} inputs; weir feeds exactly one 2-D float tensor",
                inputs.len()
            )));
        }
        let t = input.dtype();
        match t.tensor_type() {
            Some(TensorElementType::Float32) => {}
            Some(TensorElementType::Float64) => {
                return Err(bad(format!(
                    "input `{}` is double (float64); weir refuses rather than casts: it feeds \
                     float32, so re-export with a float32 sample: to_onnx(model, \
                     X[:1].astype(np.float32), ...)",
                    input.name()
                )))
            }
            _ => {
                return Err(bad(format!(
                    "input `{}` is {}, weir feeds a 2-D float32 tensor",
                    input.name(),
                    describe(t)
                )))
            }
        }
        let shape = t.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        if shape.len() != 2 {
            return Err(bad(format!(
                "input `{}` has shape {shape:?}, weir feeds [batch, features]",
                input.name()
            )));
        }
        if shape[1] > 0 && shape[1] as usize != spec.features.len() {
            return Err(bad(format!(
                "input `{}` is {} wide but model.json lists {} features",
                input.name(),
                shape[1],
                spec.features.len()
            )));
        }
        if shape[1] <= 0 {
            return Err(bad(format!(
                "input `{}` has no static width; weir checks it against the {} features",
                input.name(),
                spec.features.len()
            )));
        }
        Ok((input.name().to_string(), shape[1] as usize))
    }

    /// The scores output (probabilities or anomaly scores, float32, as wide as the classes)
    /// and the label output if any; their names.
    fn check_outputs(
        spec: &ModelSpec,
        session: &Session,
        onnx: &Path,
    ) -> Result<(String, Option<String>)> {
        let bad = |reason: String| ScoringError::Onnx {
            path: onnx.to_path_buf(),
            reason,
        };
        let outputs = session.outputs();
        if let Some(o) = outputs.iter().find(|o| !o.dtype().is_tensor()) {
            return Err(bad(format!(
                "output `{}` is {} (a ZipMap?); export classifiers with options={{\"zipmap\": False}}",
                o.name(),
                describe(o.dtype())
            )));
        }
        let float_out: Vec<_> = outputs
            .iter()
            .filter(|o| o.dtype().tensor_type() == Some(TensorElementType::Float32))
            .collect();
        let label = outputs
            .iter()
            .find(|o| o.dtype().tensor_type() == Some(TensorElementType::Int64))
            .map(|o| o.name().to_string());
        let (want, names): (usize, &[&str]) = match spec.task {
            Task::Classification => (spec.classes.len(), &["probabilities", "output_probability"]),
            Task::Anomaly => (1, &["scores"]),
        };
        let scores = float_out
            .iter()
            .find(|o| names.contains(&o.name()))
            .or_else(|| float_out.first())
            .ok_or_else(|| {
                bad(format!(
                    "no float32 output for the {}; outputs are {:?}",
                    if spec.task == Task::Anomaly {
                        "anomaly scores"
                    } else {
                        "probabilities"
                    },
                    outputs.iter().map(|o| o.name()).collect::<Vec<_>>()
                ))
            })?;
        match last_dim(scores.dtype()) {
            Some(d) if d as usize == want => {}
            Some(d) => {
                return Err(bad(format!(
                    "output `{}` is {d} wide but the model has {want} {}",
                    scores.name(),
                    if spec.task == Task::Anomaly {
                        "score"
                    } else {
                        "classes in model.json"
                    }
                )))
            }
            None => {} // dynamic: checked on every batch
        }
        Ok((scores.name().to_string(), label))
    }
}

/// A session with one intra-op thread (ONNX Runtime must not spawn threads onto the data-plane
/// cores) and no inter-op pool.
pub fn open_session(rt: &Runtime, onnx: &Path) -> Result<Session> {
    let bad = |reason: String| ScoringError::Onnx {
        path: onnx.to_path_buf(),
        reason,
    };
    if !onnx.exists() {
        return Err(bad("no such file".into()));
    }
    Session::builder(&rt.env)
        .map_err(|e| bad(format!("session builder: {e}")))?
        .with_intra_threads(1)
        .map_err(|e| bad(format!("intra threads: {e}")))?
        .with_inter_threads(1)
        .map_err(|e| bad(format!("inter threads: {e}")))?
        .commit_from_file(onnx)
        .map_err(|e| bad(format!("ONNX Runtime cannot load it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> std::result::Result<ModelSpec, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.json"),
            format!(
                r#"{{"format": "weir-model/1", "name": "m", "task": "anomaly",
                    "features": ["bidirectional_packets"]{extra}}}"#
            ),
        )
        .unwrap();
        ModelSpec::load(dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn records_default_to_flow_and_are_checked() {
        let s = spec("").unwrap();
        assert_eq!(
            s.records,
            [RecordKind::Flow],
            "older models score flow records"
        );
        assert!(s.scores_kind(RecordKind::Flow) && !s.scores_kind(RecordKind::Interval));
        let s = spec(r#", "records": ["interval"]"#).unwrap();
        assert!(!s.scores_kind(RecordKind::Flow) && s.scores_kind(RecordKind::Interval));
        let s = spec(r#", "records": ["flow", "interval"]"#).unwrap();
        assert!(s.scores_kind(RecordKind::Flow) && s.scores_kind(RecordKind::Interval));
        let e = spec(r#", "records": []"#).unwrap_err();
        assert!(
            e.contains("model.json") && e.contains("\"records\" is empty"),
            "{e}"
        );
        let e = spec(r#", "records": ["packet"]"#).unwrap_err();
        assert!(e.contains("model.json") && e.contains("packet"), "{e}");
    }
}
