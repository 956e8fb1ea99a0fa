//! Flows: the key, the per-worker table with its timer wheel, and the records flows end in.

pub mod community_id;
pub mod interval;
pub mod key;
mod mapped;
pub use mapped::Memory;
pub mod record;
pub mod schema;
pub mod table;
pub mod wheel;
