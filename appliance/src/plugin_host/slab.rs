//! The per-flow state slab: every plugin's state for one flow packed into one block.
//!
//! ```text
//! offset 0   u64  done mask: bit i set = plugin i asked for no more packets of this flow
//! offset 8   u64  skip mask: bit i set = plugin i is not selected for this flow's service
//!                  (never called for it; its features are NaN)
//! offset 16  plugin 0's state, at its state_align
//!            plugin 1's state, at its state_align
//!            ...
//! size       rounded up to slab_align() = max(16, every state_align)
//! ```
//!
//! The flow table owns the memory (one preallocated array of slabs); the host only computes
//! offsets and is handed `*mut u8` per flow. A stride of [`SlabLayout::stride`] (the size
//! rounded up to a 64-byte cache line) keeps neighbouring flows' slabs on separate lines.

/// Bytes of the host header at the start of every slab.
pub const SLAB_HEADER: usize = 16;
/// Most plugins a slab can track (bits of the done mask).
pub const MAX_PLUGINS: usize = 64;
const CACHE_LINE: usize = 64;

fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Where each plugin's state lives inside a slab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlabLayout {
    offsets: Vec<usize>,
    sizes: Vec<usize>,
    size: usize,
    align: usize,
}

impl SlabLayout {
    /// Lay out states given as (state_size, state_align) in plugin order. Alignments must be
    /// powers of two (the loader checks), at most [`MAX_PLUGINS`] entries.
    pub fn new(states: &[(u32, u32)]) -> SlabLayout {
        assert!(states.len() <= MAX_PLUGINS, "at most {MAX_PLUGINS} plugins");
        let mut off = SLAB_HEADER;
        let mut align = SLAB_HEADER;
        let mut offsets = Vec::with_capacity(states.len());
        let mut sizes = Vec::with_capacity(states.len());
        for &(size, a) in states {
            let a = (a.max(1)) as usize;
            debug_assert!(a.is_power_of_two());
            align = align.max(a);
            off = round_up(off, a);
            offsets.push(off);
            sizes.push(size as usize);
            off += size as usize;
        }
        SlabLayout {
            offsets,
            sizes,
            size: round_up(off, align),
            align,
        }
    }

    /// Bytes of one slab (a multiple of [`SlabLayout::slab_align`]).
    pub fn slab_size(&self) -> usize {
        self.size
    }

    /// Alignment every slab must have.
    pub fn slab_align(&self) -> usize {
        self.align
    }

    /// Suggested distance between consecutive slabs in the flow table's array: the size
    /// rounded up to a cache line (always a multiple of the alignment).
    pub fn stride(&self) -> usize {
        round_up(self.size, CACHE_LINE.max(self.align))
    }

    /// Offset of plugin `i`'s state inside a slab.
    pub fn offset(&self, i: usize) -> usize {
        self.offsets[i]
    }

    /// Bytes of plugin `i`'s state.
    pub fn state_size(&self, i: usize) -> usize {
        self.sizes[i]
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The done mask of a slab.
    ///
    /// # Safety
    /// `slab` points to a live slab of this layout, aligned to `slab_align()`.
    #[inline(always)]
    pub unsafe fn done_mask(slab: *const u8) -> u64 {
        // SAFETY: forwarded; the header starts every slab and is 8-aligned.
        unsafe { (slab as *const u64).read() }
    }

    /// The skip mask of a slab (plugins not selected for this flow).
    ///
    /// # Safety
    /// As for [`SlabLayout::done_mask`].
    #[inline(always)]
    pub unsafe fn skip_mask(slab: *const u8) -> u64 {
        // SAFETY: forwarded; the second header word is 8-aligned.
        unsafe { (slab as *const u64).add(1).read() }
    }

    /// Set a slab's done and skip masks at flow start: skipped plugins are also done, so the
    /// burst dispatch filters their packets out before any call.
    ///
    /// # Safety
    /// As for [`SlabLayout::set_done`].
    #[inline(always)]
    pub unsafe fn set_skip(slab: *mut u8, mask: u64) {
        // SAFETY: forwarded; both header words lie inside every slab.
        unsafe {
            *(slab as *mut u64) |= mask;
            *(slab as *mut u64).add(1) = mask;
        }
    }

    /// Set bit `i` of a slab's done mask.
    ///
    /// # Safety
    /// As for [`SlabLayout::done_mask`], and no other reference to the header is live.
    #[inline(always)]
    pub unsafe fn set_done(slab: *mut u8, i: usize) {
        // SAFETY: forwarded.
        unsafe { *(slab as *mut u64) |= 1u64 << i };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_aligned_and_disjoint() {
        let l = SlabLayout::new(&[(3, 1), (16, 8), (0, 1), (40, 32), (5, 4)]);
        assert_eq!(l.offset(0), 16);
        assert_eq!(l.offset(1), 24); // 19 rounded up to 8
        assert_eq!(l.offset(2), 40);
        assert_eq!(l.offset(3), 64); // 40 rounded up to 32
        assert_eq!(l.offset(4), 104);
        assert_eq!(l.slab_align(), 32);
        assert_eq!(l.slab_size(), 128); // 109 rounded up to 32
        assert_eq!(l.stride(), 128);
        for i in 0..l.len() {
            assert_eq!(l.offset(i) % [1, 8, 1, 32, 4][i], 0);
            if i + 1 < l.len() {
                assert!(l.offset(i) + l.state_size(i) <= l.offset(i + 1));
            }
        }
    }

    #[test]
    fn no_plugins_is_just_the_header() {
        let l = SlabLayout::new(&[]);
        assert_eq!((l.slab_size(), l.slab_align(), l.stride()), (16, 16, 64));
    }

    #[test]
    fn done_bits() {
        let mut buf = [0u64; 4];
        let p = buf.as_mut_ptr() as *mut u8;
        // SAFETY: buf is 32 aligned bytes, larger than the header.
        unsafe {
            SlabLayout::set_done(p, 0);
            SlabLayout::set_done(p, 63);
            assert_eq!(SlabLayout::done_mask(p), 1 | (1 << 63));
        }
    }
}
