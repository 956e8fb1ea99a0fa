//! The first stages of a burst: parse every frame, then count every packet into its flow
//! (looking it up, or creating it) and queue it for the rates and the plugins.

use super::{count, RawPacket, Stop, Worker};
use crate::config::Eviction;
use crate::cost::Stage;
use crate::flow::community_id;
use crate::flow::key::{direction, flow_hash};
use crate::flow::record::Expiration;
use crate::flow::table::Lookup;
use crate::parse::parse;
use crate::rates::PacketKey;
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_PKT_FIRST_OF_FLOW, WEIR_TCP_FIN, WEIR_TCP_RST};

/// How many packets ahead of the one being counted its entry is asked for: enough for a
/// DRAM miss to complete during the packets between (a few hundred cycles each).
const ENTRY_AHEAD: usize = 8;

impl Worker {
    /// Parse every frame of the burst into `parsed`, `keys` and `hashes` (prefetching each
    /// packet's index slot); returns the frames received. Malformed ones are counted by reason.
    pub(super) fn parse_stage<'a, I>(&mut self, frames: I) -> u32
    where
        I: IntoIterator<Item = RawPacket<'a>>,
    {
        self.parsed.clear();
        self.keys.clear();
        self.hashes.clear();
        self.observed = 0;
        let mut received = 0u32;
        for f in frames {
            received += 1;
            self.stats.packets += 1;
            self.stats.bytes += f.wire_len as u64;
            // Packet time never goes backwards (NFStream clamps to the latest time seen).
            let ts_ns = f.ts_ns.max(self.last_ts_ns);
            self.last_ts_ns = ts_ns;
            let mut pkt = PacketV1::EMPTY;
            let mut key = FlowKeyV1::default();
            match parse(f.data, f.wire_len, ts_ns, &mut pkt, &mut key) {
                Ok(()) => {
                    self.stats.skipped.note(&pkt);
                    let h = flow_hash(&key);
                    self.table.prefetch(h);
                    self.parsed.push(pkt);
                    self.keys.push(key);
                    self.hashes.push(h);
                }
                Err(reason) => self.stats.skipped.count(reason),
            }
        }
        received
    }

    /// Bring in the entries the (prefetched) index slots of the burst's first packets point
    /// to (the counting loop asks for each later one [`ENTRY_AHEAD`] packets before it is
    /// counted, so its index line, asked for at parsing, has had time to arrive); on a full
    /// table, also the flows the burst's new ones will evict, as many as the previous burst
    /// created.
    pub(super) fn prefetch_entries(&self) {
        for &h in self.hashes.iter().take(ENTRY_AHEAD) {
            self.table.prefetch_entry(h);
        }
        if self.s.eviction != Eviction::None {
            self.table.prefetch_victims(self.created_last_burst);
        }
    }

    /// Count the parsed packets from `from` on into their flows, queueing each for the rates
    /// and the plugins, until the burst ends or a flow must end (or intervals close) before
    /// the next packet: returns that packet's index and why the stage stopped.
    // Long: the per-packet hot loop, kept in one body so it stays one tight loop.
    pub(super) fn flow_table_stage(&mut self, from: usize) -> (usize, Stop) {
        for i in from..self.parsed.len() {
            if let Some(&h) = self.hashes.get(i + ENTRY_AHEAD) {
                self.table.prefetch_entry(h);
            }
            let mut pkt = self.parsed[i];
            let key = self.keys[i];
            let now_ms = pkt.ts_ns / 1_000_000;
            if now_ms >= self.iv.next_end_ms {
                // An interval ended (or this is the first packet): the packets before go to
                // the plugins first, then its records are written.
                return (i, Stop::Intervals(now_ms));
            }
            if i >= self.observed {
                // Once per packet, before its lookup: an answer is learned before any later
                // flow starts.
                self.observed = i + 1;
                if let Some(s) = self.services.as_mut() {
                    s.observe(&pkt, &key);
                }
            }
            // A flow that must end before this packet is counted ends here, unless packets of
            // it wait in the queue for the plugins: then the queue runs first (the stage
            // returns). Ending it in place keeps whole bursts for the plugins when a full table
            // evicts a flow for every new one (an evicted flow almost never has packets queued).
            let idx = loop {
                let (idx, why) =
                    match self
                        .table
                        .lookup_or_insert(&key, self.hashes[i], now_ms + self.s.idle_ms)
                    {
                        Lookup::Found(idx) => {
                            self.table.prefetch_slab(idx);
                            let e = self.table.entry(idx);
                            if e.ext.ending {
                                // A packet after the flow's teardown in the same burst: the flow ends
                                // now and the packet starts a new one, as if each had its own burst.
                                self.stats.teardown += 1;
                                return (i, Stop::EndFlow(idx, Expiration::Teardown));
                            }
                            let bi = e.bidirectional();
                            let idle = now_ms - bi.last_seen_ms >= self.s.idle_ms;
                            let active = now_ms - bi.first_seen_ms >= self.s.active_ms;
                            if idle {
                                self.stats.expired_idle += 1;
                                (idx, Expiration::Idle)
                            } else if active {
                                self.stats.expired_active += 1;
                                (idx, Expiration::Active)
                            } else {
                                break Some(idx);
                            }
                        }
                        Lookup::Created(idx) => {
                            self.stats.flows_created += 1;
                            self.start_flow(idx, now_ms);
                            break Some(idx);
                        }
                        Lookup::Full => {
                            let victim = match self.s.eviction {
                                Eviction::None => None,
                                _ => {
                                    let idle_ms = self.s.idle_ms;
                                    self.table.eviction_candidate(|e| {
                                        e.bidirectional().last_seen_ms.saturating_add(idle_ms)
                                    })
                                }
                            };
                            let Some(victim) = victim else {
                                self.stats.table_full += 1;
                                break None;
                            };
                            let v = self.table.entry(victim);
                            let bi = v.bidirectional();
                            if v.ext.ending {
                                // It tore down earlier in this burst: that is how it ends.
                                self.stats.teardown += 1;
                                return (i, Stop::EndFlow(victim, Expiration::Teardown));
                            }
                            if now_ms.saturating_sub(bi.last_seen_ms) >= self.s.idle_ms {
                                // Already past its deadline, waiting for the wheel's next slot: it
                                // ends as it would have a moment later.
                                self.stats.expired_idle += 1;
                                (victim, Expiration::Idle)
                            } else if now_ms.saturating_sub(bi.first_seen_ms) >= self.s.active_ms {
                                self.stats.expired_active += 1;
                                (victim, Expiration::Active)
                            } else {
                                self.stats.evicted += 1;
                                (victim, Expiration::Evicted)
                            }
                        }
                    };
                if self.batch_flows.contains(&idx) {
                    return (i, Stop::EndFlow(idx, why));
                }
                self.end_flow(idx, why);
            };
            let Some(idx) = idx else {
                // The table is full and eviction is off: the packet is not counted.
                continue;
            };
            self.stats.accepted += 1;
            let e = self.table.entry_mut(idx);
            let dir = direction(&e.key, &key);
            pkt.direction = dir;
            if e.src2dst.packets == 0 {
                pkt.flags |= WEIR_PKT_FIRST_OF_FLOW;
                // SAFETY: a packet of the burst being processed: its bytes are live.
                e.ext.icmp = unsafe { community_id::first_packet_icmp(&pkt) };
            }
            // The full wire length (NFStream keeps it in 16 bits and wraps above 65535).
            let size = pkt.wire_len as u64;
            count(
                if dir == 0 {
                    &mut e.src2dst
                } else {
                    &mut e.dst2src
                },
                now_ms,
                size,
            );
            let mut teardown = false;
            if self.s.tcp_teardown && pkt.protocol == 6 {
                if pkt.tcp_flags & WEIR_TCP_FIN != 0 {
                    e.ext.fin_seen |= 1 << dir;
                }
                teardown = pkt.tcp_flags & WEIR_TCP_RST != 0 || e.ext.fin_seen == 3;
            }
            // Without schedules the side array is empty and never touched.
            if !self.iv.is_empty() {
                self.iv.touch(idx, dir, now_ms, size);
            }
            let slab = self.table.slab_ptr(idx);
            self.batch_pkts.push(pkt);
            self.batch_slabs.push(slab);
            self.batch_flows.push(idx);
            if self.services.is_some() {
                self.batch_svc.push(self.table.entry(idx).ext.service);
            }
            if !self.heavy_hitters.is_empty() {
                self.batch_keys.push(PacketKey {
                    src_ip: key.src_ip,
                    dst_ip: key.dst_ip,
                    src_port: key.src_port,
                    dst_port: key.dst_port,
                    protocol: key.protocol,
                    ip_version: key.ip_version,
                });
            }
            if teardown && !self.table.entry(idx).ext.ending {
                // Ended after the burst's plugin dispatch, not now: ending it here would cut
                // the burst in front of every teardown and hand the plugins a few packets per
                // call.
                self.table.entry_mut(idx).ext.ending = true;
                self.torn_down.push(idx);
            }
        }
        (self.parsed.len(), Stop::EndOfBurst)
    }

    /// Set up a new flow: its service, its interval schedule, and its plugins' state (the host
    /// zeroes the slab, then calls each plugin's `flow_init`, timed on the plugins' rows).
    fn start_flow(&mut self, idx: u32, now_ms: u64) {
        self.cost.add_flows(Stage::FlowTable.row(), 1);
        let key = self.table.entry(idx).key;
        let (service, skip) = match self.services.as_mut() {
            Some(s) => {
                let id = s.classify(&key, now_ms);
                self.table.entry_mut(idx).ext.service = id;
                (id, s.skip_mask(id))
            }
            None => (0, 0),
        };
        // The flow's interval schedule is chosen once, here, by its service; its side entry
        // (left by an earlier flow of this entry) starts clean.
        if !self.iv.is_empty() {
            self.iv.begin_flow(idx, service);
        }
        let slab = self.table.slab_ptr(idx);
        if let Some(p) = self.plugins.as_mut() {
            self.cost.service_begin();
            // SAFETY: the slab of a live entry, sized and aligned for the plugins' layout.
            unsafe { p.flow_init_selected(&key, slab, skip, &mut self.cost) };
            self.cost.service_end(service);
        }
    }
}
