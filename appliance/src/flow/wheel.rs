//! A coarse, lazy timer wheel for flow expiry on packet time.
//!
//! Idle and active timeouts are decided exactly where they matter, when a packet of the flow
//! arrives (`now - last_seen >= idle` or `now - first_seen >= active`, NFStream's rule). The
//! wheel only makes sure a flow that receives no more packets is eventually ended, and it does
//! so without any per-packet work: a flow is filed once under the deadline it had when filed.
//! When that slot comes due the flow's *current* deadline is computed again; if the flow has
//! seen packets since, it is simply filed again further on. A busy flow is therefore touched
//! once per idle timeout, not once per packet.
//!
//! Slots are `granularity_ms` wide; a slot is processed only once packet time has moved past its
//! end, so no flow is ever ended before its deadline (it may end up to one slot late, which
//! changes when its record is written, never what it contains). Deadlines past the wheel's
//! horizon are filed in the farthest slot and re-filed when it comes due.
//!
//! Eviction uses the same wheel: the flow to end when the table is full is the first of the
//! earliest slot, and since a slot's list is kept in filing order (appended at the tail) that
//! is the flow filed first. A flow filed under a deadline it no longer has (it saw packets
//! since) is not evicted but filed again under its current one, at the tail of its new slot
//! ([`TimerWheel::filed`] keeps the deadline it was filed under). That keeps eviction on the
//! least recently active flow (to within one slot) with no per-packet work: each re-filing is
//! paid for by a packet that moved the flow's deadline, so eviction is O(1) amortised.
//! A bitmap of non-empty slots finds the earliest one in a few word reads.
//!
//! Lists are intrusive (prev/next indices stored by the caller's entries), so filing and
//! unfiling are O(1) and allocation-free.

/// The end of a list.
pub const NIL: u32 = u32::MAX;

/// Intrusive links a flow entry carries for the wheel.
#[derive(Clone, Copy, Debug, bytemuck::Zeroable)]
pub struct WheelLinks {
    pub prev: u32,
    pub next: u32,
    /// Slot the entry is filed in, or NIL.
    pub slot: u32,
    /// Low 32 bits of the deadline (ms) the entry was filed under. Deadlines only grow, and an
    /// entry is looked at again within a wheel revolution of its filing, so comparing the low
    /// bits tells whether its deadline moved since (a 49-day wrap cannot happen in between).
    pub filed: u32,
}

impl Default for WheelLinks {
    fn default() -> Self {
        WheelLinks {
            prev: NIL,
            next: NIL,
            slot: NIL,
            filed: 0,
        }
    }
}

/// The wheel: `heads[slot]` is the first entry of that slot's list, `tails[slot]` its last.
pub struct TimerWheel {
    heads: Box<[u32]>,
    tails: Box<[u32]>,
    /// Bit `s` set when slot `s` is not empty.
    occupied: Box<[u64]>,
    granularity_ms: u64,
    /// The next tick (absolute, in units of granularity) that has not been processed yet.
    next_tick: u64,
    started: bool,
    len: usize,
}

impl TimerWheel {
    /// A wheel of `slots` slots (rounded up to a power of two) of `granularity_ms` each.
    pub fn new(slots: usize, granularity_ms: u64) -> TimerWheel {
        let slots = slots.max(2).next_power_of_two();
        TimerWheel {
            heads: vec![NIL; slots].into_boxed_slice(),
            tails: vec![NIL; slots].into_boxed_slice(),
            occupied: vec![0u64; slots.div_ceil(64)].into_boxed_slice(),
            granularity_ms: granularity_ms.max(1),
            next_tick: 0,
            started: false,
            len: 0,
        }
    }

    /// Number of entries filed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot_of_tick(&self, tick: u64) -> u32 {
        (tick & (self.heads.len() as u64 - 1)) as u32
    }

    /// Low 32 bits of the deadline entry `idx` was filed under (see [`WheelLinks::filed`]).
    #[inline]
    pub fn filed(&self, links: &[WheelLinks], idx: u32) -> u32 {
        links[idx as usize].filed
    }

    fn mark(&mut self, slot: u32, on: bool) {
        let (w, b) = (slot as usize / 64, slot % 64);
        if on {
            self.occupied[w] |= 1 << b;
        } else {
            self.occupied[w] &= !(1 << b);
        }
    }

    /// File entry `idx` under `deadline_ms`, last of its slot.
    pub fn insert(&mut self, links: &mut [WheelLinks], idx: u32, deadline_ms: u64) {
        if !self.started {
            // The first entry fixes the wheel's origin on packet time.
            self.next_tick = deadline_ms / self.granularity_ms;
            self.started = true;
        }
        let horizon = self.next_tick + self.heads.len() as u64 - 1;
        let tick = (deadline_ms / self.granularity_ms).clamp(self.next_tick, horizon);
        let slot = self.slot_of_tick(tick);
        let tail = self.tails[slot as usize];
        links[idx as usize] = WheelLinks {
            prev: tail,
            next: NIL,
            slot,
            filed: deadline_ms as u32,
        };
        if tail != NIL {
            links[tail as usize].next = idx;
        } else {
            self.heads[slot as usize] = idx;
            self.mark(slot, true);
        }
        self.tails[slot as usize] = idx;
        self.len += 1;
    }

    /// Unfile entry `idx` (no-op when it is not filed).
    pub fn remove(&mut self, links: &mut [WheelLinks], idx: u32) {
        let l = links[idx as usize];
        if l.slot == NIL {
            return;
        }
        if l.prev != NIL {
            links[l.prev as usize].next = l.next;
        } else {
            self.heads[l.slot as usize] = l.next;
        }
        if l.next != NIL {
            links[l.next as usize].prev = l.prev;
        } else {
            self.tails[l.slot as usize] = l.prev;
        }
        if self.heads[l.slot as usize] == NIL {
            self.mark(l.slot, false);
        }
        links[idx as usize] = WheelLinks::default();
        self.len -= 1;
    }

    /// Empty slot `slot`, returning its list (unfiled entries still chained by `next`).
    fn detach(&mut self, links: &mut [WheelLinks], slot: u32) -> u32 {
        let head = self.heads[slot as usize];
        self.heads[slot as usize] = NIL;
        self.tails[slot as usize] = NIL;
        self.mark(slot, false);
        let mut i = head;
        while i != NIL {
            links[i as usize].slot = NIL;
            self.len -= 1;
            i = links[i as usize].next;
        }
        head
    }

    /// Detach and return the list of every slot whose time span ended before `now_ms`, one slot
    /// at a time: call repeatedly until it returns `None`. The caller decides, for each entry of
    /// the returned list (walk it with `links[i].next`), whether to end the flow or file it
    /// again with [`TimerWheel::insert`].
    pub fn next_due(&mut self, links: &mut [WheelLinks], now_ms: u64) -> Option<u32> {
        if !self.started {
            return None;
        }
        let now_tick = now_ms / self.granularity_ms;
        if now_tick.saturating_sub(self.next_tick) >= self.heads.len() as u64 {
            // Time jumped past a whole revolution (an idle link, a gap in a capture): every
            // slot is due. Hand them all over as one list and move straight to now, instead of
            // stepping through every empty slot of the gap.
            self.next_tick = now_tick;
            return self.take_all(links);
        }
        while self.next_tick < now_tick {
            let slot = self.slot_of_tick(self.next_tick);
            self.next_tick += 1;
            if self.heads[slot as usize] != NIL {
                return Some(self.detach(links, slot));
            }
            if self.len == 0 {
                // Nothing filed: jump straight to now instead of stepping through empty slots.
                self.next_tick = now_tick;
            }
        }
        None
    }

    /// Unfile every entry at once without walking the lists (the table's final clear): the
    /// caller resets the entries' links itself. The wheel's time stays where it is.
    pub fn clear(&mut self) {
        self.heads.fill(NIL);
        self.tails.fill(NIL);
        self.occupied.fill(0);
        self.len = 0;
    }

    /// Detach every entry into one list (slot order), or `None` when empty.
    fn take_all(&mut self, links: &mut [WheelLinks]) -> Option<u32> {
        let mut head = NIL;
        let mut tail = NIL;
        for slot in 0..self.heads.len() as u32 {
            let last = self.tails[slot as usize];
            if last == NIL {
                continue;
            }
            let h = self.detach(links, slot);
            if tail == NIL {
                head = h;
            } else {
                links[tail as usize].next = h;
                links[h as usize].prev = tail;
            }
            tail = last;
        }
        if head == NIL {
            None
        } else {
            Some(head)
        }
    }

    /// The first entry of the earliest non-empty slot (filed first among the flows nearest to
    /// their deadline, as filed), for eviction when the table is full. Reads the occupancy
    /// bitmap from the next tick on, wrapping once: at most `slots / 64 + 1` words.
    pub fn earliest(&self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let n = self.heads.len();
        let start = self.slot_of_tick(self.next_tick) as usize;
        let words = self.occupied.len();
        // Bits of the first word before `start` belong to the far end of the revolution:
        // look at them last.
        let first = self.occupied[start / 64] & (!0u64 << (start % 64));
        if first != 0 {
            return Some(self.heads[(start / 64) * 64 + first.trailing_zeros() as usize]);
        }
        for k in 1..=words {
            let w = (start / 64 + k) % words;
            let mut bits = self.occupied[w];
            if k == words {
                bits &= !(!0u64 << (start % 64));
            }
            if bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                debug_assert!(slot < n);
                return Some(self.heads[slot]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut TimerWheel, links: &mut [WheelLinks], now: u64) -> Vec<u32> {
        let mut out = vec![];
        while let Some(mut i) = w.next_due(links, now) {
            while i != NIL {
                out.push(i);
                i = links[i as usize].next;
            }
        }
        out.sort();
        out
    }

    #[test]
    fn never_fires_before_the_deadline() {
        let mut links = vec![WheelLinks::default(); 100];
        let mut w = TimerWheel::new(64, 10);
        for i in 0..100u32 {
            w.insert(&mut links, i, 1000 + i as u64 * 7);
        }
        let mut fired = vec![];
        for now in (1000..2000).step_by(3) {
            for i in drain(&mut w, &mut links, now) {
                let deadline = 1000 + i as u64 * 7;
                if now < deadline {
                    // Filed past the horizon: only allowed when the deadline was beyond it.
                    assert!(
                        deadline >= 1000 + 64 * 10,
                        "entry {i} fired at {now} before {deadline}"
                    );
                    w.insert(&mut links, i, deadline);
                    continue;
                }
                // ... and at most one slot late (plus the step of this loop).
                assert!(now < deadline + 2 * 10 + 3, "entry {i} fired late at {now}");
                fired.push(i);
            }
        }
        fired.sort();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn far_deadlines_are_clamped_then_refiled() {
        let mut links = vec![WheelLinks::default(); 1];
        let mut w = TimerWheel::new(8, 10); // horizon 80 ms
        w.insert(&mut links, 0, 0);
        assert_eq!(drain(&mut w, &mut links, 15), vec![0]);
        w.insert(&mut links, 0, 1000);
        // It comes back early (at the horizon) and the caller re-files it.
        let mut now = 15;
        loop {
            now += 5;
            let due = drain(&mut w, &mut links, now);
            if due.is_empty() {
                continue;
            }
            if now >= 1000 {
                break;
            }
            w.insert(&mut links, 0, 1000);
        }
        assert!((1000..1030).contains(&now));
    }

    #[test]
    fn a_long_jump_hands_over_everything_at_once() {
        let mut links = vec![WheelLinks::default(); 50];
        let mut w = TimerWheel::new(16, 10);
        for i in 0..50u32 {
            w.insert(&mut links, i, 100 + i as u64 * 3);
        }
        // Ten years later: one call returns every entry, and nothing is left.
        let due = drain(&mut w, &mut links, 10 * 365 * 86_400_000);
        assert_eq!(due, (0..50).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn earliest_is_the_first_filed_of_the_earliest_slot() {
        let mut links = vec![WheelLinks::default(); 300];
        // 256 slots: the bitmap has four words, and the search must wrap around.
        let mut w = TimerWheel::new(256, 10);
        w.insert(&mut links, 0, 1000); // origin: tick 100
        assert_eq!(drain(&mut w, &mut links, 1000 + 200 * 10), vec![0]);
        // Now the next tick is 300 (slot 44); file in slot order 44+250 (wraps to 38), 44+70,
        // 44+70 again (second in its slot), 44+130.
        w.insert(&mut links, 1, 3000 + 250 * 10);
        w.insert(&mut links, 2, 3000 + 70 * 10 + 5);
        w.insert(&mut links, 3, 3000 + 70 * 10);
        w.insert(&mut links, 4, 3000 + 130 * 10);
        for want in [2, 3, 4, 1] {
            let got = w.earliest().unwrap();
            assert_eq!(got, want);
            assert_eq!(w.filed(&links, got), links[got as usize].filed);
            w.remove(&mut links, got);
        }
        assert_eq!(w.earliest(), None);
        // Re-filing moves an entry to the tail of its slot.
        for i in 10..13 {
            w.insert(&mut links, i, 3500);
        }
        w.remove(&mut links, 10);
        w.insert(&mut links, 10, 3500);
        let mut order = vec![];
        while let Some(i) = w.earliest() {
            order.push(i);
            w.remove(&mut links, i);
        }
        assert_eq!(order, vec![11, 12, 10]);
    }

    #[test]
    fn remove_unlinks_from_the_middle() {
        let mut links = vec![WheelLinks::default(); 3];
        let mut w = TimerWheel::new(8, 10);
        for i in 0..3 {
            w.insert(&mut links, i, 50);
        }
        w.remove(&mut links, 1);
        assert_eq!(w.len(), 2);
        assert_eq!(drain(&mut w, &mut links, 100), vec![0, 2]);
        assert_eq!(w.earliest(), None);
    }
}
