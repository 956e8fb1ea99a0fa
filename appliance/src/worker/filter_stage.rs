//! The filter stage: the capture filter (`crate::filter`) over a burst's frames, before
//! parsing. Frames it rejects are counted (`filtered`, with their packets and bytes) and go no
//! further: no parse, no flow, no plugin, no rate, and their time does not move the worker's
//! clock, so a filtered run gives the records of the capture `tcpdump -w` would write.
//!
//! The stage runs over the whole burst before parsing (its own row in the cost table, one TSC
//! read per burst); the frames it keeps wait in a [`FrameBuf`] on the stack.

use super::{RawPacket, Worker};
use crate::config::MAX_BURST;
use std::mem::MaybeUninit;

/// Up to [`MAX_BURST`] frames, on the stack: a burst's kept frames between the filter and the
/// parse. Not initialised up front (a `[RawPacket; 512]` would be written in full, 16 KiB,
/// on every burst), so the few lines that touch it are `unsafe`.
pub(super) struct FrameBuf<'a> {
    frames: [MaybeUninit<RawPacket<'a>>; MAX_BURST],
    len: usize,
}

impl<'a> FrameBuf<'a> {
    #[inline]
    pub(super) fn new() -> Self {
        FrameBuf {
            frames: [const { MaybeUninit::uninit() }; MAX_BURST],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, f: RawPacket<'a>) {
        // The caller stops at MAX_BURST frames; an index past it panics, never writes beyond.
        self.frames[self.len].write(f);
        self.len += 1;
    }

    #[inline]
    pub(super) fn as_slice(&self) -> &[RawPacket<'a>] {
        // SAFETY: the first `len` elements were written by `push` (and RawPacket is Copy, with
        // nothing to drop); MaybeUninit<T> has T's layout.
        unsafe {
            std::slice::from_raw_parts(self.frames.as_ptr().cast::<RawPacket<'a>>(), self.len)
        }
    }
}

impl Worker {
    /// Take up to [`MAX_BURST`] frames from `frames`, keep in `kept` those their source's
    /// filter accepts, count the others; returns how many frames were taken.
    ///
    /// The burst's frames are gathered first, each one's first bytes prefetched, then
    /// filtered: the filter is the first to read a frame's bytes, and this way the cache misses
    /// of a burst overlap instead of each stalling its packet's program.
    pub(super) fn filter_stage<'a, I>(&mut self, frames: &mut I, kept: &mut FrameBuf<'a>) -> u32
    where
        I: Iterator<Item = RawPacket<'a>>,
    {
        let mut all = FrameBuf::new();
        let taken = gather(frames, &mut all);
        for &f in all.as_slice() {
            let pass = match self.filters.get(f.source) {
                Some(filter) => filter.matches(f.data, f.wire_len),
                None => true,
            };
            if pass {
                kept.push(f);
            } else {
                self.stats.packets += 1;
                self.stats.bytes += f.wire_len as u64;
                self.stats.filtered += 1;
            }
        }
        taken
    }
}

/// Move up to [`MAX_BURST`] frames from `frames` into `buf`, asking for each one's first cache
/// line as it goes; returns how many were taken.
pub(super) fn gather<'a, I>(frames: &mut I, buf: &mut FrameBuf<'a>) -> u32
where
    I: Iterator<Item = RawPacket<'a>>,
{
    for f in frames.by_ref() {
        prefetch(f.data);
        buf.push(f);
        if buf.len == MAX_BURST {
            break;
        }
    }
    buf.len as u32
}

/// Ask for the first cache line of a frame (headers through TCP/UDP ports on most frames).
#[inline(always)]
fn prefetch(data: &[u8]) {
    crate::prefetch::line(data.as_ptr(), true);
}
