//! Finding, checking and loading the ONNX Runtime shared library (`ort` with `load-dynamic`).
//!
//! Order for `weir run` (the appliance): the `[model] ort_library` key, then `ORT_DYLIB_PATH`,
//! then the install location [`INSTALLED_LIBRARY`], then the system's `libonnxruntime.so`
//! (`/usr/local/lib`, `/usr/lib`, `/usr/lib/x86_64-linux-gnu`, `/usr/lib64`). Nothing is
//! looked for relative to the working directory. The offline commands (`weir extract`,
//! `weir cost`, `weir models inspect`) call [`allow_project_venv`] first and may also use the
//! `onnxruntime` wheel of `$VIRTUAL_ENV` (the environment the user activated, trusted as
//! `ORT_DYLIB_PATH` is) or of a `.venv` in a directory above the executable (the project's own
//! venv when weir runs from its build tree). That is no new trust: whoever can create a
//! `.venv` above the executable can replace the executable itself, except in a sticky
//! directory like `/tmp`, and there the ownership checks below refuse another user's venv.
//! The working directory is never searched: running `weir extract` inside a downloaded tree
//! must not run that tree's code. A path named by the config or the environment is used or
//! refused, never skipped over.
//!
//! Whatever the source, the library is opened once and checked by descriptor as plugins are
//! (`plugin_host::perms`): a regular file owned by root or the user weir runs as, writable
//! only by its owner, in a directory (and every parent) that only root or that user can
//! change (sticky root-owned directories like `/tmp` excepted). Both the probe below and `ort`
//! load that descriptor (`/proc/self/fd/N`), which stays open for the life of the process.
//!
//! Before handing the path to `ort::init_from` (never `ort::init`, which panics when the
//! library is missing) we open it ourselves and read `OrtGetApiBase()->GetVersionString()`, so
//! a missing file, a library that is not ONNX Runtime, or a version older than the API `ort`
//! was built for (`ort::MINOR_VERSION`) is refused with the path and the reason. One ONNX
//! Runtime environment exists per process: the first successful load wins, and a later request
//! for another library is refused rather than silently ignored.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::plugin_host::perms;

use super::config::ScoringConfig;
use super::error::{Result, ScoringError};

/// The loaded library and the process's ONNX Runtime environment.
#[derive(Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub version: String,
    pub env: ort::environment::Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Where packages and the Docker image install ONNX Runtime.
pub const INSTALLED_LIBRARY: &str = "/usr/lib/weir/onnxruntime/libonnxruntime.so";

static PROJECT_VENV: AtomicBool = AtomicBool::new(false);

/// Let discovery use `$VIRTUAL_ENV`'s and the project's own `.venv` wheel (offline commands
/// only; see the module docs for why that is safe).
pub fn allow_project_venv() {
    PROJECT_VENV.store(true, Ordering::Relaxed);
}

/// A candidate library and where its path came from.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub path: PathBuf,
    pub source_of: String,
}

/// The wheel's library inside a venv: `lib/python3.*/site-packages/onnxruntime/capi/
/// libonnxruntime.so.<version>` (the wheel ships no plain `.so` name).
fn in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| {
            let capi = e.path().join("site-packages/onnxruntime/capi");
            let files = std::fs::read_dir(capi).ok()?;
            files.flatten().map(|f| f.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so."))
            })
        })
        .collect();
    found.sort();
    found.pop()
}

/// Every place a `.venv` is looked for, in order: none unless [`allow_project_venv`] was
/// called, then `$VIRTUAL_ENV` and each directory above the executable (never the cwd).
fn venv_dirs() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if !PROJECT_VENV.load(Ordering::Relaxed) {
        return roots;
    }
    if let Ok(v) = std::env::var("VIRTUAL_ENV") {
        if !v.is_empty() {
            roots.push(PathBuf::from(v));
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1) {
            let v = anc.join(".venv");
            if !roots.contains(&v) {
                roots.push(v);
            }
        }
    }
    roots
}

/// Where the library will be loaded from, or why none was found.
pub fn discover(cfg: &ScoringConfig) -> Result<Candidate> {
    if let Some(p) = &cfg.ort_library {
        return Ok(Candidate {
            path: p.clone(),
            source_of: "[model] ort_library".into(),
        });
    }
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        if !p.is_empty() {
            return Ok(Candidate {
                path: PathBuf::from(p),
                source_of: "ORT_DYLIB_PATH".into(),
            });
        }
    }
    let venvs = venv_dirs();
    for v in &venvs {
        if let Some(p) = in_venv(v) {
            return Ok(Candidate {
                path: p,
                source_of: format!("the onnxruntime wheel in {}", v.display()),
            });
        }
    }
    let installed = Path::new(INSTALLED_LIBRARY);
    if installed.exists() {
        return Ok(Candidate {
            path: installed.to_path_buf(),
            source_of: "the install location".into(),
        });
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
    ] {
        let p = Path::new(dir).join("libonnxruntime.so");
        if p.exists() {
            return Ok(Candidate {
                path: p,
                source_of: "the system library".into(),
            });
        }
    }
    let mut searched: Vec<String> = vec!["[model] ort_library (unset)".into()];
    searched.push("ORT_DYLIB_PATH (unset)".into());
    searched.extend(venvs.iter().map(|v| v.display().to_string()));
    searched.push(INSTALLED_LIBRARY.into());
    searched.push("/usr/local/lib, /usr/lib, /usr/lib/x86_64-linux-gnu, /usr/lib64".into());
    Err(ScoringError::NoLibrary {
        searched: searched.join(", "),
    })
}

/// The library opened and checked by descriptor, and the `/proc/self/fd/N` path to load it
/// by. The descriptor is never closed (glibc knows the library by that name).
fn open_checked(c: &Candidate) -> Result<PathBuf> {
    let fail = |reason: String| ScoringError::Library {
        path: c.path.clone(),
        source_of: c.source_of.clone(),
        reason,
    };
    if !c.path.exists() {
        return Err(fail("no such file".into()));
    }
    let f = perms::open_trusted_file(&c.path).map_err(|e| fail(format!("refused: {e}")))?;
    let fd_path = perms::fd_path(&f);
    let _ = std::os::fd::IntoRawFd::into_raw_fd(f);
    Ok(fd_path)
}

/// Open the library and read its version, without giving it to `ort`.
pub fn probe(c: &Candidate) -> Result<String> {
    let fd_path = open_checked(c)?;
    probe_at(c, &fd_path)
}

fn probe_at(c: &Candidate, fd_path: &Path) -> Result<String> {
    let fail = |reason: String| ScoringError::Library {
        path: c.path.clone(),
        source_of: c.source_of.clone(),
        reason,
    };
    // RTLD_NODELETE: ONNX Runtime is not built to be unloaded, and `ort` opens it again.
    let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE;
    // SAFETY: loading a shared library runs its initialisers; the file is the one the operator
    // named (or the venv's wheel) and passed the ownership checks on this very descriptor.
    let lib =
        unsafe { libloading::os::unix::Library::open(Some(fd_path), flags) }.map_err(|e| {
            fail(format!(
                "cannot be loaded: {}",
                e.to_string()
                    .replace(&*fd_path.to_string_lossy(), &c.path.display().to_string())
            ))
        })?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the symbol's type is ONNX Runtime's C API entry point (onnxruntime_c_api.h).
    let get: libloading::os::unix::Symbol<GetApiBase> = unsafe { lib.get(b"OrtGetApiBase\0") }
        .map_err(|_| fail("does not export OrtGetApiBase: not an ONNX Runtime library".into()))?;
    // SAFETY: OrtGetApiBase takes nothing and returns a pointer to a static struct.
    let base = unsafe { get() };
    if base.is_null() {
        return Err(fail("OrtGetApiBase returned null".into()));
    }
    // SAFETY: base is non-null and points at the library's static OrtApiBase; GetVersionString
    // returns a static NUL-terminated string.
    let version = unsafe {
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return Err(fail("GetVersionString returned null".into()));
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    match (major, minor) {
        (Some(1), Some(m)) if m >= ort::MINOR_VERSION => Ok(version),
        _ => Err(fail(format!(
            "version {version}, but weir's ort needs ONNX Runtime >= 1.{} (pip install onnxruntime==1.31.1)",
            ort::MINOR_VERSION
        ))),
    }
}

/// The process's ONNX Runtime, loaded on first use.
pub fn runtime(cfg: &ScoringConfig) -> Result<Runtime> {
    let c = discover(cfg)?;
    if !c.path.exists() {
        // Said first, even when another library is already loaded.
        return Err(ScoringError::Library {
            path: c.path.clone(),
            source_of: c.source_of.clone(),
            reason: "no such file".into(),
        });
    }
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        if same_file(&rt.path, &c.path) {
            return Ok(rt.clone());
        }
        return Err(ScoringError::Library {
            path: c.path,
            source_of: c.source_of,
            reason: format!(
                "ONNX Runtime is already loaded in this process from {}; one library per process",
                rt.path.display()
            ),
        });
    }
    // Opened (one descriptor for the process) only when nothing is loaded yet.
    let fd_path = open_checked(&c)?;
    let version = probe_at(&c, &fd_path)?;
    let fail = |reason: String| ScoringError::Library {
        path: c.path.clone(),
        source_of: c.source_of.clone(),
        reason,
    };
    let env = ort::init_from(&fd_path)
        .map_err(|e| fail(e.to_string()))?
        .with_name("weir")
        .build()
        .map_err(|e| fail(format!("creating the environment failed: {e}")))?;
    let rt = Runtime {
        path: c.path.clone(),
        version,
        env,
    };
    let _ = RUNTIME.set(rt.clone());
    Ok(rt)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
