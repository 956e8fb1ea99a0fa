//! The tick clock and the two lookup tables of the decay model (`rho` and `tau*ln(w)`), built
//! once at start and shared read-only by all workers.
//!
//! ## The tick
//! Time is counted in ticks of `tau / 2^32`: one tau is exactly [`TAU_TICKS`] = 2^32 ticks
//! whatever `tau_ms` is, so the tables are the same for every configuration and the error bound
//! depends only on the decayed count, not on tau (at tau = 1 s a tick is 0.23 ns, finer than
//! packet timestamps). A packet time in ns becomes a tick with one 64x64->128-bit multiply and
//! a shift ([`DecayTables::tick`]). Ticks are `u64` and wrap (every 2^32 tau: 49.7 days at
//! tau = 1 ms, 136 years at 1 s); all arithmetic on them is wrapping and compares differences,
//! which is exact while a counter is read or updated within 2^31 tau of its last update (flow
//! entries expire long before; heavy-hitter tables drop decayed entries every report).
//!
//! ## The tables
//! `rho(x) = tau*ln(1 + exp(-x/tau))` is stored every `tau/128` ticks ([`RHO_STEP`]) as `u32`
//! rounded to the tick, up to the cut-off `X = tau*ln(1/(exp(1/(2*tau)) - 1)) ~ tau*ln(2*tau)`
//! (22.87 tau) past which the exact value is below half a tick: 2,929 entries, 11.7 KB. Between
//! entries `rho` is interpolated linearly. `tau*ln(w)` is stored exactly (rounded to the tick) for
//! w <= 1024 (8 KB of `u64`); above, w = m*2^e + r with 512 <= m < 1024 and ln is interpolated
//! between m and m+1, plus e*tau*ln 2. Both tables together are under 20 KB: they stay in L1/L2.
//!
//! ## Error bound (derived in `mod.rs`, asserted by the tests)
//! One update `s' = lse(s, e)` errs by at most [`ROUND_TICKS`] = 1 tick from rounding (half a
//! tick from the stored entry, half from rounding the interpolation) plus the interpolation error
//! `h^2/8 * rho''`, where `rho'' = sigma(1-sigma)/tau <= (1 - c)/tau` with `c = V/(V+1) =
//! d s'/d s`. An error in `s` is carried to the next update multiplied by `c`, so over any
//! stream the error in `s` is at most
//! `(V* + 1) * 1 tick + h^2*exp(h/tau)/(8*tau) + 2048 ticks (ln w interpolation) + 1 tick (time)`,
//! V* being the largest decayed count seen just before an event. The relative error of
//! `V = exp((s - t)/tau)` is `exp(E/tau) - 1`: about `(V* + 1) * 2.33e-10 + 8.17e-6`; see
//! [`relative_error_bound`].

use super::config::{ConfigError, RatesConfig};

/// log2 of the number of ticks in one tau.
pub const TAU_LOG2: u32 = 32;
/// Ticks in one tau.
pub const TAU_TICKS: u64 = 1 << TAU_LOG2;
/// log2 of the spacing of the `rho` table.
pub const RHO_STEP_LOG2: u32 = TAU_LOG2 - 7;
/// Spacing of the `rho` table in ticks (tau/128).
pub const RHO_STEP: u64 = 1 << RHO_STEP_LOG2;
/// Weights up to this are looked up exactly; larger ones are interpolated.
pub const LN_DIRECT: u32 = 1024;
/// Rounding error of one update, in ticks.
pub const ROUND_TICKS: f64 = 1.0;
/// A counter whose `s` is more than this ahead of the current tick cannot be real (it would
/// count e^64 events): it is stale from a wrapped clock and is treated as empty.
pub const STALE_AHEAD: u64 = 64 * TAU_TICKS;

/// A point in time in ticks of tau/2^32 (wrapping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tick(pub u64);

/// The worst relative error of a table counter's value `V` against the exact decayed sum, over
/// a stream whose decayed count just before any event never exceeded `v_star` (see the module
/// docs for the derivation).
pub fn relative_error_bound(v_star: f64) -> f64 {
    let h = RHO_STEP as f64;
    let tau = TAU_TICKS as f64;
    let interp = h * h * (h / tau).exp() / (8.0 * tau);
    let ln_w = tau / (8.0 * 512.0 * 512.0) + 1.5;
    let ticks = (v_star + 1.0) * ROUND_TICKS + interp + ln_w + 1.0;
    (ticks / tau).exp_m1()
}

/// The decay model's clock and tables for one `tau` (see the module docs).
#[derive(Debug)]
pub struct DecayTables {
    tau_ns: u64,
    tick_mul: u64,
    tick_shift: u32,
    rho_cutoff: u64,
    rho: Box<[u32]>,
    ln_w: Box<[u64]>,
    ln_pow2: [u64; 33],
}

impl DecayTables {
    /// Build the tables for `[rates]` (validated here too).
    pub fn new(cfg: &RatesConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let tau_ns = cfg.tau_ms * 1_000_000;
        // tick = ns * 2^32 / tau_ns = (ns * mul) >> shift, with mul in (2^62, 2^63].
        let l = 63 - tau_ns.leading_zeros();
        let tick_shift = 31 + l;
        // Rounded up, so that tick(tau_ns) is exactly 2^32 (the excess stays below 2^shift).
        let tick_mul = (1u128 << (TAU_LOG2 + tick_shift)).div_ceil(tau_ns as u128) as u64;

        let tau = TAU_TICKS as f64;
        // Past X, rho < 1/2 tick and rounds to 0.
        let x = tau * (1.0 / (0.5 / tau).exp_m1()).ln();
        let rho_cutoff = x.ceil() as u64;
        let n = (rho_cutoff >> RHO_STEP_LOG2) as usize + 2;
        let rho: Box<[u32]> = (0..n)
            .map(|i| {
                let xi = (i as u64 * RHO_STEP) as f64 / tau;
                (tau * (-xi).exp().ln_1p()).round() as u32
            })
            .collect();
        let ln_w: Box<[u64]> = (0..=LN_DIRECT)
            .map(|w| {
                if w == 0 {
                    0
                } else {
                    (tau * (w as f64).ln()).round() as u64
                }
            })
            .collect();
        let mut ln_pow2 = [0u64; 33];
        for (e, v) in ln_pow2.iter_mut().enumerate() {
            *v = (tau * e as f64 * std::f64::consts::LN_2).round() as u64;
        }
        Ok(DecayTables {
            tau_ns,
            tick_mul,
            tick_shift,
            rho_cutoff,
            rho,
            ln_w,
            ln_pow2,
        })
    }

    /// tau in ns.
    pub fn tau_ns(&self) -> u64 {
        self.tau_ns
    }

    /// tau in seconds.
    pub fn tau_s(&self) -> f64 {
        self.tau_ns as f64 * 1e-9
    }

    /// Bytes held by the two tables.
    pub fn table_bytes(&self) -> usize {
        self.rho.len() * 4 + self.ln_w.len() * 8 + self.ln_pow2.len() * 8
    }

    /// Entries of the `rho` table.
    pub fn rho_entries(&self) -> usize {
        self.rho.len()
    }

    /// The `rho` cut-off X in ticks (rho is 0 from there on).
    pub fn rho_cutoff(&self) -> u64 {
        self.rho_cutoff
    }

    /// The tick of a packet time in ns (wrapping).
    #[inline]
    pub fn tick(&self, ts_ns: u64) -> Tick {
        Tick(((ts_ns as u128 * self.tick_mul as u128) >> self.tick_shift) as u64)
    }

    /// `rho(x) = tau*ln(1 + exp(-x/tau))` in ticks, x in ticks.
    #[inline]
    pub fn rho(&self, x: u64) -> u64 {
        if x >= self.rho_cutoff {
            return 0;
        }
        let i = (x >> RHO_STEP_LOG2) as usize;
        let f = x & (RHO_STEP - 1);
        // The cut-off keeps i + 1 inside the table; `get` keeps this panic-free regardless.
        let (Some(&a), Some(&b)) = (self.rho.get(i), self.rho.get(i + 1)) else {
            return 0;
        };
        let (a, b) = (a as u64, b as u64);
        // rho decreases with slope >= -1/2, so (a - b) * f < 2^24 * 2^25: no overflow.
        a - (((a - b) * f + RHO_STEP / 2) >> RHO_STEP_LOG2)
    }

    /// `tau*ln(w)` in ticks (w = 0 is treated as 1).
    #[inline]
    pub fn ln_weight(&self, w: u32) -> u64 {
        if w <= LN_DIRECT {
            return self.ln_w[w as usize];
        }
        // w = m*2^e + r, 512 <= m < 1024; interpolate ln between m and m + 1.
        let e = (32 - w.leading_zeros()) - 10;
        let m = (w >> e) as usize;
        let r = (w & ((1 << e) - 1)) as u64;
        let lo = self.ln_w[m];
        let hi = self.ln_w[m + 1];
        lo + (((hi - lo) * r + (1 << (e - 1))) >> e) + self.ln_pow2[e as usize]
    }

    /// The log-domain sum: `s'` with `alpha^(s'-t) = alpha^(s-t) + alpha^(e-t)`, i.e.
    /// `max(s, e) + rho(|s - e|)`. `e` is an event's tick (plus `tau*ln w` for a weight w).
    /// A stale `s` (see [`STALE_AHEAD`]) counts as empty.
    #[inline]
    pub fn combine(&self, s: u64, e: u64) -> u64 {
        let d = e.wrapping_sub(s) as i64;
        if d >= 0 {
            e.wrapping_add(self.rho(d as u64))
        } else if d.unsigned_abs() <= STALE_AHEAD {
            s.wrapping_add(self.rho(d.unsigned_abs()))
        } else {
            e
        }
    }

    /// `s - t` in ticks as a signed number (`V = exp((s - t)/tau)`).
    #[inline]
    pub fn excess(s: u64, t: Tick) -> i64 {
        s.wrapping_sub(t.0) as i64
    }

    /// The decayed count `V = exp((s - t)/tau)` of a counter at time `t`.
    #[inline]
    pub fn value(&self, s: u64, t: Tick) -> f64 {
        let x = Self::excess(s, t);
        if x > STALE_AHEAD as i64 {
            return 0.0;
        }
        (x as f64 / TAU_TICKS as f64).exp()
    }

    /// The rate `V / tau` per second of a counter at time `t`.
    #[inline]
    pub fn rate(&self, s: u64, t: Tick) -> f64 {
        self.value(s, t) / self.tau_s()
    }

    /// The excess `s - t` in ticks at which a counter's rate reaches `per_s` events/s:
    /// `V/tau >= R` iff `s - t >= tau*ln(R*tau)` (no exp on the comparing side).
    pub fn log_threshold(&self, per_s: f64) -> i64 {
        (TAU_TICKS as f64 * (per_s * self.tau_s()).ln()).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(tau_ms: u64) -> DecayTables {
        DecayTables::new(&RatesConfig { tau_ms }).unwrap()
    }

    #[test]
    fn sizes_are_as_documented() {
        let t = tables(1000);
        assert_eq!(t.rho_entries(), 2929);
        assert!(t.table_bytes() < 20 * 1024, "{}", t.table_bytes());
        // rho(X) < 1/2 and rho(X - 1) >= 1/2 in exact arithmetic.
        let tau = TAU_TICKS as f64;
        let rho = |x: f64| tau * (-x / tau).exp().ln_1p();
        assert!(rho(t.rho_cutoff() as f64) < 0.5);
        assert!(rho(t.rho_cutoff() as f64 - 2.0) >= 0.5);
    }

    #[test]
    fn rho_matches_the_formula_within_its_error() {
        let t = tables(1000);
        let tau = TAU_TICKS as f64;
        let h = RHO_STEP as f64;
        let mut x = 0u64;
        while x < t.rho_cutoff() + 3 * RHO_STEP {
            let exact = tau * (-(x as f64) / tau).exp().ln_1p();
            let s = (-(x as f64) / tau).exp() / (1.0 + (-(x as f64) / tau).exp());
            // rounding + interpolation error with rho'' at the left end of the segment
            let bound = ROUND_TICKS + h * h / 8.0 * s * (1.0 - s) * (h / tau).exp() / tau;
            let got = t.rho(x) as f64;
            assert!(
                (got - exact).abs() <= bound,
                "x={x} got {got} exact {exact}"
            );
            x += 7_777_777;
        }
    }

    #[test]
    fn ln_weight_matches_ln() {
        let t = tables(1000);
        let tau = TAU_TICKS as f64;
        for w in (1..5000u32).chain([9000, 65535, 1 << 20, u32::MAX]) {
            let exact = tau * (w as f64).ln();
            let got = t.ln_weight(w) as f64;
            let bound = if w <= LN_DIRECT {
                0.5
            } else {
                tau / (8.0 * 512.0 * 512.0) + 1.5
            };
            assert!(
                (got - exact).abs() <= bound,
                "w={w} got {got} exact {exact}"
            );
        }
    }

    #[test]
    fn ticks_scale_with_tau_and_wrap() {
        for tau_ms in [1, 7, 1000, 60_000] {
            let t = tables(tau_ms);
            let tau_ns = tau_ms * 1_000_000;
            assert_eq!(t.tick(tau_ns).0, TAU_TICKS, "tau_ms {tau_ms}");
            let a = t.tick(123_456_789);
            let b = t.tick(123_456_789 + 3 * tau_ns);
            assert!(b.0.wrapping_sub(a.0).abs_diff(3 * TAU_TICKS) <= 1);
        }
        // tau = 1 ms: ticks wrap every 2^32 ms; a difference across the wrap is still exact.
        let t = tables(1);
        let wrap_ns = (1u128 << 64) * 1_000_000 / (1u128 << 32);
        let before = t.tick(wrap_ns as u64 - 500_000);
        let after = t.tick(wrap_ns as u64 + 1_500_000);
        assert!(before.0 > after.0, "no wrap happened");
        assert!(after.0.wrapping_sub(before.0).abs_diff(2 * TAU_TICKS) <= 1);
    }

    #[test]
    fn log_threshold_agrees_with_rate() {
        let t = tables(250);
        let now = Tick(1 << 40);
        for per_s in [10.0, 5e4, 1e7] {
            let x = t.log_threshold(per_s);
            let s = now.0.wrapping_add(x as u64);
            assert!((t.rate(s, now) / per_s - 1.0).abs() < 1e-9);
        }
    }
}
