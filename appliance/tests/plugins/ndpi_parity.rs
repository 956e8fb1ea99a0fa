//! The ndpi plugin (`plugins/ndpi`) against `ndpiReader`, nDPI's own reader from the same
//! libndpi (Debian's `libndpi-bin`), on every capture of the parity corpus
//! (`tests/data/nfstream` and `tests/data/ndpi`): weir's `application_name` must equal the
//! `ndpi_proto` ndpiReader writes (`-C`, one CSV line per flow) for the same flow, joined on the
//! protocol and the two endpoints (either order).
//!
//! Both readers dissect a flow until nDPI has a result it will not refine or a packet limit is
//! reached, then ask nDPI to guess. ndpiReader gives up once a flow has *more* than `-T`/`-U`
//! packets, so it dissects one packet more than its limit: `-T 19 -U 19` is the plugin's
//! default `n_dissections` of 20.
//!
//! Where the two flow trackers differ the labels cannot be compared; each such class is
//! explained and bounded below (the counts are what the bundled captures give: a change in
//! either reader that moves a flow into a class fails the test). Nothing else is tolerated:
//! every flow both readers report once must have the same label.
//!
//! The test fails, saying why, when the plugin was not built (libndpi-dev missing: `make test`
//! installs it) or ndpiReader is not installed: it is never skipped.

#[allow(unused_imports)]
use crate::support::{nfstream::*, paths::*, records::*, run::*};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// ndpiReader's packet limits matching the plugin's default n_dissections (20): it dissects
/// limit + 1 packets.
const NDPIREADER_LIMIT: &str = "19";

/// Captures with GTP-U or CAPWAP tunnels: weir decapsulates them (`flows.decode_tunnels`) and
/// labels the inner flows, ndpiReader 4.2 reports the outer tunnel flow (`GTP.GTP_U`,
/// `CAPWAP`) and not the inner one. A detected inner flow weir reports is then absent from
/// ndpiReader's CSV.
const TUNNEL_CAPTURES: &[&str] = &[
    "capwap_data.pcapng",
    "false_positives.pcapng",
    "gtp-u.pcap",
    "ipv6_in_gtp.pcap",
    "ja3_lots_of_cipher_suites_2_anon.pcap",
];
/// Detected inner flows of those captures (TLS, HTTP, RTP, ICMP, IPsec).
const MAX_TUNNEL_INNER: usize = 8;

/// ndpiReader 4.2 prints an IPv6 address with a single zero group as `::` (RFC 5952 keeps it
/// `:0:`: `...b00c:0:25de` becomes `...b00c::25de`, another address), so those flows do not
/// join. Counted when one of the flow's IPv6 addresses has a lone zero group.
const MAX_IPV6_PRINTED_APART: usize = 4;

/// A 5-tuple weir split into several flows (its idle timeout, 120 s, or TCP teardown) while
/// ndpiReader kept one: ndpiReader's label must be one of the labels of weir's pieces, except
/// where no piece alone had the packets nDPI needed (dnscrypt_skype_false_positive.pcapng: a
/// DNSCrypt exchange idle for more than 120 s twice, three Unknown pieces in weir).
const MAX_SPLIT_UNLABELLED: usize = 1;

fn ndpi_plugin_dir() -> PathBuf {
    let Some(lib) = weir_ndpi_build::LIBRARY_PATH else {
        panic!(
            "the ndpi plugin was not built, so application_name cannot be checked: {}",
            weir_ndpi_build::NOT_BUILT
        );
    };
    // A directory holding only the ndpi plugin, mode 0755 (weir's permission check).
    let dir = tempfile::Builder::new()
        .prefix("weir-ndpi-")
        .tempdir()
        .unwrap()
        .keep();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(lib, dir.join("libweir_ndpi.so")).unwrap();
    dir
}

/// The join key: protocol and the two endpoints, sorted.
type Key = (u8, (String, u16), (String, u16));

fn key(proto: &str, a: &str, ap: &str, b: &str, bp: &str) -> Option<Key> {
    let mut e = [
        (a.to_string(), ap.parse().ok()?),
        (b.to_string(), bp.parse().ok()?),
    ];
    e.sort();
    let [x, y] = e;
    Some((proto.parse().ok()?, x, y))
}

fn weir_labels(plugins: &Path, cap: &Path, out: &Path) -> HashMap<Key, Vec<String>> {
    let res = weir()
        .args(["extract", "--quiet", "--no-progress", "--plugin-dir"])
        .arg(plugins)
        .arg("--out")
        .arg(out)
        .arg(cap)
        .output()
        .unwrap();
    // A capture corrupt partway (two fuzzed ones) fails the run after the flows of every
    // packet read were written: those flows are compared too.
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        res.status.success() || (out.exists() && err.contains("every packet read were written")),
        "weir extract {}: {err}",
        cap.display(),
    );
    let mut m: HashMap<Key, Vec<String>> = HashMap::new();
    for r in read_csv(out) {
        let k = key(
            &r["protocol"],
            &r["src_ip"],
            &r["src_port"],
            &r["dst_ip"],
            &r["dst_port"],
        )
        .expect("weir writes numeric ports");
        m.entry(k).or_default().push(r["application_name"].clone());
    }
    m
}

fn ndpireader_labels(cap: &Path, out: &Path) -> HashMap<Key, Vec<String>> {
    let res = Command::new("ndpiReader")
        .args(["-q", "-T", NDPIREADER_LIMIT, "-U", NDPIREADER_LIMIT, "-i"])
        .arg(cap)
        .arg("-C")
        .arg(out)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ndpiReader (Debian package libndpi-bin, installed by make): {e}")
        });
    assert!(
        res.status.success(),
        "ndpiReader {}: {res:?}",
        cap.display()
    );
    // Its CSV may hold raw bytes from the traffic (server names): read it lossily.
    let text = String::from_utf8_lossy(&std::fs::read(out).unwrap()).into_owned();
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches('#')
        .split(',')
        .collect();
    let col = |n: &str| header.iter().position(|h| *h == n).expect(n);
    let (p, sa, sp, da, dp, name) = (
        col("protocol"),
        col("src_ip"),
        col("src_port"),
        col("dst_ip"),
        col("dst_port"),
        col("ndpi_proto"),
    );
    let mut m: HashMap<Key, Vec<String>> = HashMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() < header.len() {
            continue;
        }
        if let Some(k) = key(f[p], f[sa], f[sp], f[da], f[dp]) {
            m.entry(k).or_default().push(f[name].to_string());
        }
    }
    m
}

fn lone_zero_group(ip: &str) -> bool {
    ip.contains(':') && (ip.contains(":0:") || ip.ends_with(":0"))
}

#[derive(Default, Debug)]
struct Tally {
    equal: usize,
    /// Unknown in weir and absent from ndpiReader's CSV, which lists detected flows only.
    unknown_both: usize,
    tunnel_inner: Vec<String>,
    ipv6_printed_apart: Vec<String>,
    split_labelled: usize,
    split_unlabelled: Vec<String>,
    mismatches: Vec<String>,
}

#[test]
fn application_name_equals_ndpireader_on_every_parity_capture() {
    let plugins = ndpi_plugin_dir();
    let mut caps = captures();
    caps.extend(captures_in(&ndpi_dir()));
    let tmp = tempfile::tempdir().unwrap();
    let tally = Mutex::new(Tally::default());
    let next = Mutex::new(caps.iter());
    std::thread::scope(|s| {
        for t in 0..2 {
            let (tally, next, plugins, tmp) = (&tally, &next, &plugins, tmp.path());
            s.spawn(move || loop {
                let Some(cap) = next.lock().unwrap().next() else {
                    break;
                };
                let name = cap.file_name().unwrap().to_str().unwrap();
                let w = weir_labels(plugins, cap, &tmp.join(format!("w{t}.csv")));
                let n = ndpireader_labels(cap, &tmp.join(format!("n{t}.csv")));
                let mut tl = tally.lock().unwrap();
                for (k, wl) in &w {
                    let what = format!("{name} {k:?}: weir {wl:?}");
                    match n.get(k) {
                        None if wl.iter().all(|l| l == "Unknown") => tl.unknown_both += 1,
                        None if TUNNEL_CAPTURES.contains(&name) => tl.tunnel_inner.push(what),
                        None if lone_zero_group(&k.1 .0) || lone_zero_group(&k.2 .0) => {
                            tl.ipv6_printed_apart.push(what)
                        }
                        None => tl
                            .mismatches
                            .push(format!("{what}, absent from ndpiReader")),
                        Some(nl) if wl.len() == 1 && nl.len() == 1 => {
                            if wl[0] == nl[0] {
                                tl.equal += 1;
                            } else {
                                tl.mismatches.push(format!("{what}, ndpiReader {nl:?}"));
                            }
                        }
                        Some(nl) if nl.iter().all(|l| wl.contains(l)) => tl.split_labelled += 1,
                        Some(nl) => tl
                            .split_unlabelled
                            .push(format!("{what}, ndpiReader {nl:?}")),
                    }
                }
            });
        }
    });
    let t = tally.into_inner().unwrap();
    eprintln!(
        "{} captures: {} flows equal, {} Unknown in both, {} split by weir (labels agree), \
         {} tunnel inner, {} IPv6 printed apart, {} split unlabelled",
        caps.len(),
        t.equal,
        t.unknown_both,
        t.split_labelled,
        t.tunnel_inner.len(),
        t.ipv6_printed_apart.len(),
        t.split_unlabelled.len()
    );
    assert!(
        t.mismatches.is_empty(),
        "{} flows where application_name differs from ndpiReader's:\n{}",
        t.mismatches.len(),
        t.mismatches.join("\n")
    );
    assert!(
        t.tunnel_inner.len() <= MAX_TUNNEL_INNER,
        "more detected tunnel-inner flows than explained:\n{}",
        t.tunnel_inner.join("\n")
    );
    assert!(
        t.ipv6_printed_apart.len() <= MAX_IPV6_PRINTED_APART,
        "{:#?}",
        t.ipv6_printed_apart
    );
    assert!(
        t.split_unlabelled.len() <= MAX_SPLIT_UNLABELLED,
        "{:#?}",
        t.split_unlabelled
    );
    // The comparison is not vacuous: most flows are labelled by both readers.
    assert!(t.equal >= 2900, "only {} flows compared equal", t.equal);
}
