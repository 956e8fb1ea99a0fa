//! DNS queries waiting for their answer, per worker. Only an answer to a query this worker saw
//! (same transaction id, same question name, from the server the query went to, back to the
//! client address and port that asked) is learned from: an off-path sender would have to guess
//! the id and the client's port of a query in flight, as it would to poison the resolver.
//! A query and its answer are one UDP flow, so the symmetric flow hash brings both to the
//! same worker.
//!
//! A fixed, direct-mapped table (no allocation after start): a query takes the slot of its
//! client address, port and id, replacing what was there (a flood of queries can only make
//! answers unlearned, never make a forged one learned). The slot is chosen with the keyed flow
//! hash, so which queries share a slot is not predictable from outside.

use crate::flow::key::flow_hash;
use weir_plugin_api::FlowKeyV1;

/// Queries each worker remembers.
pub const SLOTS: usize = 4096;
/// An answer later than this after its query is not learned from (resolvers give up sooner).
pub const MAX_WAIT_MS: u64 = 10_000;

/// One DNS exchange as both its packets name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Exchange {
    pub client: [u8; 16],
    pub server: [u8; 16],
    pub client_port: u16,
    pub ip_version: u8,
    pub id: u16,
    /// Hash of the question name (lower case), see [`name_hash`](super::dns::name_hash).
    pub name: u64,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    q: Exchange,
    at_ms: u64,
    used: bool,
}

pub struct PendingQueries {
    slots: Box<[Slot]>,
}

impl Default for PendingQueries {
    fn default() -> Self {
        PendingQueries {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
        }
    }
}

impl PendingQueries {
    fn slot_of(&self, e: &Exchange) -> usize {
        let k = FlowKeyV1 {
            src_ip: e.client,
            dst_ip: e.server,
            src_port: e.client_port,
            dst_port: e.id,
            protocol: 17,
            ip_version: e.ip_version,
            ..Default::default()
        };
        flow_hash(&k) as usize % self.slots.len()
    }

    /// Remember a query seen at `now_ms`.
    pub fn note(&mut self, q: Exchange, now_ms: u64) {
        let i = self.slot_of(&q);
        self.slots[i] = Slot {
            q,
            at_ms: now_ms,
            used: true,
        };
    }

    /// Whether `a` answers a remembered query (which is then forgotten: one answer each).
    pub fn take(&mut self, a: &Exchange, now_ms: u64) -> bool {
        let i = self.slot_of(a);
        let s = &mut self.slots[i];
        if s.used && s.q == *a && now_ms.saturating_sub(s.at_ms) <= MAX_WAIT_MS {
            s.used = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::dns::name_hash;
    use super::*;

    #[test]
    fn only_the_exact_answer_is_taken_once() {
        let mut p = PendingQueries::default();
        let q = Exchange {
            client: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            server: [8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            client_port: 40000,
            ip_version: 4,
            id: 0x1234,
            name: name_hash(b"www.example.com"),
        };
        p.note(q, 1000);
        for wrong in [
            Exchange { id: 0x1235, ..q },
            Exchange {
                client_port: 40001,
                ..q
            },
            Exchange {
                name: name_hash(b"evil.example"),
                ..q
            },
            Exchange {
                server: [9; 16],
                ..q
            },
        ] {
            assert!(!p.take(&wrong, 1001));
        }
        assert!(!p.take(&q, 1000 + MAX_WAIT_MS + 1));
        p.note(q, 2000);
        assert!(p.take(&q, 2001));
        assert!(!p.take(&q, 2002), "a second answer to one query");
    }
}
