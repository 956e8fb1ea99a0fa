//! Several workers: records equal to one worker's, over the software spreader, AF_PACKET
//! RSS and the offline path, a worker that panics, and the offline feeder's zero-copy.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod af_packet;
mod extract;
mod software;
mod worker_panic;
mod zero_copy;
