//! Where plugins are looked for without `--plugin-dir`: an installed prefix, the installed
//! directory, or beside the weir executable (a build tree).

use std::path::{Path, PathBuf};

/// The installed plugin directory.
pub const INSTALLED_PLUGIN_DIR: &str = "/usr/lib/weir/plugins";

/// Where [`default_plugin_dir`] found the plugin directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginDirOrigin {
    /// `PREFIX/lib/weir/plugins` of the executable's `PREFIX/bin`, or [`INSTALLED_PLUGIN_DIR`].
    Installed,
    /// The running executable's directory (a build tree: `target/release/weir` next to
    /// `target/release/libweir_*.so`).
    ExecutableDir,
    /// Neither could be found: the current directory.
    CurrentDir,
}

impl std::fmt::Display for PluginDirOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginDirOrigin::Installed => "installed plugin directory",
            PluginDirOrigin::ExecutableDir => "directory of the weir executable",
            PluginDirOrigin::CurrentDir => "current directory",
        })
    }
}

/// The plugin directory to use without `--plugin-dir`: `lib/weir/plugins` beside the
/// executable's `bin/` (an installed prefix), else the installed one if it exists, else
/// the executable's own directory (for a test or bench binary in `target/*/deps/`, its parent,
/// where cargo puts the cdylibs).
pub fn default_plugin_dir() -> (PathBuf, PluginDirOrigin) {
    // Installed under any prefix (`make install PREFIX=...`, a package): PREFIX/bin/weir
    // finds PREFIX/lib/weir/plugins.
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("lib/weir/plugins")).filter(|d| d.is_dir()))
    {
        return (beside, PluginDirOrigin::Installed);
    }
    let installed = Path::new(INSTALLED_PLUGIN_DIR);
    if installed.is_dir() {
        return (installed.to_path_buf(), PluginDirOrigin::Installed);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(p) = dir.parent() {
                return (p.to_path_buf(), PluginDirOrigin::ExecutableDir);
            }
        }
        return (dir, PluginDirOrigin::ExecutableDir);
    }
    (PathBuf::from("."), PluginDirOrigin::CurrentDir)
}
