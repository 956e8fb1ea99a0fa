//! The plugin host: loads feature-extractor plugins (`.so` files speaking the C ABI of
//! `plugin-api/include/weir_plugin.h`), admits or refuses each one, packs their per-flow states
//! into one slab per flow, and runs one instance of each per worker, quarantining a plugin that
//! fails on that worker.
//!
//! - [`loader`]: the plugin directory, the admission gate, the registry, `plugins check`.
//! - [`descriptor`]: reading and checking a plugin's static descriptor.
//! - [`perms`]: who may write the plugin directory and files.
//! - [`selftest`]: the synthetic flows every plugin is run on before it is admitted.
//! - [`refusal`]: why a file was refused.
//! - [`slab`]: the per-flow state slab layout.
//! - [`instance`]: per-worker instances, burst dispatch, quarantine.

pub mod descriptor;
pub mod instance;
pub mod loader;
pub mod perms;
pub mod plugin_dir;
pub mod refusal;
pub mod selftest;
pub mod slab;
mod synthetic;

pub use descriptor::{FeatureInfo, FeatureKind};
pub use instance::{WorkerPlugins, MAX_BURST};
pub use loader::{
    check, default_plugin_dir, LoadedPlugin, PluginDirOrigin, PluginInfo, PluginOptions,
    PluginRegistry, DEFAULT_MAX_STATE_BYTES, INSTALLED_PLUGIN_DIR,
};
pub use refusal::{Refusal, RefusalReason};
pub use slab::{SlabLayout, MAX_PLUGINS, SLAB_HEADER};

use std::path::PathBuf;

/// Why loading or instantiating plugins failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read plugin directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("required {0}")]
    RequiredRefused(Refusal),
    #[error("required plugin {name:?} is not in {dir} (or is disabled)")]
    RequiredMissing { name: String, dir: PathBuf },
    #[error(
        "required plugin {plugin} failed to create its instance on worker {worker}: {message}"
    )]
    Create {
        plugin: String,
        worker: u32,
        message: String,
    },
}
