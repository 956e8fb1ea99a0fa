//! Decay counters: one log-domain number per counter, updated with the tables of
//! [`super::tables`], and the per-flow rate features built from two of them.

use super::tables::{DecayTables, Tick, TAU_TICKS};

/// One decay counter (packets, or bytes with weights). Empty until its first event.
///
/// 16 bytes. `V(t) = exp((s - t)/tau)`; an empty counter has `V = 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecayCounter {
    s: u64,
    live: bool,
}

impl DecayCounter {
    /// Add one event of weight 1 at `t`.
    #[inline]
    pub fn add(&mut self, tables: &DecayTables, t: Tick) {
        self.add_at(tables, t.0);
    }

    /// Add one event of weight `w` (bytes) at `t`; `w = 0` is counted as 1.
    #[inline]
    pub fn add_weighted(&mut self, tables: &DecayTables, t: Tick, w: u32) {
        self.add_at(tables, t.0.wrapping_add(tables.ln_weight(w)));
    }

    /// Add an event at log-domain position `e` (a tick plus `tau*ln w`).
    #[inline]
    pub fn add_at(&mut self, tables: &DecayTables, e: u64) {
        self.s = if self.live {
            tables.combine(self.s, e)
        } else {
            e
        };
        self.live = true;
    }

    /// The log-domain value `s`, `None` while empty.
    pub fn s(&self) -> Option<u64> {
        self.live.then_some(self.s)
    }

    /// The decayed count `V` at `t`.
    pub fn value(&self, tables: &DecayTables, t: Tick) -> f64 {
        if self.live {
            tables.value(self.s, t)
        } else {
            0.0
        }
    }
}

/// Names of [`FlowRates::features`], in order: packets/s and bits/s at the flow's last packet,
/// and the largest packets/s and bits/s seen right after any packet of the flow.
pub const FLOW_RATE_FEATURES: [&str; 4] = ["decay_pps", "decay_bps", "peak_pps", "peak_bps"];

/// Peaks are kept as `(s - t) >> PEAK_SHIFT` in a `u32` (relative resolution 2^-24 of tau,
/// range e^256).
const PEAK_SHIFT: u32 = 8;

/// Decay rates of one flow: packets and bytes counters, the last packet's tick and the peaks.
///
/// Plain data, `Copy`, 32 bytes, all-zero when empty ([`Default`]); it lives in every flow
/// entry. Updated with [`FlowRates::on_packet`]; read once at flow end with
/// [`FlowRates::features`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowRates {
    s_pkts: u64,
    s_bytes: u64,
    t_last: u64,
    /// 0 = no packet yet, else 1 + peak excess of the packets counter >> PEAK_SHIFT.
    peak_pkts: u32,
    /// Peak excess of the bytes counter >> PEAK_SHIFT.
    peak_bytes: u32,
}

#[inline]
fn encode_peak(excess: i64) -> u32 {
    ((excess.max(0) as u64) >> PEAK_SHIFT).min(u32::MAX as u64 - 1) as u32
}

#[inline]
fn decode_peak(p: u32) -> f64 {
    (((p as u64) << PEAK_SHIFT) as f64 / TAU_TICKS as f64).exp()
}

impl FlowRates {
    /// Count one packet of `bytes` bytes (the frame length) at tick `t`
    /// (`tables.tick(ts_ns)`, computed once per packet by the caller).
    #[inline]
    pub fn on_packet(&mut self, tables: &DecayTables, t: Tick, bytes: u32) {
        let e_bytes = t.0.wrapping_add(tables.ln_weight(bytes));
        if self.peak_pkts == 0 {
            self.s_pkts = t.0;
            self.s_bytes = e_bytes;
            self.t_last = t.0;
        } else {
            self.s_pkts = tables.combine(self.s_pkts, t.0);
            self.s_bytes = tables.combine(self.s_bytes, e_bytes);
            // Packets may come slightly out of order: "now" is the latest time seen.
            if (t.0.wrapping_sub(self.t_last) as i64) > 0 {
                self.t_last = t.0;
            }
        }
        let now = Tick(self.t_last);
        let p = encode_peak(DecayTables::excess(self.s_pkts, now)) + 1;
        let b = encode_peak(DecayTables::excess(self.s_bytes, now));
        self.peak_pkts = self.peak_pkts.max(p);
        self.peak_bytes = self.peak_bytes.max(b);
    }

    /// Whether any packet was counted.
    pub fn is_empty(&self) -> bool {
        self.peak_pkts == 0
    }

    /// `[decay_pps, decay_bps, peak_pps, peak_bps]` (see [`FLOW_RATE_FEATURES`]) at the flow's
    /// last packet; all 0 for an empty flow.
    pub fn features(&self, tables: &DecayTables) -> [f64; 4] {
        if self.is_empty() {
            return [0.0; 4];
        }
        let tau_s = tables.tau_s();
        let now = Tick(self.t_last);
        [
            tables.value(self.s_pkts, now) / tau_s,
            8.0 * tables.value(self.s_bytes, now) / tau_s,
            decode_peak(self.peak_pkts - 1) / tau_s,
            8.0 * decode_peak(self.peak_bytes) / tau_s,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::config::RatesConfig;

    #[test]
    fn flow_rates_is_small_plain_data() {
        assert_eq!(std::mem::size_of::<FlowRates>(), 32);
        assert_eq!(std::mem::size_of::<DecayCounter>(), 16);
    }

    #[test]
    fn one_packet_is_one_over_tau() {
        let tables = DecayTables::new(&RatesConfig { tau_ms: 500 }).unwrap();
        let mut f = FlowRates::default();
        assert_eq!(f.features(&tables), [0.0; 4]);
        f.on_packet(&tables, tables.tick(7_000_000_000), 1000);
        let [pps, bps, ppk, bpk] = f.features(&tables);
        assert!((pps - 2.0).abs() < 1e-6, "{pps}");
        assert!((bps - 16000.0).abs() < 1e-2, "{bps}");
        assert!((ppk / pps - 1.0).abs() < 1e-6 && (bpk / bps - 1.0).abs() < 1e-6);
    }
}
