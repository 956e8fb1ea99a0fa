//! MPLS label stack entries (RFC 3032 section 2.1).

use super::{be32, need, Result};

pub const ENTRY_LEN: usize = 4;

/// A view over one 4-byte label stack entry.
#[derive(Clone, Copy, Debug)]
pub struct MplsEntry<'a> {
    buf: &'a [u8],
}

impl<'a> MplsEntry<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        need(buf, ENTRY_LEN)?;
        Ok(MplsEntry { buf })
    }

    fn word(&self) -> u32 {
        be32(self.buf, 0)
    }

    /// Label value (20 bits).
    #[inline]
    pub fn label(&self) -> u32 {
        self.word() >> 12
    }

    /// Bottom of Stack bit: set on the last entry.
    #[inline]
    pub fn bottom_of_stack(&self) -> bool {
        self.word() & 0x100 != 0
    }

    /// Time to Live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf[3]
    }
}
