//! The small commands: `weir plugins list|check`, `weir models inspect`, `weir check-config`.

use crate::config::Config;
use crate::pipeline::{plugin_options, Pipeline};
use crate::plugin_host::{self, PluginRegistry};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// `weir plugins list`: every plugin weir would load, with its features and state size, and
/// why any file in the directory is refused.
pub fn plugins_list(plugin_dir: Option<PathBuf>) -> Result<()> {
    let opts = plugin_options(&Config::default(), plugin_dir)?;
    let (reg, refusals) = PluginRegistry::load(&opts)?;
    println!("plugin directory: {}", reg.dir().display());
    if reg.plugins().is_empty() {
        println!("(no plugin loaded)");
    }
    for p in reg.describe() {
        // A plugin sized by its config (ABI 1.3) also shows the most it could ask for.
        let most = match p.max_state_size {
            Some(m) if m != p.state_size => format!(" with this config, at most {m}"),
            _ => String::new(),
        };
        println!(
            "{} {}  ({} features, {} bytes of state per flow{most}, align {})  {}",
            p.name,
            p.version,
            p.features.len(),
            p.state_size,
            p.state_align,
            p.path.display()
        );
        if let Some(d) = &p.description {
            println!("    {d}");
        }
        let names: Vec<String> = p.features.iter().map(|(n, k)| format!("{n}:{k}")).collect();
        println!("    features: {}", names.join(" "));
    }
    for r in &refusals {
        println!("refused: {r}");
    }
    Ok(())
}

/// `weir plugins check FILE...`: load and self-test each file; non-zero exit if any is refused.
pub fn plugins_check(files: &[PathBuf]) -> Result<()> {
    let opts = plugin_options(&Config::default(), None)?;
    let mut refused = 0;
    for (f, r) in files.iter().zip(plugin_host::check(files, &opts)) {
        match r {
            Ok(p) => println!(
                "ok: {} ({} {}, {} features, {} bytes of state)",
                f.display(),
                p.name,
                p.version,
                p.features.len(),
                p.state_size
            ),
            Err(e) => {
                refused += 1;
                println!("refused: {e}");
            }
        }
    }
    if refused > 0 {
        bail!("{refused} of {} plugin files refused", files.len());
    }
    Ok(())
}

/// `weir models inspect DIR`: the model's inputs, outputs and features, and which loaded
/// plugin provides each feature.
pub fn models_inspect(dir: &Path, plugin_dir: Option<PathBuf>) -> Result<()> {
    let p = Pipeline::new(Config::default(), plugin_dir, false)?;
    let cfg = p.cfg.model.clone().unwrap_or_default();
    print!("{}", crate::scoring::inspect_with(dir, &p.schema, &cfg)?);
    Ok(())
}

/// `weir check-config FILE`: parse and validate without starting DPDK (an error names the key
/// and line), then warn about what can only be known on the target host (paths that do not
/// exist here, a metrics endpoint open beyond loopback). Returns the warnings it printed.
pub fn check_config(path: &Path) -> Result<Vec<String>> {
    let cfg = Config::load(path)?;
    let mut warnings = Vec::new();
    if let Some(d) = &cfg.plugins.dir {
        if !d.is_dir() {
            warnings.push(format!("plugins.dir {} does not exist here", d.display()));
        }
    }
    if let Some(m) = cfg.model.as_ref() {
        if let Some(d) = &m.dir {
            // A directory or a registry URI: where its files would be, without ONNX Runtime.
            match crate::scoring::mlflow::locate(d, m.mlflow_store.as_deref()) {
                Ok(loc) => {
                    for f in [loc.onnx, loc.dir.join("model.json")] {
                        if !f.is_file() {
                            warnings.push(format!(
                                "model.dir {}: no {} here",
                                d.display(),
                                f.file_name().unwrap_or_default().to_string_lossy()
                            ));
                        }
                    }
                }
                Err(e) => warnings.push(format!("model.dir {}: {e}", d.display())),
            }
        }
    }
    for (key, p) in [
        ("sinks.records", &cfg.sinks.records),
        ("sinks.alerts", &cfg.sinks.alerts),
    ] {
        if let Some(parent) = p.as_ref().and_then(|p| p.parent()) {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                warnings.push(format!(
                    "{key}: directory {} does not exist here",
                    parent.display()
                ));
            }
        }
    }
    if cfg.metrics.enabled {
        if let Ok(a) = cfg.metrics.listen.parse::<std::net::SocketAddr>() {
            if !a.ip().is_loopback() {
                warnings.push(format!(
                    "metrics.listen {a} is reachable beyond this host: firewall it or run it inside a pod network"
                ));
            }
        }
    }
    for w in &warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    println!(
        "{}: OK ({} port(s), {} worker(s), metrics {})",
        path.display(),
        cfg.ports.len(),
        cfg.workers.count,
        if cfg.metrics.enabled {
            cfg.metrics.listen.as_str()
        } else {
            "off"
        }
    );
    Ok(warnings)
}
