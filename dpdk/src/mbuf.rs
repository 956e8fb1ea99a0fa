//! Owned packet buffers and fixed-size bursts of them.
//!
//! [`Mbuf`] owns one `rte_mbuf` and frees it exactly once, on drop; it is not `Clone`.
//! [`MbufBurst`] is a fixed array of mbuf pointers (no allocation per burst) that an RX queue
//! or a ring fills; it is read as a slice of [`Mbuf`] and frees what it still holds in one
//! `rte_pktmbuf_free_bulk` when cleared, refilled or dropped.

use std::ptr::NonNull;

use weir_dpdk_sys::rte_mbuf;

use crate::error::{Error, Result};

/// One owned mbuf. Everything weir writes is one segment; a port with scattered RX (or
/// net_pcap reading a frame larger than the data room) chains segments: `data()` is the first
/// segment, [`Mbuf::segments`] and [`Mbuf::copy_to`] read them all.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf {
    ptr: NonNull<rte_mbuf>,
}

// SAFETY: an mbuf is plain memory from a thread-safe mempool; ownership moves with the value.
unsafe impl Send for Mbuf {}
// SAFETY: shared references only read the mbuf.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must be a valid mbuf that nothing else owns or frees.
    pub unsafe fn from_raw(ptr: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf { ptr }
    }

    /// Gives up ownership: the caller (or DPDK, e.g. a TX burst) must free it.
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.ptr.as_ptr()
    }

    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.ptr.as_ref() }
    }

    /// Bytes of the first segment (`data_len` bytes from `buf_addr + data_off`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: the first segment holds data_len initialised bytes at buf_addr + data_off.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Ask for the mbuf's header ahead of reading it: both of its cache lines (the second
    /// holds the dynamic fields, where weir's capture metadata lives). An mbuf another core
    /// wrote (a feeder, a ring) is a miss per line; prefetching a few mbufs ahead overlaps them.
    #[inline(always)]
    pub fn prefetch_header(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.ptr.as_ptr() as *const i8;
            // SAFETY: prefetch is a hint and never faults; both addresses are inside the mbuf
            // header (struct rte_mbuf is two cache lines).
            unsafe {
                core::arch::x86_64::_mm_prefetch(p, core::arch::x86_64::_MM_HINT_T0);
                core::arch::x86_64::_mm_prefetch(p.add(64), core::arch::x86_64::_MM_HINT_T0);
            }
        }
    }

    /// Ask for the first cache line of the mbuf's data (reads the header: prefetch that first,
    /// a burst earlier).
    #[inline(always)]
    pub fn prefetch_data(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            let m = self.raw();
            let p = m.buf_addr.cast::<i8>().wrapping_add(m.data_off as usize);
            // SAFETY: prefetch is a hint and never faults, whatever the address.
            unsafe { core::arch::x86_64::_mm_prefetch(p, core::arch::x86_64::_MM_HINT_T0) };
        }
    }

    /// Length of the whole packet, all segments (for net_pcap: the captured length).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Length of the first segment.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.raw().data_len
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The bytes of each segment in order (one for a single-segment mbuf); their lengths add
    /// up to [`Mbuf::pkt_len`] for a well-formed chain.
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            next: self.ptr.as_ptr(),
            _owner: std::marker::PhantomData,
        }
    }

    /// Copies the whole packet, segment after segment, to the front of `dst`; returns the bytes
    /// copied (less than `pkt_len` only when `dst` is shorter).
    #[inline]
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let mut n = 0;
        for seg in self.segments() {
            let k = seg.len().min(dst.len() - n);
            dst[n..n + k].copy_from_slice(&seg[..k]);
            n += k;
            if n == dst.len() {
                break;
            }
        }
        n
    }

    /// Port the mbuf was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// Whether the data is an external buffer ([`crate::Mempool::alloc_attached`]), not the
    /// mbuf's own room.
    #[inline]
    pub fn is_external(&self) -> bool {
        self.ol_flags() & weir_dpdk_sys::WEIR_RTE_MBUF_F_EXTERNAL != 0
    }

    /// The NIC's RSS hash, when `RTE_MBUF_F_RX_RSS_HASH` says it is there.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & weir_dpdk_sys::WEIR_RTE_MBUF_F_RX_RSS_HASH == 0 {
            return None;
        }
        // SAFETY: hash.rss is a u32 at this offset inside the mbuf header.
        Some(unsafe { self.field::<u32>(weir_dpdk_sys::WEIR_MBUF_HASH_RSS_OFFSET as usize) })
    }

    /// Copies `bytes` to the end of the packet (`rte_pktmbuf_append`). An external buffer
    /// has no room after its bytes: appending to one fails.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u16::try_from(bytes.len()).map_err(|_| self.no_room(bytes.len()))?;
        // SAFETY: we own the mbuf; append returns room for `len` bytes or NULL.
        let dst = unsafe { weir_dpdk_sys::rte_pktmbuf_append(self.as_ptr(), len) };
        if dst.is_null() {
            return Err(self.no_room(bytes.len()));
        }
        // SAFETY: dst points to `len` writable bytes inside the mbuf's buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), bytes.len()) };
        Ok(())
    }

    fn no_room(&self, want: usize) -> Error {
        // SAFETY: reads the last segment's tailroom of an mbuf we own.
        let tail = unsafe { weir_dpdk_sys::rte_pktmbuf_tailroom(self.as_ptr()) };
        Error::NoMbufs(format!(
            "mbuf append of {want} bytes: only {tail} bytes of tailroom (raise the pool's data room)"
        ))
    }

    /// Reads a `T` at `offset` bytes from the start of the mbuf header.
    ///
    /// # Safety
    /// `offset..offset + size_of::<T>()` must lie in the mbuf header (e.g. a registered dynamic
    /// field) and hold a valid `T`.
    #[inline]
    pub(crate) unsafe fn field<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: per the caller's contract.
        unsafe {
            self.ptr
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<T>()
                .read_unaligned()
        }
    }

    /// Writes a `T` at `offset` bytes from the start of the mbuf header.
    ///
    /// # Safety
    /// As for [`Mbuf::field`].
    #[inline]
    pub(crate) unsafe fn set_field<T: Copy>(&mut self, offset: usize, v: T) {
        // SAFETY: per the caller's contract; we own the mbuf.
        unsafe {
            self.ptr
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<T>()
                .write_unaligned(v)
        }
    }

    #[inline]
    pub(crate) fn set_ol_flags(&mut self, flags: u64) {
        // SAFETY: we own the mbuf.
        unsafe { (*self.ptr.as_ptr()).ol_flags = flags }
    }
}

/// The segments of a (possibly chained) mbuf, from [`Mbuf::segments`].
pub struct Segments<'a> {
    next: *mut rte_mbuf,
    _owner: std::marker::PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: `next` is the owned head mbuf or a segment chained to it, alive while the
        // head is borrowed; each holds data_len initialised bytes at buf_addr + data_off.
        unsafe {
            let m = &*self.next;
            self.next = m.next;
            Some(std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            ))
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and this is the only place it is freed.
        unsafe { weir_dpdk_sys::rte_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

/// Up to `N` owned mbufs in a fixed array: what one `rx_burst` / ring dequeue returns.
///
/// Iterate it as `&[Mbuf]` (`burst.iter()`, `&burst[i]`). What it holds is freed in one call
/// when it is cleared, refilled by a receive, or dropped.
pub struct MbufBurst<const N: usize> {
    ptrs: [*mut rte_mbuf; N],
    len: usize,
}

// SAFETY: it owns its mbufs like a Vec<Mbuf> would.
unsafe impl<const N: usize> Send for MbufBurst<N> {}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MbufBurst<{N}>({} mbufs)", self.len)
    }
}

impl<const N: usize> MbufBurst<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        MbufBurst {
            ptrs: [std::ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when it holds `N` mbufs.
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// The mbufs held, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is a transparent NonNull<rte_mbuf>; the first `len` pointers are
        // non-null mbufs this burst owns.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, mutably (e.g. to write a dynamic field or append data).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as for as_slice; swapping an Mbuf in or out keeps one owner per mbuf.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the mbufs held.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Adds an mbuf at the end, or gives it back when full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let p = std::mem::replace(&mut self.ptrs[self.len], std::ptr::null_mut());
        // SAFETY: the pointer was owned by this burst and is no longer counted in it.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }

    /// Frees every mbuf held (one `rte_pktmbuf_free_bulk`).
    #[inline]
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: frees the `len` mbufs we own, then forgets them.
            unsafe {
                weir_dpdk_sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32)
            };
            self.len = 0;
        }
    }

    /// Takes every mbuf out, in order (e.g. to hand each one to a different ring); the burst
    /// is empty afterwards. Mbufs the iterator did not yield are freed when it is dropped.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        self.len = 0;
        Drain {
            ptrs: &mut self.ptrs,
            next: 0,
            end,
        }
    }

    /// Room after the held mbufs, for DPDK to write into; call `filled` after.
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> (*mut *mut rte_mbuf, usize) {
        // SAFETY: len <= N.
        (
            unsafe { self.ptrs.as_mut_ptr().add(self.len) },
            N - self.len,
        )
    }

    /// Counts `n` more mbufs written by DPDK into the spare room.
    #[inline]
    pub(crate) fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// Raw pointers of the held mbufs (still owned by the burst).
    #[inline]
    pub(crate) fn held_ptr(&mut self) -> *mut *mut rte_mbuf {
        self.ptrs.as_mut_ptr()
    }

    /// Forgets the first `n` mbufs (their ownership went elsewhere) and moves the rest down.
    #[inline]
    pub(crate) fn consumed_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// The in-order draining iterator of [`MbufBurst::drain`].
pub struct Drain<'a, const N: usize> {
    ptrs: &'a mut [*mut rte_mbuf; N],
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let p = std::mem::replace(&mut self.ptrs[self.next], std::ptr::null_mut());
        self.next += 1;
        // SAFETY: the first `end` pointers were non-null mbufs owned by the burst, which
        // forgot them when the drain began; each is handed out once.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.end - self.next, Some(self.end - self.next))
    }
}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let rest = self.end - self.next;
        if rest > 0 {
            // SAFETY: the pointers not yet yielded are still owned mbufs; free them once.
            unsafe {
                weir_dpdk_sys::rte_pktmbuf_free_bulk(
                    self.ptrs.as_mut_ptr().add(self.next),
                    rest as u32,
                )
            };
        }
    }
}

impl<const N: usize> std::ops::Deref for MbufBurst<N> {
    type Target = [Mbuf];
    fn deref(&self) -> &[Mbuf] {
        self.as_slice()
    }
}

impl<const N: usize> std::ops::DerefMut for MbufBurst<N> {
    fn deref_mut(&mut self) -> &mut [Mbuf] {
        self.as_mut_slice()
    }
}

impl<'a, const N: usize> IntoIterator for &'a MbufBurst<N> {
    type Item = &'a Mbuf;
    type IntoIter = std::slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}
