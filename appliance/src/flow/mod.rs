//! Flows: the key, the per-worker table with its timer wheel, and the records flows end in.

pub mod record;
