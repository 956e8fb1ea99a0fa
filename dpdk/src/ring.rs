//! Single-producer/single-consumer rings of mbufs (`rte_ring`), the hand-off between a feeder
//! thread and an ethdev made with `Port::from_rings`.
//!
//! Enqueue and dequeue move ownership of mbufs. A [`Ring`] handle is the only user of its
//! side: once bound as a port's RX ring, the port dequeues and the handle may only enqueue
//! (and the other way round for a TX ring). Mbufs left in a ring are freed with it.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use weir_dpdk_sys::rte_ring;

use crate::eal::Eal;
use crate::error::{cstring, errno_text, rte_errno, Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};

const FREE: u8 = 0;
const PORT_RX: u8 = 1;
const PORT_TX: u8 = 2;

/// An SP/SC ring of mbuf pointers.
#[derive(Debug)]
pub struct Ring {
    pub(crate) inner: Arc<RingInner>,
}

#[derive(Debug)]
pub(crate) struct RingInner {
    pub(crate) ptr: NonNull<rte_ring>,
    name: String,
    role: AtomicU8,
    port: Mutex<String>,
    _eal: Eal,
}

// SAFETY: an rte_ring is shared memory designed for cross-thread use; roles keep one producer
// and one consumer.
unsafe impl Send for RingInner {}
// SAFETY: as above.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        let mut burst = MbufBurst::<64>::new();
        loop {
            let (dst, room) = burst.spare_ptr();
            // SAFETY: the last user is gone; dequeued mbufs become owned by `burst`.
            let n = unsafe {
                weir_dpdk_sys::rte_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    dst.cast(),
                    room as u32,
                    std::ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            burst.filled(n);
            burst.clear();
        }
        // SAFETY: empty and unused.
        unsafe { weir_dpdk_sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

impl Ring {
    /// Creates a ring holding up to `count` mbufs (any count: `RING_F_EXACT_SZ`) on
    /// `socket_id`, single-producer and single-consumer.
    pub fn new(name: &str, count: u32, socket_id: i32) -> Result<Ring> {
        let eal = Eal::require("Ring::new")?;
        let c_name = cstring("ring name", name)?;
        let flags = weir_dpdk_sys::RING_F_SP_ENQ
            | weir_dpdk_sys::RING_F_SC_DEQ
            | weir_dpdk_sys::RING_F_EXACT_SZ;
        // SAFETY: valid name; DPDK validates the count.
        let p = unsafe { weir_dpdk_sys::rte_ring_create(c_name.as_ptr(), count, socket_id, flags) };
        let ptr = NonNull::new(p).ok_or_else(|| {
            let errno = rte_errno();
            Error::Object {
                what: "ring",
                name: name.to_owned(),
                errno,
                reason: format!("cannot create for {count} mbufs: {}", errno_text(errno)),
            }
        })?;
        Ok(Ring {
            inner: Arc::new(RingInner {
                ptr,
                name: name.to_owned(),
                role: AtomicU8::new(FREE),
                port: Mutex::new(String::new()),
                _eal: eal,
            }),
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> u32 {
        // SAFETY: valid ring.
        unsafe { weir_dpdk_sys::rte_ring_count(self.inner.ptr.as_ptr()) }
    }

    /// Usable capacity.
    pub fn capacity(&self) -> u32 {
        // SAFETY: valid ring.
        unsafe { weir_dpdk_sys::rte_ring_get_capacity(self.inner.ptr.as_ptr()) }
    }

    fn check(&self, forbidden: u8, op: &'static str) -> Result<()> {
        if self.inner.role.load(Ordering::Relaxed) == forbidden {
            return Err(Error::RingRole {
                name: self.inner.name.clone(),
                op,
                port: self
                    .inner
                    .port
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Moves as many mbufs as fit from the front of `burst` into the ring; returns how many.
    /// Those left in `burst` (ring full) stay there, in order, for the next try.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> Result<usize> {
        self.check(PORT_TX, "enqueue")?;
        let n = burst.len();
        // SAFETY: the first n pointers are mbufs owned by `burst`; those enqueued become the
        // ring's and are forgotten by the burst.
        let done = unsafe {
            weir_dpdk_sys::rte_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                burst.held_ptr().cast(),
                n as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        burst.consumed_front(done);
        Ok(done)
    }

    /// Enqueues one mbuf, or gives it back when the ring is full.
    #[inline]
    pub fn enqueue(&mut self, m: Mbuf) -> Result<std::result::Result<(), Mbuf>> {
        self.check(PORT_TX, "enqueue")?;
        let p = m.into_raw();
        // SAFETY: on success the ring owns the mbuf.
        let ret = unsafe {
            weir_dpdk_sys::rte_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                [p.as_ptr()].as_ptr().cast_mut().cast(),
                1,
                std::ptr::null_mut(),
            )
        };
        if ret == 1 {
            Ok(Ok(()))
        } else {
            // SAFETY: not enqueued, still ours.
            Ok(Err(unsafe { Mbuf::from_raw(p) }))
        }
    }

    /// Frees what `burst` holds, then moves up to `N` mbufs from the ring into it.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> Result<usize> {
        self.check(PORT_RX, "dequeue")?;
        burst.clear();
        let (dst, room) = burst.spare_ptr();
        // SAFETY: dst has room for `room` pointers; dequeued mbufs become the burst's.
        let n = unsafe {
            weir_dpdk_sys::rte_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                dst.cast(),
                room as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        burst.filled(n);
        Ok(n)
    }

    /// Marks the ring as a port's RX (port dequeues) or TX (port enqueues) ring.
    pub(crate) fn bind(&self, rx: bool, port: &str) -> Result<()> {
        let role = if rx { PORT_RX } else { PORT_TX };
        if self
            .inner
            .role
            .compare_exchange(FREE, role, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(Error::InUse(format!(
                "ring {:?} (already bound to port {})",
                self.inner.name,
                self.inner
                    .port
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default()
            )));
        }
        if let Ok(mut p) = self.inner.port.lock() {
            *p = port.to_owned();
        }
        Ok(())
    }

    /// Undoes `bind` after a failed port creation.
    pub(crate) fn unbind(&self) {
        self.inner.role.store(FREE, Ordering::SeqCst);
    }
}
