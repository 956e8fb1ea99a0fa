//! Finding, opening and admitting plugins.
//!
//! Every `*.so` in the plugin directory, in file-name order, goes through the same gate:
//! permissions of the directory, of every directory above it and of the file (opened once; its
//! descriptor is `fstat`ed and that descriptor is loaded, as `/proc/self/fd/N`),
//! `dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)`,
//! the entry symbol, the descriptor ([`super::descriptor`]), unique plugin and column names,
//! and the self-test ([`super::selftest`]). A file that fails is refused with a [`Refusal`]
//! and loading goes on, unless the plugin is required. Libraries are never closed: a loaded
//! plugin's code and static descriptor stay mapped for the life of the process, which is what
//! makes the `'static` descriptor pointers below sound (as Falco and VPP do, there is no
//! unload).

use super::descriptor::{self, Descriptor, FeatureKind};
pub use super::plugin_dir::{default_plugin_dir, PluginDirOrigin, INSTALLED_PLUGIN_DIR};
use super::refusal::{Refusal, RefusalReason};
use super::slab::{SlabLayout, MAX_PLUGINS};
use super::{perms, selftest, Error};
use crate::flow::schema::core_column_names;
use std::collections::BTreeMap;
use std::ffi::{c_void, CString};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use weir_plugin_api::{EntryFn, PluginV1, WEIR_ABI_MAJOR, WEIR_ABI_MINOR};

/// What to load and how strictly.
#[derive(Clone, Debug)]
pub struct PluginOptions {
    pub dir: PathBuf,
    /// Plugins (plugin names, file names or file stems) that must load: if one is refused or
    /// absent, loading fails.
    pub required: Vec<String>,
    /// When set, only these plugins (names, file names or stems) are loaded.
    pub enabled: Option<Vec<String>>,
    /// Plugins not to load (names, file names or stems).
    pub disabled: Vec<String>,
    /// Largest per-flow state a plugin may ask for.
    pub max_state_bytes: u32,
    /// Each plugin's config as JSON text, by plugin name ("{}" when absent).
    pub config: BTreeMap<String, String>,
    /// Column names plugins may not use: the record's core columns, the score columns and
    /// whatever else the caller adds (e.g. rate columns).
    pub reserved_columns: Vec<String>,
    /// Run the self-test on every plugin (on by default).
    pub self_test: bool,
    /// Interval records are on for some flows of this run (`[intervals] every_ms` or a
    /// service's `every_ms` > 0): plugins with an ABI 1.2 interval part get it and their
    /// interval update; off (the default), they pay nothing for intervals.
    pub intervals: bool,
}

/// Default for [`PluginOptions::max_state_bytes`].
pub const DEFAULT_MAX_STATE_BYTES: u32 = 4096;

impl PluginOptions {
    pub fn new(dir: impl Into<PathBuf>) -> PluginOptions {
        let mut reserved_columns = core_column_names();
        reserved_columns.extend(["prediction".to_string(), "score_status".to_string()]);
        PluginOptions {
            dir: dir.into(),
            required: Vec::new(),
            enabled: None,
            disabled: Vec::new(),
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            config: BTreeMap::new(),
            reserved_columns,
            self_test: true,
            intervals: false,
        }
    }

    fn config_for(&self, name: &str) -> &str {
        self.config.get(name).map(|s| s.as_str()).unwrap_or("{}")
    }
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions::new(default_plugin_dir().0)
    }
}

/// Shared across workers: state for rate-limited quarantine logs.
#[derive(Debug, Default)]
pub(crate) struct PluginShared {
    /// Time (ms since the process's first log) of the last quarantine log line, + 1.
    pub last_log_ms: AtomicU64,
    /// Log lines suppressed since the last one written.
    pub suppressed: AtomicU64,
}

/// One admitted plugin.
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub desc: Descriptor,
    /// Its columns in the record's plugin feature block (`WorkerPlugins::flow_emit` output).
    pub columns: Range<usize>,
    /// The config JSON its instances are created with.
    pub config_json: String,
    /// Whether the options marked it required.
    pub required: bool,
    pub(crate) shared: Arc<PluginShared>,
}

impl LoadedPlugin {
    /// Quarantine log lines of this plugin suppressed by the rate limit (one line per 10 s
    /// across all workers) since the last line written.
    pub fn quarantine_logs_suppressed(&self) -> u64 {
        self.shared
            .suppressed
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What `weir plugins list` shows of a plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub path: PathBuf,
    pub features: Vec<(String, FeatureKind)>,
    /// Per-flow state bytes in this run (the config's, with ABI 1.3 `flow_state_size`).
    pub state_size: u32,
    /// ABI 1.3, for a plugin whose state is sized by its config: the most it declares.
    pub max_state_size: Option<u32>,
    pub state_align: u32,
}

impl PluginInfo {
    fn of(p: &LoadedPlugin) -> PluginInfo {
        PluginInfo {
            name: p.desc.name.clone(),
            version: p.desc.version.clone(),
            description: p.desc.description.clone(),
            path: p.path.clone(),
            features: p
                .desc
                .features
                .iter()
                .map(|f| (f.name.clone(), f.kind))
                .collect(),
            state_size: p.desc.state_size,
            max_state_size: p.desc.flow_state_size.map(|_| p.desc.declared_state_size),
            state_align: p.desc.state_align,
        }
    }
}

/// The admitted plugins, in load order, and the slab layout of their states.
pub struct PluginRegistry {
    dir: PathBuf,
    plugins: Vec<LoadedPlugin>,
    layout: SlabLayout,
    skipped: Vec<(PathBuf, String)>,
}

/// Whether an option entry names this file or plugin: the plugin name, the path, the file
/// name, or its stem with or without cargo's `lib` and weir's `weir_` prefixes (so
/// `flowstats` names `libweir_flowstats.so` even when the file is refused before its
/// descriptor, and so its name, could be read).
fn selects(sel: &str, path: &Path, name: Option<&str>) -> bool {
    let file = path.file_name().and_then(|f| f.to_str());
    let stem = path.file_stem().and_then(|f| f.to_str()).unwrap_or("");
    let bare = stem.strip_prefix("lib").unwrap_or(stem);
    let bare_weir = bare.strip_prefix("weir_").unwrap_or(bare);
    Some(sel) == file
        || sel == stem
        || sel == bare
        || sel == bare_weir
        || Some(sel) == name
        || Path::new(sel) == path
}

/// What the gate decided for one file.
enum Outcome {
    Loaded(Box<LoadedPlugin>),
    Skipped(String),
    Refused(Refusal),
}

struct Gate<'a> {
    opts: &'a PluginOptions,
    plugins: Vec<LoadedPlugin>,
    n_columns: usize,
}

impl Gate<'_> {
    fn admit(&mut self, path: &Path, dir_check: &Result<(), RefusalReason>) -> Outcome {
        let refuse = |name: Option<String>, reason| {
            Outcome::Refused(Refusal {
                path: path.to_path_buf(),
                plugin_name: name,
                reason,
            })
        };
        let opts = self.opts;
        if opts.disabled.iter().any(|s| selects(s, path, None)) {
            return Outcome::Skipped("disabled".into());
        }
        if let Err(r) = dir_check {
            return refuse(None, r.clone());
        }
        // Opened once: the descriptor is checked (fstat) and the same descriptor is loaded.
        let file = match perms::open_file(path) {
            Ok(f) => f,
            Err(r) => return refuse(None, r),
        };
        let desc_ptr = match open(file, path) {
            Ok(p) => p,
            Err(r) => return refuse(None, r),
        };
        // SAFETY: desc_ptr is what the plugin's entry returned; its library is never unloaded.
        let desc = match unsafe { descriptor::read(desc_ptr, opts.max_state_bytes) } {
            Ok(d) => d,
            Err((name, r)) => return refuse(name, r),
        };
        let name = Some(desc.name.clone());
        if opts
            .disabled
            .iter()
            .any(|s| selects(s, path, name.as_deref()))
        {
            return Outcome::Skipped("disabled".into());
        }
        if let Some(en) = &opts.enabled {
            if !en.iter().any(|s| selects(s, path, name.as_deref())) {
                return Outcome::Skipped("not in the enabled list".into());
            }
        }
        if let Some(other) = self.plugins.iter().find(|p| p.desc.name == desc.name) {
            return refuse(
                name,
                RefusalReason::DuplicatePlugin {
                    name: desc.name.clone(),
                    other: other.path.clone(),
                },
            );
        }
        for f in &desc.features {
            if opts.reserved_columns.contains(&f.name) {
                return refuse(
                    name,
                    RefusalReason::DuplicateFeature {
                        name: f.name.clone(),
                        owner: "the record's own columns".into(),
                    },
                );
            }
            if let Some(o) = self
                .plugins
                .iter()
                .find(|p| p.desc.features.iter().any(|g| g.name == f.name))
            {
                return refuse(
                    name,
                    RefusalReason::DuplicateFeature {
                        name: f.name.clone(),
                        owner: format!("plugin {} ({})", o.desc.name, o.path.display()),
                    },
                );
            }
        }
        if self.plugins.len() >= MAX_PLUGINS {
            return refuse(name, RefusalReason::TooManyPlugins { max: MAX_PLUGINS });
        }
        let config_json = opts.config_for(&desc.name).to_string();
        // The run's state size: ask an instance of this config (ABI 1.3), then add the
        // interval part when interval records are on.
        let desc = match desc.cb.flow_state_size {
            Some(_) => match probe_flow_state_size(&desc, &config_json) {
                Ok(size) => desc.with_flow_state_size(size, opts.max_state_bytes),
                Err(r) => Err(r),
            },
            None => Ok(desc),
        };
        let desc = match desc.and_then(|d| d.for_run(opts.intervals, opts.max_state_bytes)) {
            Ok(d) => d,
            Err(r) => return refuse(name, r),
        };
        if opts.self_test {
            if let Err(r) = selftest::run(&desc, &config_json) {
                return refuse(name, r);
            }
        }
        let n = desc.features.len();
        let required = opts
            .required
            .iter()
            .any(|s| selects(s, path, Some(&desc.name)));
        let p = LoadedPlugin {
            path: path.to_path_buf(),
            columns: self.n_columns..self.n_columns + n,
            config_json,
            required,
            desc,
            shared: Arc::new(PluginShared::default()),
        };
        self.n_columns += n;
        Outcome::Loaded(Box::new(p))
    }
}

/// Ask a throwaway instance made with `config_json` for its per-flow state size (ABI 1.3).
/// A failed create is refused as the self-test would refuse it.
fn probe_flow_state_size(desc: &Descriptor, config_json: &str) -> Result<u32, RefusalReason> {
    let Some(size_fn) = desc.cb.flow_state_size else {
        return Ok(desc.state_size);
    };
    let inst = selftest::create(desc, config_json, 0)?;
    // SAFETY: inst came from this plugin's create; flow_state_size is its checked callback.
    let size = unsafe { size_fn(inst) };
    if let Some(destroy) = desc.cb.destroy {
        // SAFETY: inst came from this plugin's create and is not used afterwards.
        unsafe { destroy(inst) };
    }
    Ok(size)
}

/// dlopen the checked open file through `/proc/self/fd/N` (never closed) and call its entry
/// symbol. Once loaded, the descriptor is never closed: glibc knows the library by that
/// name, and a later `dlopen` of a reused `/proc/self/fd/N` would return the old library.
fn open(file: std::fs::File, real: &Path) -> Result<*const PluginV1, RefusalReason> {
    let flags =
        libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL | libc::RTLD_NODELETE;
    let path = perms::fd_path(&file);
    // SAFETY: loading a plugin runs its initialisers; that is the trust the permission checks
    // above establish, on this very descriptor. The handle is leaked on purpose: plugins are
    // never unloaded.
    let handle = match unsafe { libloading::os::unix::Library::open(Some(&path), flags) } {
        Ok(lib) => {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(file);
            lib.into_raw()
        }
        Err(e) => {
            // dlerror() names the descriptor's path: name the file instead.
            let msg =
                dlopen_message(e).replace(&*path.to_string_lossy(), &real.display().to_string());
            return Err(RefusalReason::Dlopen(msg));
        }
    };
    let sym = |name: &str| -> *mut c_void {
        let c = CString::new(name).expect("symbol names have no NUL");
        // SAFETY: handle is a live dlopen handle; c is NUL-terminated.
        unsafe { libc::dlsym(handle, c.as_ptr()) }
    };
    let entry = sym("weir_plugin_entry_v1");
    if entry.is_null() {
        let others = (2..=9)
            .map(|n| format!("weir_plugin_entry_v{n}"))
            .filter(|s| !sym(s).is_null())
            .collect();
        return Err(RefusalReason::NoEntrySymbol { others });
    }
    // SAFETY: the header declares weir_plugin_entry_v1 with exactly this signature.
    let entry: EntryFn = unsafe { std::mem::transmute::<*mut c_void, EntryFn>(entry) };
    // SAFETY: calling the plugin's entry, as the ABI prescribes, once after dlopen.
    Ok(unsafe { entry(WEIR_ABI_MAJOR, WEIR_ABI_MINOR) })
}

fn dlopen_message(e: libloading::Error) -> String {
    // For DlOpen errors libloading's Display is dlerror()'s text.
    e.to_string()
}

/// The `*.so` files of a directory, sorted by name.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let rd = std::fs::read_dir(dir).map_err(|source| Error::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .collect();
    files.sort();
    Ok(files)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl PluginRegistry {
    /// A registry with no plugins.
    pub fn empty() -> PluginRegistry {
        PluginRegistry {
            dir: PathBuf::new(),
            plugins: Vec::new(),
            layout: SlabLayout::new(&[]),
            skipped: Vec::new(),
        }
    }

    /// Load every `*.so` in `opts.dir`. Refused files are returned (and logged as warnings);
    /// the call fails only when the directory cannot be read or a required plugin is refused
    /// or absent.
    pub fn load(opts: &PluginOptions) -> Result<(PluginRegistry, Vec<Refusal>), Error> {
        let files = list_dir(&opts.dir)?;
        let dir_check = perms::check_dir(&opts.dir);
        let mut gate = Gate {
            opts,
            plugins: Vec::new(),
            n_columns: 0,
        };
        let mut refusals = Vec::new();
        let mut skipped = Vec::new();
        for path in files {
            match gate.admit(&path, &dir_check) {
                Outcome::Loaded(p) => {
                    tracing::info!(plugin = %p.desc.name, version = %p.desc.version,
                        path = %p.path.display(), features = p.desc.features.len(),
                        state_bytes = p.desc.state_size, "plugin loaded");
                    gate.plugins.push(*p);
                }
                Outcome::Skipped(why) => skipped.push((path, why)),
                Outcome::Refused(r) => {
                    let name = r.plugin_name.as_deref();
                    if opts.required.iter().any(|s| selects(s, &r.path, name)) {
                        return Err(Error::RequiredRefused(r));
                    }
                    tracing::warn!("{r}");
                    refusals.push(r);
                }
            }
        }
        for s in &opts.required {
            if !gate
                .plugins
                .iter()
                .any(|p| selects(s, &p.path, Some(&p.desc.name)))
            {
                return Err(Error::RequiredMissing {
                    name: s.clone(),
                    dir: opts.dir.clone(),
                });
            }
        }
        let states: Vec<(u32, u32)> = gate
            .plugins
            .iter()
            .map(|p| (p.desc.state_size, p.desc.state_align))
            .collect();
        Ok((
            PluginRegistry {
                dir: opts.dir.clone(),
                plugins: gate.plugins,
                layout: SlabLayout::new(&states),
                skipped,
            },
            refusals,
        ))
    }

    /// The directory the plugins were loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Files not loaded because of the enabled/disabled lists, with why.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// The per-flow slab layout of all plugins' states.
    pub fn layout(&self) -> &SlabLayout {
        &self.layout
    }

    /// Total feature columns of all plugins (the length `flow_emit` writes).
    pub fn n_features(&self) -> usize {
        self.plugins.last().map_or(0, |p| p.columns.end)
    }

    /// Every feature column name, in output order.
    pub fn feature_names(&self) -> Vec<String> {
        self.plugins
            .iter()
            .flat_map(|p| p.desc.features.iter().map(|f| f.name.clone()))
            .collect()
    }

    /// The plugin that provides each feature column, in output order.
    pub fn feature_providers(&self) -> Vec<String> {
        self.plugins
            .iter()
            .flat_map(|p| p.desc.features.iter().map(|_| p.desc.name.clone()))
            .collect()
    }

    /// (name, state bytes) per plugin, for [`crate::cost::CostTable::new`].
    pub fn cost_rows(&self) -> Vec<(String, u32)> {
        self.plugins
            .iter()
            .map(|p| (p.desc.name.clone(), p.desc.state_size))
            .collect()
    }

    /// What `weir plugins list` prints.
    pub fn describe(&self) -> Vec<PluginInfo> {
        self.plugins.iter().map(PluginInfo::of).collect()
    }
}

/// Load and self-test the given files as `weir plugins check FILE...` does: each through the
/// full gate (its directory's and its own permissions included), in the order given, names
/// checked for clashes with the files before it. `opts.dir`, `required` and the
/// enabled/disabled lists are ignored; limits, config and reserved columns apply.
pub fn check(files: &[PathBuf], opts: &PluginOptions) -> Vec<Result<PluginInfo, Refusal>> {
    let opts = PluginOptions {
        required: Vec::new(),
        enabled: None,
        disabled: Vec::new(),
        ..opts.clone()
    };
    let mut gate = Gate {
        opts: &opts,
        plugins: Vec::new(),
        n_columns: 0,
    };
    files
        .iter()
        .map(|f| {
            let dir_check = perms::check_dir(&parent_dir(f));
            match gate.admit(f, &dir_check) {
                Outcome::Loaded(p) => {
                    let info = PluginInfo::of(&p);
                    gate.plugins.push(*p);
                    Ok(info)
                }
                Outcome::Refused(r) => Err(r),
                Outcome::Skipped(_) => unreachable!("check ignores the enabled/disabled lists"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_is_installed_or_beside_the_executable() {
        let (dir, origin) = default_plugin_dir();
        if Path::new(INSTALLED_PLUGIN_DIR).is_dir() {
            assert_eq!(origin, PluginDirOrigin::Installed);
            assert_eq!(dir, Path::new(INSTALLED_PLUGIN_DIR));
        } else {
            // This test binary lives in target/<profile>/deps; cargo's cdylibs one level up.
            let exe = std::env::current_exe().unwrap();
            assert_eq!(origin, PluginDirOrigin::ExecutableDir);
            assert_eq!(dir, exe.parent().unwrap().parent().unwrap());
        }
    }

    #[test]
    fn selectors() {
        let p = Path::new("/x/libweir_flowstats.so");
        for s in [
            "flowstats",
            "weir_flowstats",
            "libweir_flowstats",
            "libweir_flowstats.so",
        ] {
            assert!(selects(s, p, None), "{s}");
        }
        assert!(selects("/x/libweir_flowstats.so", p, None));
        assert!(selects("fs", p, Some("fs")));
        assert!(!selects("splt", p, Some("flowstats")));
    }

    #[test]
    fn registry_is_shareable_and_instances_movable() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<PluginRegistry>();
        send::<super::super::WorkerPlugins>();
    }
}
