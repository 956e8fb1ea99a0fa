//! The per-worker flow table: preallocated, bounded, shared-nothing.
//!
//! Entries live in one array allocated at start (`capacity` flows), with a free list. The index
//! is an open-addressing hash table with linear probing over `u64` slots that hold a 32-bit hash
//! tag next to the entry number, so a lookup touches the entry only when the tag matches.
//! Deletion shifts the following run back (no tombstones), so probe lengths stay short however
//! long the table runs. Each entry also owns a fixed-size, cache-line-aligned slice of the
//! plugins' state slab.
//!
//! Nothing here allocates after [`FlowTable::new`].

use super::key::{flow_hash, same_flow};
pub(super) use super::mapped::advise_huge;
use super::mapped::{Mapped, Memory};
use super::record::DirCounters;
use super::wheel::{TimerWheel, WheelLinks, NIL};
use crate::prefetch;
use bytemuck::{zeroed_vec, Zeroable};

use weir_plugin_api::FlowKeyV1;

/// One live flow. `E` is the caller's per-flow extension (decay-rate counters and the like):
/// plain data, reset to its default at creation.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct FlowEntry<E: Copy> {
    /// Oriented key: `src` is the sender of the first packet.
    pub key: FlowKeyV1,
    pub hash: u64,
    // Both directions together are not stored: see [`FlowEntry::bidirectional`].
    pub src2dst: DirCounters,
    pub dst2src: DirCounters,
    /// Last, so small fields of `E` can share its tail (a `u8` here would pad to 8 bytes).
    pub ext: E,
}

impl<E: Copy> FlowEntry<E> {
    /// Counters of both directions, derived: the first packet is src->dst by definition and
    /// packet time never goes backwards, so `first_seen` is src2dst's and `last_seen` the later
    /// of the two directions' (a direction without packets has 0). Storing them took 32 bytes
    /// per flow and a third counter update per packet.
    #[inline]
    pub fn bidirectional(&self) -> DirCounters {
        DirCounters {
            first_seen_ms: self.src2dst.first_seen_ms,
            last_seen_ms: self.src2dst.last_seen_ms.max(self.dst2src.last_seen_ms),
            packets: self.src2dst.packets + self.dst2src.packets,
            bytes: self.src2dst.bytes + self.dst2src.bytes,
        }
    }
}

// SAFETY: every field is an integer, an array of integers, or `E`, which is Zeroable itself;
// the all-zero entry is a valid (free) entry.
unsafe impl<E: Copy + Zeroable> Zeroable for FlowEntry<E> {}

/// Outcome of [`FlowTable::lookup_or_insert`].
pub enum Lookup {
    /// An existing flow.
    Found(u32),
    /// A new flow was created for this packet.
    Created(u32),
    /// The table is full (the caller decides: evict and retry, or count the packet).
    Full,
}

/// Sizes a flow table is built with.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    pub capacity: u32,
    /// Bytes of plugin state per flow (0 without plugins).
    pub slab_size: usize,
    /// Alignment of each flow's slab (a power of two).
    pub slab_align: usize,
    pub wheel_slots: usize,
    pub wheel_granularity_ms: u64,
    /// Take the arrays of 2 MiB or more from the system's reserved hugepage pool when it has
    /// room (for a table made resident at start: `flows.reserved_hugepages`).
    pub reserved_hugepages: bool,
}

pub struct FlowTable<E: Copy> {
    entries: Mapped<FlowEntry<E>>,
    links: Vec<WheelLinks>,
    /// Slot of each entry in `index` plus one (for O(1) removal); 0 when free.
    index_pos: Vec<u32>,
    /// Entries freed since start, reused first.
    free: Vec<u32>,
    /// Entries never used yet start here: the big arrays are only touched as flows arrive
    /// (they come from zeroed, lazily mapped memory), so a large table starts instantly.
    fresh: u32,
    index: Mapped<u64>,
    mask: usize,
    slab: Mapped<u8>,
    slab_stride: usize,
    pub wheel: TimerWheel,
    live: u32,
}

const EMPTY: u64 = 0;

/// An index slot holds the low 32 bits of its flow's hash above the entry number: a lookup
/// compares them before reading the entry, and a removal finds each later slot's home
/// position from the slot alone (the home is the hash's low bits), without reading that
/// slot's entry, a cache miss per slot of the probe run on a table larger than the cache.
#[inline]
fn tag(hash: u64) -> u64 {
    hash << 32
}

impl<E: Copy + Default + Zeroable> FlowTable<E> {
    pub fn new(cfg: TableConfig) -> FlowTable<E> {
        let cap = cfg.capacity.max(1) as usize;
        let index_len = (cap * 2).next_power_of_two();
        // Page alignment of the mapping covers any state alignment up to 4096.
        let align = cfg.slab_align.clamp(1, 4096).next_power_of_two();
        let stride = if cfg.slab_size == 0 {
            0
        } else {
            cfg.slab_size.div_ceil(align) * align
        };
        // EMPTY is 0, so the zeroed mapping is an empty index.
        const _: () = assert!(EMPTY == 0);
        FlowTable {
            entries: Mapped::new(cap, cfg.reserved_hugepages),
            // A zeroed link is never read: an entry is filed on the wheel when it is created.
            links: zeroed_vec(cap),
            index_pos: zeroed_vec(cap),
            free: Vec::new(),
            fresh: 0,
            index: Mapped::new(index_len, cfg.reserved_hugepages),
            mask: index_len - 1,
            slab: Mapped::new(stride * cap, cfg.reserved_hugepages),
            slab_stride: stride,
            wheel: TimerWheel::new(cfg.wheel_slots, cfg.wheel_granularity_ms),
            live: 0,
        }
    }

    /// Where the entries' memory came from (the index and the plugin state slab come from the
    /// same place when they are 2 MiB or more, but for a reserved pool that ran short).
    pub fn memory(&self) -> Memory {
        self.entries.memory()
    }

    /// Bytes of the table's arrays on the reserved hugepage pool.
    pub fn reserved_hugepage_bytes(&self) -> usize {
        let on = |m: Memory, bytes: usize| {
            if m == Memory::ReservedHugepages {
                bytes
            } else {
                0
            }
        };
        on(
            self.entries.memory(),
            self.entries.len() * core::mem::size_of::<FlowEntry<E>>(),
        ) + on(self.index.memory(), self.index.len() * 8)
            + on(self.slab.memory(), self.slab.len())
    }

    pub fn capacity(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Make the whole table resident before the first packet: the entries, the index, the
    /// plugin state slab and the side arrays. Without it, each first use of a page costs a
    /// fault (and zeroing a 2 MiB huge page) inside a packet's lookup: on a trace with
    /// 200 k new flows that was about a fifth of the worker's time. Costs the table's memory
    /// at start (`bytes_per_flow() * capacity`) and a few tens of ms per 100 MB.
    pub fn prefault(&mut self) {
        self.entries.prefault();
        self.index.prefault();
        self.slab.prefault();
        // The side arrays come from the allocator's zeroed (lazily mapped) memory: one write
        // of their current value per page.
        fn touch<T: Copy>(v: &mut [T]) {
            let step = (4096 / core::mem::size_of::<T>().max(1)).max(1);
            for i in (0..v.len()).step_by(step) {
                // SAFETY: i < v.len(); rewriting the value it holds.
                unsafe { core::ptr::write_volatile(&mut v[i], v[i]) };
            }
        }
        touch(&mut self.links);
        touch(&mut self.index_pos);
    }

    pub fn len(&self) -> u32 {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes this table holds per flow: entry, wheel links, index share and plugin slab (the
    /// worker adds what it keeps beside the table, see `Worker::bytes_per_flow`).
    pub fn bytes_per_flow(&self) -> usize {
        core::mem::size_of::<FlowEntry<E>>()
            + core::mem::size_of::<WheelLinks>()
            + 4
            + 4
            + self.index.len() * 8 / self.entries.len()
            + self.slab_stride
    }

    #[inline]
    pub fn entry(&self, idx: u32) -> &FlowEntry<E> {
        &self.entries[idx as usize]
    }

    #[inline]
    pub fn entry_mut(&mut self, idx: u32) -> &mut FlowEntry<E> {
        &mut self.entries[idx as usize]
    }

    /// The plugin state slab of entry `idx` (null when there is no plugin state).
    #[inline]
    pub fn slab_ptr(&self, idx: u32) -> *mut u8 {
        if self.slab_stride == 0 {
            return core::ptr::null_mut();
        }
        // SAFETY: idx < capacity, so the offset stays inside the slab allocation.
        unsafe { self.slab.ptr.add(idx as usize * self.slab_stride) }
    }

    /// Prefetch the index slot of a hash (a burst looks up all its packets' slots first).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch::line(
            &self.index[hash as usize & self.mask] as *const u64 as *const u8,
            true,
        );
    }

    /// Prefetch every line of entry `idx`'s plugin slab into L2, once its packet is counted:
    /// the plugins run over the whole burst a stage later, each on its own part of the slab,
    /// and on a table larger than the cache each part was a miss per packet per plugin.
    #[inline]
    pub fn prefetch_slab(&self, idx: u32) {
        let s = self.slab.ptr.wrapping_add(idx as usize * self.slab_stride);
        for off in (0..self.slab_stride).step_by(64) {
            prefetch::line(s.wrapping_add(off), false);
        }
    }

    /// Prefetch the entry a hash's index slot points to (the slot among those from its home to
    /// the end of the home's cache line whose tag matches) and the first line of its plugin
    /// slab: the second step of a burst's lookups (after [`FlowTable::prefetch`] brought the
    /// line in), so the entry's cache lines arrive while the packets before it are counted.
    /// Reads only that line of the index (at half load, a flow sits past its home slot about
    /// a third of the time, and almost always within the line); a miss here only costs what
    /// the lookup would have paid anyway.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        let want = tag(hash);
        let home = hash as usize & self.mask;
        // Slots per cache line: 8 (the index is page-aligned).
        let line_end = (home | 7).min(self.mask);
        for pos in home..=line_end {
            let slot = self.index[pos];
            if slot == EMPTY {
                return;
            }
            if slot & 0xFFFF_FFFF_0000_0000 == want {
                self.prefetch_entry_lines((slot as u32).wrapping_sub(1) as usize);
                return;
            }
        }
    }

    /// When the table is full, prefetch the entries and plugin slabs of the next `n` flows an
    /// eviction would take (the first of the wheel's earliest slot, in order): a burst asks for
    /// as many as it will likely start flows, before counting any, so the victims' misses
    /// (their entry to check, then their whole slab for the plugins' records) overlap the
    /// burst's work instead of stalling each new flow in turn.
    pub fn prefetch_victims(&self, n: usize) {
        if n == 0 || !self.free.is_empty() || (self.fresh as usize) < self.entries.len() {
            return;
        }
        let Some(mut idx) = self.wheel.earliest() else {
            return;
        };
        for _ in 0..n {
            if idx == NIL {
                break;
            }
            self.prefetch_entry_lines(idx as usize);
            self.prefetch_slab(idx);
            idx = self.links[idx as usize].next;
        }
    }

    /// Prefetch the cache lines entry `idx` spans, and its slab's first line.
    #[inline(always)]
    fn prefetch_entry_lines(&self, idx: usize) {
        let Some(e) = self.entries.get(idx) else {
            return;
        };
        prefetch::lines(
            (e as *const FlowEntry<E>).cast(),
            core::mem::size_of::<FlowEntry<E>>(),
        );
        if self.slab_stride != 0 {
            // The slab's first line too: the plugin host reads every packet's slab header (the
            // done mask) in one pass before the first plugin runs, and that pass was half of
            // the host's dispatch samples.
            prefetch::line(self.slab.ptr.wrapping_add(idx * self.slab_stride), true);
        }
    }

    /// Find the flow of `key` (either direction) or create it, oriented as `key`.
    /// `deadline_ms` files a created flow on the wheel.
    #[inline]
    pub fn lookup_or_insert(&mut self, key: &FlowKeyV1, hash: u64, deadline_ms: u64) -> Lookup {
        let want = tag(hash);
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                break;
            }
            if slot & 0xFFFF_FFFF_0000_0000 == want {
                let idx = (slot as u32).wrapping_sub(1);
                let e = &self.entries[idx as usize];
                if e.hash == hash && same_flow(&e.key, key) {
                    return Lookup::Found(idx);
                }
            }
            pos = (pos + 1) & self.mask;
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None if (self.fresh as usize) < self.entries.len() => {
                self.fresh += 1;
                self.fresh - 1
            }
            None => return Lookup::Full,
        };
        self.index[pos] = want | (idx as u64 + 1);
        self.index_pos[idx as usize] = pos as u32 + 1;
        let e = &mut self.entries[idx as usize];
        e.key = *key;
        e.hash = hash;
        e.src2dst = DirCounters::default();
        e.dst2src = DirCounters::default();
        e.ext = E::default();
        self.wheel.insert(&mut self.links, idx, deadline_ms);
        self.live += 1;
        Lookup::Created(idx)
    }

    /// Hash and look up in one step.
    pub fn find(&self, key: &FlowKeyV1) -> Option<u32> {
        let hash = flow_hash(key);
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                return None;
            }
            let idx = (slot as u32).wrapping_sub(1);
            let e = &self.entries[idx as usize];
            if e.hash == hash && same_flow(&e.key, key) {
                return Some(idx);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Remove entry `idx` from the index, the wheel and the table.
    pub fn remove(&mut self, idx: u32) {
        debug_assert!(self.index_pos[idx as usize] != 0, "removing a free entry");
        let mut hole = self.index_pos[idx as usize] as usize - 1;
        self.wheel.remove(&mut self.links, idx);
        self.index_pos[idx as usize] = 0;
        // Backward-shift deletion: move later members of the probe run into the hole when
        // their home slot is at or before it (cyclically).
        let mut pos = (hole + 1) & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                break;
            }
            let other = (slot as u32).wrapping_sub(1);
            let home = if self.mask <= u32::MAX as usize {
                (slot >> 32) as usize & self.mask
            } else {
                // An index over 2^32 slots: the tag does not hold every bit of the home.
                self.entries[other as usize].hash as usize & self.mask
            };
            let dist_home = pos.wrapping_sub(home) & self.mask;
            let dist_hole = pos.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = slot;
                self.index_pos[other as usize] = hole as u32 + 1;
                hole = pos;
            }
            pos = (pos + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
        self.free.push(idx);
        self.live -= 1;
    }

    /// File `idx` again on the wheel under a new deadline (after it came due but is not over).
    pub fn refile(&mut self, idx: u32, deadline_ms: u64) {
        self.wheel.insert(&mut self.links, idx, deadline_ms);
    }

    /// The next list of entries due on the wheel at `now_ms` (see [`TimerWheel::next_due`]);
    /// returns its entries one by one through `out` (cleared first). No allocation once `out`
    /// has grown to the largest slot.
    pub fn due(&mut self, now_ms: u64, out: &mut Vec<u32>) -> bool {
        out.clear();
        match self.wheel.next_due(&mut self.links, now_ms) {
            None => false,
            Some(mut i) => {
                while i != NIL {
                    out.push(i);
                    i = self.links[i as usize].next;
                }
                true
            }
        }
    }

    /// The flow to evict when the table is full: the least recently active one, to within one
    /// wheel slot. `idle_deadline` gives an entry's idle deadline (last packet plus the idle
    /// timeout). A flow first in line whose idle deadline is not the one it was filed under
    /// (it saw packets since, or it was filed under its active deadline) is filed again under
    /// its idle deadline, and the next one is looked at. Each such re-filing follows a packet
    /// that moved the deadline (or happens once per flow, for the active deadline), so this is
    /// O(1) amortised; and a flow filed again here is never filed again before it sees another
    /// packet, so the loop ends. Expiry (see [`FlowTable::due`]) is unchanged by this: an entry
    /// filed late under its idle deadline is still ended as active when it comes due.
    pub fn eviction_candidate(
        &mut self,
        idle_deadline: impl Fn(&FlowEntry<E>) -> u64,
    ) -> Option<u32> {
        loop {
            let idx = self.wheel.earliest()?;
            let at = idle_deadline(&self.entries[idx as usize]);
            if self.wheel.filed(&self.links, idx) == at as u32 {
                return Some(idx);
            }
            self.wheel.remove(&mut self.links, idx);
            self.wheel.insert(&mut self.links, idx, at);
        }
    }

    /// The longest probe run of the index: the most slots any lookup of a live flow walks
    /// past its home slot. A diagnostic (it reads the whole index), for tests and tools.
    pub fn max_probe(&self) -> usize {
        let mut worst = 0;
        for (pos, &slot) in self.index.iter().enumerate() {
            if slot == EMPTY {
                continue;
            }
            let idx = (slot as u32).wrapping_sub(1);
            let home = self.entries[idx as usize].hash as usize & self.mask;
            worst = worst.max(pos.wrapping_sub(home) & self.mask);
        }
        worst
    }

    /// Every live entry (for the final flush).
    pub fn live_entries(&self) -> impl Iterator<Item = u32> + '_ {
        self.index_pos
            .iter()
            .enumerate()
            .take(self.fresh as usize)
            .filter(|(_, p)| **p != 0)
            .map(|(i, _)| i as u32)
    }

    /// Prefetch every line of entry `idx` and, with `slab`, of its plugin slab: what making
    /// its record reads (the plugins' emits read all their state). Called some flows ahead
    /// where the flows to end are known (the final flush, a wheel slot's due list), and at
    /// the start of ending any one flow, so a cold flow's ~17 lines are fetched together
    /// rather than one plugin's state after another's.
    #[inline]
    pub fn prefetch_flow(&self, idx: u32, slab: bool) {
        let e = self.entries.ptr.wrapping_add(idx as usize);
        prefetch::lines(e.cast(), core::mem::size_of::<FlowEntry<E>>());
        if slab {
            prefetch::lines(self.slab_ptr(idx), self.slab_stride);
        }
    }

    /// Prefetch the index slot [`FlowTable::remove`] starts from (reads `index_pos[idx]`).
    #[inline]
    pub fn prefetch_unlink(&self, idx: u32) {
        if let Some(&p) = self.index_pos.get(idx as usize) {
            if let Some(slot) = self.index.get((p as usize).wrapping_sub(1)) {
                prefetch::lines((slot as *const u64).cast(), 8);
            }
        }
    }

    /// Free every entry at once, as if each had been removed: the end of the final flush,
    /// once every live flow's record is made. Removing them one by one read a random index
    /// line and the wheel neighbours' links per flow (most of ending a cold flow's own time);
    /// this writes the index (whole when it is dense, else only the live slots) and the side
    /// arrays in order. Entries are taken from the first again.
    pub fn clear(&mut self) {
        let used = self.fresh as usize;
        if self.live as usize >= self.index.len() / 8 {
            self.index.fill(EMPTY);
        } else {
            for &p in &self.index_pos[..used] {
                if p != 0 {
                    self.index[p as usize - 1] = EMPTY;
                }
            }
        }
        self.index_pos[..used].fill(0);
        self.links[..used].fill(WheelLinks::default());
        self.wheel.clear();
        self.free.clear();
        self.fresh = 0;
        self.live = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::reversed;
    use std::collections::HashMap;

    fn cfg(cap: u32) -> TableConfig {
        TableConfig {
            capacity: cap,
            slab_size: 24,
            slab_align: 8,
            wheel_slots: 64,
            wheel_granularity_ms: 10,
            reserved_hugepages: false,
        }
    }

    fn key(i: u32) -> FlowKeyV1 {
        let mut k = FlowKeyV1 {
            protocol: 17,
            ip_version: 4,
            src_port: (i % 60000) as u16,
            dst_port: 53,
            ..Default::default()
        };
        k.src_ip[..4].copy_from_slice(&i.to_be_bytes());
        k.dst_ip[..4].copy_from_slice(&[8, 8, 8, 8]);
        k
    }

    #[test]
    fn insert_find_remove_against_a_hashmap() {
        // A model-based test: a std HashMap is the oracle for membership.
        let mut t: FlowTable<()> = FlowTable::new(cfg(1000));
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut rng = 12345u64;
        for step in 0..200_000u32 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = ((rng >> 33) % 1500) as u32;
            let k = if rng & 1 == 0 {
                key(i)
            } else {
                reversed(&key(i))
            };
            let remove = (rng >> 20).is_multiple_of(3);
            match (model.get(&i).copied(), remove) {
                (Some(idx), true) => {
                    assert_eq!(t.find(&k), Some(idx));
                    t.remove(idx);
                    model.remove(&i);
                    assert_eq!(t.find(&k), None);
                }
                (Some(idx), false) => match t.lookup_or_insert(&k, flow_hash(&k), step as u64) {
                    Lookup::Found(f) => assert_eq!(f, idx),
                    _ => panic!("lost flow {i}"),
                },
                (None, _) => match t.lookup_or_insert(&k, flow_hash(&k), step as u64) {
                    Lookup::Created(idx) => {
                        model.insert(i, idx);
                    }
                    Lookup::Full => assert_eq!(model.len(), 1000),
                    Lookup::Found(_) => panic!("found a removed flow {i}"),
                },
            }
            assert_eq!(t.len() as usize, model.len());
        }
        assert_eq!(t.live_entries().count(), model.len());
    }

    #[test]
    fn eviction_takes_the_least_recently_active_flow() {
        const IDLE: u64 = 1000;
        let mut t: FlowTable<()> = FlowTable::new(cfg(8));
        let idle_at = |e: &FlowEntry<()>| e.bidirectional().last_seen_ms + IDLE;
        let mut idx = vec![];
        for i in 0..8u32 {
            let now = i as u64;
            let k = key(i);
            match t.lookup_or_insert(&k, flow_hash(&k), now + IDLE) {
                Lookup::Created(x) => {
                    let e = t.entry_mut(x);
                    e.src2dst.first_seen_ms = now;
                    e.src2dst.last_seen_ms = now;
                    idx.push(x);
                }
                _ => panic!("not created"),
            }
        }
        // Flows 0 and 1 were created first but saw packets since (0 later than 1).
        t.entry_mut(idx[0]).dst2src.last_seen_ms = 50;
        t.entry_mut(idx[1]).src2dst.last_seen_ms = 40;
        // Oldest activity first: 2..7, then 1 (last seen 40), then 0 (last seen 50).
        let mut order = vec![];
        while let Some(v) = t.eviction_candidate(idle_at) {
            order.push(v);
            t.remove(v);
        }
        let want: Vec<u32> = [2, 3, 4, 5, 6, 7, 1, 0].iter().map(|&i| idx[i]).collect();
        assert_eq!(order, want);
    }

    #[test]
    fn crafted_collisions_do_not_survive_the_process_key() {
        use crate::flow::key::{flow_hash_keyed, HashKey};
        // An outsider who knows the hash function and a key (here a fixed one, as the hash
        // was before it was keyed) picks tuples whose home slots all fall in the first 16 of
        // an index of 2048: a table of 1024 flows filled with them probes hundreds deep.
        let fixed = HashKey([0x5eed; 6]);
        let mut t: FlowTable<()> = FlowTable::new(cfg(1024));
        let mask = 2047u64;
        let crafted: Vec<FlowKeyV1> = (0..u32::MAX)
            .map(key)
            .filter(|k| flow_hash_keyed(k, &fixed) & mask < 16)
            .take(1000)
            .collect();
        for k in &crafted {
            assert!(matches!(
                t.lookup_or_insert(k, flow_hash_keyed(k, &fixed), 0),
                Lookup::Created(_)
            ));
        }
        let crafted_probe = t.max_probe();
        assert!(
            crafted_probe > 900,
            "the crafted tuples collide: {crafted_probe}"
        );
        // The same tuples under the process's random key, as the worker hashes them.
        let mut t: FlowTable<()> = FlowTable::new(cfg(1024));
        for k in &crafted {
            assert!(matches!(
                t.lookup_or_insert(k, flow_hash(k), 0),
                Lookup::Created(_)
            ));
            assert!(t.find(k).is_some());
        }
        let keyed_probe = t.max_probe();
        eprintln!("max probe: {crafted_probe} crafted against a known key, {keyed_probe} keyed");
        // 1000 random keys in 2048 slots (load 0.49): the longest run is a few dozen at worst.
        assert!(keyed_probe < 64, "max probe {keyed_probe}");
    }

    /// The prefetches of entries whose first line starts before them (160-byte entries: every
    /// other one) once subtracted that distance from the entry's address unchecked: an
    /// overflow panic in builds with overflow checks (found by the flow_table fuzz target).
    /// Every entry's and victim's prefetch runs here.
    #[test]
    fn prefetches_cover_every_entry_alignment() {
        let mut t: FlowTable<[u64; 14]> = FlowTable::new(cfg(64));
        for i in 0..64u32 {
            let k = key(i);
            assert!(matches!(
                t.lookup_or_insert(&k, flow_hash(&k), i as u64),
                Lookup::Created(_)
            ));
            t.prefetch_entry(flow_hash(&k));
        }
        t.prefetch_victims(64);
        assert_ne!(core::mem::size_of::<FlowEntry<[u64; 14]>>() % 64, 0);
    }

    #[test]
    fn slabs_are_aligned_and_disjoint() {
        let t: FlowTable<()> = FlowTable::new(TableConfig {
            slab_align: 64,
            slab_size: 100,
            ..cfg(10)
        });
        let a = t.slab_ptr(0) as usize;
        let b = t.slab_ptr(1) as usize;
        assert_eq!(a % 64, 0);
        assert_eq!(b - a, 128);
    }

    #[test]
    fn clear_leaves_the_table_as_removing_every_flow_does() {
        // Dense (the whole index is rewritten) and sparse (only the live slots) tables, each
        // against a twin whose flows are removed one by one: the same flows are found, timed
        // out and created afterwards.
        for live in [900u32, 60] {
            let mut cleared: FlowTable<()> = FlowTable::new(cfg(1000));
            let mut removed: FlowTable<()> = FlowTable::new(cfg(1000));
            for t in [&mut cleared, &mut removed] {
                for i in 0..live {
                    let k = key(i);
                    assert!(matches!(
                        t.lookup_or_insert(&k, flow_hash(&k), 100 + i as u64),
                        Lookup::Created(_)
                    ));
                }
            }
            cleared.clear();
            for idx in removed.live_entries().collect::<Vec<_>>() {
                removed.remove(idx);
            }
            for t in [&mut cleared, &mut removed] {
                assert!(t.is_empty() && t.wheel.is_empty());
                assert_eq!(t.live_entries().count(), 0);
                assert_eq!(t.eviction_candidate(|_| 0), None);
                assert!((0..live).all(|i| t.find(&key(i)).is_none()));
                // Refilled to capacity: every flow is created once and found again.
                for i in 1000..2000u32 {
                    let k = key(i);
                    assert!(matches!(
                        t.lookup_or_insert(&k, flow_hash(&k), 5000),
                        Lookup::Created(_)
                    ));
                }
                let k = key(5000);
                assert!(matches!(
                    t.lookup_or_insert(&k, flow_hash(&k), 5000),
                    Lookup::Full
                ));
                assert!((1000..2000).all(|i| t.find(&key(i)).is_some()));
                let mut due = Vec::new();
                let mut n = 0;
                while t.due(10_000, &mut due) {
                    n += due.len();
                }
                assert_eq!(n, 1000, "only the new flows are on the wheel");
            }
        }
    }
}
