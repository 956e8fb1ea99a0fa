//! A panicking Rust plugin is quarantined while traffic and the other plugins go on.
//!
//! The plugin directory holds the real flowstats plugin and `panicky` (plugin-api's example,
//! which panics on its 50th packet). `weir extract` must finish, flowstats' 48 features must
//! still equal NFStream's on every flow, and panicky's column must be empty for every flow that
//! ended after the panic.

use crate::support::{nfstream::*, paths::*, records::*, run::*};

#[test]
fn a_panicking_plugin_is_quarantined_and_others_stay_exact() {
    let release_dir = weir_bin().parent().unwrap().to_path_buf();
    let panicky = release_dir.join("examples/libpanicky.so");
    assert!(
        panicky.exists(),
        "{} is built by `cargo test` (plugin-api's example)",
        panicky.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        release_dir.join("libweir_flowstats.so"),
        plugins.join("libweir_flowstats.so"),
    )
    .unwrap();
    std::fs::copy(&panicky, plugins.join("libpanicky.so")).unwrap();

    let cap = data_dir().join("pcaps/instagram.pcap");
    let out = tmp.path().join("flows.csv");
    let o = weir()
        .env("RUST_LOG", "warn")
        .arg("extract")
        .arg(&cap)
        .arg("--out")
        .arg(&out)
        .arg("--plugin-dir")
        .arg(&plugins)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("panicky") && stderr.contains("quarantine"),
        "the quarantine is logged: {stderr}"
    );
    let rows = read_csv(&out);
    let empty = rows
        .iter()
        .filter(|r| r["panicky_packets"].is_empty())
        .count();
    assert!(
        empty > 0,
        "flows ending after the panic have no panicky value"
    );
    // Flows that ended before the 50th packet keep the value the plugin wrote.
    for r in rows.iter().filter(|r| !r["panicky_packets"].is_empty()) {
        assert_eq!(r["panicky_packets"], r["bidirectional_packets"]);
    }
    // flowstats is untouched by its neighbour's panic.
    let mut cols = core_columns();
    for d in ["bidirectional", "src2dst", "dst2src"] {
        for s in ["min", "mean", "stddev", "max"] {
            cols.push(format!("{d}_{s}_ps"));
            cols.push(format!("{d}_{s}_piat_ms"));
        }
    }
    let diffs = compare(&read_csv(&expected_csv(&cap)), &rows, &cols);
    assert!(diffs.is_empty(), "{diffs:?}");
}
