//! Why a plugin file was refused. Every reason names what was wrong in words a plugin author
//! can act on; [`Refusal`]'s `Display` adds the file and, when known, the plugin's name.

use std::fmt;
use std::path::PathBuf;

/// A plugin file the host did not load, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub path: PathBuf,
    /// The plugin's name, once its descriptor could be read.
    pub plugin_name: Option<String>,
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin {}", self.path.display())?;
        if let Some(n) = &self.plugin_name {
            write!(f, " ({n})")?;
        }
        write!(f, " refused: {}", self.reason)
    }
}

impl std::error::Error for Refusal {}

#[derive(Clone, Debug, PartialEq)]
pub enum RefusalReason {
    /// stat() of the file or directory failed.
    Io(String),
    NotRegularFile,
    /// The plugin directory can be written by someone other than its owner, or its owner is
    /// neither root nor the user weir runs as.
    InsecureDirectory {
        dir: PathBuf,
        mode: u32,
        uid: u32,
    },
    /// A directory above the plugin directory can be changed by others: not owned by root or
    /// the user weir runs as, or group/other-writable without being sticky and root-owned.
    InsecureParent {
        dir: PathBuf,
        mode: u32,
        uid: u32,
    },
    /// The file can be written by someone other than its owner, or is owned by another user.
    InsecureFile {
        mode: u32,
        uid: u32,
    },
    /// dlopen failed; the text is dlerror().
    Dlopen(String),
    /// No `weir_plugin_entry_v1`; `others` lists the `weir_plugin_entry_vN` symbols found.
    NoEntrySymbol {
        others: Vec<String>,
    },
    EntryReturnedNull,
    BadMagic(u32),
    AbiMajor {
        plugin: u16,
        host: u16,
    },
    AbiMinorNewer {
        plugin: u16,
        host: u16,
    },
    StructTooSmall {
        size: u32,
        need: u32,
    },
    NullCallback(&'static str),
    /// A descriptor string (name, version, ...) is NULL, not UTF-8 or malformed.
    BadDescriptor(String),
    BadPluginName {
        name: String,
        why: &'static str,
    },
    BadFeatureName {
        index: u32,
        name: String,
        why: &'static str,
    },
    BadFeatureKind {
        name: String,
        kind: u32,
    },
    DuplicatePlugin {
        name: String,
        other: PathBuf,
    },
    /// A feature column name already taken by a core column or another plugin.
    DuplicateFeature {
        name: String,
        owner: String,
    },
    StateTooLarge {
        size: u32,
        max: u32,
    },
    BadStateAlign(u32),
    TooManyPlugins {
        max: usize,
    },
    /// The self-test on synthetic flows failed at `stage`; `message` is the plugin's
    /// last_error() or what the host found wrong.
    SelfTest {
        stage: &'static str,
        message: String,
    },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RefusalReason::*;
        match self {
            Io(e) => write!(f, "cannot stat: {e}"),
            NotRegularFile => write!(f, "not a regular file"),
            InsecureDirectory { dir, mode, uid } => write!(
                f,
                "plugin directory {} is mode {:04o} owned by uid {uid}: it must be writable only \
                 by its owner, and owned by root or the user weir runs as",
                dir.display(),
                mode & 0o7777
            ),
            InsecureParent { dir, mode, uid } => write!(
                f,
                "parent directory {} of the plugin directory is mode {:04o} owned by uid {uid}: \
                 each parent must be owned by root or the user weir runs as and writable only by \
                 its owner (or be sticky and owned by root, like /tmp)",
                dir.display(),
                mode & 0o7777
            ),
            InsecureFile { mode, uid } => write!(
                f,
                "file is mode {:04o} owned by uid {uid}: it must be writable only by its owner, \
                 and owned by root or the user weir runs as",
                mode & 0o7777
            ),
            Dlopen(e) => write!(f, "dlopen failed: {e}"),
            NoEntrySymbol { others } if others.is_empty() => write!(
                f,
                "no `weir_plugin_entry_v1` symbol (not a weir plugin, or its entry is not exported)"
            ),
            NoEntrySymbol { others } => write!(
                f,
                "no `weir_plugin_entry_v1` symbol, but it exports `{}`: it was built for another \
                 plugin ABI major version than this weir's (1)",
                others.join("`, `")
            ),
            EntryReturnedNull => write!(
                f,
                "weir_plugin_entry_v1 returned NULL (the plugin declined this host's ABI version)"
            ),
            BadMagic(m) => write!(
                f,
                "bad magic {m:#010x} in the descriptor (expected {:#010x}, \"WEIR\")",
                weir_plugin_api::WEIR_PLUGIN_MAGIC
            ),
            AbiMajor { plugin, host } => write!(
                f,
                "built for plugin ABI major {plugin}, this weir speaks major {host}"
            ),
            AbiMinorNewer { plugin, host } => write!(
                f,
                "built for plugin ABI 1.{plugin}, newer than this weir's 1.{host}: upgrade weir \
                 or rebuild the plugin against an older header"
            ),
            StructTooSmall { size, need } => write!(
                f,
                "descriptor struct_size {size} is smaller than the {need} bytes ABI 1.0 needs"
            ),
            NullCallback(cb) => write!(f, "required callback `{cb}` is NULL"),
            BadDescriptor(why) => write!(f, "bad descriptor: {why}"),
            BadPluginName { name, why } => write!(f, "bad plugin name {name:?}: {why}"),
            BadFeatureName { index, name, why } => {
                write!(f, "bad name {name:?} for feature #{index}: {why}")
            }
            BadFeatureKind { name, kind } => write!(
                f,
                "feature {name:?} has unknown kind {kind} (0 f64, 1 u64, 2 bool)"
            ),
            DuplicatePlugin { name, other } => write!(
                f,
                "a plugin named {name:?} is already loaded from {}",
                other.display()
            ),
            DuplicateFeature { name, owner } => {
                write!(f, "feature column {name:?} is already provided by {owner}")
            }
            StateTooLarge { size, max } => write!(
                f,
                "per-flow state of {size} bytes is over the limit of {max} bytes \
                 (plugins.max_state_bytes)"
            ),
            BadStateAlign(a) => write!(f, "state_align {a} is not a power of two between 1 and 64"),
            TooManyPlugins { max } => write!(f, "more than {max} plugins loaded"),
            SelfTest { stage, message } => {
                write!(f, "self-test failed in {stage}: {message}")
            }
        }
    }
}
