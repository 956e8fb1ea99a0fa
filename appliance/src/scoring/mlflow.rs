//! Where a model's files are: a `weir-model/1` directory, an MLflow model directory, or an
//! MLflow registry URI resolved against a local MLflow file store.
//!
//! - **weir-model/1**: `DIR/model.json` + `DIR/model.onnx` (see `models/README.md`).
//! - **MLflow model**: `DIR/MLmodel` (YAML) whose `flavors.onnx.data` names the ONNX file,
//!   with weir's `model.json` beside it (`models/train.py` logs it there). An MLflow model
//!   without `model.json` is refused: weir needs the feature order and classes it holds.
//! - **`models:/NAME/VERSION`** or **`models:/NAME/latest`**: read from the file store's
//!   layout, `STORE/models/NAME/version-N/meta.yaml`, whose `storage_location` (else
//!   `source`, else `model_id`) points at the version's artifacts, an MLflow model directory.
//!   The store is `[model] mlflow_store`, else `MLFLOW_TRACKING_URI` when it is a `file:` URI
//!   or a path.
//! - The same URIs with `MLFLOW_TRACKING_URI=http://HOST:PORT` (and no `mlflow_store`): resolved
//!   through the tracking server's REST API and downloaded to a local cache
//!   (`mlflow_http.rs`).
//!
//! YAML is read with `serde_yaml_ng` (the maintained fork of the deprecated `serde_yaml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{Result, ScoringError};

/// The scheme of a registry URI.
pub const REGISTRY_SCHEME: &str = "models:/";

/// A model's files and how they were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The directory holding `model.json`.
    pub dir: PathBuf,
    /// The ONNX graph.
    pub onnx: PathBuf,
    /// How weir found it, for logs and `weir models inspect`.
    pub origin: String,
    /// The registered name and version when loaded from the registry.
    pub registry: Option<(String, String)>,
}

/// The tag a scored record carries (defined with the record: records do not depend on scoring).
pub use crate::flow::record::ModelTag;

fn err(path: &Path, reason: impl Into<String>) -> ScoringError {
    ScoringError::ModelJson {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Find a model's files. `spec` is a directory or a `models:/` URI; `store` the configured
/// MLflow store (`[model] mlflow_store`), if any.
pub fn locate(spec: &Path, store: Option<&Path>) -> Result<Located> {
    if let Some(uri) = spec.to_str().filter(|s| s.starts_with(REGISTRY_SCHEME)) {
        let (name, version) = parse_registry_uri(uri).map_err(|r| err(spec, r))?;
        if let (None, Some(server)) = (store, tracking_server()) {
            let cache = super::mlflow_http::cache_root();
            let (dir, resolved) = super::mlflow_http::fetch(&server, &name, &version, &cache)
                .map_err(|r| err(spec, format!("MLflow tracking server {server}: {r}")))?;
            let mut loc = locate_dir(&dir)?;
            loc.origin = format!(
                "MLflow registry {uri} (version {resolved} on {server}, cached in {}) -> {}",
                dir.display(),
                loc.origin
            );
            loc.registry = Some((name, resolved));
            return Ok(loc);
        }
        let store = store_path(store).map_err(|r| err(spec, r))?;
        let (artifacts, resolved) = resolve_version(&store, &name, &version)?;
        let mut loc = locate_dir(&artifacts)?;
        loc.origin = format!(
            "MLflow registry {uri} (version {resolved} in store {}) -> {}",
            store.display(),
            loc.origin
        );
        loc.registry = Some((name, resolved));
        return Ok(loc);
    }
    locate_dir(spec)
}

/// A directory: an MLflow model when it has `MLmodel`, else a `weir-model/1` directory.
pub fn locate_dir(dir: &Path) -> Result<Located> {
    let mlmodel = dir.join("MLmodel");
    if !mlmodel.is_file() {
        return Ok(Located {
            dir: dir.to_path_buf(),
            onnx: dir.join("model.onnx"),
            origin: format!("weir-model/1 directory {}", dir.display()),
            registry: None,
        });
    }
    let onnx = onnx_of_mlmodel(&mlmodel)?;
    if !dir.join("model.json").is_file() {
        return Err(err(
            &dir.join("model.json"),
            "an MLflow model without weir's model.json (its features, in input order, and \
             classes): log the model with models/train.py, which puts model.json beside MLmodel",
        ));
    }
    Ok(Located {
        dir: dir.to_path_buf(),
        onnx: dir.join(&onnx),
        origin: format!("MLflow model {} (onnx flavor: {onnx})", dir.display()),
        registry: None,
    })
}

#[derive(Deserialize)]
struct MlModel {
    #[serde(default)]
    flavors: BTreeMap<String, serde_yaml_ng::Value>,
}

/// `flavors.onnx.data` of an `MLmodel` file: the ONNX file, relative to its directory.
fn onnx_of_mlmodel(mlmodel: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(mlmodel).map_err(|e| err(mlmodel, format!("cannot read: {e}")))?;
    let m: MlModel = serde_yaml_ng::from_str(&text)
        .map_err(|e| err(mlmodel, format!("not an MLmodel YAML file: {e}")))?;
    let Some(onnx) = m.flavors.get("onnx") else {
        return Err(err(
            mlmodel,
            format!(
                "no onnx flavor (flavors: {}); weir runs ONNX models: log it with mlflow.onnx",
                m.flavors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let data = onnx.get("data").and_then(|d| d.as_str()).ok_or_else(|| {
        err(
            mlmodel,
            "the onnx flavor has no `data` (the ONNX file name)",
        )
    })?;
    if Path::new(data).is_absolute() || data.split('/').any(|c| c == "..") {
        return Err(err(
            mlmodel,
            format!("onnx flavor data `{data}` is not a file inside the model directory"),
        ));
    }
    Ok(data.to_string())
}

/// `models:/NAME/VERSION` -> (NAME, VERSION); VERSION is a number or `latest`.
pub fn parse_registry_uri(uri: &str) -> std::result::Result<(String, String), String> {
    let rest = &uri[REGISTRY_SCHEME.len()..];
    let bad = || {
        format!("`{uri}` is not a registry URI weir reads: use models:/NAME/VERSION or models:/NAME/latest")
    };
    let (name, version) = rest.rsplit_once('/').ok_or_else(bad)?;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(bad());
    }
    if version != "latest" && (version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "{}; `{version}` is neither a version number nor `latest` (aliases and stages are not read)",
            bad()
        ));
    }
    Ok((name.to_string(), version.to_string()))
}

/// `MLFLOW_TRACKING_URI` when it names a tracking server (`http://...`).
fn tracking_server() -> Option<String> {
    std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

/// The local store: the configured one, else `MLFLOW_TRACKING_URI` (a `file:` URI or a path).
fn store_path(configured: Option<&Path>) -> std::result::Result<PathBuf, String> {
    if let Some(p) = configured {
        return Ok(match p.to_str() {
            Some(s) if s.starts_with("file:") => file_uri_path(s)?,
            _ => p.to_path_buf(),
        });
    }
    match std::env::var("MLFLOW_TRACKING_URI") {
        Ok(u) if u.starts_with("file:") => file_uri_path(&u),
        Ok(u) if !u.contains("://") && !u.is_empty() => Ok(PathBuf::from(u)),
        Ok(u) => Err(format!(
            "MLFLOW_TRACKING_URI is {u}; weir reads a registry from a local MLflow file store \
             only: set [model] mlflow_store to the store's directory, or download the version \
             with `mlflow artifacts download -u models:/NAME/VERSION -d DIR` and give weir DIR"
        )),
        Err(_) => Err(
            "a models:/ URI needs a local MLflow store: set [model] mlflow_store \
                       (the mlruns directory) or MLFLOW_TRACKING_URI=file:/path/to/mlruns"
                .into(),
        ),
    }
}

/// The path of a `file:` URI (`file:///abs`, `file:/abs`, `file:rel`), percent-decoded.
pub fn file_uri_path(uri: &str) -> std::result::Result<PathBuf, String> {
    let rest = uri
        .strip_prefix("file:")
        .ok_or_else(|| format!("`{uri}` is not a file: URI"))?;
    let path = match rest.strip_prefix("//") {
        // file://HOST/path: only the local host.
        Some(r) => match r.find('/') {
            Some(0) => r,
            Some(i) if &r[..i] == "localhost" => &r[i..],
            _ => {
                return Err(format!(
                    "`{uri}` names another host; weir reads local files"
                ))
            }
        },
        None => rest,
    };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or(&[]))
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map(PathBuf::from)
        .map_err(|_| format!("`{uri}` is not UTF-8 once decoded"))
}

/// A registered version's `meta.yaml` (the fields weir reads).
#[derive(Deserialize, Default)]
struct VersionMeta {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    storage_location: Option<String>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// The artifacts directory of `NAME` version `VERSION` (or the highest when `latest`), and the
/// version number it resolved to.
pub fn resolve_version(store: &Path, name: &str, version: &str) -> Result<(PathBuf, String)> {
    let models = store.join("models");
    let model_dir = models.join(name);
    if !model_dir.join("meta.yaml").is_file() {
        let known: Vec<String> = std::fs::read_dir(&models)
            .map(|rd| {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().join("meta.yaml").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        return Err(err(
            &model_dir,
            format!(
                "no registered model `{name}` in the MLflow store {} (registered: {})",
                store.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let versions = versions_of(&model_dir);
    let n = if version == "latest" {
        *versions.last().ok_or_else(|| {
            err(
                &model_dir,
                format!("registered model `{name}` has no version"),
            )
        })?
    } else {
        let n: u64 = version
            .parse()
            .map_err(|_| err(&model_dir, format!("bad version `{version}`")))?;
        if !versions.contains(&n) {
            return Err(err(
                &model_dir.join(format!("version-{n}")),
                format!(
                    "registered model `{name}` has no version {n} (versions: {})",
                    versions
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        n
    };
    let meta_path = model_dir.join(format!("version-{n}")).join("meta.yaml");
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| err(&meta_path, format!("cannot read: {e}")))?;
    let meta: VersionMeta = serde_yaml_ng::from_str(&text)
        .map_err(|e| err(&meta_path, format!("not a model version meta.yaml: {e}")))?;
    if let Some(s) = meta.status.as_deref().filter(|s| *s != "READY") {
        return Err(err(
            &meta_path,
            format!("version {n} of `{name}` is {s}, not READY"),
        ));
    }
    let mut tried = Vec::new();
    for uri in [&meta.storage_location, &meta.source].into_iter().flatten() {
        if let Some(p) = local_path(uri) {
            if p.join("MLmodel").is_file() {
                return Ok((p, n.to_string()));
            }
        }
        tried.push(uri.clone());
    }
    // The store moved since logging (absolute URIs are stale): the logged model by its id,
    // or the run's artifacts for a `runs:/RUN/PATH` source, inside this store.
    let by_id = meta.model_id.clone().or_else(|| {
        meta.source
            .as_deref()
            .and_then(|s| s.strip_prefix(REGISTRY_SCHEME))
            .filter(|id| id.starts_with("m-"))
            .map(str::to_string)
    });
    if let Some(id) = by_id {
        if let Some(p) =
            find_in_experiments(store, |exp| exp.join("models").join(&id).join("artifacts"))
        {
            return Ok((p, n.to_string()));
        }
        tried.push(format!("logged model {id} in {}", store.display()));
    }
    if let (Some(run), Some(src)) = (&meta.run_id, meta.source.as_deref()) {
        if let Some(rel) = src
            .strip_prefix("runs:/")
            .and_then(|r| r.split_once('/'))
            .map(|(_, rel)| rel.to_string())
        {
            if let Some(p) =
                find_in_experiments(store, |exp| exp.join(run).join("artifacts").join(&rel))
            {
                return Ok((p, n.to_string()));
            }
        }
    }
    Err(err(
        &meta_path,
        format!(
            "version {n} of `{name}` has no MLflow model weir can read locally (tried: {}); \
             download it with `mlflow artifacts download -u models:/{name}/{n} -d DIR` and give weir DIR",
            tried.join("; ")
        ),
    ))
}

/// The version numbers of a registered model (`version-N` directories), ascending.
fn versions_of(model_dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(model_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("meta.yaml").is_file())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|s| s.strip_prefix("version-"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// A local directory from an artifact URI (`file:` or a plain path); other schemes are remote.
fn local_path(uri: &str) -> Option<PathBuf> {
    if uri.starts_with("file:") {
        file_uri_path(uri).ok()
    } else if !uri.contains(":/") {
        Some(PathBuf::from(uri))
    } else {
        None
    }
}

/// The first experiment directory of the store where `f(exp)` is an MLflow model.
fn find_in_experiments(store: &Path, f: impl Fn(&Path) -> PathBuf) -> Option<PathBuf> {
    let mut exps: Vec<PathBuf> = std::fs::read_dir(store)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("meta.yaml").is_file())
        .collect();
    exps.sort();
    exps.into_iter()
        .map(|e| f(&e))
        .find(|p| p.join("MLmodel").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A store as MLflow 3's file store lays it out: an experiment with a logged model, and a
    /// registered model with versions pointing at it.
    fn store(root: &Path, versions: &[(u64, &str)]) {
        write(&root.join("0/meta.yaml"), "name: Default\n");
        write(&root.join("7/meta.yaml"), "name: weir\n");
        for (n, id) in versions {
            let art = root.join(format!("7/models/{id}/artifacts"));
            write(
                &art.join("MLmodel"),
                "flavors:\n  onnx:\n    data: model.onnx\n  python_function:\n    loader_module: mlflow.onnx\n",
            );
            write(&art.join("model.json"), "{}");
            write(
                &root.join(format!("models/demo/version-{n}/meta.yaml")),
                &format!(
                    "name: demo\nversion: {n}\nmodel_id: {id}\nsource: models:/{id}\nstatus: READY\nstorage_location: file://{}\n",
                    art.display()
                ),
            );
        }
        write(&root.join("models/demo/meta.yaml"), "name: demo\n");
    }

    #[test]
    fn parses_registry_uris() {
        assert_eq!(
            parse_registry_uri("models:/demo/3").unwrap(),
            ("demo".into(), "3".into())
        );
        assert_eq!(
            parse_registry_uri("models:/demo/latest").unwrap().1,
            "latest"
        );
        for bad in [
            "models:/demo",
            "models:/demo/",
            "models:/a/b/1",
            "models:/demo/prod",
            "models://1",
        ] {
            assert!(parse_registry_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decodes_file_uris() {
        assert_eq!(
            file_uri_path("file:///a/b%20c").unwrap(),
            PathBuf::from("/a/b c")
        );
        assert_eq!(file_uri_path("file:/a/b").unwrap(), PathBuf::from("/a/b"));
        assert_eq!(
            file_uri_path("file://localhost/a").unwrap(),
            PathBuf::from("/a")
        );
        assert_eq!(
            file_uri_path("file:mlruns").unwrap(),
            PathBuf::from("mlruns")
        );
        assert!(file_uri_path("file://host/a").is_err());
    }

    #[test]
    fn resolves_versions_and_latest() {
        let t = tempfile::tempdir().unwrap();
        store(t.path(), &[(1, "m-aa"), (2, "m-bb"), (10, "m-cc")]);
        let (p, v) = resolve_version(t.path(), "demo", "2").unwrap();
        assert_eq!(v, "2");
        assert_eq!(p, t.path().join("7/models/m-bb/artifacts"));
        // latest is the highest number, not the last in directory order ("10" > "2").
        let (p, v) = resolve_version(t.path(), "demo", "latest").unwrap();
        assert_eq!(
            (p, v),
            (t.path().join("7/models/m-cc/artifacts"), "10".into())
        );
        let loc = locate(Path::new("models:/demo/1"), Some(t.path())).unwrap();
        assert_eq!(loc.registry, Some(("demo".into(), "1".into())));
        assert_eq!(
            loc.onnx,
            t.path().join("7/models/m-aa/artifacts/model.onnx")
        );
    }

    #[test]
    fn a_moved_store_resolves_by_model_id() {
        let t = tempfile::tempdir().unwrap();
        store(&t.path().join("old"), &[(1, "m-aa")]);
        let moved = t.path().join("new");
        std::fs::rename(t.path().join("old"), &moved).unwrap();
        let (p, _) = resolve_version(&moved, "demo", "1").unwrap();
        assert_eq!(p, moved.join("7/models/m-aa/artifacts"));
    }

    #[test]
    fn refusals_name_the_path_and_reason() {
        let t = tempfile::tempdir().unwrap();
        store(t.path(), &[(1, "m-aa")]);
        let e = resolve_version(t.path(), "nope", "1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no registered model `nope`") && e.contains("registered: demo"),
            "{e}"
        );
        let e = resolve_version(t.path(), "demo", "4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("version-4") && e.contains("versions: 1"), "{e}");
        // An MLflow model without model.json.
        let art = t.path().join("7/models/m-aa/artifacts");
        std::fs::remove_file(art.join("model.json")).unwrap();
        let e = locate(Path::new("models:/demo/1"), Some(t.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&art.join("model.json").display().to_string()),
            "{e}"
        );
        assert!(e.contains("without weir's model.json"), "{e}");
        // No onnx flavor.
        write(
            &art.join("MLmodel"),
            "flavors:\n  sklearn:\n    pickled_model: model.pkl\n",
        );
        let e = locate_dir(&art).unwrap_err().to_string();
        assert!(e.contains("no onnx flavor (flavors: sklearn)"), "{e}");
        // No store configured.
        let e = store_path(None);
        if std::env::var("MLFLOW_TRACKING_URI").is_err() {
            assert!(e.unwrap_err().contains("[model] mlflow_store"));
        }
    }
}
