//! Fuzz `weir::config::Config::parse`: any text is accepted or refused with an error naming
//! the file; never a panic. An accepted config passes its own validation again when
//! re-parsed (parsing is deterministic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use weir::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match Config::parse(text, path) {
        Ok(cfg) => {
            assert!(cfg.flows.capacity >= 1);
            assert!(cfg.workers.count >= 1);
            assert!(Config::parse(text, path).is_ok());
            // What the workers derive from it must not overflow or panic either.
            // Deadlines are `now_ms + timeout_ms`: they must not wrap for any packet time
            // up to the year 2100.
            const Y2100_MS: u64 = 4_102_444_800_000;
            assert!(cfg.idle_timeout_ms().checked_add(Y2100_MS).is_some());
            assert!(cfg.active_timeout_ms().checked_add(Y2100_MS).is_some());
            let _ = weir::worker::WorkerSettings::from_config(&cfg, 0, 0, (0, 8));
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
});
