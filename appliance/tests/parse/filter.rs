//! Capture filters against tcpdump, the oracle: for a spread of bundled captures (IPv4 and
//! IPv6, VLAN tags, IPv4 fragments, ICMP and ICMPv6, tunnels, Linux cooked, raw IP and BSD
//! loopback link types) and libpcap expressions, the records of `weir extract --filter E IN...`
//! equal, as sets of rows in every column but `worker`, the records of `weir extract OUT...`
//! where each OUT is what `tcpdump -r IN -w OUT E` wrote; the `filtered` counter is the
//! packets tcpdump left out. A capture tcpdump keeps nothing of gives no record, and a bad
//! expression is refused with libpcap's own message, from the flag and from the config.

use crate::support::{records::*, run::*};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Captures under `tests/data`, chosen for what they hold.
const CAPTURES: &[(&str, &str)] = &[
    ("nfstream/pcaps/1kxun.pcap", "TCP/UDP, IPv6, DNS, TLS"),
    ("nfstream/pcaps/443-curl.pcap", "one TLS flow"),
    ("nfstream/pcaps/4in4tunnel.pcap", "VLAN, IP in IP"),
    ("nfstream/pcaps/6in6tunnel.pcap", "IPv6 in IPv6"),
    ("nfstream/pcaps/ajp.pcap", "VLAN, non-IP EtherTypes"),
    ("nfstream/pcaps/android.pcap", "ICMP, IPv6"),
    ("nfstream/pcaps/dhcp.pcapng", "pcapng, broadcast"),
    (
        "nfstream/pcaps/dns_fragmented.pcap",
        "IPv4 and IPv6 fragments",
    ),
    (
        "nfstream/pcaps/dnscrypt-v1-and-resolver-pings.pcap",
        "many IPv4 fragments",
    ),
    ("nfstream/pcaps/doq.pcapng", "ICMPv6, IPv6 UDP"),
    ("nfstream/pcaps/gtp-u.pcap", "GTP-U tunnel"),
    ("nfstream/pcaps/http_ipv6.pcap", "IPv6 TCP"),
    ("nfstream/pcaps/malformed_icmp.pcap", ""),
    ("nfstream/pcaps/mongodb.pcap", "VLAN TCP"),
    ("nfstream/pcaps/NTPv4.pcap", ""),
    ("nfstream/pcaps/synscan.pcap", "SYNs to many ports"),
    ("nfstream/pcaps/tftp.pcap", ""),
    ("nfstream/pcaps/wa_voice.pcap", "UDP media, ICMP"),
    ("ndpi/pcaps/stun.pcap", "VLAN, IPv6, ICMP"),
    ("ndpi/pcaps/vxlan.pcap", "VLAN, VXLAN"),
    ("ndpi/pcaps/false_positives.pcapng", "VLAN, pcapng"),
    ("ndpi/pcaps/hsrp2_ipv6.pcapng", "VLAN, IPv6 multicast"),
    ("ndpi/pcaps/smb_frags.pcap", "VLAN, TCP segments"),
    ("ndpi/pcaps/zoom_p2p.pcapng", "ICMP"),
    ("ndpi/pcaps/tcp_scan.pcapng", "SYN, RST"),
    ("ndpi/pcaps/sctp.cap", "SCTP"),
    ("ndpi/pcaps/rtsp.pcap", "Linux cooked capture (SLL)"),
    ("ndpi/pcaps/bets.pcapng", "raw IP"),
    ("ndpi/pcaps/openwire.pcapng", "BSD loopback (NULL), IPv6"),
];

/// Of `CAPTURES`, those not captured on Ethernet. libpcap has no VLAN support for their link
/// types, so tcpdump refuses expressions with `vlan` on them; those run on the others only.
/// (weir reads them as Ethernet frames without tags: `vlan` matches none of their packets.)
const NOT_ETHERNET: &[&str] = &[
    "ndpi/pcaps/rtsp.pcap",
    "ndpi/pcaps/bets.pcapng",
    "ndpi/pcaps/openwire.pcapng",
];

const EXPRESSIONS: &[&str] = &[
    "tcp port 443 or udp port 53",
    "ip6",
    "icmp or icmp6",
    "net 10.0.0.0/8",
    "greater 200",
    "vlan",
    "tcp[tcpflags] & tcp-syn != 0",
    "not port 53",
    "ip[6:2] & 0x3fff != 0",
    "udp and not (vlan or ip6)",
];

/// tcpdump, installed by `make` (APT_PACKAGES); its absence fails the test, never skips it.
fn tcpdump() -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join("tcpdump");
        if p.exists() {
            return p;
        }
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("tcpdump"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "tcpdump not found: it is the oracle of this test; install it (`make deps`, or \
             apt-get install tcpdump)"
        )
    })
}

fn capture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// `tcpdump -r IN -w OUT EXPR` (nanosecond time stamps, so no time is rounded).
fn tcpdump_write(input: &Path, out: &Path, expr: &str) {
    let o = Command::new(tcpdump())
        .args(["--time-stamp-precision=nano", "-r"])
        .arg(input)
        .arg("-w")
        .arg(out)
        .arg(expr)
        .output()
        .expect("run tcpdump");
    assert!(
        o.status.success(),
        "tcpdump -r {} -w {} {expr:?}: {}",
        input.display(),
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `weir extract CAPTURES [--filter EXPR] --out OUT --stats`; the records and the stats.
fn extract(
    captures: &[PathBuf],
    filter: Option<&str>,
    out: &Path,
) -> (Vec<Vec<String>>, serde_json::Value) {
    let stats = out.with_extension("stats.json");
    let mut c = weir();
    c.arg("extract")
        .args(captures)
        .arg("--out")
        .arg(out)
        .arg("--stats")
        .arg(&stats)
        .args(["--no-plugins", "--quiet"]);
    if let Some(f) = filter {
        c.args(["--filter", f]);
    }
    let o = c.output().expect("run weir");
    assert!(
        o.status.success(),
        "weir extract --filter {filter:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    (rows(out), stats)
}

/// Records as sorted rows of every column but `worker`, each row "column=value|...".
fn rows(csv: &Path) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = read_csv(csv)
        .into_iter()
        .map(|r| {
            let mut cols: Vec<String> = r
                .into_iter()
                .filter(|(k, _)| k != "worker")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            cols.sort();
            cols
        })
        .collect();
    v.sort();
    v
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("--stats has no {key}: {v}"))
}

#[test]
fn filtered_records_equal_the_records_of_what_tcpdump_writes() {
    let dir = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(expr) = EXPRESSIONS.get(i) else {
                    break;
                };
                let inputs: Vec<PathBuf> = CAPTURES
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| !expr.contains("vlan") || !NOT_ETHERNET.contains(c))
                    .map(capture)
                    .collect();
                let d = dir.path().join(format!("e{i}"));
                std::fs::create_dir(&d).unwrap();
                let outs: Vec<PathBuf> = inputs
                    .iter()
                    .enumerate()
                    .map(|(j, input)| {
                        let out = d.join(format!("{j:02}.pcap"));
                        tcpdump_write(input, &out, expr);
                        out
                    })
                    .collect();
                let (got, got_stats) = extract(&inputs, Some(expr), &d.join("filtered.csv"));
                let (want, want_stats) = extract(&outs, None, &d.join("tcpdump.csv"));
                let mut fail = Vec::new();
                if got != want {
                    let only_got: Vec<_> = got.iter().filter(|r| !want.contains(r)).collect();
                    let only_want: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
                    fail.push(format!(
                        "{} records with --filter, {} from tcpdump's output; only with \
                         --filter: {:?}; only from tcpdump's: {:?}",
                        got.len(),
                        want.len(),
                        &only_got[..only_got.len().min(2)],
                        &only_want[..only_want.len().min(2)]
                    ));
                }
                // Every packet tcpdump left out is counted as filtered, and only those.
                let read = num(&got_stats, "packets_read");
                let kept = num(&want_stats, "packets_read");
                if num(&got_stats, "filtered") != read - kept {
                    fail.push(format!(
                        "filtered {} but tcpdump left out {} of {read}",
                        num(&got_stats, "filtered"),
                        read - kept
                    ));
                }
                if num(&got_stats, "accepted") != num(&want_stats, "accepted") {
                    fail.push("accepted packets differ".into());
                }
                eprintln!(
                    "{expr:?}: {} of {read} packets kept, {} records",
                    kept,
                    got.len()
                );
                if !fail.is_empty() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{expr:?}: {}", fail.join("; ")));
                }
                // A test that cannot fail is no test: each expression keeps some packets and
                // drops others over these captures.
                assert!(kept > 0 && kept < read, "{expr:?} kept {kept} of {read}");
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nothing_kept_gives_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = capture("nfstream/pcaps/443-curl.pcap");
    let out = dir.path().join("none.pcap");
    tcpdump_write(&input, &out, "vlan or icmp6");
    // tcpdump's output holds no packet (a pcap file header only, 24 bytes).
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 24);
    let (recs, stats) = extract(
        std::slice::from_ref(&input),
        Some("vlan or icmp6"),
        &dir.path().join("none.csv"),
    );
    assert!(recs.is_empty(), "{recs:?}");
    assert_eq!(num(&stats, "filtered"), num(&stats, "packets_read"));
    assert_eq!(num(&stats, "accepted"), 0);
}

/// libpcap's message for `expr`, as tcpdump prints it (`tcpdump: MESSAGE`).
fn libpcap_message(expr: &str) -> String {
    let o = Command::new(tcpdump())
        .arg("-r")
        .arg(capture("nfstream/pcaps/443-curl.pcap"))
        .arg(expr)
        .output()
        .expect("run tcpdump");
    assert!(!o.status.success(), "tcpdump accepted {expr:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("tcpdump: ") && !l.contains("reading from"))
        .unwrap_or_else(|| panic!("no message from tcpdump: {err}"));
    line.trim_start_matches("tcpdump: ").to_string()
}

#[test]
fn bad_expressions_are_refused_with_libpcaps_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = capture("nfstream/pcaps/443-curl.pcap");
    for expr in ["tcp port", "port 99999", "ip6 and", "ip proto bogus"] {
        let want = libpcap_message(expr);
        for cmd in ["extract", "cost"] {
            let mut c = weir();
            c.arg(cmd).arg(&input).args(["--filter", expr]);
            if cmd == "extract" {
                c.arg("--out").arg(dir.path().join("x.csv"));
            }
            let o = c.output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(1),
                "weir {cmd} --filter {expr:?}: {err}"
            );
            assert!(
                err.contains("--filter") && err.contains(&want),
                "weir {cmd} --filter {expr:?}: want libpcap's {want:?}, got {err}"
            );
            assert!(
                !dir.path().join("x.csv").exists(),
                "no records before the refusal"
            );
        }
    }
    // From the config: the key and its line.
    let cfg = dir.path().join("weir.toml");
    std::fs::write(
        &cfg,
        "[flows]\nidle_timeout_s = 60\n\n[capture]\nfilter = \"tcp port\"\n",
    )
    .unwrap();
    let o = weir()
        .arg("extract")
        .arg(&input)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("x.csv"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("capture.filter")
            && err.contains("line 5")
            && err.contains(&libpcap_message("tcp port")),
        "{err}"
    );
    let o = weir().arg("check-config").arg(&cfg).output().unwrap();
    assert!(!o.status.success());
    std::fs::write(
        &cfg,
        "[[ports]]\nvdev = \"net_null0\"\n[[ports]]\nvdev = \"net_null1\"\nfilter = \"ip6 and\"\n",
    )
    .unwrap();
    let o = weir().arg("check-config").arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("ports[1].filter")
            && err.contains("line 5")
            && err.contains(&libpcap_message("ip6 and")),
        "{err}"
    );
}

/// Packets of `capture` that tcpdump's `expr` accepts (one line each from `tcpdump -nr`).
fn tcpdump_count(capture: &Path, expr: &str) -> u64 {
    let o = Command::new(tcpdump())
        .arg("-nr")
        .arg(capture)
        .arg(expr)
        .output()
        .expect("run tcpdump");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().count() as u64
}

/// `weir run` on two ports, each with its own filter source: port 0's `filter`, port 1 the
/// `[capture] filter`; with two workers both are read by the software spreader, whose rings
/// carry both ports' packets (the filter is chosen by the port each came in on), and with one
/// worker each port's queue is polled directly. What each filter keeps is tcpdump's count,
/// the rest is counted as filtered, and the records hold exactly the packets kept.
#[test]
fn weir_run_filters_each_port_with_its_own_filter() {
    let dir = tempfile::tempdir().unwrap();
    let a = capture("nfstream/pcaps/1kxun.pcap");
    let b = capture("nfstream/pcaps/android.pcap");
    let (fa, fb) = ("tcp", "udp port 53");
    let kept = tcpdump_count(&a, fa) + tcpdump_count(&b, fb);
    let total = tcpdump_count(&a, "") + tcpdump_count(&b, "");
    assert!(kept > 0 && kept < total);
    let no_plugins = dir.path().join("no-plugins");
    std::fs::create_dir(&no_plugins).unwrap();
    for workers in [1, 2] {
        let records = dir.path().join(format!("run{workers}.csv"));
        let cfg = dir.path().join(format!("run{workers}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[eal]\nno_huge = true\nno_pci = true\nmemory_mb = 512\n\n\
                 [capture]\nfilter = \"{fb}\"\n\n\
                 [[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\nfilter = \"{fa}\"\n\n\
                 [[ports]]\nvdev = \"net_pcap1,rx_pcap={}\"\n\n\
                 [workers]\ncount = {workers}\n\n\
                 [plugins]\ndir = \"{}\"\n\n\
                 [sinks]\nrecords = \"{}\"\n\n[log]\nstatus_interval_s = 0\n",
                a.display(),
                b.display(),
                no_plugins.display(),
                records.display()
            ),
        )
        .unwrap();
        let o = weir()
            .env("RUST_LOG", "info")
            .args(["run", "--stop-after-idle-ms", "500", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "weir run, {workers} workers: {log}");
        assert_eq!(
            log.contains("software spreading on the main lcore"),
            workers == 2,
            "{log}"
        );
        let want = format!(
            "weir run: {total} packets ({kept} in flows, {} filtered out)",
            total - kept
        );
        assert!(
            log.contains(&want),
            "{workers} workers: want {want:?} in\n{log}"
        );
        let in_records: u64 = read_csv(&records)
            .iter()
            .map(|r| r["bidirectional_packets"].parse::<u64>().unwrap())
            .sum();
        assert_eq!(in_records, kept, "{workers} workers");
    }
}
