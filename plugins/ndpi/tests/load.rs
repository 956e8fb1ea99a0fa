//! The C plugin `libweir_ndpi.so`, loaded with libloading and driven through its C ABI (1.4
//! text features): its descriptor, its config errors, and a DNS query built here byte by byte,
//! which nDPI must name `DNS` with the queried name as `requested_server_name`. (Labels on real
//! traffic are checked against ndpiReader in `appliance/tests/plugins/ndpi_parity.rs`.) Fails, saying
//! why, when the build did not find libndpi.

use std::path::Path;

use weir_plugin_api::harness::LoadedPlugin;
use weir_plugin_api::*;

fn open() -> LoadedPlugin {
    let path = weir_ndpi_build::LIBRARY_PATH.unwrap_or_else(|| {
        panic!(
            "the ndpi plugin was not built: {}",
            weir_ndpi_build::NOT_BUILT
        )
    });
    LoadedPlugin::open(Path::new(path)).unwrap()
}

#[test]
fn descriptor_declares_text_features_and_a_1_4_host() {
    let lib = open();
    let d = lib.descriptor();
    assert_eq!((d.abi_major, d.abi_minor), (1, 4));
    assert_eq!(d.struct_size as usize, PLUGIN_V1_4_SIZE);
    assert!(d.flow_emit_text.is_some());
    let f: Vec<(String, u32)> = lib
        .features()
        .into_iter()
        .map(|f| (f.name, f.kind))
        .collect();
    assert_eq!(
        f,
        [
            ("application_name".to_string(), WEIR_FEATURE_TEXT),
            ("application_category_name".into(), WEIR_FEATURE_TEXT),
            ("requested_server_name".into(), WEIR_FEATURE_TEXT),
            ("ndpi_master_protocol_id".into(), WEIR_FEATURE_U64),
            ("ndpi_app_protocol_id".into(), WEIR_FEATURE_U64),
            ("application_is_guessed".into(), WEIR_FEATURE_BOOL),
            ("ndpi_dissected_packets".into(), WEIR_FEATURE_U64),
        ]
    );
    // nDPI's flow struct lives in the slab: 688 bytes in 4.2, plus the plugin's 16.
    assert_eq!(d.state_size, 704);
    // A 1.3 host would not know text: the plugin declines it.
    let entry = lib.entry().unwrap();
    assert!(unsafe { entry(1, 3) }.is_null());
}

#[test]
fn config_errors_name_the_key() {
    let lib = open();
    for (cfg, want) in [
        (r#"{"n_dissections": 0}"#, "n_dissections"),
        (r#"{"n_dissections": 70000}"#, "n_dissections"),
        (r#"{"n_dissections": 2.5}"#, "n_dissections"),
        (r#"{"bogus": 1}"#, "bogus"),
    ] {
        let e = lib.instance(cfg, 0).err().expect(cfg);
        assert!(e.contains(want), "{cfg}: {e}");
    }
    assert!(lib.instance(r#"{"n_dissections": 5}"#, 0).is_ok());
}

/// An Ethernet/IPv4/UDP frame carrying a DNS query for `name` (type A), port 53.
fn dns_query(name: &str) -> Vec<u8> {
    let mut dns = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    let udp_len = 8 + dns.len();
    let ip_len = 20 + udp_len;
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
        10,
        0,
        0,
        1,
        10,
        0,
        0,
        2,
    ];
    let sum = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0xc3, 0x50, 0, 53, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
    f.extend_from_slice(&dns);
    f
}

#[test]
fn a_dns_query_is_named_dns_with_its_server_name() {
    let lib = open();
    let mut inst = lib.instance("{}", 0).unwrap();
    let frame = dns_query("www.example.com");
    let pkt = PacketV1 {
        ts_ns: 1_700_000_000_000_000_000,
        data: frame.as_ptr(),
        wire_len: frame.len() as u32,
        cap_len: frame.len() as u32,
        l3_off: 14,
        l4_off: 34,
        payload_off: 42,
        payload_len: (frame.len() - 42) as u16,
        ip_len: (frame.len() - 14) as u16,
        ip_version: 4,
        protocol: 17,
        ..PacketV1::EMPTY
    };
    let key = FlowKeyV1 {
        src_ip: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        dst_ip: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        src_port: 50000,
        dst_port: 53,
        protocol: 17,
        ip_version: 4,
        ..Default::default()
    };
    let mut flows = vec![inst.new_flow(&key).unwrap()];
    let done = inst.update_burst(&mut flows, &[(0, pkt)]).unwrap();
    // Detected on its first packet, but nDPI still wants the response (extra dissection):
    // not done yet. The flow then ends: flow_emit_text finishes it.
    assert_eq!(done, [0]);
    let (out, texts) = inst.emit_text(&key, &mut flows[0]).unwrap();
    let text = |j: usize| {
        texts[j]
            .as_ref()
            .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
    };
    assert_eq!(text(0).as_deref(), Some("DNS"));
    assert_eq!(text(1).as_deref(), Some("Network"));
    assert_eq!(text(2).as_deref(), Some("www.example.com"));
    assert_eq!(out[3], 0.0, "no master protocol");
    assert_eq!(out[4], 5.0, "NDPI_PROTOCOL_DNS");
    assert_eq!(out[5], 0.0, "detected, not guessed");
    assert_eq!(out[6], 1.0, "one packet dissected");
}
