//! The flow table's arrays: DPDK hugepage memory when the EAL runs on hugepages, else zeroed
//! anonymous mappings on transparent huge pages, made resident before the first packet when
//! asked (`flows.prefault`), on the system's reserved hugepages when it has enough free
//! (`flows.reserved_hugepages`).

use bytemuck::Zeroable;
use std::alloc::Layout;

/// A zeroed array in its own anonymous mapping: the plugin state slab, the entries and the
/// index.
///
/// Mapped with mmap rather than the allocator: an over-aligned `alloc_zeroed` writes every
/// byte at start (hundreds of MB for a large table), while fresh anonymous pages are zero and
/// only become resident when a flow first uses them. An array of 2 MiB or more starts on a
/// 2 MiB boundary and is advised for transparent huge pages over its whole length: these arrays
/// are read at random (one index slot, one entry and one slab per packet), and with 4 KiB pages
/// nearly every lookup also misses the TLB, a page walk costing about what the cache miss does.
/// (With the allocator's placement, only the 2 MiB-aligned interior could be advised: half of a
/// 4 MiB index stayed on 4 KiB pages.) Smaller arrays keep 4 KiB pages, so a small table does
/// not make a 2 MiB page resident per array.
///
/// When the EAL has hugepages (`weir run` without `eal.no_huge`), an array of 2 MiB or more
/// comes from DPDK's heap instead ([`weir_dpdk::HugeMem`]): resident, pinned, on the worker's
/// socket and on hugepages whatever the THP setting; prefaulting it is then a no-op. Else,
/// for a table made resident at start, it comes from the system's reserved hugepage pool when
/// that has room ([`reserved_hugepages`]).
pub(super) struct Mapped<T> {
    pub(super) ptr: *mut T,
    len: usize,
    map: *mut libc::c_void,
    map_len: usize,
    huge: Option<weir_dpdk::HugeMem>,
    /// The mapping is from the reserved hugepage pool (`MAP_HUGETLB`).
    hugetlb: bool,
}

/// Where an array's memory came from, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// DPDK's hugepage heap (the EAL runs on hugepages).
    DpdkHeap,
    /// The system's reserved 2 MiB hugepages (`vm.nr_hugepages`), mapped by weir.
    ReservedHugepages,
    /// An anonymous mapping (transparent huge pages advised when 2 MiB or more).
    Anonymous,
}

impl Memory {
    pub fn describe(self) -> &'static str {
        match self {
            Memory::DpdkHeap => "DPDK hugepages",
            Memory::ReservedHugepages => "reserved hugepages (hugetlb)",
            Memory::Anonymous => "anonymous mapping, transparent huge pages advised",
        }
    }
}

pub(super) const HUGE_PAGE: usize = 2 << 20;

impl<T: Zeroable> Mapped<T> {
    /// A zeroed array of `len`: from DPDK's heap when the EAL has hugepages, else (when
    /// `reserved`) from the system's reserved hugepage pool if it has room
    /// ([`reserved_hugepages`]), else an anonymous mapping.
    pub(super) fn new(len: usize, reserved: bool) -> Mapped<T> {
        // The mapping's start is page-aligned (2 MiB for a huge one).
        assert!(core::mem::align_of::<T>() <= 4096);
        let bytes = len * core::mem::size_of::<T>();
        if bytes == 0 {
            return Mapped {
                ptr: core::ptr::NonNull::dangling().as_ptr(),
                len,
                map: core::ptr::null_mut(),
                map_len: 0,
                huge: None,
                hugetlb: false,
            };
        }
        let huge = bytes >= HUGE_PAGE;
        if huge {
            if let Some(mem) = weir_dpdk::HugeMem::zeroed(bytes, HUGE_PAGE) {
                return Mapped {
                    ptr: mem.as_ptr() as *mut T,
                    len,
                    map: core::ptr::null_mut(),
                    map_len: 0,
                    huge: Some(mem),
                    hugetlb: false,
                };
            }
        }
        if huge && reserved {
            if let Some((p, map_len)) = reserved_hugepages(bytes) {
                return Mapped {
                    ptr: p as *mut T,
                    len,
                    map: p,
                    map_len,
                    huge: None,
                    hugetlb: true,
                };
            }
        }
        // Room to slide the start to a 2 MiB boundary; the unused head and tail are never
        // touched, so they cost address space only.
        let map_len = if huge { bytes + HUGE_PAGE } else { bytes };
        // SAFETY: an anonymous private mapping with no address hint; checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(
                Layout::from_size_align(bytes, 4096).unwrap_or(Layout::new::<u8>()),
            );
        }
        let start = if huge {
            (p as usize).next_multiple_of(HUGE_PAGE)
        } else {
            p as usize
        };
        if huge {
            // SAFETY: [start, start + bytes rounded up to 2 MiB) lies inside the mapping (its
            // length has a spare 2 MiB); MADV_HUGEPAGE changes no contents. A failure (THP not
            // built in) is harmless and ignored.
            unsafe {
                libc::madvise(
                    start as *mut libc::c_void,
                    bytes
                        .next_multiple_of(HUGE_PAGE)
                        .min(p as usize + map_len - start),
                    libc::MADV_HUGEPAGE,
                )
            };
        }
        Mapped {
            ptr: start as *mut T,
            len,
            map: p,
            map_len,
            huge: None,
            hugetlb: false,
        }
    }
}

/// A private mapping of `bytes` (rounded up to 2 MiB) from the system's reserved 2 MiB
/// hugepages, if the pool has that many free: (address, length).
///
/// Why: making fresh anonymous memory resident means the kernel finds and zeroes it page by
/// page, and on a virtual machine whose guest reports free pages to the host (virtio free
/// page reporting, as on Firecracker) memory freed a few seconds ago is no longer backed: a
/// 300 MB table took 0.6-1.1 s to prefault there (0.3-0.5 GB/s) against 0.03 s for the same
/// size from the reserved pool, which stays with the guest between runs. A DPDK host reserves
/// that pool anyway. The kernel reserves a private mapping's pages at `mmap` time
/// (`vm.nr_overcommit_hugepages` aside), so a pool that runs short is a failed call here,
/// never a fault later. The pages are zero, as fresh anonymous pages are.
fn reserved_hugepages(bytes: usize) -> Option<(*mut libc::c_void, usize)> {
    // Linux's uapi values (asm-generic/hugetlb_encode.h): 2 MiB pages whatever the system's
    // default hugepage size.
    const MAP_HUGE_SHIFT: libc::c_int = 26;
    const MAP_HUGE_2MB: libc::c_int = 21 << MAP_HUGE_SHIFT;
    let len = bytes.next_multiple_of(HUGE_PAGE);
    // SAFETY: a new private anonymous mapping with no address hint; checked below.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | MAP_HUGE_2MB,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some((p, len))
}

impl<T> Mapped<T> {
    /// Where the array's memory came from.
    pub(super) fn memory(&self) -> Memory {
        if self.huge.is_some() {
            Memory::DpdkHeap
        } else if self.hugetlb {
            Memory::ReservedHugepages
        } else {
            Memory::Anonymous
        }
    }

    /// Make every page of the array resident now (see [`FlowTable::prefault`]):
    /// `MADV_POPULATE_WRITE` (Linux 5.14) faults the whole range in one call, with huge pages
    /// where advised; on older kernels, one write per 4 KiB page does the same.
    pub(super) fn prefault(&mut self) {
        let bytes = self.len * core::mem::size_of::<T>();
        if self.map_len == 0 || bytes == 0 {
            return;
        }
        // Linux's uapi value (asm-generic/mman-common.h); not in every libc crate release.
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        let len = bytes.next_multiple_of(4096);
        // The kernel zeroes every page it populates, about 0.4-1 GB/s on a virtual machine:
        // a few hundred MB of table is a serial second before the first packet. Split over
        // the cores (nothing else runs yet at start), in whole 2 MiB pieces.
        const PIECE: usize = 2 << 20;
        // Every online CPU, not the calling thread's affinity: a worker is pinned to its one
        // lcore, and threads it spawns inherit that pin (they would zero in turn on one core).
        let threads = crate::affinity::online_cpus()
            .min(8)
            .min(len.div_ceil(32 * PIECE))
            .max(1);
        let chunk = len.div_ceil(threads).next_multiple_of(PIECE);
        let base_addr = self.ptr as usize;
        let populate = |off: usize| -> bool {
            let n = chunk.min(len - off);
            // SAFETY: [base + off, base + off + n) lies inside our mapping (page-aligned
            // start and chunk, the mapping rounded up to whole pages); populating writes no
            // contents, the pages stay zero.
            unsafe {
                libc::madvise(
                    (base_addr + off) as *mut libc::c_void,
                    n,
                    MADV_POPULATE_WRITE,
                ) == 0
            }
        };
        let all_ok = if threads == 1 {
            populate(0)
        } else {
            std::thread::scope(|sc| {
                let hs: Vec<_> = (0..len)
                    .step_by(chunk)
                    .map(|off| {
                        sc.spawn(move || {
                            crate::affinity::unpin_current_thread();
                            populate(off)
                        })
                    })
                    .collect();
                // Every thread joined before the answer (no short circuit).
                let done: Vec<bool> = hs.into_iter().map(|h| h.join().unwrap_or(false)).collect();
                done.into_iter().all(|ok| ok)
            })
        };
        if all_ok {
            return;
        }
        let base = self.ptr as *mut u8;
        for off in (0..bytes).step_by(4096) {
            // SAFETY: off < bytes, inside the array; writing the zero the page already holds
            // changes nothing but makes the page resident.
            unsafe { core::ptr::write_volatile(base.add(off), 0) };
        }
    }
}

impl<T> core::ops::Deref for Mapped<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: len elements of zeroed (valid: T is Zeroable) memory owned by self, aligned
        // (page-aligned start, and T's alignment is at most a page).
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> core::ops::DerefMut for Mapped<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self is the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: the mapping made in Mapped::new, unmapped once. T needs no drop (plain
            // data: Zeroable and, here, Copy).
            unsafe { libc::munmap(self.map, self.map_len) };
        }
    }
}

// SAFETY: the mapping is owned by one table, which one worker owns; T is sent with it.
unsafe impl<T: Send> Send for Mapped<T> {}

/// Ask for transparent huge pages over the 2 MiB-aligned part of `[ptr, ptr + len)` of an
/// allocator-made array (see [`Mapped`] for why; the interval side array uses this).
pub(super) fn advise_huge(ptr: *mut u8, len: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + len) & !(HUGE_PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside a live allocation of ours; MADV_HUGEPAGE changes no
        // contents. A failure (THP not built in) is harmless and ignored.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}
