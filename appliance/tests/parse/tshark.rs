//! The parser against an independent dissector: Wireshark's `tshark` (must be installed: it is
//! in the Makefile's install list; this test fails, it does not skip, when tshark is missing).
//!
//! For a set of captures covering VLAN/QinQ, IPv4 options and fragments, IPv6 extension headers
//! and fragments, 4in4, 6in6, GTP-U, ICMP errors and non-IP frames, tshark prints per frame its
//! protocol chain and every occurrence of the address, port and VLAN fields (reassembly off).
//! For each frame weir parses, the innermost flow-carrying IP layer in tshark's chain (the last
//! IP before any ICMP, whose quoted packet is not the flow's) must have weir's addresses, the
//! transport after it weir's protocol and ports, and the last VLAN tag weir's vlan_id. Each
//! frame tshark dissects as IP but weir skips must be one of: a non-first fragment (tshark shows
//! the offset), a FabricPath frame (tshark's `cfp`), which weir does not decapsulate, or an
//! IPv4 header with Total Length 0 (a TSO host capture; tshark guesses, NFStream and weir skip).

use crate::support::paths::data_dir;
use crate::support::pcap::read_frames;
use std::net::IpAddr;
use std::process::Command;
use weir::parse::{parse, SkipReason};
use weir_plugin_api::{FlowKeyV1, PacketV1};

const CAPTURES: &[&str] = &[
    "4in4tunnel.pcap",
    "6in6tunnel.pcap",
    "ipv6_in_gtp.pcap",
    "gtp-u.pcap",
    "dns_fragmented.pcap",
    "dnscrypt-v1-and-resolver-pings.pcap",
    "mongodb.pcap",
    "ajp.pcap",
    "http_ipv6.pcap",
    "anyconnect-vpn.pcap",
    "alexa-app.pcapng",
    "skype.pcap",
    "synscan.pcap",
    "anydesk-2.pcap",
    "malformed_icmp.pcap",
    "quic.pcap",
    "wechat.pcap",
];

const FIELDS: &[&str] = &[
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "vlan.id",
    "ip.frag_offset",
    "ipv6.fraghdr.offset",
];

/// One frame as tshark saw it: each field's occurrences.
struct Dissected {
    protocols: Vec<String>,
    fields: Vec<Vec<String>>,
}

impl Dissected {
    fn field(&self, name: &str) -> &[String] {
        let i = FIELDS.iter().position(|f| *f == name).unwrap();
        &self.fields[i]
    }
}

fn tshark(path: &std::path::Path) -> Vec<Dissected> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(path)
        .args(["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"])
        .args(["-o", "tcp.desegment_tcp_streams:FALSE"])
        .args([
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-E",
            "separator=/t",
        ]);
    for f in FIELDS {
        cmd.arg("-e").arg(f);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run tshark ({e}): install it (apt-get install -y tshark), `make test` needs it"
        )
    });
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let split = |s: &str| -> Vec<String> {
                if s.is_empty() {
                    vec![]
                } else {
                    s.split(',').map(str::to_string).collect()
                }
            };
            Dissected {
                protocols: cols[0].split(':').map(str::to_string).collect(),
                fields: (0..FIELDS.len())
                    .map(|i| split(cols.get(i).copied().unwrap_or("")))
                    .collect(),
            }
        })
        .collect()
}

/// What tshark says the flow of a frame is: (src, dst, protocol, sport, dport, vlan), or None
/// when it found no IP.
fn tshark_flow(d: &Dissected) -> Option<(IpAddr, IpAddr, Option<u8>, u16, u16, u16)> {
    // IP layers before the first ICMP/ICMPv6 (an ICMP error quotes another packet's header).
    let stop = d
        .protocols
        .iter()
        .position(|p| p == "icmp" || p == "icmpv6")
        .unwrap_or(d.protocols.len());
    let ip_at: Vec<usize> = (0..stop)
        .filter(|&i| d.protocols[i] == "ip" || d.protocols[i] == "ipv6")
        .collect();
    let &last = ip_at.last()?;
    let kind = &d.protocols[last];
    let nth = ip_at.iter().filter(|&&i| &d.protocols[i] == kind).count() - 1;
    let (s, t) = if kind == "ip" {
        ("ip.src", "ip.dst")
    } else {
        ("ipv6.src", "ipv6.dst")
    };
    let src: IpAddr = d.field(s)[nth].parse().unwrap();
    let dst: IpAddr = d.field(t)[nth].parse().unwrap();
    // The transport right after that IP layer (skipping IPv6 extension headers).
    let mut proto = None;
    let (mut sport, mut dport) = (0, 0);
    for (i, p) in d.protocols.iter().enumerate().skip(last + 1) {
        if p.starts_with("ipv6.") {
            continue;
        }
        let port_of = |name: &str, field: &str| -> u16 {
            let k = d.protocols[..i].iter().filter(|q| *q == name).count();
            d.field(field)[k].parse().unwrap()
        };
        proto = match p.as_str() {
            "tcp" => {
                (sport, dport) = (port_of("tcp", "tcp.srcport"), port_of("tcp", "tcp.dstport"));
                Some(6)
            }
            "udp" => {
                (sport, dport) = (port_of("udp", "udp.srcport"), port_of("udp", "udp.dstport"));
                Some(17)
            }
            "icmp" => Some(1),
            "icmpv6" => Some(58),
            _ => None,
        };
        break;
    }
    let vlan = d
        .field("vlan.id")
        .last()
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    Some((src, dst, proto, sport, dport, vlan))
}

fn ip_of(raw: &[u8; 16], version: u8) -> IpAddr {
    if version == 4 {
        IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
    } else {
        IpAddr::from(*raw)
    }
}

#[test]
fn parse_agrees_with_tshark() {
    let mut problems = Vec::new();
    let mut compared = 0usize;
    for name in CAPTURES {
        let path = data_dir().join("pcaps").join(name);
        let frames = read_frames(&path);
        let dissected = tshark(&path);
        assert_eq!(
            frames.len(),
            dissected.len(),
            "{name}: tshark and pcap-file disagree on the frame count"
        );
        for (i, (f, d)) in frames.iter().zip(&dissected).enumerate() {
            let n = i + 1;
            let mut pkt = PacketV1::EMPTY;
            let mut key = FlowKeyV1::default();
            let theirs = tshark_flow(d);
            match (parse(&f.data, f.wire_len, 0, &mut pkt, &mut key), theirs) {
                (Ok(()), Some((src, dst, proto, sport, dport, vlan))) => {
                    compared += 1;
                    let ours = (
                        ip_of(&key.src_ip, key.ip_version),
                        ip_of(&key.dst_ip, key.ip_version),
                        key.src_port,
                        key.dst_port,
                        key.vlan_id,
                    );
                    if ours != (src, dst, sport, dport, vlan) {
                        problems.push(format!(
                            "{name} #{n}: weir {ours:?}, tshark {:?} ({})",
                            (src, dst, sport, dport, vlan),
                            d.protocols.join(":")
                        ));
                    }
                    if let Some(p) = proto {
                        if p != key.protocol {
                            problems.push(format!(
                                "{name} #{n}: protocol weir {} tshark {p}",
                                key.protocol
                            ));
                        }
                    }
                }
                (Ok(()), None) => problems.push(format!(
                    "{name} #{n}: weir parsed a frame tshark found no IP in ({})",
                    d.protocols.join(":")
                )),
                (Err(_), None) => {}
                (Err(reason), Some(_)) => {
                    let frag = d
                        .field("ip.frag_offset")
                        .iter()
                        .chain(d.field("ipv6.fraghdr.offset"))
                        .any(|o| o != "0");
                    let ok = match reason {
                        SkipReason::Ipv4Fragment | SkipReason::Ipv6Fragment => frag,
                        SkipReason::NotIp => d.protocols.iter().any(|p| p == "cfp"),
                        // Total Length 0: a host capture of TCP segmentation offload. tshark
                        // presumes the frame's length; NFStream skips these, and so does weir.
                        SkipReason::Ipv4TotalLength => {
                            f.data.get(12..14) == Some(&[0x08, 0x00][..])
                                && f.data.get(16..18) == Some(&[0, 0][..])
                        }
                        _ => false,
                    };
                    if !ok {
                        problems.push(format!(
                            "{name} #{n}: weir skipped ({reason}) a frame tshark dissects as {}",
                            d.protocols.join(":")
                        ));
                    }
                }
            }
        }
    }
    eprintln!("compared {compared} frames with tshark");
    assert!(compared > 10_000, "too few frames compared: {compared}");
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Frames built with weir's wire builders (`weir::wire::*Repr::emit`), checksums computed:
/// IPv4 and IPv6, TCP with and without payload, UDP of odd length, ICMP and ICMPv6 echoes, a
/// VLAN-tagged frame. tshark, checking every checksum, must find each one good and nothing
/// malformed, and must read the fields the builders were given.
#[test]
fn frames_of_the_wire_builders_pass_tshark_checksum_checks() {
    use crate::support::frames::ether;
    use crate::support::pcap::{write_pcap, Pkt};
    use weir::wire::checksum::PseudoHeader;
    use weir::wire::ethernet::{ethertype, EthernetRepr};
    use weir::wire::icmp::IcmpRepr;
    use weir::wire::ipv4::{protocol, Ipv4Repr};
    use weir::wire::ipv6::Ipv6Repr;
    use weir::wire::tcp::{flags, TcpRepr};
    use weir::wire::udp::UdpRepr;

    /// An upper-layer packet, given the pseudo-header to checksum it under.
    type L4 = Box<dyn Fn(&PseudoHeader) -> Vec<u8>>;
    // Ports no tshark dissector claims, so only the transport is dissected.
    let tcp = |payload: &'static [u8], f: u8| -> L4 {
        Box::new(move |ph| {
            let mut d = Vec::new();
            let repr = TcpRepr {
                src_port: 47001,
                dst_port: 47002,
                seq_number: 0x0102_0304,
                ack_number: 0,
                flags: f,
                window: 1024,
            };
            repr.push(&mut d, payload, Some(ph));
            d
        })
    };
    let udp = |payload: &'static [u8]| -> L4 {
        Box::new(move |ph| {
            let mut d = Vec::new();
            let repr = UdpRepr {
                src_port: 47003,
                dst_port: 47004,
            };
            repr.push(&mut d, payload, Some(ph));
            d
        })
    };
    let icmp = |msg_type: u8, v6: bool| -> L4 {
        Box::new(move |ph| {
            let mut d = Vec::new();
            let echo = IcmpRepr {
                msg_type,
                msg_code: 0,
                rest: [0x12, 0x34, 0, 7],
            };
            echo.push(&mut d, b"ping!", v6.then_some(ph));
            d
        })
    };
    let cases: Vec<(bool, u8, L4, Option<u16>)> = vec![
        (false, protocol::TCP, tcp(b"", flags::SYN), None),
        (
            false,
            protocol::TCP,
            tcp(b"hello, tshark", flags::PSH | flags::ACK),
            None,
        ),
        (false, protocol::UDP, udp(b"odd"), None),
        (false, protocol::ICMP, icmp(8, false), None),
        (true, protocol::TCP, tcp(b"over IPv6", flags::ACK), None),
        (true, protocol::UDP, udp(b"v6 odd"), None),
        (true, protocol::ICMPV6, icmp(128, true), None),
        (false, protocol::UDP, udp(b"tagged"), Some(42)),
    ];
    let mut pkts = Vec::new();
    for (i, (v6, proto, l4, vlan)) in cases.iter().enumerate() {
        let mut f = Vec::new();
        let l3_type = if *v6 {
            ethertype::IPV6
        } else {
            ethertype::IPV4
        };
        match vlan {
            Some(vid) => {
                EthernetRepr {
                    ethertype: ethertype::VLAN,
                    ..ether(0)
                }
                .push(&mut f);
                let tag = weir::wire::vlan::VlanRepr {
                    pcp: 3,
                    vid: *vid,
                    ethertype: l3_type,
                };
                tag.push(&mut f);
            }
            None => ether(l3_type).push(&mut f),
        }
        if *v6 {
            let mut ip = Ipv6Repr {
                src_addr: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                dst_addr: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                next_header: *proto,
                ..Default::default()
            };
            let seg = l4(&ip.pseudo_header());
            ip.payload_len = seg.len();
            ip.push(&mut f);
            f.extend_from_slice(&seg);
        } else {
            let mut ip = Ipv4Repr {
                src_addr: [192, 0, 2, 1],
                dst_addr: [198, 51, 100, i as u8],
                protocol: *proto,
                ident: i as u16,
                dont_frag: true,
                ..Default::default()
            };
            let seg = l4(&ip.pseudo_header());
            ip.payload_len = seg.len();
            ip.push(&mut f);
            f.extend_from_slice(&seg);
        }
        let wire_len = f.len() as u32;
        pkts.push(Pkt { data: f, wire_len });
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("built.pcap");
    write_pcap(&path, &pkts, 1_700_000_000_000_000_000, 1_000_000);

    let status_fields = [
        "ip.checksum.status",
        "tcp.checksum.status",
        "udp.checksum.status",
        "icmp.checksum.status",
        "icmpv6.checksum.status",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(&path);
    for p in ["ip", "tcp", "udp"] {
        cmd.args(["-o", &format!("{p}.check_checksum:TRUE")]);
    }
    cmd.args(["-T", "fields", "-E", "separator=/t"]);
    for f in status_fields
        .iter()
        .chain(&["_ws.malformed", "frame.protocols", "vlan.id"])
    {
        cmd.arg("-e").arg(f);
    }
    let out = cmd
        .output()
        .expect("run tshark (apt-get install -y tshark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cases.len(), "{text}");
    // Wireshark's checksum status: 0 bad, 1 good, 2 unverified, 3 not present.
    for (i, line) in lines.iter().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        let (v6, proto, _, vlan) = &cases[i];
        let want_ip = if *v6 { "" } else { "1" };
        let want = |p: u8| if *proto == p { "1" } else { "" };
        assert_eq!(cols[0], want_ip, "frame {i}: IPv4 checksum: {line}");
        assert_eq!(cols[1], want(protocol::TCP), "frame {i}: TCP: {line}");
        assert_eq!(cols[2], want(protocol::UDP), "frame {i}: UDP: {line}");
        assert_eq!(cols[3], want(protocol::ICMP), "frame {i}: ICMP: {line}");
        assert_eq!(cols[4], want(protocol::ICMPV6), "frame {i}: ICMPv6: {line}");
        assert_eq!(cols[5], "", "frame {i} malformed: {line}");
        // The chain ends at the transport (or its undissected data): no other protocol
        // read the payload.
        let l4_name = match *proto {
            protocol::TCP => "tcp",
            protocol::UDP => "udp",
            protocol::ICMP => "icmp",
            _ => "icmpv6",
        };
        let chain: Vec<&str> = cols[6].split(':').collect();
        let at = chain.iter().position(|p| *p == l4_name);
        let after = at.map(|a| &chain[a + 1..]);
        assert!(
            matches!(after, Some([]) | Some(["data"])),
            "frame {i}: {line}"
        );
        assert_eq!(
            cols[7],
            vlan.map(|v| v.to_string()).unwrap_or_default(),
            "{line}"
        );
    }
}
