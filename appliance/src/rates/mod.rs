//! Rates: the table-based decay model (per flow and per aggregate key) and the heavy-hitter
//! detections built on it.
//!
//! Follows Qrator Labs, "Rate detection, or incoming event stream intensity measuring in the
//! decay model" (A. Shvorin, 2017), with forward-decay aggregation (Cormode, Shkapenyuk,
//! Srivastava, Xu, "Forward decay: a practical time decay model for streaming systems",
//! ICDE 2009) and Space-Saving (Metwally, Agrawal, El Abbadi, ICDT 2005).
//!
//! ## The model
//! Events `i` at times `t_i` with weights `w_i` (1 for packets, bytes for bytes) have the
//! exponentially decayed sum `V(t) = sum_i w_i exp(-(t - t_i)/tau)`; the rate is `V/tau`. A
//! counter stores one number `s` in integer ticks with `V(t) = exp((s - t)/tau)`, so it does not
//! change while no event comes: decay is implicit. Adding an event at `t` is a log-sum-exp:
//! `s' = max(s, t) + rho(|s - t|)`, `rho(x) = tau*ln(1 + exp(-x/tau))`, read from a table
//! ([`tables`]); a weight `w` shifts the event to `t + tau*ln(w)` (a second table). An empty
//! counter starts at `s = t` (or `t + tau*ln w`). A rate threshold needs no exp:
//! `V/tau >= R` iff `s - t >= tau*ln(R*tau)` ([`DecayTables::log_threshold`]), and the order of
//! counters by `s` never changes with time, so eviction and top-k compare stored `s` directly.
//!
//! ## Error bound
//! At an update let `c = V/(V+1) = ds'/ds` (V just before the event). Each update rounds to at
//! most 1 tick and interpolates `rho` with error at most `h^2/8 * rho''`, where
//! `rho'' = sigma(1-sigma)/tau <= (1-c)/tau` and `h` is the table step. An error in `s` is
//! multiplied by `c` at the next update, so after any stream
//! `|s_table - s_exact| <= (V* + 1) + h^2 e^(h/tau)/(8 tau) + e_w + 1` ticks, where `V*` is the
//! largest count just before an event (for bytes: `V*/w_min`), `e_w` the weight table's error (a
//! per-event weight error enters with factor `1 - c`, so the largest one bounds their sum) and the
//! last tick is time quantisation. With tau = 2^32 ticks and h = tau/128 the relative error of `V`
//! is at most `exp(E/tau) - 1 = (V* + 1)*2.33e-10 + 8.17e-6` ([`relative_error_bound`]):
//! 8.4e-6 for a flow at 1,000 packets per tau, 3.1e-5 at 10^5, 2.4e-4 at 10^6, 2.3e-3 at 10^7 (an
//! aggregate at 10 Mpps with tau = 1 s). The constant is the interpolation's bias (a chord of a
//! convex function lies above it), and it is what the tests measure (5-8e-6); the `V*` term is the
//! worst case of rounding, which random rounding errors rarely approach. Rounding would saturate a
//! counter only where `rho` rounds to 0 at the operating point, `tau/V < 1/2` tick: V ~ 8.6e9
//! events per tau.
//!
//! ## Using it from a worker
//! ```
//! use std::sync::Arc;
//! use weir::rates::*;
//!
//! let tables = Arc::new(DecayTables::new(&RatesConfig::default())?); // once, at start
//! let mut cfg = HeavyHitterConfig::new(KeyType::SrcIp);
//! cfg.threshold_fraction = Some(0.05);
//! cfg.validate(0)?;
//! let mut hh = HeavyHitters::for_workers(tables.clone(), &cfg, 2); // one per worker
//! let (mut flow, mut alerts) = (FlowRates::default(), Vec::new()); // FlowRates: in the flow entry
//!
//! // per packet on worker 0:
//! let (ts_ns, bytes) = (1_000_000_000u64, 1500u32);
//! let t = tables.tick(ts_ns);
//! flow.on_packet(&tables, t, bytes);
//! hh[0].observe(&PacketKey { ip_version: 4, ..PacketKey::default() }, t, bytes);
//! // once per burst:
//! hh[0].poll(ts_ns, &mut alerts);
//! // at flow end, in FLOW_RATE_FEATURES order:
//! let [decay_pps, decay_bps, peak_pps, peak_bps] = flow.features(&tables);
//! assert_eq!((decay_pps, peak_pps), (1.0, 1.0));
//! # let _ = (decay_bps, peak_bps);
//! # Ok::<(), ConfigError>(())
//! ```
//!
//! ## Files
//! - [`config`]: `[rates]` and `[[heavy_hitters]]`, defaults and validation.
//! - [`tables`]: the tick clock, the `rho` and `ln w` tables, the bound.
//! - [`decay`]: [`DecayCounter`] and the per-flow [`FlowRates`] (32 bytes per flow).
//! - [`heavy_hitters`]: per-worker set-associative Space-Saving tables of decayed counters.
//! - [`alerts`]: merging workers' views, threshold/fraction/top-k detections, [`Alert`].

pub mod alerts;
pub mod config;
pub mod decay;
pub mod heavy_hitters;
pub mod key;
pub mod tables;

pub use alerts::{merge, Alert, AlertKind, AlertState, HhGroup, Merged, MergedKey, Snapshot};
pub use config::{ConfigError, HeavyHitterConfig, KeyType, RatesConfig};
pub use decay::{DecayCounter, FlowRates, FLOW_RATE_FEATURES};
pub use heavy_hitters::HeavyHitters;
pub use key::{HhKey, PacketKey};
pub use tables::{relative_error_bound, DecayTables, Tick, TAU_TICKS};
