//! The data manifest `weir extract` writes beside its records (`FLOWS.csv.manifest.json`):
//! what the records were made from and by what, so a model trained on them can name its data.
//!
//! `models/train.py` records the sha256 of this file (the manifest's bytes, as written) as the
//! model's data fingerprint (`model.json` `metadata.data.manifest_sha256`, and in MLflow). The
//! manifest holds the sha256 of the records file too, so the trainer can tell that the records
//! are the ones the manifest describes.
//!
//! ```json
//! {"format": "weir-manifest/1", "weir_version": "0.1.0", "created": "2026-12-01T19:49:04Z",
//!  "output": {"file": "FLOWS.csv", "sha256": "...", "bytes": 123, "records": 9},
//!  "captures": [{"path": "a.pcap", "sha256": "...", "bytes": 456}],
//!  "config": {"path": "weir.toml", "sha256": "..."} | null,
//!  "options": {"workers": 1, "plugin_dir": null, "no_plugins": false},
//!  "plugins": [{"name": "flowstats", "version": "1.0.0", "file": "libflowstats.so"}],
//!  "model": {"name": "demo", "version": "1", "source": "..."} | null}
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "weir-manifest/1";

/// The manifest path of a records file: `FLOWS.csv` -> `FLOWS.csv.manifest.json`. A Parquet
/// dataset directory holds the files of many runs, so each run's manifest gets a name of its
/// own inside it, which dataset readers (pyarrow, Spark) skip for its leading underscore, as
/// they skip `_SUCCESS`: `DIR/_manifest-<unix ms>-<pid>.json`.
pub fn path_for(records: &Path) -> PathBuf {
    if is_dataset(records) {
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        return records.join(format!("_manifest-{ms}-{}.json", std::process::id()));
    }
    let mut s = records.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

fn is_dataset(records: &Path) -> bool {
    matches!(
        crate::sink::Format::from_path(records),
        Ok(crate::sink::Format::ParquetDataset)
    )
}

/// sha256 of a file, hex, streamed (captures can be large).
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

/// The sha256 of a records file computed while the sink thread writes it: a thread follows
/// the file from its start, hashing what has reached it, and reads the rest once the writer
/// is done. Hashing the file after the run was a serial tail of every `weir extract` (about a
/// third of a second per 300 MB of CSV); now it overlaps the run. The thread may run on any
/// CPU (it is started from the main lcore, which EAL pins).
pub struct Follower {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Option<Followed>>,
    path: PathBuf,
}

/// What a follower read: the hash, the byte count, and the file it read (device, inode).
struct Followed {
    sha: String,
    bytes: u64,
    id: (u64, u64),
}

impl Follower {
    /// Follow the file at `path` (already created by its writer). `None` if it cannot be
    /// opened: the manifest then hashes the file after the run.
    pub fn start(path: &Path) -> Option<Follower> {
        use std::os::unix::fs::MetadataExt;
        let mut f = std::fs::File::open(path).ok()?;
        let m = f.metadata().ok()?;
        // Only a regular file ends where its writer stopped: `--out /dev/full` (or a FIFO)
        // would be read forever.
        if !m.is_file() {
            return None;
        }
        let id = (m.dev(), m.ino());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finished = done.clone();
        let handle = std::thread::Builder::new()
            .name("weir-hash-out".into())
            .spawn(move || {
                crate::affinity::unpin_current_thread();
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut bytes = 0u64;
                loop {
                    // Read after seeing `done`: everything the writer wrote is then in the file.
                    let last = finished.load(std::sync::atomic::Ordering::Acquire);
                    let k = f.read(&mut buf).ok()?;
                    if k > 0 {
                        h.update(&buf[..k]);
                        bytes += k as u64;
                    } else if last {
                        return Some(Followed {
                            sha: hex(&h.finalize()),
                            bytes,
                            id,
                        });
                    } else {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            })
            .ok()?;
        Some(Follower {
            done,
            handle,
            path: path.to_path_buf(),
        })
    }

    /// Once the writer has finished and closed the file: its sha256 and size. `None` when
    /// what was followed is not the file now at the path in full (replaced, rewritten in
    /// place or read short); the manifest then hashes the file itself.
    pub fn finish(self) -> Option<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        self.done.store(true, std::sync::atomic::Ordering::Release);
        let got = self.handle.join().ok()??;
        let m = std::fs::metadata(&self.path).ok()?;
        let same = (m.dev(), m.ino()) == got.id && m.len() == got.bytes;
        if !same {
            tracing::debug!(file = %self.path.display(), "records file replaced while followed: hashed again");
        }
        same.then_some((got.sha, got.bytes))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a manifest describes besides the files it hashes.
pub struct Inputs<'a> {
    pub records: &'a Path,
    pub record_count: u64,
    /// (sha256, bytes) of the records file, computed while it was written ([`Follower`]);
    /// `None`: hashed here.
    pub records_hash: Option<(String, u64)>,
    pub captures: &'a [PathBuf],
    /// (sha256, bytes) of each capture, computed while it was read; a capture without one
    /// is hashed here.
    pub capture_hashes: Option<&'a [Option<(String, u64)>]>,
    pub config: Option<&'a Path>,
    pub workers: u32,
    pub plugin_dir: Option<&'a Path>,
    pub no_plugins: bool,
    /// (name, version, file) of each loaded plugin.
    pub plugins: Vec<(String, String, PathBuf)>,
    /// (name, version, where it came from) of the model that scored the records.
    pub model: Option<(String, String, String)>,
}

/// The manifest as JSON.
pub fn build(i: &Inputs) -> Result<serde_json::Value> {
    // A dataset directory is shared by runs and rotated into many files: no one hash of it.
    let (out_sha, out_bytes) = if is_dataset(i.records) {
        (serde_json::Value::Null, serde_json::Value::Null)
    } else {
        let (sha, bytes) = match &i.records_hash {
            Some(h) => h.clone(),
            None => sha256_file(i.records)?,
        };
        (json!(sha), json!(bytes))
    };
    let mut captures = Vec::with_capacity(i.captures.len());
    for (k, c) in i.captures.iter().enumerate() {
        let known = i
            .capture_hashes
            .and_then(|h| h.get(k))
            .and_then(|h| h.clone());
        let (sha, bytes) = match known {
            Some(h) => h,
            None => sha256_file(c)?,
        };
        captures.push(json!({"path": c.display().to_string(), "sha256": sha, "bytes": bytes}));
    }
    let config = match i.config {
        Some(p) => {
            let (sha, _) = sha256_file(p)?;
            json!({"path": p.display().to_string(), "sha256": sha})
        }
        None => serde_json::Value::Null,
    };
    let plugins: Vec<_> = i
        .plugins
        .iter()
        .map(|(n, v, f)| {
            json!({"name": n, "version": v,
                   "file": f.file_name().map(|s| s.to_string_lossy().into_owned())})
        })
        .collect();
    let model = i
        .model
        .as_ref()
        .map(|(n, v, s)| json!({"name": n, "version": v, "source": s}));
    Ok(json!({
        "format": FORMAT,
        "weir_version": env!("CARGO_PKG_VERSION"),
        "created": rfc3339_utc(SystemTime::now()),
        "output": {
            "file": i.records.file_name().map(|s| s.to_string_lossy().into_owned()),
            "dataset": is_dataset(i.records),
            "sha256": out_sha,
            "bytes": out_bytes,
            "records": i.record_count,
        },
        "captures": captures,
        "config": config,
        "options": {
            "workers": i.workers,
            "plugin_dir": i.plugin_dir.map(|p| p.display().to_string()),
            "no_plugins": i.no_plugins,
        },
        "plugins": plugins,
        "model": model,
    }))
}

/// Write the manifest beside the records; returns its path.
pub fn write(i: &Inputs) -> Result<PathBuf> {
    let path = path_for(i.records);
    let text = serde_json::to_string_pretty(&build(i)?)? + "\n";
    std::fs::write(&path, text)
        .with_context(|| format!("cannot write the manifest {}", path.display()))?;
    Ok(path)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (days to civil date: H. Hinnant's `civil_from_days`).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_followed_file_hashes_as_the_whole_file_and_a_replaced_one_is_refused() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("r.csv");
        let mut f = std::fs::File::create(&p).unwrap();
        let follow = Follower::start(&p).unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..200u32 {
                // Pieces of uneven sizes, some past the reader's 1 MiB buffer, with pauses.
                let piece = vec![(i % 251) as u8; (i as usize * 7919) % (3 << 20)];
                f.write_all(&piece).unwrap();
                if i % 40 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(7));
                }
            }
        });
        writer.join().unwrap();
        assert_eq!(follow.finish(), Some(sha256_file(&p).unwrap()));
        // Not a regular file (`--out /dev/full`, whose reads never end): not followed.
        assert!(Follower::start(Path::new("/dev/full")).is_none());
        // Replaced under the follower (a rotation): no hash from it.
        let follow = Follower::start(&p).unwrap();
        std::fs::rename(&p, t.path().join("aside.csv")).unwrap();
        std::fs::write(&p, b"other").unwrap();
        assert_eq!(follow.finish(), None);
    }

    #[test]
    fn formats_utc_times() {
        let at = |s| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_154_544), "2026-12-01T19:49:04Z");
    }

    #[test]
    fn a_dataset_directory_gets_a_hidden_manifest_of_each_run() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            path_for(Path::new("out/flows.csv")),
            Path::new("out/flows.csv.manifest.json")
        );
        let m = path_for(t.path());
        assert_eq!(m.parent(), Some(t.path()));
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("_manifest-") && name.ends_with(".json"),
            "{name}"
        );
        let i = Inputs {
            records: t.path(),
            record_count: 0,
            records_hash: None,
            captures: &[],
            capture_hashes: None,
            config: None,
            workers: 1,
            plugin_dir: None,
            no_plugins: true,
            plugins: vec![],
            model: None,
        };
        let v = build(&i).unwrap();
        assert_eq!(v["output"]["dataset"], true);
        assert!(v["output"]["sha256"].is_null());
    }

    #[test]
    fn hashes_like_sha256sum() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        let (h, n) = sha256_file(&p).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            path_for(Path::new("/a/f.csv")),
            PathBuf::from("/a/f.csv.manifest.json")
        );
    }
}
