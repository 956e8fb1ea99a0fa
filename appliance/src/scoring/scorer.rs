//! One scorer: a model bound to a run's [`RecordSchema`] and one ONNX Runtime session, scoring
//! records in batches.
//!
//! Binding maps every model feature to a record [`Column`] once, at start: a feature nothing
//! provides is an error naming it and listing the columns' providers, never a silent NaN.
//! Feature values are f64 in records and fed as float32, as the model was trained on
//! `float32` matrices (models/weir_records.py); NaN (weir's "missing") is passed through.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;

use super::config::ScoringConfig;
use super::error::{Result, ScoringError};
use super::mlflow::{locate, Located, ModelTag};
use super::model::{open_session, ModelIo, ModelSpec, Task};
use super::runtime::{runtime, Runtime};
use crate::flow::record::{FlowRecord, RecordSchema, ScoreStatus};
use crate::flow::schema::{Column, CoreColumn};

/// A checked model bound to a schema: shared by all scorer threads.
#[derive(Debug)]
pub struct BoundModel {
    /// The directory holding `model.json` (a registry URI resolved).
    pub dir: PathBuf,
    /// The ONNX graph (`model.onnx`, or an MLflow model's onnx flavor file).
    pub onnx: PathBuf,
    /// Where it came from: directory, MLflow model, or registry version.
    pub location: Located,
    /// What every record it scores carries as `model_name`, `model_version`: the registered
    /// name and version when loaded from the MLflow registry, else model.json's.
    pub tag: Arc<ModelTag>,
    pub spec: ModelSpec,
    pub io: ModelIo,
    /// `columns[i]` feeds input column i.
    pub columns: Vec<Column>,
    /// Who provides each feature ("core", a plugin name, "rates").
    pub providers: Vec<String>,
}

/// Where the columns of a schema come from, for error messages.
pub fn column_sources(schema: &RecordSchema) -> String {
    let mut groups: Vec<(String, Vec<String>)> = vec![(
        "core (weir)".into(),
        CoreColumn::ALL
            .iter()
            .filter(|c| c.is_feature())
            .map(|c| c.name().to_string())
            .collect(),
    )];
    for (name, prov) in schema.extra.iter().zip(&schema.provider) {
        match groups.iter_mut().find(|(p, _)| p == prov) {
            Some((_, v)) => v.push(name.clone()),
            None => groups.push((prov.clone(), vec![name.clone()])),
        }
    }
    if schema.extra.is_empty() {
        groups.push(("plugins".into(), vec!["(none loaded)".into()]));
    }
    groups
        .iter()
        .map(|(p, v)| format!("{p}: {}", v.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Map each feature to a column, or name the first that nothing provides.
pub fn bind_features(
    spec: &ModelSpec,
    schema: &RecordSchema,
    json: &Path,
) -> Result<(Vec<Column>, Vec<String>)> {
    let mut cols = Vec::with_capacity(spec.features.len());
    let mut providers = Vec::with_capacity(spec.features.len());
    for f in &spec.features {
        let col = schema
            .column(f)
            .ok_or_else(|| ScoringError::UnknownFeature {
                path: json.to_path_buf(),
                feature: f.clone(),
                available: column_sources(schema),
            })?;
        providers.push(match col {
            Column::Core(_) => "core".to_string(),
            Column::Extra(i) => schema
                .provider
                .get(i)
                .cloned()
                .unwrap_or_else(|| "?".into()),
        });
        cols.push(col);
    }
    Ok((cols, providers))
}

/// The model directory (and every directory above it) and its two files must be changeable
/// only by root or the user weir runs as, like plugins: a model is code for ONNX Runtime.
fn check_model_perms(dir: &Path, onnx: &Path) -> Result<()> {
    let refuse = |path: &Path, e: crate::plugin_host::perms::PermError| ScoringError::Untrusted {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    crate::plugin_host::perms::check_trusted_dir(dir).map_err(|e| refuse(dir, e))?;
    for f in [onnx.to_path_buf(), dir.join("model.json")] {
        if f.exists() {
            crate::plugin_host::perms::open_checked(&f).map_err(|e| refuse(&f, e))?;
        }
    }
    Ok(())
}

/// Load, check and bind a model; returns it with the first session (reused by thread 0).
pub fn load(
    dir: &Path,
    schema: &RecordSchema,
    cfg: &ScoringConfig,
) -> Result<(Arc<BoundModel>, Runtime, Session)> {
    let location = locate(dir, cfg.mlflow_store.as_deref())?;
    let dir = location.dir.as_path();
    check_model_perms(dir, &location.onnx)?;
    let spec = ModelSpec::load(dir)?;
    let (columns, providers) = bind_features(&spec, schema, &dir.join("model.json"))?;
    let rt = runtime(cfg)?;
    let onnx = location.onnx.clone();
    let session = open_session(&rt, &onnx)?;
    let io = ModelIo::check(&spec, &session, &onnx)?;
    let tag = Arc::new(match &location.registry {
        Some((name, version)) => ModelTag {
            name: name.clone(),
            version: version.clone(),
        },
        None => ModelTag {
            name: spec.name.clone(),
            version: spec.version.clone(),
        },
    });
    let model = BoundModel {
        dir: dir.to_path_buf(),
        onnx,
        location,
        tag,
        spec,
        io,
        columns,
        providers,
    };
    Ok((Arc::new(model), rt, session))
}

/// Scores records with one session (`Session::run` takes `&mut self`: one per thread).
pub struct Scorer {
    model: Arc<BoundModel>,
    session: Session,
    input: Vec<f32>,
    /// Record schema, for reading extra columns.
    schema: RecordSchema,
}

impl Scorer {
    /// Load `model_dir` for records of `schema`, refusing any mismatch (see [`super::model`]).
    pub fn new(model_dir: &Path, schema: &RecordSchema, cfg: &ScoringConfig) -> Result<Scorer> {
        let (model, _rt, session) = load(model_dir, schema, cfg)?;
        Ok(Scorer::with_session(model, session, schema))
    }

    pub(crate) fn with_session(
        model: Arc<BoundModel>,
        session: Session,
        schema: &RecordSchema,
    ) -> Scorer {
        Scorer {
            model,
            session,
            input: Vec::new(),
            schema: schema.clone(),
        }
    }

    /// Another scorer on the same model with its own session.
    pub fn sibling(&self, rt: &Runtime) -> Result<Scorer> {
        let session = open_session(rt, &self.model.onnx)?;
        Ok(Scorer::with_session(
            self.model.clone(),
            session,
            &self.schema,
        ))
    }

    pub fn model(&self) -> &Arc<BoundModel> {
        &self.model
    }

    /// Score `records` in one model run: fills `prediction`, `scores` and `score_status`.
    /// On a failed run every record gets `ScoreStatus::Error` and the error is returned.
    pub fn score_batch(&mut self, records: &mut [FlowRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        match self.run(records) {
            Ok(()) => Ok(()),
            Err(e) => {
                let spec = &self.model.spec;
                for r in records.iter_mut().filter(|r| spec.scores_kind(r.kind())) {
                    r.score_status = ScoreStatus::Error;
                    r.prediction = None;
                    r.scores.clear();
                    r.model = Some(self.model.tag.clone());
                }
                Err(e)
            }
        }
    }

    fn run(&mut self, records: &mut [FlowRecord]) -> Result<()> {
        let m = &*self.model;
        let width = m.io.width;
        // Only the kinds of record the model was trained on (model.json "records").
        let wanted = |r: &FlowRecord| m.spec.scores_kind(r.kind());
        let n = records.iter().filter(|r| wanted(r)).count();
        if n == 0 {
            return Ok(());
        }
        self.input.clear();
        self.input.reserve(n * width);
        for r in records.iter().filter(|r| wanted(r)) {
            for &c in &m.columns {
                self.input.push(self.schema.value(r, c) as f32);
            }
        }
        let run_err = |e: ort::Error| ScoringError::Run(format!("{}: {e}", m.dir.display()));
        let tensor =
            TensorRef::from_array_view(([n, width], self.input.as_slice())).map_err(run_err)?;
        let outputs = self
            .session
            .run(ort::inputs![m.io.input.as_str() => tensor])
            .map_err(run_err)?;
        let (shape, scores) = outputs[m.io.scores.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(run_err)?;
        let per_row = match m.spec.task {
            Task::Classification => m.spec.classes.len(),
            Task::Anomaly => 1,
        };
        if scores.len() != n * per_row {
            return Err(ScoringError::Run(format!(
                "{}: output `{}` has shape {:?}, expected {n} x {per_row}",
                m.dir.display(),
                m.io.scores,
                &shape[..]
            )));
        }
        let labels = match &m.io.label {
            Some(name) => {
                let (_, l) = outputs[name.as_str()]
                    .try_extract_tensor::<i64>()
                    .map_err(run_err)?;
                (l.len() == n).then_some(l)
            }
            None => None,
        };
        for (i, r) in records.iter_mut().filter(|r| wanted(r)).enumerate() {
            let row = &scores[i * per_row..(i + 1) * per_row];
            r.scores.clear();
            r.scores.extend(row.iter().map(|&v| v as f64));
            r.prediction = Some(match m.spec.task {
                // First maximum, as numpy's argmax and sklearn's predict.
                Task::Classification => argmax(row) as u32,
                // sklearn: -1 outlier, 1 inlier; weir: 1 outlier, 0 inlier.
                Task::Anomaly => match labels {
                    Some(l) => u32::from(l[i] == -1),
                    None => u32::from(row[0] < 0.0),
                },
            });
            // A NaN anywhere in the row makes the prediction meaningless (argmax and the sign
            // test both treat NaN as "not greater"): say so instead of predicting.
            if row.iter().any(|v| v.is_nan()) {
                r.prediction = None;
                r.score_status = ScoreStatus::NanScore;
            } else {
                r.score_status = ScoreStatus::Scored;
            }
            r.model = Some(m.tag.clone());
        }
        Ok(())
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Fill a schema's score columns for this model (sinks write headers from it).
pub fn describe_schema(spec: &ModelSpec, schema: &mut RecordSchema) {
    schema.scored = true;
    schema.scores = spec.score_columns();
    schema.classes = match spec.task {
        Task::Classification => spec.classes.clone(),
        Task::Anomaly => Vec::new(),
    };
}
