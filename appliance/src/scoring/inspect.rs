//! `weir models inspect DIR`: what a model reads and writes, and who provides each feature.

use std::fmt::Write;
use std::path::Path;

use super::config::ScoringConfig;
use super::error::Result;
use super::model::Task;
use super::scorer::load;
use crate::flow::record::RecordSchema;

/// Describe a model directory against the columns of this run (`schema`), loading it exactly
/// as scoring would (so every refusal shows here too). Uses the default library discovery.
pub fn inspect(model_dir: &Path, schema: &RecordSchema) -> Result<String> {
    inspect_with(model_dir, schema, &ScoringConfig::default())
}

pub fn inspect_with(
    model_dir: &Path,
    schema: &RecordSchema,
    cfg: &ScoringConfig,
) -> Result<String> {
    let (model, rt, session) = load(model_dir, schema, cfg)?;
    let spec = &model.spec;
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        s,
        "model     {} (version {}) in {}",
        spec.name,
        spec.version,
        model.dir.display()
    );
    let _ = writeln!(s, "source    {}", model.location.origin);
    let _ = writeln!(
        s,
        "records   model_name={} model_version={}",
        model.tag.name, model.tag.version
    );
    if let Some(fp) = spec
        .metadata
        .get("data")
        .and_then(|d| d.get("manifest_sha256"))
        .and_then(|v| v.as_str())
    {
        let _ = writeln!(s, "data      manifest sha256 {fp}");
    }
    let _ = writeln!(s, "format    {}", spec.format);
    let _ = writeln!(s, "task      {:?}", spec.task);
    let kinds: Vec<&str> = spec.records.iter().map(|k| k.as_str()).collect();
    let _ = writeln!(s, "records   {}", kinds.join(", "));
    let _ = writeln!(
        s,
        "runtime   ONNX Runtime {} from {}",
        rt.version,
        rt.path.display()
    );
    let _ = writeln!(s, "inputs");
    for i in session.inputs() {
        let mark = if i.name() == model.io.input {
            " (fed by weir)"
        } else {
            ""
        };
        let _ = writeln!(s, "  {}: {}{mark}", i.name(), i.dtype());
    }
    let _ = writeln!(s, "outputs");
    for o in session.outputs() {
        let mark = if o.name() == model.io.scores {
            match spec.task {
                Task::Classification => " -> proba_<class>",
                Task::Anomaly => " -> anomaly_score",
            }
        } else if Some(o.name()) == model.io.label.as_deref() {
            " -> prediction"
        } else {
            ""
        };
        let _ = writeln!(s, "  {}: {}{mark}", o.name(), o.dtype());
    }
    if spec.task == Task::Classification {
        let _ = writeln!(s, "classes   {}", spec.classes.join(", "));
    }
    match &spec.alert {
        Some(a) => {
            let _ = writeln!(s, "alert     {a:?}");
        }
        None => {
            let _ = writeln!(s, "alert     (none)");
        }
    }
    let _ = writeln!(
        s,
        "features  {} (input order, provider)",
        spec.features.len()
    );
    for (i, (f, p)) in spec.features.iter().zip(&model.providers).enumerate() {
        let _ = writeln!(s, "  {i:>3} {f:<36} {p}");
    }
    Ok(s)
}
