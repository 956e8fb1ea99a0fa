//! `weir run` honours the config it is given from the first line: `workers.burst` (the
//! receive burst each worker asks its queues for, and the software spreader its ports) and
//! `[log] format` / `level`, with colour codes only on a terminal; the link state of each port
//! is logged at start.
//!
//! The oracle for the burst is the cost table's `rx` row (receive calls and packets): with
//! `workers.burst = 4` no receive may return more than 4 packets, so packets / calls <= 4,
//! while the same capture with the default burst averages far above 4 (checked too, so the
//! test fails when the setting is ignored). net_pcap returns full bursts while the capture lasts.

use std::path::{Path, PathBuf};
use std::process::Command;

const CAPTURE: &str = "1kxun.pcap";

fn config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let cap = crate::support::paths::data_dir()
        .join("pcaps")
        .join(CAPTURE);
    let plugins = crate::support::run::weir_bin()
        .parent()
        .unwrap()
        .to_path_buf();
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"[eal]
no_huge = true
no_pci = true
memory_mb = 512

[[ports]]
vdev = "net_pcap0,rx_pcap={}"

[plugins]
dir = "{}"

[sinks]
records = "{}"

{extra}
"#,
            cap.display(),
            plugins.display(),
            dir.join(format!("{name}.csv")).display()
        ),
    )
    .unwrap();
    p
}

/// `weir run` to the end of the capture; (success, stderr).
fn run(cfg: &Path) -> (bool, String) {
    let o = Command::new(crate::support::run::weir_bin())
        .env_remove("RUST_LOG")
        .args(["run", "--stop-after-idle-ms", "500", "--config"])
        .arg(cfg)
        .output()
        .expect("run weir");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// (calls, packets) of the cost table's row `name`.
fn cost_row(table: &str, name: &str) -> (u64, u64) {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} row in:\n{table}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

fn packets_per_rx(stderr: &str) -> f64 {
    let (calls, packets) = cost_row(stderr, "rx");
    assert!(packets > 1000, "too few packets for the test:\n{stderr}");
    packets as f64 / calls as f64
}

#[test]
fn workers_burst_bounds_every_receive_in_run_and_extract() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = "[log]\nstatus_interval_s = 0\n";
    for (spread, workers) in [("auto", 1), ("software", 2)] {
        let small = config(
            dir.path(),
            &format!("small_{spread}"),
            &format!("{quiet}[workers]\nburst = 4\ncount = {workers}\nspread = \"{spread}\"\n"),
        );
        let (ok, err) = run(&small);
        assert!(ok, "weir run failed:\n{err}");
        let ppc = packets_per_rx(&err);
        assert!(
            ppc <= 4.0,
            "{spread}: {ppc} packets per receive with burst = 4:\n{err}"
        );
        // Software spreading: the spreader's own receives are bounded too; its ring hands
        // each worker at most 4 packets per spreader poll, so the workers cannot see more.
        let default = config(
            dir.path(),
            &format!("default_{spread}"),
            &format!("{quiet}[workers]\ncount = {workers}\nspread = \"{spread}\"\n"),
        );
        let (ok, err) = run(&default);
        assert!(ok, "weir run failed:\n{err}");
        let ppc = packets_per_rx(&err);
        assert!(
            ppc > 8.0,
            "{spread}: the default burst gives only {ppc} packets per receive: the test cannot tell"
        );
    }
    // weir extract: its workers receive from the feeder's rings `workers.burst` at a time.
    let small = dir.path().join("extract.toml");
    std::fs::write(&small, "[workers]\nburst = 4\n").unwrap();
    let o = crate::support::run::weir()
        .arg("extract")
        .arg(
            crate::support::paths::data_dir()
                .join("pcaps")
                .join(CAPTURE),
        )
        .arg("--out")
        .arg(dir.path().join("x.csv"))
        .arg("--config")
        .arg(&small)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let ppc = packets_per_rx(&table);
    assert!(
        ppc <= 4.0,
        "extract: {ppc} packets per receive with burst = 4:\n{table}"
    );
}

#[test]
fn log_format_and_level_from_the_config_no_colour_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // JSON at info: every log line is a JSON object with a level; none carries colour codes.
    let cfg = config(
        dir.path(),
        "json",
        "[log]\nformat = \"json\"\nlevel = \"info\"\nstatus_interval_s = 0\n",
    );
    let (ok, err) = run(&cfg);
    assert!(ok, "weir run failed:\n{err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes written to a pipe:\n{err}"
    );
    let json: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        json.iter()
            .any(|v| v["fields"]["message"].as_str() == Some("starting EAL")),
        "the first log lines are not JSON:\n{err}"
    );
    for l in err.lines() {
        // The human format starts with a timestamp and a level: none may be left.
        assert!(
            !(l.contains(" INFO ") || l.contains(" WARN ")),
            "a human log line under format = \"json\": {l}"
        );
    }
    // Human at warn: no info lines at all (the default for `weir run` is info).
    let cfg = config(
        dir.path(),
        "warn",
        "[log]\nlevel = \"warn\"\nstatus_interval_s = 0\n",
    );
    let (ok, err) = run(&cfg);
    assert!(ok, "weir run failed:\n{err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes written to a pipe:\n{err}"
    );
    assert!(
        !err.contains("INFO") && !err.contains("starting EAL"),
        "level = \"warn\" still logs info lines:\n{err}"
    );
    // The human default at info does log them (so the check above can fail).
    let cfg = config(dir.path(), "info", "[log]\nstatus_interval_s = 0\n");
    let (ok, err) = run(&cfg);
    assert!(ok, "weir run failed:\n{err}");
    assert!(
        err.contains("INFO") && err.contains("starting EAL"),
        "{err}"
    );
    // The link state of each port is logged once it started.
    assert!(
        err.contains("link up port=\"net_pcap0\" link=up"),
        "no link state at start:\n{err}"
    );
    assert!(
        !err.contains('\x1b'),
        "colour codes written to a pipe:\n{err}"
    );
    // A filter that is not one is refused, naming the key.
    let cfg = config(dir.path(), "bad", "[log]\nlevel = \"weir=loud\"\n");
    let o = crate::support::run::weir()
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("log.level"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn readiness_is_sent_to_systemd_once_the_ports_are_up() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&sock).unwrap();
    systemd.set_nonblocking(true).unwrap();
    let cfg = config(dir.path(), "notify", "[log]\nstatus_interval_s = 0\n");
    let o = Command::new(crate::support::run::weir_bin())
        .env("NOTIFY_SOCKET", &sock)
        .env("RUST_LOG", "info")
        .args(["run", "--stop-after-idle-ms", "500", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = systemd.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("READY=1\n") && got[0].contains("1 port(s)"),
        "{got:?}"
    );
    assert!(got[1].starts_with("STOPPING=1"), "{got:?}");
    // Ready after the ports started: the link line comes before "running".
    let link = log.find("link up").expect("link line");
    let running = log.find("running;").expect("running line");
    assert!(link < running, "{log}");
}
