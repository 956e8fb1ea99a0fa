//! Running the `weir` binary cargo built for the tests, and reading its log.

use std::path::PathBuf;
use std::process::Command;

/// The `weir` binary cargo built for this test run.
pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// `weir` logging warnings and errors only.
pub fn weir() -> Command {
    weir_logging("warn")
}

/// `weir` with `RUST_LOG` at `level` (tests that read its log lines use "info").
pub fn weir_logging(level: &str) -> Command {
    let mut c = Command::new(weir_bin());
    c.env("RUST_LOG", level);
    c
}

/// A process's stderr as text without terminal colour codes (tracing colours its fields).
pub fn log_text(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
