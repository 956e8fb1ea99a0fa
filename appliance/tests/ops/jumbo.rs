//! Jumbo frames on live ports. One UDP flow of 20 frames from 142 to 8942 bytes (written here,
//! so its packet and byte counts are known exactly) must reach its flow whole:
//! - `weir run` on net_af_packet over a veth with MTU 9100, fed by tcpreplay from the other end
//!   in a network namespace this test creates (weir sizes the kernel ring slots and the mbufs
//!   from the interface's MTU);
//! - `weir run` on net_pcap with 2 KB mbufs, where the driver chains each jumbo frame over
//!   several mbufs: the worker must see each as one contiguous frame (the records equal a
//!   `weir extract` of the same capture, plugin columns included; one IPv6 frame there has
//!   its UDP header beyond the first 2 KB, so a first-segment view cannot parse it);
//! - a port whose `mtu` is set below the link's: the frames it cannot receive whole are counted
//!   and warned about.
//!
//! Needs root (network namespaces), `ip` (iproute2) and `tcpreplay`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::frames;
use crate::support::netns::Netns;
use weir::wire::ethernet::ethertype;
use weir::wire::ipv4::{protocol, Ipv4Repr};
use weir::wire::ipv6::Ipv6Repr;

const FIRST: usize = 142;
const LAST: usize = 8942;
const FRAMES: usize = 20;

fn frame_len(i: usize) -> usize {
    FIRST + (LAST - FIRST) * i / (FRAMES - 1)
}

/// One IPv6 UDP frame whose UDP header sits behind a 2048-byte Destination Options header
/// (the largest one), so it starts beyond a 2 KB mbuf: only a contiguous view can parse it.
fn deep_ipv6_frame() -> Vec<u8> {
    let payload: Vec<u8> = (0..100).map(|j| j as u8).collect();
    // Destination Options: next header UDP, (255 + 1) * 8 bytes, filled with PadN options.
    let mut l4 = vec![protocol::UDP, 255];
    for _ in 0..7 {
        l4.extend_from_slice(&[1, 255]);
        l4.extend_from_slice(&[0; 255]);
    }
    l4.extend_from_slice(&[1, 245]);
    l4.extend_from_slice(&[0; 245]);
    assert_eq!(l4.len(), 2048);
    l4.extend_from_slice(&frames::udp(40001, 5002, &payload));
    let ip = Ipv6Repr {
        src_addr: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst_addr: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ..Default::default()
    };
    let eth = frames::ether(ethertype::IPV6);
    frames::over_ipv6(eth, ip, protocol::IPV6_OPTS, &l4)
}

fn write_record(out: &mut Vec<u8>, sec: u32, f: &[u8]) {
    out.extend_from_slice(&sec.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(f.len() as u32).to_le_bytes());
    out.extend_from_slice(&(f.len() as u32).to_le_bytes());
    out.extend_from_slice(f);
}

/// One UDP flow 10.0.0.1:40000 -> 10.0.0.2:5001, frames FIRST..=LAST bytes, one a second;
/// with `deep`, also a [`deep_ipv6_frame`]. Returns the IPv4 flow's bytes.
fn write_capture(path: &Path, deep: bool) -> u64 {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut bytes = 0;
    for i in 0..FRAMES {
        let len = frame_len(i);
        let udp_len = len - 14 - 20;
        let ip = Ipv4Repr {
            src_addr: [10, 0, 0, 1],
            dst_addr: [10, 0, 0, 2],
            ident: i as u16,
            ..Default::default()
        };
        let data: Vec<u8> = (0..udp_len - 8)
            .map(|j| ((j * 7 + i) % 251) as u8)
            .collect();
        let udp = frames::udp(40000, 5001, &data);
        let f = frames::over_ipv4(frames::ether(ethertype::IPV4), ip, protocol::UDP, &udp);
        assert_eq!(f.len(), len);
        write_record(&mut out, 1000 + i as u32, &f);
        bytes += len as u64;
    }
    if deep {
        write_record(&mut out, 1000 + FRAMES as u32, &deep_ipv6_frame());
    }
    std::fs::write(path, out).unwrap();
    bytes
}

fn config(dir: &Path, name: &str, port: &str) -> (PathBuf, PathBuf) {
    let records = dir.join(format!("{name}.csv"));
    let cfg = dir.join(format!("{name}.toml"));
    let plugins = crate::support::run::weir_bin()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::write(
        &cfg,
        format!(
            r#"[eal]
no_huge = true
no_pci = true
memory_mb = 512

[[ports]]
{port}

[workers]
mbufs = 2047

[plugins]
dir = "{}"

[sinks]
records = "{}"

[log]
status_interval_s = 0
"#,
            plugins.display(),
            records.display()
        ),
    )
    .unwrap();
    (cfg, records)
}

/// `weir run` in `ns`, the capture replayed into the veth's other end, then SIGTERM; the log
/// and a scrape of the metrics endpoint (inside the namespace) taken before the signal.
fn run_in_netns(ns: &Netns, cfg: &Path, capture: &Path) -> (String, String) {
    let (mut child, reader) = crate::support::process::weir_run_in_netns(&ns.name, cfg);
    let replay = Command::new("ip")
        .args(["netns", "exec", &ns.name, "tcpreplay", "-q", "-i", "opb"])
        .args(["--pps", "200"])
        .arg(capture)
        .output()
        .expect("run tcpreplay");
    assert!(
        replay.status.success(),
        "tcpreplay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    std::thread::sleep(Duration::from_millis(1500));
    let scrape = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c"])
        .arg(
            "import urllib.request; \
             print(urllib.request.urlopen('http://127.0.0.1:9464/metrics').read().decode())",
        )
        .output()
        .expect("scrape with python3");
    let metrics = format!(
        "{}{}",
        String::from_utf8_lossy(&scrape.stdout),
        String::from_utf8_lossy(&scrape.stderr)
    );
    // SAFETY: a plain kill(2) of our own child (`ip netns exec` execs weir).
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0, "cannot signal weir");
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "weir run failed ({status}):\n{log}");
    (log, metrics)
}

/// The flow records of `records` by source port.
fn flows(records: &Path) -> HashMap<String, HashMap<String, String>> {
    crate::support::records::read_csv(records)
        .into_iter()
        .map(|r| (r["src_port"].clone(), r))
        .collect()
}

/// The one flow record of `records`.
fn the_flow(records: &Path) -> HashMap<String, String> {
    let rows = crate::support::records::read_csv(records);
    assert_eq!(rows.len(), 1, "expected one flow, got {rows:?}");
    rows.into_iter().next().unwrap()
}

fn tcpreplay_present() {
    assert!(
        Command::new("tcpreplay").arg("--version").output().is_ok(),
        "tcpreplay is not installed (Debian: apt-get install -y tcpreplay)"
    );
}

#[test]
fn af_packet_veth_mtu_9100_every_jumbo_frame_in_its_flow() {
    tcpreplay_present();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("jumbo.pcap");
    let bytes = write_capture(&capture, false);
    assert!((0..FRAMES).filter(|&i| frame_len(i) > 2048).count() >= 12);
    let ns = Netns::with_veth("opj", ("opa", "opb"), Some(9100))
        .unwrap_or_else(|e| panic!("cannot set up the veth pair: {e}"));
    let (cfg, records) = config(dir.path(), "af", "vdev = \"net_af_packet0,iface=opa\"");
    let (log, _) = run_in_netns(&ns, &cfg, &capture);
    assert!(
        log.contains("mtu 9100 (from the interface)"),
        "the port's MTU is not the interface's:\n{log}"
    );
    assert!(
        log.contains(&format!("weir run: {FRAMES} packets ({FRAMES} in flows)")),
        "not every frame reached its flow:\n{log}"
    );
    let f = the_flow(&records);
    assert_eq!(f["bidirectional_packets"], FRAMES.to_string());
    assert_eq!(f["bidirectional_bytes"], bytes.to_string());
    assert_eq!(f["bidirectional_max_ps"], LAST.to_string());
    assert!(!log.contains("not received whole"), "{log}");
}

#[test]
fn chained_mbufs_are_one_contiguous_frame_for_parsing_and_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("jumbo.pcap");
    let bytes = write_capture(&capture, true);
    // The oracle: weir extract, whose feeder puts every frame in one mbuf.
    let oracle = dir.path().join("extract.csv");
    let o = crate::support::run::weir()
        .arg("extract")
        .arg(&capture)
        .arg("--out")
        .arg(&oracle)
        .args(["--quiet", "--no-progress"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = flows(&oracle);
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(want["40000"]["bidirectional_bytes"], bytes.to_string());
    assert_eq!(want["40001"]["bidirectional_packets"], "1");

    let (cfg, records) = config(
        dir.path(),
        "pcap",
        &format!("vdev = \"net_pcap0,rx_pcap={}\"", capture.display()),
    );
    let o = Command::new(crate::support::run::weir_bin())
        .env("RUST_LOG", "info")
        .args(["run", "--stop-after-idle-ms", "500", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    // 2 KB mbufs: every frame above them arrived chained.
    assert!(log.contains("mbufs of 2048 bytes"), "{log}");
    let got = flows(&records);
    assert_eq!(got.len(), 2, "a flow is missing: {got:?}\n{log}");
    let diff: Vec<_> = want
        .iter()
        .flat_map(|(port, w)| {
            let g = &got[port];
            w.keys()
                .filter(|k| w[*k] != g[*k])
                .map(|k| format!("{port} {k}: extract {} run {}", w[k], g[k]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(diff.is_empty(), "run differs from extract: {diff:?}\n{log}");
    assert!(!log.contains("not received whole"), "{log}");
}

#[test]
fn frames_above_the_configured_mtu_are_counted_and_warned_about() {
    tcpreplay_present();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("jumbo.pcap");
    write_capture(&capture, false);
    let ns = Netns::with_veth("opc", ("opa", "opb"), Some(9100))
        .unwrap_or_else(|e| panic!("cannot set up the veth pair: {e}"));
    // mtu = 1500 on a 9100 link: af_packet's default 2048-byte slots cut larger frames at
    // 2048 - 66 bytes.
    let (cfg, _) = config(
        dir.path(),
        "cut",
        "vdev = \"net_af_packet0,iface=opa\"\nmtu = 1500",
    );
    let (log, metrics) = run_in_netns(&ns, &cfg, &capture);
    let expect = (0..FRAMES).filter(|&i| frame_len(i) >= 2048 - 66).count();
    assert!(expect > 0);
    assert!(
        log.contains("not received whole") && log.contains(&format!("cut_frames={expect}")),
        "{expect} cut frames not counted and warned about:\n{log}"
    );
    assert!(
        metrics.contains(&format!(
            "weir_worker_rx_cut_frames_total{{worker=\"0\"}} {expect}\n"
        )),
        "cut frames not in the metrics:\n{metrics}"
    );
}
