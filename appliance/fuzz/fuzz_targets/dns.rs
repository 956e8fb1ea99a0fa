//! Fuzz DNS learning: the message parser (`services::dns`) and the learner that uses it
//! (`services::Services`), with a rule that matches every name so every answer that parses is
//! learned from.
//!
//! Oracle: never a panic; a message that parses keeps at most `MAX_RECORDS` addresses and
//! CNAMEs, each at an offset inside the message; every name is at most 255 octets; an address's
//! name chain is walked at most `MAX_CHAIN + 1` names deep; the learner counts each message at
//! most once and learns at most `MAX_RECORDS` mappings from it, and only after it saw the
//! query (the fuzzed message with its QR bit cleared) from the client the answer goes back to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use weir::services::dns::{self, Response, MAX_CHAIN, MAX_RECORDS};
use weir::services::{ServiceConfig, ServiceDefaults, ServiceRules, Services};
use weir_plugin_api::FlowKeyV1;

fn rules() -> Arc<ServiceRules> {
    static R: OnceLock<Arc<ServiceRules>> = OnceLock::new();
    R.get_or_init(|| {
        let any = ServiceConfig {
            name: "any".into(),
            domains: vec![],
            regex: vec![".".into()],
            prefixes: vec![],
            plugins: None,
            every_ms: None,
        };
        let defaults = ServiceDefaults {
            dns_capacity: 64,
            ..Default::default()
        };
        Arc::new(ServiceRules::new(&[any], &defaults).expect("rules"))
    })
    .clone()
}

fn key(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> FlowKeyV1 {
    let mut k = FlowKeyV1 {
        protocol: 17,
        ip_version: 4,
        src_port: sport,
        dst_port: dport,
        ..Default::default()
    };
    k.src_ip[..4].copy_from_slice(&src);
    k.dst_ip[..4].copy_from_slice(&dst);
    k
}

fuzz_target!(|data: &[u8]| {
    let mut r = Response::default();
    if dns::is_answer(data) && dns::parse_response(data, &mut r).is_ok() {
        assert!(r.n_addrs <= MAX_RECORDS && r.n_cnames <= MAX_RECORDS);
        for &(owner, target) in &r.cnames[..r.n_cnames] {
            assert!((owner as usize) < data.len() && (target as usize) < data.len());
        }
        for rec in &r.addrs[..r.n_addrs] {
            assert!((rec.owner as usize) < data.len());
            assert!(rec.ip_version == 4 || rec.ip_version == 6);
            let mut names = 0;
            dns::names_of::<()>(data, &r, rec, |n| {
                assert!(n.as_bytes().len() <= 255);
                names += 1;
                None
            });
            assert!(names <= MAX_CHAIN + 1);
        }
    }

    let mut s = Services::new(rules(), vec![]);
    let client = key([10, 0, 0, 1], 40000, [192, 0, 2, 53], 53);
    let server = key([192, 0, 2, 53], 53, [10, 0, 0, 1], 40000);
    // Unasked: never learned from.
    s.dns_message(data, &server, 1);
    assert_eq!(s.stats.dns_learned, 0);
    // Asked (the same message as a query), then answered.
    let mut q = data.to_vec();
    if q.len() > 2 {
        q[2] &= 0x7f;
    }
    s.dns_message(&q, &client, 2);
    s.dns_message(data, &server, 3);
    assert!(s.stats.dns_answers <= 2);
    assert!(s.stats.dns_learned <= MAX_RECORDS as u64);
    if s.stats.dns_learned > 0 {
        assert!(dns::is_answer(data) && dns::parse_response(data, &mut r).is_ok());
    }
});
