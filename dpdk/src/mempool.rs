//! Packet mbuf pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is a cheap shared handle. The pool is freed when the last handle goes, but
//! only if every mbuf has come back: a pool with mbufs still out is deliberately leaked
//! (with the EAL kept alive), so an `Mbuf` can never point into freed memory.
//!
//! A pool made with [`Mempool::new_extbuf`] has no data room: its mbufs carry bytes that live
//! elsewhere ([`Mempool::alloc_attached`], DPDK's external buffers), e.g. a mapped capture.

use std::ptr::NonNull;
use std::sync::Arc;

use weir_dpdk_sys::rte_mempool;

use crate::eal::Eal;
use crate::error::{cstring, errno_text, rte_errno, Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};

/// Any NUMA socket (`SOCKET_ID_ANY`).
pub const SOCKET_ANY: i32 = weir_dpdk_sys::SOCKET_ID_ANY;

/// Default mbuf data room: 2048 bytes plus headroom (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = (2048 + weir_dpdk_sys::RTE_PKTMBUF_HEADROOM) as u16;

/// A shared handle on a pool of packet mbufs.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    ptr: NonNull<rte_mempool>,
    name: String,
    eal: Option<Eal>,
    /// Made by [`Mempool::new_extbuf`]: each mbuf has room for its external buffer's shared
    /// info in its private area.
    extbuf: bool,
}

// SAFETY: pktmbuf pools use DPDK's thread-safe (multi-producer/consumer) ring ops by default.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is valid until freed here.
        let in_use = unsafe { weir_dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no handle and no mbuf refers to the pool any more.
            unsafe { weir_dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        } else {
            // Mbufs are still out: keep the pool and the EAL mapped for them.
            std::mem::forget(self.eal.take());
        }
    }
}

impl Mempool {
    /// Creates a pool of `n` packet mbufs with a per-lcore cache of `cache` and `data_room`
    /// bytes of buffer each (headroom included; see [`DEFAULT_DATA_ROOM`]) on `socket_id`
    /// ([`SOCKET_ANY`] for any). `n` is best a power of two minus one.
    pub fn new_pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket_id: i32,
    ) -> Result<Mempool> {
        Self::create(name, n, cache, 0, data_room, socket_id)
    }

    /// Creates a pool of `n` mbufs without a data room, for bytes that live elsewhere
    /// ([`Mempool::alloc_attached`]); each mbuf's private area holds its
    /// `rte_mbuf_ext_shared_info`. Their buffers have no IOVA (`RTE_BAD_IOVA`): they travel
    /// through rings, never to a NIC.
    pub fn new_extbuf(name: &str, n: u32, cache: u32, socket_id: i32) -> Result<Mempool> {
        let priv_size = weir_dpdk_sys::WEIR_EXTBUF_PRIV_SIZE;
        Self::create(name, n, cache, priv_size, 0, socket_id)
    }

    fn create(
        name: &str,
        n: u32,
        cache: u32,
        priv_size: u16,
        data_room: u16,
        socket_id: i32,
    ) -> Result<Mempool> {
        let eal = Eal::require("Mempool::new_pktmbuf")?;
        let c_name = cstring("mempool name", name)?;
        // DPDK refuses a per-lcore cache whose flush threshold (1.5 x cache) exceeds the pool
        // (rte_mempool_create_empty, EINVAL): a small pool gets a smaller cache, not an error.
        let cache = cache.min(n.saturating_mul(2) / 3);
        // SAFETY: valid NUL-terminated name; DPDK validates the sizes.
        let p = unsafe {
            weir_dpdk_sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                n,
                cache,
                priv_size,
                data_room,
                socket_id,
            )
        };
        let ptr = NonNull::new(p).ok_or_else(|| {
            let errno = rte_errno();
            Error::Object {
                what: "mempool",
                name: name.to_owned(),
                errno,
                reason: format!(
                    "cannot create {n} mbufs of {data_room} bytes (cache {cache}, socket \
                     {socket_id}): {}",
                    errno_text(errno)
                ),
            }
        })?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                name: name.to_owned(),
                eal: Some(eal),
                extbuf: priv_size >= weir_dpdk_sys::WEIR_EXTBUF_PRIV_SIZE,
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The raw pool.
    pub fn as_ptr(&self) -> *mut rte_mempool {
        self.inner.ptr.as_ptr()
    }

    /// Number of mbufs the pool was created with.
    pub fn capacity(&self) -> u32 {
        // SAFETY: reads a field of a valid pool.
        unsafe { (*self.as_ptr()).size }
    }

    /// Mbufs currently handed out (`rte_mempool_in_use_count`).
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool.
        unsafe { weir_dpdk_sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// Mbufs available, lcore caches included (`rte_mempool_avail_count`).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool.
        unsafe { weir_dpdk_sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// One fresh mbuf (reset, empty), or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool; a non-null result is an mbuf we now own.
        let p = unsafe { weir_dpdk_sys::rte_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: freshly allocated, owned by nobody else.
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    /// A fresh mbuf whose one segment is `bytes` itself, not a copy (an external buffer,
    /// `rte_pktmbuf_attach_extbuf`); `None` when the pool is empty. Freeing the mbuf only
    /// detaches it: the bytes stay their owner's.
    ///
    /// # Panics
    /// If the pool was not made by [`Mempool::new_extbuf`], or `bytes` is longer than
    /// `u16::MAX` (an mbuf segment's limit).
    ///
    /// # Safety
    /// `bytes` must stay readable and unchanged until the mbuf is freed, by whichever thread
    /// frees it (the borrow ends here; the mbuf does not carry its lifetime). Nothing may
    /// write through the mbuf's data: the bytes may be read-only memory.
    #[inline]
    pub unsafe fn alloc_attached(&self, bytes: &[u8]) -> Option<Mbuf> {
        assert!(
            self.inner.extbuf,
            "mempool {:?}: alloc_attached needs a pool made by Mempool::new_extbuf",
            self.name()
        );
        let len = u16::try_from(bytes.len()).expect("an external buffer of at most 64 KiB");
        // SAFETY: valid pool whose mbufs have room for the shared info in their private area
        // (checked above); `bytes` outlives the mbuf per the caller's contract and is only
        // read through it. A non-null result is a fresh mbuf we own.
        let p = unsafe {
            weir_dpdk_sys::weir_pktmbuf_alloc_attached(
                self.as_ptr(),
                bytes.as_ptr().cast_mut().cast(),
                len,
            )
        };
        // SAFETY: freshly allocated, owned by nobody else.
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    /// Fills the free room of `burst` with `n` fresh mbufs, all or none
    /// (`rte_pktmbuf_alloc_bulk`). Fails if `n` exceeds the room or the pool has fewer.
    #[inline]
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut MbufBurst<N>, n: usize) -> Result<()> {
        let (dst, room) = burst.spare_ptr();
        if n > room {
            return Err(Error::NoMbufs(format!(
                "mempool {:?}: {n} mbufs asked for a burst with room for {room}",
                self.name()
            )));
        }
        // SAFETY: dst has room for n pointers; on success they are fresh mbufs we own.
        let ret = unsafe { weir_dpdk_sys::rte_pktmbuf_alloc_bulk(self.as_ptr(), dst, n as u32) };
        if ret != 0 {
            return Err(Error::NoMbufs(format!(
                "mempool {:?}: cannot allocate {n} mbufs ({} available of {})",
                self.name(),
                self.available(),
                self.capacity()
            )));
        }
        burst.filled(n);
        Ok(())
    }
}
