//! Logs through `tracing`: human-readable lines, or JSON lines for collectors.
//!
//! The subscriber is installed once, after the command's config file is read, so the config's
//! `[log] format` and `level` apply from the first line. Precedence: `RUST_LOG` over
//! `log.level` over the command's default level; `--log-format` over `log.format`. Colour
//! codes are written only when stderr is a terminal (never into a file, a pipe or journald).

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// What the subscriber is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSetup {
    pub json: bool,
    /// The filter directive in force (before `RUST_LOG`).
    pub level: String,
    pub ansi: bool,
}

/// The setup for a command: `flag_format` (`--log-format`), the config's `[log]` section if
/// the command has a config, and the command's default level.
pub fn setup(
    flag_format: Option<&str>,
    config: Option<&LogConfig>,
    default_level: &str,
) -> Result<LogSetup, String> {
    let json = match flag_format {
        Some("json") => true,
        Some("human") => false,
        Some(other) => {
            return Err(format!(
                "--log-format {other:?}: expected \"human\" or \"json\""
            ))
        }
        None => config.is_some_and(|c| c.format == LogFormat::Json),
    };
    let level = config
        .and_then(|c| c.level.clone())
        .unwrap_or_else(|| default_level.to_string());
    Ok(LogSetup {
        json,
        level,
        ansi: !json && std::io::stderr().is_terminal(),
    })
}

/// Install the global subscriber (writing to stderr). `RUST_LOG` overrides the level.
pub fn init(s: &LogSetup) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&s.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(s.ansi)
        .with_writer(std::io::stderr);
    let _ = if s.json {
        b.json().try_init()
    } else {
        b.with_target(false).try_init()
    };
}
