//! A plugin that panics, for the host's quarantine test (`appliance/tests/plugins/quarantine.rs`).
//!
//! It counts packets per flow like a well-behaved plugin through the self-test (a few
//! packets), then panics on the 50th packet its instance sees. The SDK turns the panic into an
//! error; the host must quarantine the plugin on that worker, write its feature as missing,
//! and keep every other plugin's features exact. Built by `cargo test` as
//! `target/<profile>/examples/libpanicky.so`; it is not installed anywhere.

use std::ffi::CStr;
use weir_plugin_api::sdk::{Feature, Plugin, Verdict, Zeroable};
use weir_plugin_api::{FlowKeyV1, PacketV1};

#[derive(Clone, Copy, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct Count {
    packets: u64,
}

pub struct Panicky {
    seen: u64,
}

impl Plugin for Panicky {
    const NAME: &'static CStr = c"panicky";
    const VERSION: &'static CStr = c"0.0.1";
    const FEATURES: &'static [Feature] = &[Feature::u64(
        c"panicky_packets",
        c"packets of the flow, until the plugin panics",
    )];
    type State = Count;

    fn create(_config_json: &str, _worker: u32) -> Result<Self, String> {
        Ok(Panicky { seen: 0 })
    }

    fn update(&mut self, s: &mut Count, _pkt: &PacketV1) -> Verdict {
        self.seen += 1;
        if self.seen == 50 {
            panic!("panicky: the 50th packet");
        }
        s.packets += 1;
        Verdict::Continue
    }

    fn emit(&mut self, _key: &FlowKeyV1, s: &Count, out: &mut [f64]) {
        out[0] = s.packets as f64;
    }
}

weir_plugin_api::export_plugin!(Panicky);
