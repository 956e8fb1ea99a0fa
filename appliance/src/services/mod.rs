//! Services: which service a flow belongs to, decided when the flow starts, from the server
//! address (by configured IP prefixes, or by names learned from the DNS answers seen on the
//! wire), as Traffic Refinery does; and which plugins run for each service.
//!
//! - [`rules`]: the `[[services]]` config compiled (domain suffixes, regexes, prefixes,
//!   plugin selection).
//! - [`prefix`]: longest-prefix match, IPv4 and IPv6.
//! - [`dns`]: reading DNS answers (A, AAAA, CNAME chains, TTL), RFC 1035 section 4.
//! - [`pending`]: the queries each worker saw, so that only their answers are learned from.
//! - [`cache`]: the per-worker address -> service table learned from them, TTL-bounded.
//! - [`cost`]: plugin cycles and packets by service, for `weir cost`.
//!
//! Per worker, [`Services`] is preallocated at start: looking at a packet allocates nothing;
//! a DNS answer whose names match a regex may let the regex engine fill its cache on the
//! first use (answers are rare next to the packets of the flows they announce).

pub mod cache;
pub mod dns;
pub mod pending;
pub mod prefix;
pub mod rules;

pub use rules::{RuleError, ServiceConfig, ServiceDefaults, ServiceRules};

use std::sync::Arc;
use weir_plugin_api::{FlowKeyV1, PacketV1};

/// Service counters of one worker (summed over workers for `--stats`).
#[derive(Clone, Debug, Default)]
pub struct ServiceStats {
    /// DNS answers read (UDP from port 53, QR = 1, RCODE = 0, with answers).
    pub dns_answers: u64,
    /// DNS answers that did not parse (truncated, bad names, bad RDATA); nothing learned.
    pub dns_malformed: u64,
    /// DNS answers to no query this worker saw (id, question name, client address and port,
    /// server address), or later than 10 s after it: nothing learned.
    pub dns_unsolicited: u64,
    /// Address mappings learned (an A/AAAA whose name chain matched a service).
    pub dns_learned: u64,
    /// Live mappings pushed out of a full table before their TTL.
    pub dns_replaced_live: u64,
    pub flows_by_dns: u64,
    pub flows_by_prefix: u64,
    pub flows_without_service: u64,
}

impl ServiceStats {
    pub fn merge(&mut self, o: &ServiceStats) {
        self.dns_answers += o.dns_answers;
        self.dns_malformed += o.dns_malformed;
        self.dns_unsolicited += o.dns_unsolicited;
        self.dns_learned += o.dns_learned;
        self.dns_replaced_live += o.dns_replaced_live;
        self.flows_by_dns += o.flows_by_dns;
        self.flows_by_prefix += o.flows_by_prefix;
        self.flows_without_service += o.flows_without_service;
    }
}

/// One worker's service classifier and DNS learner.
pub struct Services {
    rules: Arc<ServiceRules>,
    cache: DnsCache,
    /// Scratch for one DNS answer (allocated once).
    resp: Box<dns::Response>,
    /// Queries seen, waiting for their answer.
    pending: PendingQueries,
    /// Plugins not run, per service id (bits in registry order).
    skip: Vec<u64>,
    learn: bool,
    pub stats: ServiceStats,
}

use cache::DnsCache;
use pending::{Exchange, PendingQueries};

impl Services {
    pub fn new(rules: Arc<ServiceRules>, skip: Vec<u64>) -> Services {
        let learn = rules.dns_learning && rules.has_name_rules();
        let cap = if learn { rules.dns_capacity } else { 8 };
        Services {
            cache: DnsCache::new(cap),
            resp: Box::default(),
            pending: PendingQueries::default(),
            skip,
            learn,
            rules,
            stats: ServiceStats::default(),
        }
    }

    pub fn rules(&self) -> &ServiceRules {
        &self.rules
    }

    /// The plugins (bits) not run for flows of service `id`.
    #[inline]
    pub fn skip_mask(&self, id: u16) -> u64 {
        self.skip.get(id as usize).copied().unwrap_or(0)
    }

    /// Look at one packet: a DNS query (UDP to port 53) is remembered, and an answer to it
    /// (UDP from port 53) teaches the addresses of names that match a service. `key` is the
    /// packet's own key (src = its sender).
    #[inline]
    pub fn observe(&mut self, pkt: &PacketV1, key: &FlowKeyV1) {
        if !self.learn || pkt.protocol != 17 || (key.src_port != 53 && key.dst_port != 53) {
            return;
        }
        // SAFETY: the packet's data is the received frame, live for this burst.
        let msg = unsafe { pkt.payload() };
        self.dns_message(msg, key, pkt.ts_ns / 1_000_000);
    }

    /// One DNS message of the packet whose key is `key`: remember a query, learn from the
    /// answer to one.
    #[cold]
    pub fn dns_message(&mut self, msg: &[u8], key: &FlowKeyV1, now_ms: u64) {
        if key.dst_port == 53 && dns::is_query(msg) {
            if let Ok((id, name)) = dns::question(msg) {
                let q = Exchange {
                    client: key.src_ip,
                    server: key.dst_ip,
                    client_port: key.src_port,
                    ip_version: key.ip_version,
                    id,
                    name,
                };
                self.pending.note(q, now_ms);
            }
        } else if key.src_port == 53 {
            self.learn_from(msg, key, now_ms);
        }
    }

    /// Learn from one DNS message (a no-op unless it is an answer to a query seen here).
    fn learn_from(&mut self, msg: &[u8], key: &FlowKeyV1, now_ms: u64) {
        if !dns::is_answer(msg) {
            return;
        }
        self.stats.dns_answers += 1;
        let asked = match dns::question(msg) {
            Ok((id, name)) => self.pending.take(
                &Exchange {
                    client: key.dst_ip,
                    server: key.src_ip,
                    client_port: key.dst_port,
                    ip_version: key.ip_version,
                    id,
                    name,
                },
                now_ms,
            ),
            Err(_) => false,
        };
        if !asked {
            self.stats.dns_unsolicited += 1;
            return;
        }
        if dns::parse_response(msg, &mut self.resp).is_err() {
            self.stats.dns_malformed += 1;
            return;
        }
        let resp = &*self.resp;
        for rec in &resp.addrs[..resp.n_addrs] {
            let rules = &self.rules;
            let Some(id) = dns::names_of(msg, resp, rec, |n| {
                n.as_str().and_then(|s| rules.match_name(s))
            }) else {
                continue;
            };
            // Capped: a week-long TTL from one answer must not pin an address to a service.
            let ttl = (rec.ttl as u64).min(self.rules.dns_max_ttl_s);
            let expires = now_ms.saturating_add(ttl * 1000);
            let before = self.cache.replaced_live;
            self.cache
                .insert(&rec.addr, rec.ip_version, id, now_ms, expires);
            self.stats.dns_replaced_live += self.cache.replaced_live - before;
            self.stats.dns_learned += 1;
        }
    }

    /// The service of a new flow: its responder's (dst) address first, learned from DNS, then
    /// by prefix; then the same for the initiator (src), for flows first seen from the server
    /// side. 0 when none matches.
    pub fn classify(&mut self, key: &FlowKeyV1, now_ms: u64) -> u16 {
        let v = key.ip_version;
        for addr in [&key.dst_ip, &key.src_ip] {
            if self.learn {
                if let Some(id) = self.cache.lookup(addr, v, now_ms) {
                    self.stats.flows_by_dns += 1;
                    return id;
                }
            }
            if let Some(id) = self.rules.prefixes.lookup_key(addr, v) {
                self.stats.flows_by_prefix += 1;
                return id;
            }
        }
        self.stats.flows_without_service += 1;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::dns::tests::{name, query, response};
    use super::*;

    fn services(rules: &[ServiceConfig]) -> Services {
        let r = ServiceRules::new(rules, &ServiceDefaults::default()).unwrap();
        Services::new(Arc::new(r), vec![])
    }

    fn key(src: [u8; 4], dst: [u8; 4]) -> FlowKeyV1 {
        let mut k = FlowKeyV1 {
            ip_version: 4,
            protocol: 6,
            ..Default::default()
        };
        k.src_ip[..4].copy_from_slice(&src);
        k.dst_ip[..4].copy_from_slice(&dst);
        k
    }

    /// The client 10.0.0.1:40000 asks 8.8.8.8:53 ...
    fn to_server() -> FlowKeyV1 {
        let mut k = key([10, 0, 0, 1], [8, 8, 8, 8]);
        k.protocol = 17;
        (k.src_port, k.dst_port) = (40000, 53);
        k
    }

    /// ... which answers.
    fn from_server() -> FlowKeyV1 {
        crate::flow::key::reversed(&to_server())
    }

    fn video() -> Services {
        services(&[ServiceConfig {
            name: "video".into(),
            domains: vec!["googlevideo.com".into()],
            regex: vec![],
            prefixes: vec![],
            plugins: None,
            every_ms: None,
        }])
    }

    #[test]
    fn only_answers_to_queries_seen_are_learned_and_ttls_are_capped() {
        let mut s = video();
        let week = 7 * 86_400;
        let m = response(
            "r1.googlevideo.com",
            &[(vec![0xc0, 12], 1, week, vec![192, 0, 2, 9])],
        );
        let k = key([10, 0, 0, 1], [192, 0, 2, 9]);
        // Spoofed answers: another client port, another server, another id, another name.
        let mut other_port = from_server();
        other_port.dst_port = 40001;
        let mut other_server = from_server();
        other_server.src_ip[3] = 9;
        let mut other_id = m.clone();
        other_id[1] ^= 1;
        s.dns_message(&query("r1.googlevideo.com"), &to_server(), 0);
        s.dns_message(&m, &other_port, 10);
        s.dns_message(&m, &other_server, 10);
        s.dns_message(&other_id, &from_server(), 10);
        let other_name = response(
            "r2.googlevideo.com",
            &[(vec![0xc0, 12], 1, week, vec![192, 0, 2, 9])],
        );
        s.dns_message(&other_name, &from_server(), 10);
        assert_eq!((s.stats.dns_learned, s.stats.dns_unsolicited), (0, 4));
        assert_eq!(s.classify(&k, 20), 0);
        // The real answer: learned, for a day (the default cap), not a week.
        s.dns_message(&m, &from_server(), 20);
        assert_eq!(s.stats.dns_learned, 1);
        assert_eq!(s.classify(&k, 20 + 86_400_000), 1);
        assert_eq!(s.classify(&k, 20 + 86_400_000 + 1), 0);
        // One answer per query: a replay is unsolicited.
        s.dns_message(&m, &from_server(), 30);
        assert_eq!(s.stats.dns_unsolicited, 5);
        // A late answer (more than 10 s) is not learned.
        let mut s = video();
        s.dns_message(&query("r1.googlevideo.com"), &to_server(), 0);
        s.dns_message(&m, &from_server(), 10_001);
        assert_eq!((s.stats.dns_learned, s.stats.dns_unsolicited), (0, 1));
    }

    #[test]
    fn learned_name_beats_prefix_and_expires() {
        let mut s = services(&[
            ServiceConfig {
                name: "video".into(),
                domains: vec!["googlevideo.com".into()],
                regex: vec![],
                prefixes: vec![],
                plugins: None,
                every_ms: None,
            },
            ServiceConfig {
                name: "net".into(),
                domains: vec![],
                regex: vec![],
                prefixes: vec!["192.0.2.0/24".into()],
                plugins: None,
                every_ms: None,
            },
        ]);
        let m = response(
            "r1.googlevideo.com",
            &[(vec![0xc0, 12], 1, 30, vec![192, 0, 2, 9])],
        );
        // An answer to no query teaches nothing.
        s.dns_message(&m, &from_server(), 1_000);
        assert_eq!((s.stats.dns_learned, s.stats.dns_unsolicited), (0, 1));
        s.dns_message(&query("r1.googlevideo.com"), &to_server(), 990);
        s.dns_message(&m, &from_server(), 1_000);
        assert_eq!(s.stats.dns_learned, 1);
        let k = key([10, 0, 0, 1], [192, 0, 2, 9]);
        assert_eq!(s.classify(&k, 2_000), 1);
        // Server side first: the src address is checked too.
        let back = key([192, 0, 2, 9], [10, 0, 0, 1]);
        assert_eq!(s.classify(&back, 2_000), 1);
        // After the TTL only the prefix is left.
        assert_eq!(s.classify(&k, 31_001), 2);
        assert_eq!(s.classify(&key([10, 0, 0, 1], [198, 51, 100, 1]), 0), 0);
        // A name of no service teaches nothing; a malformed answer is counted.
        let other = response(
            "example.org",
            &[(vec![0xc0, 12], 1, 30, vec![198, 51, 100, 1])],
        );
        s.dns_message(&query("example.org"), &to_server(), 990);
        s.dns_message(&other, &from_server(), 1_000);
        assert_eq!(s.stats.dns_learned, 1);
        let mut bad = other.clone();
        bad.truncate(bad.len() - 2);
        s.dns_message(&query("example.org"), &to_server(), 990);
        s.dns_message(&bad, &from_server(), 1_000);
        assert_eq!(s.stats.dns_malformed, 1);
        let _ = name("x");
    }
}
