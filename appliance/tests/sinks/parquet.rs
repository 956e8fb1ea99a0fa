//! Parquet records: what pyarrow reads back from weir's Parquet equals weir's CSV
//! of the same capture; a dataset rotated into many files holds each record exactly once; a
//! writer killed mid-run (SIGKILL) leaves no partial file under a final name.
//!
//! The oracle is pyarrow in the venv (`models/testing/parquet_check.py`), against the CSV sink
//! (itself checked against NFStream's records in `nfstream_parity.rs`).

use crate::support::{paths::*, records::*, run::*};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// IPv4 and IPv6 (string columns of both forms), tunnels, TCP and UDP, many flows.
const CAPTURES: &[&str] = &[
    "1kxun.pcap",
    "6in6tunnel.pcap",
    "4in4tunnel.pcap",
    "instagram.pcap",
    "dns_doh.pcap",
];

fn capture(name: &str) -> PathBuf {
    let p = data_dir().join("pcaps").join(name);
    assert!(p.exists(), "{}", p.display());
    p
}

fn extract_cmd(caps: &[PathBuf], out: &Path, config: Option<&Path>) -> Command {
    let mut c = weir();
    c.arg("extract")
        .args(caps)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .arg("--plugin-dir")
        .arg(weir_bin().parent().unwrap());
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c
}

fn extract(caps: &[PathBuf], out: &Path, config: Option<&Path>) {
    let o = extract_cmd(caps, out, config).output().unwrap();
    assert!(
        o.status.success(),
        "weir extract --out {} failed: {}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Run the pyarrow check; its JSON line.
fn check(args: &[&Path]) -> serde_json::Value {
    let o = Command::new(crate::support::scoring::python())
        .arg(crate::support::scoring::workspace().join("models/testing/parquet_check.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "parquet_check.py {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON line")
}

fn hidden_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if e.file_name().to_string_lossy().starts_with('.') {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn pyarrow_reads_back_the_csv_records() {
    let tmp = tempfile::tempdir().unwrap();
    for name in CAPTURES {
        let cap = [capture(name)];
        let csv = tmp.path().join(format!("{name}.csv"));
        let file = tmp.path().join(format!("{name}.parquet"));
        // A path ending in '/' is a dataset directory, made by weir.
        let dir = PathBuf::from(format!("{}/{name}-dataset/", tmp.path().display()));
        extract(&cap, &csv, None);
        extract(&cap, &file, None);
        extract(&cap, &dir, None);
        let rows = read_csv(&csv).len() as u64;
        let one = check(&[Path::new("compare"), &csv, &file]);
        let many = check(&[Path::new("compare"), &csv, &dir]);
        eprintln!("{name}: file {one}, dataset {many}");
        assert_eq!(one["rows"], rows, "{name}");
        assert_eq!(many["rows"], rows, "{name}");
        assert!(rows > 0, "{name}: no flows");
        assert!(
            hidden_files(tmp.path()).is_empty(),
            "temporary files left after a clean run: {:?}",
            hidden_files(tmp.path())
        );
    }
}

/// Counters and times are signed INT64: pandas reads them as int64 and Spark as bigint (not
/// UINT64's uint64 and decimal(20,0)), so sums and differences need no cast; the `date`/`hour`
/// partition columns are still there.
#[test]
fn pandas_and_spark_read_counters_as_int64_without_casts() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = [capture("1kxun.pcap"), capture("6in6tunnel.pcap")];
    let csv = tmp.path().join("flows.csv");
    let dir = PathBuf::from(format!("{}/flows/", tmp.path().display()));
    extract(&caps, &csv, None);
    extract(&caps, &dir, None);
    let o = Command::new(crate::support::scoring::python())
        .arg(crate::support::scoring::workspace().join("models/testing/parquet_types_check.py"))
        .arg(&csv)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "parquet_types_check.py: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON line");
    assert_eq!(v["rows"].as_u64().unwrap() as usize, read_csv(&csv).len());
}

#[test]
fn rotation_keeps_every_record_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let caps: Vec<PathBuf> = CAPTURES.iter().map(|n| capture(n)).collect();
    let cfg = tmp.path().join("weir.toml");
    // About 20 KiB per file: more than ten files out of a couple of hundred records.
    std::fs::write(
        &cfg,
        "[sinks]\nparquet_rotate_mb = 0.02\nparquet_rotate_s = 3600\n",
    )
    .unwrap();
    let csv = tmp.path().join("all.csv");
    let dir = tmp.path().join("dataset");
    std::fs::create_dir(&dir).unwrap(); // an existing directory is a dataset too
    extract(&caps, &csv, Some(&cfg));
    extract(&caps, &dir, Some(&cfg));
    let rows = read_csv(&csv).len() as u64;
    let seen = check(&[Path::new("compare"), &csv, &dir]);
    eprintln!("rotated: {seen}");
    assert_eq!(seen["rows"], rows);
    assert!(
        seen["files"].as_u64().unwrap() >= 10,
        "the size limit should have rotated into many files: {seen}"
    );
    assert!(hidden_files(&dir).is_empty());
}

#[test]
fn a_killed_writer_leaves_no_partial_file_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("weir.toml");
    // Small files: several are complete and one is being written at any moment.
    std::fs::write(&cfg, "[sinks]\nparquet_rotate_mb = 0.01\n").unwrap();
    let dir = tmp.path().join("dataset/");
    let mut caps = captures();
    // Enough input to be mid-run when killed, whatever the machine's speed.
    caps.extend(captures());
    caps.extend(captures());
    let mut child = extract_cmd(&caps, &dir, Some(&cfg))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count_final = |d: &Path| -> usize {
        let mut n = 0;
        let mut dirs = vec![d.to_path_buf()];
        while let Some(x) = dirs.pop() {
            for e in std::fs::read_dir(&x).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else if !e.file_name().to_string_lossy().starts_with('.') {
                    n += 1;
                }
            }
        }
        n
    };
    let t = Instant::now();
    while count_final(&dir) < 5 && t.elapsed() < Duration::from_secs(60) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("weir extract ended before the kill: {st:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the pid of our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "weir extract ended before the kill ({status:?}): the test saw nothing mid-run"
    );
    let seen = check(&[Path::new("readable"), &dir]);
    eprintln!("after SIGKILL: {seen}");
    assert!(seen["files"].as_u64().unwrap() >= 5, "{seen}");
    assert!(seen["rows"].as_u64().unwrap() > 0, "{seen}");
    // Whatever was being written is only under a hidden temporary name.
    for h in hidden_files(&dir) {
        let name = h.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".parquet.tmp") || name.starts_with(".weir-probe-"),
            "unexpected hidden file {name}"
        );
    }
}

#[test]
fn weir_run_writes_a_dataset_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = PathBuf::from(format!("{}/flows/", tmp.path().display()));
    let cfg = tmp.path().join("weir.toml");
    std::fs::write(
        &cfg,
        format!(
            "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 256\n\n\
             [[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n\n\
             [sinks]\nrecords = \"{}\"\nparquet_rotate_s = 1\n",
            capture("instagram.pcap").display(),
            dir.display()
        ),
    )
    .unwrap();
    let o = weir()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--stop-after-idle-ms", "2000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "weir run failed: {err}");
    // "... -> N flow records in ..."
    let records: u64 = err
        .split("-> ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {err}"));
    let seen = check(&[Path::new("readable"), &dir]);
    eprintln!("weir run: {records} records, dataset {seen}");
    assert!(records > 10);
    assert_eq!(seen["rows"], records);
    assert_eq!(seen["hidden"], 0);
}
