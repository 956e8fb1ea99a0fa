//! Regression tests for the faults the hostile-input work found (issue 9). Each names what
//! went wrong before its fix.

use std::path::Path;
use weir::config::Config;

/// An absurd timeout (1e300 s, inf) was accepted: in milliseconds it saturated to u64::MAX and
/// `now_ms + idle_ms` wrapped the flow's deadline into the past, so every flow ended as idle
/// at the next expiry run (and the timer-wheel size computation overflowed in debug builds).
/// Found while writing the config fuzz target's oracle. Now refused, naming the key.
#[test]
fn unbounded_timeouts_are_refused() {
    for (key, value) in [
        ("idle_timeout_s", "1e300"),
        ("idle_timeout_s", "inf"),
        ("active_timeout_s", "1e300"),
        ("active_timeout_s", "nan"),
        ("idle_timeout_s", "0"),
    ] {
        let text = format!("[flows]\n{key} = {value}\nwheel_granularity_ms = 1\n");
        let e = Config::parse(&text, Path::new("t.toml"))
            .err()
            .unwrap_or_else(|| panic!("{key} = {value} accepted"));
        let msg = e.to_string();
        assert!(msg.contains(&format!("flows.{key}")), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }
    // Large but sane timeouts stay accepted, and the worker settings derived from them do
    // not overflow.
    let c = Config::parse(
        "[flows]\nidle_timeout_s = 315360000\nactive_timeout_s = 315360000\nwheel_granularity_ms = 1\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let s = weir::worker::WorkerSettings::from_config(&c, 0, 0, (0, 8));
    assert_eq!(s.idle_ms, 315_360_000_000);
    assert!(s.table.wheel_slots <= 1 << 20);
}
