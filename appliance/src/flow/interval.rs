//! Interval records: what a long flow did in each interval of packet time, while it goes on.
//!
//! A schedule cuts packet time into intervals `[k * every_ms, (k + 1) * every_ms)` aligned on
//! the epoch, so every flow of a schedule shares its boundaries (the records of one interval
//! line up across flows and workers, as a time series should). A flow is attached to a schedule
//! when it is created ([`FlowInterval::schedule`]; 0 = none), by its service: one schedule per
//! distinct length among `[intervals] every_ms` (flows of no service, and services without a
//! length of their own) and `[[services]] every_ms`.
//!
//! The per-flow part ([`FlowInterval`], 72 bytes) is not in the flow table entry: it lives in a
//! side array of [`IntervalSchedules`], indexed by the flow's entry index and allocated (zeroed,
//! lazily mapped) with the table's capacity only when at least one schedule exists. With
//! interval records off (the default) it is an empty `Vec`: no flow pays for it, and the
//! per-packet path never reads it.
//!
//! No per-packet scan: when a flow sees its first packet of an interval, its entry index is
//! appended to the schedule's `touched` list (O(1), preallocated to the table's capacity, and
//! its position kept in the flow's side entry so ending the flow removes it in O(1) too). When packet time
//! crosses the boundary the worker walks that list once, writes one interval record per flow on
//! it and empties it (intervals in which no flow had a packet are skipped). A flow that ends writes its open interval first, so a flow's interval
//! records always add up to its flow record.

use super::record::DirCounters;
use bytemuck::{zeroed_vec, Zeroable};
use serde::Deserialize;

/// `[intervals]` of the config.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IntervalsConfig {
    /// Length of an interval in ms of packet time; 0 (the default) = no interval records.
    pub every_ms: u64,
}

/// Longest interval accepted (one year): longer is an active timeout, not an interval.
pub const MAX_EVERY_MS: u64 = 365 * 86_400_000;

/// A flow's interval part (its entry in the side array of [`IntervalSchedules`]): which
/// schedule it follows, where it sits in that schedule's touched list, and its counters since
/// the interval began (the bidirectional ones are the sum of the two directions).
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowInterval {
    /// Index + 1 into [`IntervalSchedules`]; 0 = the flow has no interval records.
    pub schedule: u8,
    /// Position + 1 in its schedule's touched list; 0 = no packet in the current interval.
    pub pos: u32,
    pub src2dst: DirCounters,
    pub dst2src: DirCounters,
}

// The figure the module docs and perf/RESULTS.md quote.
const _: () = assert!(core::mem::size_of::<FlowInterval>() == 72);

// SAFETY: integers only; all-zero bits are the default (no schedule, untouched, no packets).
unsafe impl Zeroable for FlowInterval {}

impl FlowInterval {
    /// The bidirectional counters of the interval.
    pub fn bidirectional(&self) -> DirCounters {
        let (a, b) = (&self.src2dst, &self.dst2src);
        match (a.packets, b.packets) {
            (0, _) => *b,
            (_, 0) => *a,
            _ => DirCounters {
                first_seen_ms: a.first_seen_ms.min(b.first_seen_ms),
                last_seen_ms: a.last_seen_ms.max(b.last_seen_ms),
                packets: a.packets + b.packets,
                bytes: a.bytes + b.bytes,
            },
        }
    }
}

/// One schedule: its interval length, the current interval, and the flows it touched.
pub struct IntervalSchedule {
    pub every_ms: u64,
    /// Start of the current interval (a multiple of `every_ms`).
    pub start_ms: u64,
    /// Entry indices of the flows with packets in the current interval.
    pub touched: Vec<u32>,
}

impl IntervalSchedule {
    fn new(every_ms: u64, capacity: u32) -> IntervalSchedule {
        IntervalSchedule {
            every_ms,
            start_ms: 0,
            touched: Vec::with_capacity(capacity as usize),
        }
    }

    pub fn end_ms(&self) -> u64 {
        self.start_ms + self.every_ms
    }
}

/// A worker's schedules (at most 255: the flow keeps the index in a u8).
pub struct IntervalSchedules {
    pub list: Vec<IntervalSchedule>,
    /// The earliest end of any schedule's current interval (u64::MAX without schedules): one
    /// compare per packet tells whether a boundary was crossed.
    pub next_end_ms: u64,
    started: bool,
    /// The schedule (index + 1; 0 = none) of each service id; id 0 (no service) first.
    by_service: Vec<u8>,
    /// Each flow's interval part, by entry index: the table's capacity with schedules, empty
    /// without (then nothing reads it).
    flows: Vec<FlowInterval>,
}

impl IntervalSchedules {
    /// One schedule per distinct interval length in `per_service` (the length of service id
    /// `i`; index 0 is flows of no service; 0 = no interval records), each list and the side
    /// array sized for `capacity` flows (as the table: at least one). Services of one length
    /// share its schedule (and its boundaries).
    pub fn new(per_service: &[u64], capacity: u32) -> IntervalSchedules {
        let capacity = capacity.max(1);
        let mut lengths: Vec<u64> = per_service.iter().copied().filter(|&e| e > 0).collect();
        lengths.sort_unstable();
        lengths.dedup();
        lengths.truncate(255);
        let by_service = per_service
            .iter()
            .map(|e| {
                lengths
                    .iter()
                    .position(|l| l == e)
                    .map_or(0, |i| (i + 1) as u8)
            })
            .collect();
        let list: Vec<IntervalSchedule> = lengths
            .iter()
            .map(|&e| IntervalSchedule::new(e, capacity))
            .collect();
        let flows = if list.is_empty() {
            Vec::new()
        } else {
            // Zeroed pages, mapped as flows first touch them (as the table's entries).
            let mut v: Vec<FlowInterval> = zeroed_vec(capacity as usize);
            super::table::advise_huge(
                v.as_mut_ptr().cast(),
                v.len() * core::mem::size_of::<FlowInterval>(),
            );
            v
        };
        IntervalSchedules {
            flows,
            // 0 with schedules: the first packet (or clock tick) starts them.
            next_end_ms: if list.is_empty() { u64::MAX } else { 0 },
            list,
            started: false,
            by_service,
        }
    }

    /// No schedule: no interval records, and no side array.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bytes held per flow: the side entry and one touched-list slot per schedule (0 without
    /// schedules).
    pub fn bytes_per_flow(&self) -> usize {
        if self.flows.is_empty() {
            return 0;
        }
        core::mem::size_of::<FlowInterval>() + self.list.len() * core::mem::size_of::<u32>()
    }

    /// Reset the side entry of a flow just created in entry `idx` (entries are reused) and
    /// attach it to its service's schedule. No-op without schedules.
    #[inline]
    pub fn begin_flow(&mut self, idx: u32, service: u16) {
        let schedule = self.for_new_flow(service);
        if let Some(fi) = self.flows.get_mut(idx as usize) {
            *fi = FlowInterval {
                schedule,
                ..FlowInterval::default()
            };
        }
    }

    /// The interval part of the flow in entry `idx` (None without schedules).
    #[inline]
    pub fn flow(&self, idx: u32) -> Option<&FlowInterval> {
        self.flows.get(idx as usize)
    }

    /// Take the flow's current interval out and start its next one (same schedule, no
    /// packets, off the touched list: the caller took it off already).
    pub fn take(&mut self, idx: u32) -> FlowInterval {
        let fi = &mut self.flows[idx as usize];
        let old = *fi;
        *fi = FlowInterval {
            schedule: old.schedule,
            ..FlowInterval::default()
        };
        old
    }

    /// The schedule a new flow of service `service` follows (index + 1; 0 = none).
    pub fn for_new_flow(&self, service: u16) -> u8 {
        self.by_service
            .get(service as usize)
            .or(self.by_service.first())
            .copied()
            .unwrap_or(0)
    }

    /// Fix the first intervals on the first packet time seen.
    pub fn start(&mut self, now_ms: u64) {
        if self.started || self.list.is_empty() {
            return;
        }
        self.started = true;
        for s in &mut self.list {
            s.start_ms = now_ms - now_ms % s.every_ms;
        }
        self.recompute();
    }

    fn recompute(&mut self) {
        self.next_end_ms = self
            .list
            .iter()
            .map(IntervalSchedule::end_ms)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// A schedule whose current interval ended by `now_ms`, with its interval and its touched
    /// list (taken out, so the caller can end each flow's interval with the worker borrowed;
    /// give the list back with [`IntervalSchedules::finish`]).
    pub fn due(&mut self, now_ms: u64) -> Option<(usize, super::record::IntervalSpan, Vec<u32>)> {
        if now_ms < self.next_end_ms {
            return None;
        }
        let (i, s) = self
            .list
            .iter_mut()
            .enumerate()
            .find(|(_, s)| now_ms >= s.end_ms())?;
        let span = super::record::IntervalSpan {
            start_ms: s.start_ms,
            end_ms: s.end_ms(),
        };
        Some((i, span, std::mem::take(&mut s.touched)))
    }

    /// Give back schedule `i`'s list (emptied, its capacity kept) and move the schedule to the
    /// interval holding `now_ms` (intervals without packets are skipped, not written).
    pub fn finish(&mut self, i: usize, mut touched: Vec<u32>, now_ms: u64) {
        touched.clear();
        let s = &mut self.list[i];
        s.touched = touched;
        s.start_ms = now_ms - now_ms % s.every_ms;
        self.recompute();
    }

    /// Record a packet of the flow in entry `idx` in its schedule's current interval. Call
    /// only with schedules (the side array is empty without).
    #[inline]
    pub fn touch(&mut self, idx: u32, dir: u8, now_ms: u64, size: u64) {
        let fi = &mut self.flows[idx as usize];
        if fi.schedule == 0 {
            return;
        }
        if fi.pos == 0 {
            let s = &mut self.list[fi.schedule as usize - 1];
            s.touched.push(idx);
            fi.pos = s.touched.len() as u32;
        }
        let c = if dir == 0 {
            &mut fi.src2dst
        } else {
            &mut fi.dst2src
        };
        if c.packets == 0 {
            c.first_seen_ms = now_ms;
        }
        c.last_seen_ms = now_ms;
        c.packets += 1;
        c.bytes += size;
    }

    /// Take the flow in entry `idx` off its schedule's touched list (it ends mid-interval);
    /// the entry moved into its place gets its new position. Returns the flow's current
    /// interval when it was on the list (None: no packet in this interval, or no schedule).
    /// Its side entry keeps `pos` until [`IntervalSchedules::take`].
    pub fn untouch(&mut self, idx: u32) -> Option<super::record::IntervalSpan> {
        let fi = *self.flows.get(idx as usize)?;
        if fi.schedule == 0 || fi.pos == 0 {
            return None;
        }
        let s = &mut self.list[fi.schedule as usize - 1];
        let i = fi.pos as usize - 1;
        s.touched.swap_remove(i);
        if let Some(&moved) = s.touched.get(i) {
            self.flows[moved as usize].pos = fi.pos;
        }
        Some(self.span(fi.schedule))
    }

    /// The current interval of schedule `schedule` (index + 1).
    pub fn span(&self, schedule: u8) -> super::record::IntervalSpan {
        let s = &self.list[schedule as usize - 1];
        super::record::IntervalSpan {
            start_ms: s.start_ms,
            end_ms: s.end_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_align_on_the_epoch_and_skip_empty_ones() {
        let mut s = IntervalSchedules::new(&[10_000], 8);
        assert_eq!(s.next_end_ms, 0);
        s.start(123_456);
        assert_eq!(s.list[0].start_ms, 120_000);
        assert_eq!(s.next_end_ms, 130_000);
        s.begin_flow(3, 0);
        s.touch(3, 0, 125_000, 100);
        s.touch(3, 1, 126_000, 50);
        s.touch(3, 0, 127_000, 100);
        assert_eq!(s.list[0].touched, vec![3]);
        let b = s.flow(3).expect("side entry").bidirectional();
        assert_eq!((b.first_seen_ms, b.last_seen_ms), (125_000, 127_000));
        assert_eq!((b.packets, b.bytes), (3, 250));
        assert!(s.due(129_999).is_none());
        // A gap: the next packet is three intervals later.
        let (i, span, touched) = s.due(161_000).expect("due");
        assert_eq!((i, span.start_ms, span.end_ms), (0, 120_000, 130_000));
        assert_eq!(touched, vec![3]);
        let fi = s.take(3);
        assert_eq!(fi.bidirectional().packets, 3);
        assert_eq!(
            (s.flow(3).unwrap().schedule, s.flow(3).unwrap().pos),
            (1, 0)
        );
        assert_eq!(s.flow(3).unwrap().bidirectional().packets, 0);
        s.finish(i, touched, 161_000);
        assert_eq!(s.list[0].start_ms, 160_000);
        assert_eq!(s.next_end_ms, 170_000);
        assert!(s.list[0].touched.is_empty());
        assert!(s.due(161_000).is_none());
    }

    #[test]
    fn services_of_one_length_share_a_schedule() {
        // Service ids 0 (none) .. 3: global 10 s, 60 s, none, 10 s again.
        let s = IntervalSchedules::new(&[10_000, 60_000, 0, 10_000], 8);
        assert_eq!(s.list.len(), 2);
        assert_eq!(
            (0..4).map(|i| s.for_new_flow(i)).collect::<Vec<_>>(),
            [1, 2, 0, 1]
        );
        assert_eq!(s.list[s.for_new_flow(1) as usize - 1].every_ms, 60_000);
        assert_eq!(
            s.for_new_flow(9),
            1,
            "an unknown id follows flows of no service"
        );
        assert_eq!(IntervalSchedules::new(&[0], 8).for_new_flow(0), 0);
        assert_eq!(IntervalSchedules::new(&[0], 8).next_end_ms, u64::MAX);
    }

    #[test]
    fn untouch_keeps_positions_right() {
        let mut s = IntervalSchedules::new(&[1000], 8);
        s.start(0);
        for i in 0..3 {
            s.begin_flow(i, 0);
            s.touch(i, 0, 10, 1);
        }
        let span = s.untouch(0).expect("on the list");
        assert_eq!((span.start_ms, span.end_ms), (0, 1000));
        assert_eq!(s.list[0].touched, vec![2, 1]);
        assert_eq!(
            s.flow(2).unwrap().pos,
            1,
            "the moved entry's position follows it"
        );
        s.take(0);
        assert!(s.untouch(1).is_some());
        assert_eq!(s.list[0].touched, vec![2]);
        s.take(1);
        assert!(s.untouch(1).is_none(), "taken: no longer on the list");
        // A reused entry starts clean (its earlier flow left the list when it ended).
        s.touch(2, 1, 20, 5);
        assert!(s.untouch(2).is_some());
        assert!(s.list[0].touched.is_empty());
        s.begin_flow(2, 0);
        assert_eq!(s.flow(2).unwrap().bidirectional().packets, 0);
        assert_eq!(s.flow(2).unwrap().pos, 0);
    }

    #[test]
    fn no_schedule_no_side_array() {
        let s = IntervalSchedules::new(&[0, 0], 1 << 20);
        assert!(s.is_empty());
        assert!(s.flow(0).is_none());
        assert_eq!(s.bytes_per_flow(), 0);
        let on = IntervalSchedules::new(&[1000, 60_000], 16);
        assert_eq!(on.bytes_per_flow(), 72 + 2 * 4);
        assert!(on.flow(15).is_some() && on.flow(16).is_none());
    }
}
