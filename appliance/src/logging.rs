//! Logs through `tracing`: human-readable on a terminal, or JSON lines for collectors.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(format: Option<&str>, level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.unwrap_or("info")));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == Some("json") {
        b.json().try_init()
    } else {
        b.with_target(false).try_init()
    };
}
