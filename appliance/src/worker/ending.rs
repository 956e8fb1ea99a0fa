//! The stages where flows end and records are made: flows that tore down during the burst,
//! intervals that ended, flows whose timer came due, the end of input; and the hand-over of
//! records to the output side in bounded batches.

use super::{FlowExt, Worker, FLUSH_BATCH, SEND_BATCH, SEND_EVERY_NS};
use crate::cost::Stage;
use crate::flow::community_id;
use crate::flow::record::{DirCounters, Expiration, FlowRecord, IntervalSpan, ScoreStatus, Texts};
use crate::flow::table::FlowEntry;
use crate::prefetch;
use crate::rates::FlowRates;

/// Flows ahead whose cache lines are prefetched where the flows to end are known (the final
/// flush, a wheel slot's due list): a cold flow is an entry and a plugin slab, ~17 lines.
const END_AHEAD: usize = 4;

impl Worker {
    /// End the flows that tore down during the burst (their packets have been through the
    /// plugins).
    pub(super) fn end_torn_down(&mut self) {
        for i in 0..self.torn_down.len() {
            let idx = self.torn_down[i];
            // Not ended already (a later packet of the flow in this burst, or an eviction,
            // ended it; a flow created since in that entry starts with `ending` false).
            if self.table.entry(idx).ext.ending {
                self.end_flow(idx, Expiration::Teardown);
                self.stats.teardown += 1;
            }
        }
        self.torn_down.clear();
    }

    /// End the flows whose wheel slot came due by `now_ms`; returns how many ended. Records
    /// go out in bounded batches: a time jump can expire the whole table here.
    pub(super) fn expiry_stage(&mut self, now_ms: u64) -> u32 {
        let mut ended = 0;
        let mut due = std::mem::take(&mut self.due);
        while self.table.due(now_ms, &mut due) {
            for (i, &idx) in due.iter().enumerate() {
                // Two steps ahead, as VPP does: the entries first, then, for the flows that
                // end, their plugin slabs and index slots.
                if let Some(&far) = due.get(i + 2 * END_AHEAD) {
                    self.table.prefetch_flow(far, false);
                }
                if let Some(&near) = due.get(i + END_AHEAD) {
                    if now_ms >= self.deadlines(near).0 {
                        self.table.prefetch_flow(near, true);
                        self.table.prefetch_unlink(near);
                    }
                }
                let (deadline, idle_at, active_at) = self.deadlines(idx);
                if now_ms >= deadline {
                    ended += 1;
                    if idle_at <= active_at {
                        self.stats.expired_idle += 1;
                        self.end_flow(idx, Expiration::Idle);
                    } else {
                        self.stats.expired_active += 1;
                        self.end_flow(idx, Expiration::Active);
                    }
                    if self.out.len() >= FLUSH_BATCH {
                        self.send_records();
                    }
                } else {
                    self.table.refile(idx, deadline);
                }
            }
        }
        self.due = due;
        ended
    }

    /// Flow `idx`'s deadline (the earlier of the next two), idle deadline and active deadline.
    #[inline]
    fn deadlines(&self, idx: u32) -> (u64, u64, u64) {
        let bi = self.table.entry(idx).bidirectional();
        let idle_at = bi.last_seen_ms + self.s.idle_ms;
        let active_at = bi.first_seen_ms + self.s.active_ms;
        (idle_at.min(active_at), idle_at, active_at)
    }

    /// End every open flow (end of input, shutdown), handing records over in bounded batches:
    /// a full table ends a million flows here, and holding all their records at once would
    /// double the memory of the run.
    ///
    /// The flows are known ahead (in entry order): each one's lines are prefetched
    /// [`END_AHEAD`] flows before its record is made, and the table is emptied at once at the
    /// end instead of flow by flow (see `FlowTable::clear`).
    pub(super) fn flush_stage(&mut self) {
        let live: Vec<u32> = self.table.live_entries().collect();
        for &idx in live.iter().take(END_AHEAD) {
            self.table.prefetch_flow(idx, true);
        }
        for (i, &idx) in live.iter().enumerate() {
            if let Some(&next) = live.get(i + END_AHEAD) {
                self.table.prefetch_flow(next, true);
            }
            self.make_record(idx, Expiration::Flush);
            self.stats.flushed += 1;
            if self.out.len() >= FLUSH_BATCH {
                self.send_records();
            }
        }
        self.table.clear();
    }

    /// Write the interval records of every schedule whose interval ended by `now_ms`; on the
    /// first packet, start the schedules instead. Returns the records written.
    pub(super) fn close_intervals(&mut self, now_ms: u64) -> u32 {
        if self.iv.is_empty() {
            return 0;
        }
        if self.iv.next_end_ms == 0 {
            self.iv.start(now_ms);
            return 0;
        }
        let mut written = 0u32;
        while let Some((i, span, touched)) = self.iv.due(now_ms) {
            for &idx in &touched {
                self.emit_interval(idx, span);
                written += 1;
                // Keep the records of a busy interval in bounded batches, as flush_stage does.
                if self.out.len() >= FLUSH_BATCH {
                    self.send_records();
                }
            }
            self.iv.finish(i, touched, now_ms);
        }
        written
    }

    /// Turn flow `idx` into a record and free its entry. Its packets must have been through
    /// the plugins (the stages before ran over them). The plugins' `flow_emit` calls are timed
    /// by the host on their own rows.
    pub(super) fn end_flow(&mut self, idx: u32, why: Expiration) {
        // Usually a cold flow (evicted, timed out): its entry, slab and index slot are asked
        // for together first, so their misses overlap instead of coming one by one.
        self.table.prefetch_flow(idx, true);
        self.table.prefetch_unlink(idx);
        self.make_record(idx, why);
        self.table.remove(idx);
    }

    /// Turn flow `idx` into a record, leaving its entry in the table (for the caller to free).
    fn make_record(&mut self, idx: u32, why: Expiration) {
        self.prefetch_next_record();
        if let Some(span) = self.iv.untouch(idx) {
            // The flow's last interval: written before its flow record, so the interval
            // records of a flow always add up to it.
            self.emit_interval(idx, span);
            self.cost.add_flows(Stage::Interval.row(), 1);
        }
        // However it ends, it is no longer waiting for `end_torn_down` (the freed entry keeps
        // its bytes until reused).
        self.table.entry_mut(idx).ext.ending = false;
        let e = *self.table.entry(idx);
        let mut values = self.feature_vector(&e.ext.rates);
        let mut texts = Texts::default();
        if self.plugins.as_ref().is_some_and(|p| p.n_texts() > 0) {
            // They come back with the records' feature vectors (take_recycled).
            texts = self.spare_texts.pop().unwrap_or_default();
            texts.clear();
        }
        if let Some(p) = self.plugins.as_mut() {
            let slab = self.table.slab_ptr(idx);
            self.cost.service_begin();
            // SAFETY: the slab of the live entry being ended (its last use: the entry is
            // removed below); `values` holds every feature.
            unsafe {
                p.flow_emit_texts(
                    &e.key,
                    slab,
                    &mut values[..self.n_plugin_values],
                    &mut texts,
                    &mut self.cost,
                )
            };
            self.cost.service_end(e.ext.service);
            self.stats.text_refused = p.text_refused();
        }
        let counters = [e.bidirectional(), e.src2dst, e.dst2src];
        let rec = self.record(&e, None, why, counters, values, texts);
        self.out.push(rec);
    }

    /// Prefetch what the next record will be written to: its slot of the batch and the
    /// feature vector it will take. Both are memory the output thread last read (recycled
    /// batches and vectors), so writing them cold was a miss per line (a vector of 170
    /// features is 22 lines); asked for with the intent to write, so they arrive owned.
    #[inline]
    fn prefetch_next_record(&self) {
        let next = self.out.len() + 1;
        if next < self.out.capacity() {
            let slot = self.out.as_ptr().wrapping_add(next);
            prefetch::lines_for_write(slot.cast(), std::mem::size_of::<FlowRecord>());
        }
        if let Some(j) = self.spare_values.len().checked_sub(2) {
            let v = &self.spare_values[j];
            prefetch::lines_for_write(v.as_ptr().cast(), v.capacity() * 8);
        }
    }

    /// Turn flow `idx`'s current interval into an interval record and start its next one
    /// (the flow is already off its schedule's touched list). The plugins' `interval_emit`
    /// calls are timed on their own rows.
    fn emit_interval(&mut self, idx: u32, span: IntervalSpan) {
        let e = *self.table.entry(idx);
        let key = e.key;
        let mut values = self.feature_vector(&e.ext.rates);
        if let Some(p) = self.plugins.as_mut() {
            let slab = self.table.slab_ptr(idx);
            // SAFETY: the slab of a live entry; `values` holds every feature.
            unsafe {
                p.interval_emit(
                    &key,
                    slab,
                    &mut values[..self.n_plugin_values],
                    &mut self.cost,
                )
            };
        }
        let fi = self.iv.take(idx);
        self.stats.interval_records += 1;
        let counters = [fi.bidirectional(), fi.src2dst, fi.dst2src];
        // An interval does not end its flow: expiration_id is left empty by the sinks.
        let rec = self.record(
            &e,
            Some(span),
            Expiration::Active,
            counters,
            values,
            Texts::default(),
        );
        self.out.push(rec);
    }

    /// A record's feature vector: the plugins' features missing (NaN) until they write them,
    /// then the flow's decayed rates.
    fn feature_vector(&mut self, rates: &FlowRates) -> Vec<f64> {
        if self.spare_values.is_empty() {
            self.take_recycled();
        }
        let mut values = self.spare_values.pop().unwrap_or_default();
        values.clear();
        values.resize(self.s.n_values, f64::NAN);
        let rate_values = rates.features(&self.tables);
        values[self.n_plugin_values..self.n_plugin_values + rate_values.len()]
            .copy_from_slice(&rate_values);
        values
    }

    /// Take one written batch back from the output side, if one is waiting: its records'
    /// feature vectors, texts and scores and the batch itself become spares.
    fn take_recycled(&mut self) {
        let Some(rx) = &self.recycled else {
            return;
        };
        if let Ok(mut batch) = rx.try_recv() {
            for r in batch.drain(..) {
                self.spare_values.push(r.values);
                // Interval records take feature vectors but no texts: bounded.
                if r.texts.capacity_bytes() > 0 && self.spare_texts.len() < 4 * SEND_BATCH {
                    self.spare_texts.push(r.texts);
                }
                // Only scored records carry scores: bounded too.
                if r.scores.capacity() > 0 && self.spare_scores.len() < 4 * SEND_BATCH {
                    self.spare_scores.push(r.scores);
                }
            }
            if self.spare_batches.len() < 4 {
                self.spare_batches.push(batch);
            }
        }
    }

    /// The one place flow records (`interval: None`) and interval records are built, from the
    /// flow's entry, its counters (bidirectional, src2dst, dst2src; a direction without
    /// packets is written as all zeros) and its features.
    fn record(
        &mut self,
        e: &FlowEntry<FlowExt>,
        interval: Option<IntervalSpan>,
        expiration: Expiration,
        [bidirectional, src2dst, dst2src]: [DirCounters; 3],
        values: Vec<f64>,
        texts: Texts,
    ) -> FlowRecord {
        let zero_if_empty = |c: DirCounters| {
            if c.packets == 0 {
                DirCounters::default()
            } else {
                c
            }
        };
        // A scorer fills them (a reused vector keeps its memory, not its old scores).
        let mut scores = self.spare_scores.pop().unwrap_or_default();
        scores.clear();
        FlowRecord {
            key: e.key,
            expiration,
            worker: self.s.id,
            service: e.ext.service,
            interval,
            bidirectional,
            src2dst: zero_if_empty(src2dst),
            dst2src: zero_if_empty(dst2src),
            values,
            texts,
            score_status: ScoreStatus::None,
            model: None,
            prediction: None,
            scores,
            icmp: e.ext.icmp,
            community_id: Default::default(),
        }
    }

    /// The last stage of a burst: hand the records over once [`SEND_BATCH`] of them waited or
    /// [`SEND_EVERY_NS`] of packet time passed; returns how many went.
    pub(super) fn records_stage(&mut self) -> u32 {
        if self.out.len() >= SEND_BATCH
            || self.last_ts_ns.saturating_sub(self.last_send_ns) >= SEND_EVERY_NS
        {
            let sent = self.out.len() as u32;
            self.send_records();
            return sent;
        }
        0
    }

    /// Give the records ended since the last call their Community ID, on the `community_id`
    /// cost row (its packets column counts records); returns the clock after it.
    pub(super) fn community_id_stage(&mut self, t: u64) -> u64 {
        let n = self.out.len() - self.stamped;
        if n == 0 {
            return t;
        }
        let seed = self.s.community_id_seed;
        for r in &mut self.out[self.stamped..] {
            r.community_id = community_id::compute(seed, &r.key, r.icmp);
        }
        self.stamped = self.out.len();
        let row = Stage::CommunityId.row();
        self.cost.add_flows(row, n as u64);
        self.cost.lap(row, n as u32, t)
    }

    pub(super) fn send_records(&mut self) {
        if self.out.is_empty() {
            return;
        }
        // Records ended outside a burst (quiet links, the end of input) get theirs here.
        let t = self.cost.start();
        self.community_id_stage(t);
        self.stamped = 0;
        self.last_send_ns = self.last_ts_ns;
        self.stats.records += self.out.len() as u64;
        let next = self
            .spare_batches
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(SEND_BATCH));
        let batch = std::mem::replace(&mut self.out, next);
        // Blocks when the output stage is behind: records are never dropped here.
        if self.sink.send(batch).is_err() {
            tracing::error!(
                worker = self.s.id,
                "record output stage is gone; records lost"
            );
        }
    }

    /// Let the heavy-hitter tables report when their interval is due (one compare each
    /// otherwise), and send their alerts on.
    pub(super) fn poll_heavy_hitters(&mut self, finish: bool) {
        let now = self.last_ts_ns;
        for hh in self.heavy_hitters.iter_mut() {
            if finish {
                hh.finish(now, &mut self.alert_buf);
            } else {
                hh.poll(now, &mut self.alert_buf);
            }
        }
        for a in self.alert_buf.drain(..) {
            if let Ok(line) = serde_json::to_string(&a) {
                let _ = self.alerts.send(line);
            }
        }
    }
}
