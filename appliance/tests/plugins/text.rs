//! Plugin ABI 1.4 text features end to end: a 1.3 plugin and a 1.4 plugin with text features
//! side by side in one `weir extract` run; the 1.4 plugin's valid text reaches CSV and JSON
//! Lines as strings, and the values it reports too long or not UTF-8 are refused, written as
//! missing and counted in `--stats`. Both plugins are `tests/plugins/test_plugin.c`, built by
//! the harness; the expected values are recomputed from the record's own core columns.

use crate::support::plugins::{build, fresh_plugin_dir, name};
#[allow(unused_imports)]
use crate::support::{nfstream::*, paths::*, records::*, run::*};
use std::path::Path;

fn capture() -> std::path::PathBuf {
    data_dir().join("pcaps/instagram.pcap")
}

/// The two plugins: `old13` (ABI 1.3: minor 3, the 1.3 struct_size, so the host must not read
/// `flow_emit_text`) and `text14` (ABI 1.4 with three text features).
fn plugins() -> std::path::PathBuf {
    let dir = fresh_plugin_dir();
    build(
        &dir,
        "libold13.so",
        &[
            &name("old13"),
            "MINOR=3",
            "STRUCT_SIZE=WEIR_PLUGIN_V1_3_SIZE",
        ],
    );
    build(&dir, "libtext14.so", &[&name("text14"), "TEXT"]);
    dir
}

fn extract(dir: &Path, out: &Path, stats: &Path) {
    let res = weir()
        .args(["extract", "--quiet", "--no-progress", "--plugin-dir"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .arg("--stats")
        .arg(stats)
        .arg(capture())
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "weir extract failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn a_1_3_and_a_1_4_plugin_run_side_by_side_and_bad_text_is_refused_and_counted() {
    let dir = plugins();
    let list = weir()
        .args(["plugins", "list", "--plugin-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}");
    assert!(text.contains("old13_bytes:u64"), "{text}");
    assert!(text.contains("text14_label:text"), "{text}");
    assert!(text.contains("text14_bad:text"), "{text}");

    let tmp = tempfile::tempdir().unwrap();
    let (csv, stats) = (tmp.path().join("r.csv"), tmp.path().join("s.json"));
    extract(&dir, &csv, &stats);
    let rows = read_csv(&csv);
    assert!(rows.len() > 10, "{} flows", rows.len());
    for r in &rows {
        let col = |c: &str| r.get(c).unwrap_or_else(|| panic!("no column {c}")).as_str();
        // The 1.3 plugin works as before: its counts are the record's own.
        assert_eq!(col("old13_s2d_packets"), col("src2dst_packets"));
        assert_eq!(col("old13_d2s_packets"), col("dst2src_packets"));
        assert_eq!(col("old13_bytes"), col("bidirectional_bytes"));
        // The 1.4 plugin's numbers too, and its valid text as written.
        assert_eq!(col("text14_s2d_packets"), col("src2dst_packets"));
        assert_eq!(
            col("text14_label"),
            format!("proto={} ünï", col("protocol"))
        );
        // Refused values are missing, never cut or repaired.
        assert_eq!(col("text14_long"), "");
        assert_eq!(col("text14_bad"), "");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let flows = s["flows"].as_u64().unwrap();
    assert_eq!(flows, rows.len() as u64);
    assert_eq!(s["text_refused"]["too_long"].as_u64(), Some(flows), "{s}");
    assert_eq!(
        s["text_refused"]["invalid_utf8"].as_u64(),
        Some(flows),
        "{s}"
    );

    // JSON Lines: text is a JSON string, a refused value null.
    let jsonl = tmp.path().join("r.jsonl");
    extract(&dir, &jsonl, &stats);
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    let mut n = 0;
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(
            v["text14_label"].as_str(),
            Some(format!("proto={} ünï", v["protocol"]).as_str())
        );
        assert!(
            v["text14_long"].is_null() && v["text14_bad"].is_null(),
            "{l}"
        );
        n += 1;
    }
    assert_eq!(n, rows.len());
}

#[test]
fn a_text_feature_in_a_1_3_descriptor_is_refused() {
    // Kind 3 did not exist before 1.4: a 1.3 plugin declaring it is refused at load, with the
    // reason, and the run goes on without it.
    let dir = fresh_plugin_dir();
    build(
        &dir,
        "libold.so",
        &[&name("old"), "MINOR=3", "KIND0=WEIR_FEATURE_TEXT"],
    );
    let out = weir()
        .args(["plugins", "check"])
        .arg(dir.join("libold.so"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("kind"), "{text}");
}
