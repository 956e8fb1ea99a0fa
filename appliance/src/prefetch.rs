//! Cache-line prefetch hints, the one place weir issues them: the flow table (entries,
//! slabs, index lines), the capture reader's read-ahead, the filter stage's frames, the
//! sinks' record values, and the worker's next record (for writing).
//!
//! A prefetch never faults and changes nothing the program sees, so any address will do;
//! spans are given by their start and length and cover every line from the one the start is
//! in to the one of the last byte. On other architectures they are no-ops.

/// Ask for the cache line holding `p`, into L1 (`near`) or L2.
#[inline(always)]
pub fn line(p: *const u8, near: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults and reads nothing the program sees.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        if near {
            _mm_prefetch(p as *const i8, _MM_HINT_T0)
        } else {
            _mm_prefetch(p as *const i8, _MM_HINT_T1)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, near);
}

/// Ask for every cache line of the `len` bytes at `p`, into L1.
#[inline]
pub fn lines(p: *const u8, len: usize) {
    let start = p as usize;
    for l in ((start & !63)..start + len).step_by(64) {
        // The first line starts at or before `p`: a wrapping offset, back from it.
        line(p.wrapping_add(l.wrapping_sub(start)), true);
    }
}

/// Like [`lines`], with the intent to write the lines (PREFETCHW): for memory another core
/// last wrote or read (records and feature vectors the output threads give back), whose
/// lines a read prefetch brings shared, leaving the write a second trip to own them. A read
/// prefetch where the CPU lacks the instruction.
#[inline]
pub fn lines_for_write(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_prefetchw() {
        let start = p as usize;
        for l in ((start & !63)..start + len).step_by(64) {
            let a = p.wrapping_add(l.wrapping_sub(start));
            // SAFETY: PREFETCHW is a hint: it never faults (any address will do) and changes
            // nothing the program sees; the CPU has it (checked above).
            unsafe {
                core::arch::asm!(
                    "prefetchw byte ptr [{}]",
                    in(reg) a,
                    options(nostack, preserves_flags, readonly)
                )
            };
        }
        return;
    }
    lines(p, len)
}

/// Whether the CPU has PREFETCHW (CPUID 8000_0001h ECX bit 8): every x86-64 AMD CPU, Intel
/// since Broadwell. Asked once.
#[cfg(target_arch = "x86_64")]
fn has_prefetchw() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        use core::arch::x86_64::__cpuid;
        // Leaf 8000_0001h is read only when the highest extended leaf (8000_0000h's EAX)
        // includes it.
        __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefetches of any span (every alignment, empty or not, read or write intent) fault on
    /// nothing, overflow nothing (debug builds check) and change no byte.
    #[test]
    fn prefetches_change_nothing() {
        let buf: Vec<u8> = (0..512u32).map(|i| (i * 31 % 251) as u8).collect();
        let before = buf.clone();
        for off in 0..64 {
            for len in [0, 1, 63, 64, 65, 200] {
                lines(buf[off..].as_ptr(), len);
                lines_for_write(buf[off..].as_ptr(), len);
            }
        }
        lines(std::ptr::null(), 64);
        lines_for_write(std::ptr::null(), 64);
        assert_eq!(buf, before);
    }
}
