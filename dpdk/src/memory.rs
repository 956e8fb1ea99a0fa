//! Memory from DPDK's heap for large per-lcore tables: hugepage-backed when the EAL runs on
//! hugepages, so a table gets 2 MiB (or 1 GiB) pages that are resident, pinned and on the
//! lcore's NUMA socket without depending on transparent huge pages.

use crate::eal::Eal;
use crate::sys;
use std::ptr::NonNull;

/// Zeroed bytes from DPDK's heap (`rte_zmalloc_socket`), freed with `rte_free` on drop. Holds
/// the EAL alive for as long as it lives.
pub struct HugeMem {
    ptr: NonNull<u8>,
    len: usize,
    _eal: Eal,
}

// SAFETY: the memory is owned by this value alone; DPDK's heap may be freed from any thread.
unsafe impl Send for HugeMem {}

impl HugeMem {
    /// `len` zeroed bytes aligned to `align` (a power of two) on the calling lcore's socket,
    /// when the EAL is running on hugepages. `None` without an EAL, under `--no-huge`, or when
    /// the heap cannot give that much (the caller then uses ordinary memory).
    pub fn zeroed(len: usize, align: usize) -> Option<HugeMem> {
        let eal = Eal::current()?;
        if len == 0 || !align.is_power_of_two() || u32::try_from(align).is_err() {
            return None;
        }
        // SAFETY: plain queries of the running EAL's configuration.
        let (huge, socket) = unsafe { (sys::rte_eal_has_hugepages(), sys::rte_socket_id()) };
        if huge == 0 {
            return None;
        }
        // SAFETY: a NUL-terminated type name; size and alignment checked above. The result is
        // null or `len` zeroed bytes aligned as asked, owned by the caller.
        let p = unsafe {
            sys::rte_zmalloc_socket(c"weir_table".as_ptr(), len, align as u32, socket as i32)
        };
        let ptr = NonNull::new(p as *mut u8)?;
        Some(HugeMem {
            ptr,
            len,
            _eal: eal,
        })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for HugeMem {
    fn drop(&mut self) {
        // SAFETY: the pointer came from rte_zmalloc_socket and is freed once, while the EAL
        // (held by `_eal`) still runs.
        unsafe { sys::rte_free(self.ptr.as_ptr() as *mut core::ffi::c_void) };
    }
}
