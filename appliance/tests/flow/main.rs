//! Flow records end to end: equal to NFStream's on the bundled captures, interval records,
//! TCP teardown, and the Community ID against its reference implementation.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod community_id;
mod intervals;
mod nfstream_parity;
mod tcp_teardown;
