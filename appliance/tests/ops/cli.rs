//! The `weir` command line with bad input, and `weir run`'s shutdown: each mistake gets one
//! clear message naming the thing and a non-zero exit; a signal flushes every open flow.

use crate::support::{paths::*, records::*, run::*};
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn plugin_dir() -> std::path::PathBuf {
    weir_bin().parent().unwrap().to_path_buf()
}

#[test]
fn missing_capture_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let o = weir()
        .args(["extract", "/nonexistent/x.pcap", "--out"])
        .arg(tmp.path().join("f.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("cannot open capture /nonexistent/x.pcap"), "{e}");
    // The reason once, not once per level of the error chain.
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
}

#[test]
fn a_file_that_is_not_a_capture_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("notes.pcap");
    std::fs::write(&bogus, "these are not packets\n").unwrap();
    let o = weir()
        .arg("extract")
        .arg(&bogus)
        .arg("--out")
        .arg(tmp.path().join("f.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("is not a pcap or pcapng capture"), "{e}");
    assert!(e.contains("notes.pcap"), "{e}");
}

#[test]
fn unknown_output_format_is_refused() {
    let cap = data_dir().join("pcaps/1kxun.pcap");
    let o = weir()
        .arg("extract")
        .arg(&cap)
        .args(["--out", "/tmp/flows.txt"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("use a .csv or .jsonl file name"),
        "{}",
        stderr(&o)
    );
}

fn config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn config_errors_name_key_and_line() {
    for (text, key, line) in [
        (
            "[flows]\nidle_timeout_s = 30\ncapacity = \"many\"\n",
            "capacity",
            "line 3",
        ),
        ("[flows]\n\nidle_timout_s = 30\n", "idle_timout_s", "line 3"),
        ("[workers]\ncount = 0\n", "workers.count", "line 2"),
        ("[model]\nbatch = 0\n", "model", "line 1"),
    ] {
        let f = config(text);
        for cmd in ["check-config", "extract"] {
            let mut c = weir();
            c.arg(cmd);
            if cmd == "extract" {
                c.arg(data_dir().join("pcaps/1kxun.pcap")).args([
                    "--out",
                    "/tmp/weir-cli-never.csv",
                    "--config",
                ]);
            }
            let o = c.arg(f.path()).output().unwrap();
            assert!(!o.status.success(), "{cmd} accepted {text:?}");
            let e = stderr(&o);
            assert!(e.contains(key) && e.contains(line), "{cmd} {text:?}: {e}");
        }
    }
    let ok = config("[flows]\nidle_timeout_s = 30\n");
    let o = weir().arg("check-config").arg(ok.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn eal_failures_are_clear() {
    // A virtual device whose capture does not exist: EAL cannot create the port.
    let bad_vdev = config(
        "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 256\n\
         [[ports]]\nvdev = \"net_pcap0,rx_pcap=/nonexistent/in.pcap\"\n",
    );
    let o = weir()
        .arg("run")
        .arg("-c")
        .arg(bad_vdev.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("net_pcap0"), "{e}");
    // Too little memory for the mempools asked for: the pool and the reason are named.
    let cap = data_dir().join("pcaps/1kxun.pcap");
    let no_mem = config(&format!(
        "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 64\n\
         [workers]\nmbufs = 2000000\n\
         [[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n",
        cap.display()
    ));
    let o = weir()
        .arg("run")
        .arg("-c")
        .arg(no_mem.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("weir_rx0") && e.contains("2000000"), "{e}");
}

#[test]
fn plugins_list_and_check() {
    let o = weir()
        .args(["plugins", "list", "--plugin-dir"])
        .arg(plugin_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for p in ["flowstats", "splt", "tcp", "entropy"] {
        assert!(
            out.contains(&format!("\n{p} ")) || out.contains(&format!("{p} 1")),
            "{p}: {out}"
        );
    }
    // splt's state is sized by its config (ABI 1.3): n = 8 by default.
    assert!(
        out.contains("64 bytes of state per flow with this config, at most 208,"),
        "{out}"
    );
    let good = plugin_dir().join("libweir_flowstats.so");
    let o = weir()
        .args(["plugins", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // A shared object that is not a weir plugin is refused with the file and the reason.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libm");
    let o = weir()
        .args(["plugins", "check"])
        .arg(&good)
        .arg(libm)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("libm.so.6") && out.contains("weir_plugin_entry_v1"),
        "{out}"
    );
}

#[test]
fn sigterm_flushes_every_open_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = data_dir().join("pcaps/instagram.pcap");
    let records = tmp.path().join("flows.csv");
    // infinite_rx replays the capture forever: flows stay open until the signal.
    let cfg = config(&format!(
        "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 256\n\
         [[ports]]\nvdev = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\
         [plugins]\ndir = \"{}\"\n\
         [sinks]\nrecords = \"{}\"\n",
        cap.display(),
        plugin_dir().display(),
        records.display()
    ));
    let child = weir()
        .arg("run")
        .arg("-c")
        .arg(cfg.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    // "weir run: P packets (A in flows) -> R flow records"
    let line = e
        .lines()
        .find(|l| l.starts_with("weir run:"))
        .unwrap_or_else(|| panic!("no summary: {e}"));
    let accepted: u64 = line
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        accepted > 3443,
        "the capture was replayed at least once: {line}"
    );
    let rows = read_csv(&records);
    let in_records: u64 = rows
        .iter()
        .map(|r| r["bidirectional_packets"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(in_records, accepted, "every accepted packet is in a record");
    assert!(
        rows.iter().any(|r| r["expiration_id"] == "-1"),
        "open flows were flushed"
    );
    assert!(rows[0].contains_key("bidirectional_mean_ps"), "plugins ran");
}

#[test]
fn cost_prints_every_stage_and_plugin() {
    let cap = data_dir().join("pcaps/instagram.pcap");
    let o = weir()
        .arg("cost")
        .arg(&cap)
        .arg("--plugin-dir")
        .arg(plugin_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("3443 packets, 38 flows"), "{out}");
    for row in [
        "rx",
        "parse",
        "flow_table",
        "rates",
        "flowstats",
        "splt",
        "tcp",
        "entropy",
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(row))
            .unwrap_or_else(|| panic!("no {row} row: {out}"));
        // name, calls, packets, ...: every stage saw packets.
        let packets: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(packets > 0, "{line}");
    }
}

/// `weir extract CAPTURES --out OUT --no-progress --quiet`, which must succeed.
fn extract_quietly(captures: &[std::path::PathBuf], out: &Path) {
    let o = weir()
        .arg("extract")
        .args(captures)
        .arg("--out")
        .arg(out)
        .args(["--no-progress", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The data manifest beside the records file `out`.
fn manifest_of(out: &Path) -> serde_json::Value {
    let mut p = out.as_os_str().to_owned();
    p.push(".manifest.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The SHA-256 of `p` as `sha256sum` prints it (the oracle).
fn sha256sum(p: &Path) -> String {
    let s = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    let out = String::from_utf8(s.stdout).unwrap();
    out.split_whitespace().next().unwrap().to_string()
}

/// A capture read from a pipe (`tcpdump -w - | weir extract /dev/stdin`): read once, never
/// rewound, so the records are those of the file, and the manifest's hash and size are the
/// file's (`sha256sum`), for a pcap and a pcapng.
#[test]
fn a_capture_from_a_pipe_gives_the_records_of_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    for c in [
        data_dir().join("pcaps/tor.pcap"),
        ndpi_dir().join("pcaps/opera-vpn.pcapng"),
    ] {
        let file_out = tmp.path().join("file.csv");
        extract_quietly(std::slice::from_ref(&c), &file_out);
        let pipe_out = tmp.path().join("pipe.csv");
        let mut child = weir()
            .args(["extract", "/dev/stdin", "--out"])
            .arg(&pipe_out)
            .args(["--no-progress", "--quiet"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(&c).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let o = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(o.status.success(), "{}: {}", c.display(), stderr(&o));
        assert_eq!(
            std::fs::read(&pipe_out).unwrap(),
            std::fs::read(&file_out).unwrap(),
            "{}",
            c.display()
        );
        let man = manifest_of(&pipe_out);
        let listed = &man["captures"][0];
        assert_eq!(listed["sha256"].as_str(), Some(sha256sum(&c).as_str()));
        assert_eq!(
            listed["bytes"].as_u64(),
            Some(std::fs::metadata(&c).unwrap().len())
        );
    }
}

/// The manifest's `captures[].sha256` is each capture's SHA-256 as `sha256sum` computes it:
/// the mapped reader hashes a capture in pieces ahead of its parser, so the captures are a
/// pcap of a dozen pieces, a pcapng of several and one smaller than a piece.
#[test]
fn the_manifest_hashes_every_capture_as_sha256sum_does() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = [
        data_dir().join("pcaps/tor.pcap"),
        ndpi_dir().join("pcaps/opera-vpn.pcapng"),
        data_dir().join("pcaps/dhcp.pcapng"),
    ];
    let out = tmp.path().join("r.csv");
    extract_quietly(&caps, &out);
    let man = manifest_of(&out);
    let listed = man["captures"].as_array().expect("captures");
    assert_eq!(listed.len(), caps.len());
    for (c, m) in caps.iter().zip(listed) {
        let want = sha256sum(c);
        assert_eq!(m["sha256"].as_str(), Some(want.as_str()), "{}", c.display());
        assert_eq!(
            m["bytes"].as_u64(),
            Some(std::fs::metadata(c).unwrap().len()),
            "{}",
            c.display()
        );
    }
}
