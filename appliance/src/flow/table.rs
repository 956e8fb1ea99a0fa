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
use super::record::DirCounters;
use super::wheel::{TimerWheel, WheelLinks, NIL};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use weir_plugin_api::FlowKeyV1;

/// One live flow. `E` is the caller's per-flow extension (decay-rate counters and the like):
/// plain data, copied in at creation.
#[derive(Clone, Copy, Debug)]
pub struct FlowEntry<E: Copy> {
    /// Oriented key: `src` is the sender of the first packet.
    pub key: FlowKeyV1,
    pub hash: u64,
    pub bidirectional: DirCounters,
    pub src2dst: DirCounters,
    pub dst2src: DirCounters,
    /// TCP FIN seen per direction (bit 0 src->dst, bit 1 dst->src), for optional teardown.
    pub fin_seen: u8,
    pub ext: E,
}

/// Outcome of [`FlowTable::lookup_or_insert`].
pub enum Lookup {
    /// An existing flow.
    Found(u32),
    /// A new flow was created for this packet.
    Created(u32),
    /// The table is full (the caller decides: evict and retry, or count the packet).
    Full,
}

/// An aligned, zeroed byte buffer that frees itself (the plugin state slab).
struct Slab {
    ptr: *mut u8,
    layout: Option<Layout>,
}

impl Slab {
    fn new(bytes: usize, align: usize) -> Slab {
        if bytes == 0 {
            return Slab {
                ptr: core::ptr::null_mut(),
                layout: None,
            };
        }
        let layout = Layout::from_size_align(bytes, align).expect("slab layout");
        // SAFETY: layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Slab {
            ptr,
            layout: Some(layout),
        }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: ptr was allocated with exactly this layout in Slab::new.
            unsafe { dealloc(self.ptr, layout) };
        }
    }
}

// SAFETY: the slab is plain bytes owned by one table, which one worker owns.
unsafe impl Send for Slab {}

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
}

pub struct FlowTable<E: Copy> {
    entries: Vec<FlowEntry<E>>,
    links: Vec<WheelLinks>,
    /// Slot of each entry in `index` (for O(1) removal), u32::MAX when free.
    index_pos: Vec<u32>,
    free: Vec<u32>,
    index: Box<[u64]>,
    mask: usize,
    slab: Slab,
    slab_stride: usize,
    pub wheel: TimerWheel,
    live: u32,
}

const EMPTY: u64 = 0;

#[inline]
fn tag(hash: u64) -> u64 {
    (hash >> 32) << 32
}

impl<E: Copy + Default> FlowTable<E> {
    pub fn new(cfg: TableConfig) -> FlowTable<E> {
        let cap = cfg.capacity.max(1) as usize;
        let index_len = (cap * 2).next_power_of_two();
        let align = cfg.slab_align.max(1).next_power_of_two();
        let stride = if cfg.slab_size == 0 {
            0
        } else {
            cfg.slab_size.div_ceil(align) * align
        };
        let blank = FlowEntry {
            key: FlowKeyV1::default(),
            hash: 0,
            bidirectional: DirCounters::default(),
            src2dst: DirCounters::default(),
            dst2src: DirCounters::default(),
            fin_seen: 0,
            ext: E::default(),
        };
        FlowTable {
            entries: vec![blank; cap],
            links: vec![WheelLinks::default(); cap],
            index_pos: vec![u32::MAX; cap],
            free: (0..cap as u32).rev().collect(),
            index: vec![EMPTY; index_len].into_boxed_slice(),
            mask: index_len - 1,
            slab: Slab::new(stride * cap, align),
            slab_stride: stride,
            wheel: TimerWheel::new(cfg.wheel_slots, cfg.wheel_granularity_ms),
            live: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.entries.len() as u32
    }

    pub fn len(&self) -> u32 {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes this table holds per flow: entry, wheel links, index share and plugin slab.
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
        #[cfg(target_arch = "x86_64")]
        {
            let p = &self.index[hash as usize & self.mask] as *const u64 as *const i8;
            // SAFETY: prefetch is a hint and never faults; p points into `index`.
            unsafe { core::arch::x86_64::_mm_prefetch(p, core::arch::x86_64::_MM_HINT_T0) };
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
        let Some(idx) = self.free.pop() else {
            return Lookup::Full;
        };
        self.index[pos] = want | (idx as u64 + 1);
        self.index_pos[idx as usize] = pos as u32;
        let e = &mut self.entries[idx as usize];
        e.key = *key;
        e.hash = hash;
        e.bidirectional = DirCounters::default();
        e.src2dst = DirCounters::default();
        e.dst2src = DirCounters::default();
        e.fin_seen = 0;
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
        let mut hole = self.index_pos[idx as usize] as usize;
        debug_assert!(hole != u32::MAX as usize, "removing a free entry");
        self.wheel.remove(&mut self.links, idx);
        self.index_pos[idx as usize] = u32::MAX;
        // Backward-shift deletion: move later members of the probe run into the hole when
        // their home slot is at or before it (cyclically).
        let mut pos = (hole + 1) & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                break;
            }
            let other = (slot as u32).wrapping_sub(1);
            let home = self.entries[other as usize].hash as usize & self.mask;
            let dist_home = pos.wrapping_sub(home) & self.mask;
            let dist_hole = pos.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = slot;
                self.index_pos[other as usize] = hole as u32;
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

    /// The flow to evict when the table is full (nearest to its filed deadline).
    pub fn eviction_candidate(&self) -> Option<u32> {
        self.wheel.earliest()
    }

    /// Every live entry (for the final flush).
    pub fn live_entries(&self) -> impl Iterator<Item = u32> + '_ {
        self.index_pos
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != u32::MAX)
            .map(|(i, _)| i as u32)
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
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let i = ((rng >> 33) % 1500) as u32;
            let k = if rng & 1 == 0 { key(i) } else { reversed(&key(i)) };
            let remove = (rng >> 20) % 3 == 0;
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
}
