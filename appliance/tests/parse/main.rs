//! The parser and the capture filter: against NFStream's flows, against tshark's dissection, and on a generated
//! malformed corpus.
//!
//! One test binary, a module per file; the helpers are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod filter;
mod malformed;
mod nfstream;
mod tshark;
