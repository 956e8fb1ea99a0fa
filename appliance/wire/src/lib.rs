//! # weir-wire
//!
//! Zero-copy views over the protocol headers weir reads, and builders that write them, one
//! file per protocol, in the style of smoltcp's `wire` module. The appliance re-exports this
//! crate as `weir::wire`; the trace generator (`perf/tracegen`) and the tests build their
//! frames with it.
//!
//! **Views.** Every view wraps a byte slice. `new_checked` verifies that the fixed part of the
//! header is inside the slice (and, where the header states its own length, that this length
//! is sane and also inside the slice), so the accessors that follow can index without further
//! checks and never panic. Accessors name the RFC field they read. Nothing here allocates.
//! Views check *structure* only. Policy (which frames a flow meter counts, how deep a VLAN
//! stack may be, what happens to fragments) lives in the appliance's `parse` module.
//!
//! **Builders.** Beside each view, a `...Repr` holds a header's fields as values; `emit`
//! writes them into a buffer and `parse` reads them back from a view, so the two agree by
//! construction and are tested against each other. The byte ranges of each header's fields
//! are named once, in the file's `field` module, and used by both. Length fields are filled
//! from the payload, and checksums computed ([`checksum`]: the IPv4 header checksum, TCP and
//! UDP over the RFC 768 / RFC 8200 section 8.1 pseudo-header, ICMP and ICMPv6). Builders are
//! for tests and generators, not the data path: `emit` panics when the buffer is too short.
//!
//! The views' accessors are `#[inline]`: the parser in another crate calls them per packet.

/// A header field: its byte range from the start of the header.
pub type Field = core::ops::Range<usize>;

pub mod capwap;
pub mod checksum;
pub mod ethernet;
pub mod gtp;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod pppoe;
pub mod tcp;
pub mod tzsp;
pub mod udp;
pub mod vlan;

/// Why a view could not be built over a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The slice ends before the fixed header (or the length the header claims) does.
    Truncated,
    /// A field holds a value the protocol does not allow (for example IPv4 IHL < 5).
    Malformed,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("header truncated"),
            Error::Malformed => f.write_str("header malformed"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Big-endian (network order) field readers over a slice whose length was already checked by a
/// `new_checked` constructor. They are `#[inline]` so the bounds check folds into the caller's.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writers of big-endian fields, for the builders.
#[inline]
pub(crate) fn put16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

/// Ensure `b` holds at least `n` bytes.
#[inline]
pub(crate) fn need(b: &[u8], n: usize) -> Result<()> {
    if b.len() < n {
        Err(Error::Truncated)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
