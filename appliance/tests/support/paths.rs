//! Where things are: the bundled captures and NFStream's records of them, the workspace, the
//! plugins built beside the weir binary.

use std::path::{Path, PathBuf};

// The workspace root is where the scoring records module (also used by an example) finds it.
#[allow(unused_imports)]
pub use super::scoring::records::workspace;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nfstream")
}

/// Every capture of the NFStream folder, sorted by name.
pub fn captures() -> Vec<PathBuf> {
    captures_in(&data_dir())
}

/// The second parity folder: captures of the nDPI test suite with NFStream's records.
pub fn ndpi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ndpi")
}

/// Every capture of one data folder (`pcaps/` under `dir`), sorted by name.
pub fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("pcaps"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("pcaps").display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// NFStream's records for a capture: `expected/NAME.csv` beside the capture's `pcaps/`.
pub fn expected_csv(capture: &Path) -> PathBuf {
    let folder = capture
        .parent()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(data_dir);
    folder.join("expected").join(format!(
        "{}.csv",
        capture.file_name().unwrap().to_str().unwrap()
    ))
}

/// A capture of the NFStream folder by file name.
pub fn pcap(name: &str) -> PathBuf {
    data_dir().join("pcaps").join(name)
}

/// A capture of the second parity folder (nDPI's test captures).
pub fn ndpi_pcap(name: &str) -> PathBuf {
    ndpi_dir().join("pcaps").join(name)
}

/// The shipped plugins, built beside the weir binary.
pub fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_weir"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether the shipped plugins were built (beside the weir binary).
pub fn plugins_built() -> bool {
    plugin_dir().join("libweir_flowstats.so").exists()
}
