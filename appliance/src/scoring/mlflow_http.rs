//! `models:/NAME/VERSION` and `models:/NAME/latest` against an MLflow tracking server
//! (`MLFLOW_TRACKING_URI=http://HOST:PORT`), through its REST API: the version
//! (`registered-models/get-latest-versions` or `model-versions/get`), where its artifacts are
//! (`logged-models/get` for MLflow 3's `models:/m-...` sources, else the version's
//! `storage_location`/`source`), then the files through the server's artifact proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/...`), which MLflow 3's default server (SQLite
//! backend, `mlflow-artifacts:` artifact root) serves.
//!
//! The files land in a local cache, `WEIR_MLFLOW_CACHE` (default `$XDG_CACHE_HOME/weir/mlflow`,
//! else `~/.cache/weir/mlflow`), as `NAME/VERSION/`: written
//! under a temporary name, each checked against the size the server lists, `MLmodel` and
//! `model.json` required, then renamed into place. A cached version whose files still have the
//! listed sizes is used as it is. Every request has a timeout; nothing here runs on the data
//! path (model load and SIGHUP reload only).
//!
//! `ureq` (a small blocking client) does the HTTP; plain `http://` only (a tracking server on
//! loopback or inside the cluster; put TLS in front with a local proxy).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Largest artifact weir downloads (an ONNX model of a few hundred MB at most).
const MAX_FILE: u64 = 2 << 30;

pub struct Server {
    base: String,
    agent: ureq::Agent,
}

type Res<T> = std::result::Result<T, String>;

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Server {
    pub fn new(uri: &str) -> Server {
        Server {
            base: uri.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Res<Value> {
        let url = format!("{}/api/2.0/{path}", self.base);
        let mut req = self.agent.get(&url);
        for (k, v) in query {
            req = req.query(k, v);
        }
        match req.call() {
            Ok(r) => r
                .into_json()
                .map_err(|e| format!("GET {url}: not JSON: {e}")),
            Err(ureq::Error::Status(code, r)) => Err(format!(
                "GET {url}: HTTP {code}: {}",
                r.into_string().unwrap_or_default().trim()
            )),
            Err(e) => Err(format!("GET {url}: {e}")),
        }
    }

    /// The version's JSON (`model_version`), `latest` resolved to the highest version.
    fn version(&self, name: &str, version: &str) -> Res<Value> {
        if version == "latest" {
            let url = format!(
                "{}/api/2.0/mlflow/registered-models/get-latest-versions",
                self.base
            );
            let body: Value = match self
                .agent
                .post(&url)
                .send_json(serde_json::json!({ "name": name }))
            {
                Ok(r) => r.into_json().map_err(|e| format!("POST {url}: {e}"))?,
                Err(ureq::Error::Status(code, r)) => {
                    return Err(format!(
                        "POST {url}: HTTP {code}: {}",
                        r.into_string().unwrap_or_default().trim()
                    ))
                }
                Err(e) => return Err(format!("POST {url}: {e}")),
            };
            // One entry per stage: the highest version over all of them.
            let best = body
                .get("model_versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .max_by_key(|v| {
                    str_of(v, "version")
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0)
                })
                .cloned();
            return best.ok_or_else(|| format!("registered model `{name}` has no version"));
        }
        let v = self.get(
            "mlflow/model-versions/get",
            &[("name", name), ("version", version)],
        )?;
        v.get("model_version")
            .cloned()
            .ok_or_else(|| format!("model-versions/get for {name} {version}: no model_version"))
    }

    /// The artifact-proxy path of a version's files (what follows
    /// `/api/2.0/mlflow-artifacts/artifacts/`).
    fn artifact_path(&self, mv: &Value) -> Res<String> {
        let mut uris: Vec<String> = Vec::new();
        for k in ["storage_location", "source"] {
            if let Some(s) = str_of(mv, k) {
                uris.push(s.to_string());
            }
        }
        // MLflow 3: the source is the logged model, `models:/m-ID`; its artifact_uri says where.
        let model_id = str_of(mv, "model_id").map(str::to_string).or_else(|| {
            str_of(mv, "source")
                .and_then(|s| s.strip_prefix("models:/"))
                .filter(|id| id.starts_with("m-"))
                .map(str::to_string)
        });
        if let Some(id) = model_id {
            let lm = self.get(&format!("mlflow/logged-models/{id}"), &[])?;
            if let Some(a) = lm
                .pointer("/model/info/artifact_uri")
                .and_then(Value::as_str)
            {
                uris.insert(0, a.to_string());
            }
        }
        for u in &uris {
            if let Some(rest) = u.strip_prefix("mlflow-artifacts:") {
                // mlflow-artifacts:/PATH or mlflow-artifacts://HOST:PORT/PATH
                let path = match rest.strip_prefix("//") {
                    Some(r) => r.split_once('/').map(|x| x.1).unwrap_or(""),
                    None => rest.trim_start_matches('/'),
                };
                return Ok(path.trim_end_matches('/').to_string());
            }
        }
        Err(format!(
            "the version's artifacts are at {}; weir downloads them through the server's \
             artifact proxy (mlflow-artifacts:), so start the server with artifact serving \
             (MLflow 3's default) or download the version yourself \
             (`mlflow artifacts download -u models:/NAME/VERSION -d DIR`) and give weir DIR",
            if uris.is_empty() {
                "no URI".to_string()
            } else {
                uris.join(", ")
            }
        ))
    }

    /// Every file under `path` (recursively): (relative path, size).
    fn list(&self, root: &str, rel: &str, out: &mut Vec<(String, u64)>) -> Res<()> {
        let full = if rel.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{rel}")
        };
        let v = self.get("mlflow-artifacts/artifacts", &[("path", &full)])?;
        for f in v
            .get("files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(p) = str_of(f, "path") else { continue };
            // The listing gives names relative to `path`, or (older servers) to the root.
            let name = p.rsplit('/').next().unwrap_or(p);
            if name.is_empty() || name == "." || name == ".." {
                return Err(format!("artifact listing of {full}: bad name `{p}`"));
            }
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if f.get("is_dir").and_then(Value::as_bool) == Some(true) {
                self.list(root, &child, out)?;
            } else {
                let size = f
                    .get("file_size")
                    .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()))
                    .ok_or_else(|| format!("artifact {child}: no file_size in the listing"))?;
                out.push((child, size));
            }
        }
        Ok(())
    }

    fn download(&self, root: &str, rel: &str, to: &Path, size: u64) -> Res<()> {
        if size > MAX_FILE {
            return Err(format!(
                "artifact {rel}: {size} bytes, more than weir loads"
            ));
        }
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{rel}",
            self.base
        );
        let r = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let mut buf = Vec::with_capacity(size as usize);
        r.into_reader()
            .take(MAX_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("GET {url}: {e}"))?;
        if buf.len() as u64 != size {
            return Err(format!(
                "artifact {rel}: {} bytes downloaded, the server lists {size}",
                buf.len()
            ));
        }
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(to, &buf).map_err(|e| format!("{}: {e}", to.display()))
    }
}

/// The cache directory: `WEIR_MLFLOW_CACHE`, else the user's cache.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_MLFLOW_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("weir").join("mlflow")
}

fn complete(dir: &Path, files: &[(String, u64)]) -> bool {
    files.iter().all(|(rel, size)| {
        std::fs::metadata(dir.join(rel)).is_ok_and(|m| m.is_file() && m.len() == *size)
    })
}

/// Resolve `NAME`/`VERSION` on the server at `uri` and bring its files into the cache; the
/// local model directory and the version number.
pub fn fetch(uri: &str, name: &str, version: &str, cache: &Path) -> Res<(PathBuf, String)> {
    let s = Server::new(uri);
    let mv = s.version(name, version)?;
    let resolved = str_of(&mv, "version")
        .ok_or("the server's model version has no version number")?
        .to_string();
    if let Some(st) = str_of(&mv, "status").filter(|st| *st != "READY") {
        return Err(format!("version {resolved} of `{name}` is {st}, not READY"));
    }
    let root = s.artifact_path(&mv)?;
    let mut files = Vec::new();
    s.list(&root, "", &mut files)?;
    for need in ["MLmodel", "model.json"] {
        if !files.iter().any(|(f, _)| f == need) {
            return Err(format!(
                "version {resolved} of `{name}` has no {need} in its artifacts ({root}); log it \
                 with models/train.py, which puts weir's model.json beside MLmodel"
            ));
        }
    }
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("model name `{name}` cannot be a cache directory"));
    }
    let dir = cache.join(name).join(&resolved);
    if complete(&dir, &files) {
        return Ok((dir, resolved));
    }
    let tmp = cache
        .join(name)
        .join(format!(".{resolved}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        for (rel, size) in &files {
            if rel.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(format!("artifact path `{rel}` leaves the model directory"));
            }
            s.download(&root, rel, &tmp.join(rel), *size)?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok((dir, resolved))
}
