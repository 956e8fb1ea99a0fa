//! The exporter over a real loopback UDP socket, read back by a small decoder written from
//! RFC 7011 §3 (independent of the encoder's code): message lengths, set padding, sequence
//! numbers, template refresh, MTU splitting, a collector that is down.

use super::template::{tests_support::record, tests_support::schema, TEMPLATE_V4, TEMPLATE_V6};
use super::*;
use std::collections::HashMap;

/// A decoded template: its id and (element id, length, enterprise number) per field.
type TemplateFields = (u16, Vec<(u16, u16, u32)>);

/// One decoded message: header fields, templates (id -> field lengths), data records per set.
#[derive(Debug, Default)]
struct Decoded {
    length: usize,
    sequence: u32,
    domain: u32,
    templates: Vec<TemplateFields>,
    /// (set id, records as raw octets)
    data: Vec<(u16, Vec<Vec<u8>>)>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Decode one message; data sets need their template in `known` (id -> field lengths).
fn decode(b: &[u8], known: &mut HashMap<u16, Vec<u16>>) -> Decoded {
    assert_eq!(be16(b, 0), 10, "version");
    let mut d = Decoded {
        length: be16(b, 2) as usize,
        sequence: be32(b, 8),
        domain: be32(b, 12),
        ..Default::default()
    };
    assert_eq!(d.length, b.len(), "message length field");
    let mut at = 16;
    while at < b.len() {
        let id = be16(b, at);
        let len = be16(b, at + 2) as usize;
        assert!(len >= 4 && at + len <= b.len(), "set length {len} at {at}");
        assert_eq!(len % 4, 0, "sets are padded to 4 octets");
        let body = &b[at + 4..at + len];
        if id == 2 {
            let mut p = 0;
            while p + 4 <= body.len() {
                let tid = be16(body, p);
                let count = be16(body, p + 2) as usize;
                if tid == 0 {
                    break; // padding
                }
                p += 4;
                let mut fields = Vec::new();
                for _ in 0..count {
                    let raw = be16(body, p);
                    let flen = be16(body, p + 2);
                    p += 4;
                    let pen = if raw & 0x8000 != 0 {
                        p += 4;
                        be32(body, p - 4)
                    } else {
                        0
                    };
                    fields.push((raw & 0x7fff, flen, pen));
                }
                known.insert(tid, fields.iter().map(|f| f.1).collect());
                d.templates.push((tid, fields));
            }
            assert!(
                body[p..].iter().all(|&x| x == 0),
                "template set padding is zero"
            );
        } else {
            let lens = known
                .get(&id)
                .unwrap_or_else(|| panic!("data set {id} before its template"));
            let mut recs = Vec::new();
            let mut p = 0;
            let min: usize = lens
                .iter()
                .map(|&l| if l == 0xffff { 1 } else { l as usize })
                .sum();
            while body.len() - p >= min {
                let start = p;
                for &l in lens {
                    if l == 0xffff {
                        let n = body[p] as usize;
                        p += 1;
                        let n = if n == 255 {
                            p += 2;
                            be16(body, p - 2) as usize
                        } else {
                            n
                        };
                        p += n;
                    } else {
                        p += l as usize;
                    }
                }
                recs.push(body[start..p].to_vec());
            }
            assert!(body.len() - p < 4, "padding shorter than a record");
            assert!(
                body[p..].iter().all(|&x| x == 0),
                "data set padding is zero"
            );
            d.data.push((id, recs));
        }
        at += len;
    }
    d
}

/// A collector socket on loopback and a config sending to it.
fn collector() -> (UdpSocket, IpfixConfig) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cfg = IpfixConfig::for_collector(&rx.local_addr().unwrap().to_string());
    (rx, cfg)
}

fn receive_all(rx: &UdpSocket) -> Vec<Vec<u8>> {
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70000];
    while let Ok(n) = rx.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn templates_first_then_data_with_counted_sequence_numbers() {
    let (rx, mut cfg) = collector();
    cfg.observation_domain = 77;
    let mut s = IpfixSink::open(&cfg, &schema()).unwrap();
    for i in 0..30u16 {
        let mut r = record(if i % 3 == 0 { 6 } else { 4 });
        r.key.src_port = i;
        s.export(&r);
    }
    let st = s.finish();
    assert_eq!(st.records_sent, 30);
    assert_eq!(st.send_errors, 0);
    let msgs = receive_all(&rx);
    assert_eq!(msgs.len() as u64, st.messages_sent);
    let mut known = HashMap::new();
    let decoded: Vec<Decoded> = msgs.iter().map(|m| decode(m, &mut known)).collect();
    // The first message holds both templates and nothing else.
    assert_eq!(decoded[0].templates.len(), 2);
    assert!(decoded[0].data.is_empty());
    assert_eq!(decoded[0].templates[0].0, TEMPLATE_V4);
    assert_eq!(decoded[0].templates[1].0, TEMPLATE_V6);
    let mut seq = 0u32;
    let mut ports = Vec::new();
    for d in &decoded {
        assert_eq!(d.domain, 77);
        assert!(d.length <= 1400);
        assert_eq!(d.sequence, seq, "sequence = data records sent before");
        for (id, recs) in &d.data {
            seq += recs.len() as u32;
            for r in recs {
                // The source port sits after the addresses.
                let at = if *id == TEMPLATE_V4 { 8 } else { 32 };
                ports.push(be16(r, at));
            }
        }
    }
    assert_eq!(seq, 30);
    ports.sort();
    assert_eq!(ports, (0..30).collect::<Vec<u16>>(), "every record once");
}

#[test]
fn messages_never_exceed_the_mtu_and_pack_as_many_records_as_fit() {
    let (rx, mut cfg) = collector();
    cfg.mtu = 600;
    let mut s = IpfixSink::open(&cfg, &schema()).unwrap();
    let rec_len = s.v4.record_len(&record(4));
    for _ in 0..50 {
        s.export(&record(4));
    }
    s.finish();
    let msgs = receive_all(&rx);
    let mut known = HashMap::new();
    let per_message = (600 - 16 - 4) / rec_len;
    let mut total = 0;
    let data: Vec<usize> = msgs
        .iter()
        .map(|m| {
            assert!(m.len() <= 600, "{} > mtu", m.len());
            let d = decode(m, &mut known);
            d.data.iter().map(|(_, r)| r.len()).sum::<usize>()
        })
        .filter(|&n| n > 0)
        .collect();
    for (i, n) in data.iter().enumerate() {
        total += n;
        if i + 1 < data.len() {
            assert_eq!(*n, per_message, "full messages but the last");
        }
    }
    assert_eq!(total, 50);
}

#[test]
fn templates_are_resent_every_n_messages() {
    let (rx, mut cfg) = collector();
    cfg.mtu = 600;
    cfg.template_refresh_messages = 3;
    let mut s = IpfixSink::open(&cfg, &schema()).unwrap();
    for _ in 0..40 {
        s.export(&record(4));
    }
    let st = s.finish();
    let msgs = receive_all(&rx);
    let mut known = HashMap::new();
    let kinds: Vec<char> = msgs
        .iter()
        .map(|m| {
            let d = decode(m, &mut known);
            if d.templates.is_empty() {
                'd'
            } else {
                't'
            }
        })
        .collect();
    // t then runs of at most 3 data messages, each run followed by templates again.
    assert_eq!(kinds[0], 't');
    let mut run = 0;
    for k in &kinds[1..] {
        if *k == 'd' {
            run += 1;
            assert!(run <= 3, "{kinds:?}");
        } else {
            assert_eq!(run, 3, "refresh after exactly 3 data messages: {kinds:?}");
            run = 0;
        }
    }
    assert!(st.template_messages >= 3, "{st:?}");
}

#[test]
fn templates_are_resent_after_the_refresh_interval() {
    let (rx, mut cfg) = collector();
    cfg.template_refresh_s = 1;
    let mut s = IpfixSink::open(&cfg, &schema()).unwrap();
    s.export(&record(4));
    s.finish();
    std::thread::sleep(Duration::from_millis(1100));
    s.export(&record(4));
    s.finish();
    let msgs = receive_all(&rx);
    let mut known = HashMap::new();
    let t: Vec<bool> = msgs
        .iter()
        .map(|m| !decode(m, &mut known).templates.is_empty())
        .collect();
    assert_eq!(t, vec![true, false, true, false]);
}

#[test]
fn a_collector_that_is_down_is_counted_not_fatal() {
    // A port nothing listens on: the kernel answers ICMP port unreachable, which a connected
    // UDP socket reports as ECONNREFUSED on a later send.
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let mut cfg = IpfixConfig::for_collector(&format!("127.0.0.1:{port}"));
    cfg.mtu = 600;
    let mut s = IpfixSink::open(&cfg, &schema()).unwrap();
    for _ in 0..20 {
        s.export(&record(4));
        s.flush();
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = s.finish();
    assert!(st.send_errors > 0, "{st:?}");
    assert!(st.records_unsent > 0, "{st:?}");
    assert!(
        st.first_error.as_deref().unwrap_or("").contains("refused"),
        "{st:?}"
    );
    assert_eq!(st.records_sent + st.records_unsent, 20, "{st:?}");
}

#[test]
fn paced_sends_keep_their_interval() {
    let (rx, mut cfg) = collector();
    cfg.max_messages_per_s = 100;
    cfg.mtu = 600;
    let mut s = IpfixSink::open(&cfg, &schema()).unwrap();
    let t0 = Instant::now();
    for _ in 0..30 {
        s.export(&record(4));
    }
    let st = s.finish();
    // n messages take at least (n - 1) intervals of 10 ms (a lower bound: sleeps never end
    // early).
    assert!(st.messages_sent >= 6, "{st:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(10 * (st.messages_sent - 1)),
        "{:?} for {} messages",
        t0.elapsed(),
        st.messages_sent
    );
    assert_eq!(receive_all(&rx).len() as u64, st.messages_sent);
}

#[test]
fn config_refusals_name_the_key() {
    let mut c = IpfixConfig::for_collector("localhost");
    assert_eq!(c.validate().unwrap_err().0, "sinks.ipfix");
    c.collector = "127.0.0.1:0".into();
    assert_eq!(c.validate().unwrap_err().0, "sinks.ipfix");
    c.collector = "[::1]:4739".into();
    assert!(c.validate().is_ok());
    c.mtu = 100;
    assert_eq!(c.validate().unwrap_err().0, "sinks.ipfix_mtu");
    c.mtu = 1400;
    c.enterprise_number = 29305;
    assert_eq!(c.validate().unwrap_err().0, "sinks.ipfix_enterprise_number");
}

#[test]
fn a_template_larger_than_the_mtu_is_refused_at_open() {
    let (_rx, mut cfg) = collector();
    cfg.mtu = 512;
    let mut sc = schema();
    sc.extra = (0..80).map(|i| format!("feature_{i}")).collect();
    cfg.columns = Some(vec!["*".into()]);
    sc.kinds = vec![0; 80];
    sc.provider = vec!["x".into(); 80];
    let e = IpfixSink::open(&cfg, &sc).err().expect("refused");
    assert!(e.contains("sinks.ipfix_mtu"), "{e}");
}

#[test]
fn config_file_errors_name_the_key_and_line() {
    let parse = |t: &str| {
        crate::config::Config::parse(t, std::path::Path::new("weir.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = parse("[sinks]\nrecords = \"x.csv\"\nipfix = \"collector\"\n");
    assert!(e.contains("sinks.ipfix") && e.contains("line 3"), "{e}");
    let e = parse("[sinks]\nipfix = \"127.0.0.1:4739\"\nipfix_mtu = 100\n");
    assert!(e.contains("sinks.ipfix_mtu") && e.contains("line 3"), "{e}");
    let c = crate::config::Config::parse(
        "[sinks]\nipfix = \"[::1]:4739\"\nipfix_template_refresh_s = 5\nipfix_columns = [\"*\"]\n",
        std::path::Path::new("weir.toml"),
    )
    .unwrap();
    let x = c.sinks.ipfix_config().unwrap().unwrap();
    assert_eq!(x.template_refresh_s, 5);
    assert_eq!(x.mtu, DEFAULT_MTU);
    assert_eq!(x.columns, Some(vec!["*".to_string()]));
}
