//! # weir_flowstats
//!
//! NFStream's statistical flow features (NFStream `statistical_analysis=True`, accounting mode
//! 0), with NFStream's column names and order: 48 columns.
//!
//! | columns | definition |
//! | --- | --- |
//! | `{d}_{min,mean,stddev,max}_ps` | packet size = `wire_len` (frame length on the wire). `min`/`max` integers; `mean` by Welford's update `mean += (x - mean) / n`; `stddev` the sample standard deviation `sqrt(M2 / (n - 1))` for n > 1, else 0 |
//! | `{d}_{min,mean,stddev,max}_piat_ms` | packet inter-arrival times in whole ms (`ts_ns / 1_000_000`, truncated, as NFStream's `sec*1000 + usec/1000`) over the n - 1 gaps between consecutive packets of `{d}`; `stddev = sqrt(M2 / (n - 2))` for n > 2, else 0 |
//! | `{d}_{syn,cwr,ece,urg,ack,psh,rst,fin}_packets` | packets of `{d}` with that TCP flag set (0 for non-TCP flows) |
//!
//! `{d}` is `bidirectional`, `src2dst` (packets from the flow's first sender) or `dst2src`.
//! A direction without packets reports 0 everywhere (NFStream's zero-initialised fields);
//! with one packet, `min = max = mean = size`, `stddev = 0` and all piat values 0. The mean
//! and M2 updates are NFStream's (`engine_cc.c`, `flow_update_*_ps` and `_piat_ms`) in the same
//! f64 operation order, so the results agree to the last bit, not just to a tolerance.
//!
//! State: 248 bytes per flow, aligned to 8: two 64-byte [`DirStats`], the 56-byte
//! [`BiStats`] of both directions together (whose size range is derived from the two
//! directions') and the flag counters of the two directions (bidirectional counters are their
//! sums). Packet sizes and gaps are kept as u32 (gaps saturate at ~49 days, far beyond any
//! flow timeout). It used to be 256 bytes aligned to 64 (the alignment padded every flow's
//! slab by up to 63 bytes more), with a full third `DirStats`. Only when interval records are
//! on does the host append the 56-byte [`IntervalStats`] (ABI 1.2 `interval_state_size`) and
//! call the interval update: with them off a packet costs what it did before intervals existed.
//!
//! ## Interval records (ABI 1.2 `interval_emit`, `update_burst_intervals`)
//!
//! In an interval record flowstats writes the 8 bidirectional packet-size and inter-arrival
//! columns, `bidirectional_{min,mean,stddev,max}_{ps,piat_ms}`, over the interval's packets
//! (the gaps are those ending in the interval, so the first packet of an interval counts its
//! gap from the packet before it); the other 40 columns are NaN there. Same definitions as
//! above, except the interval piat stddev divides by `gaps - 1` (the interval has no first
//! packet without a gap). 56 bytes of state buy them; the whole-flow columns at flow
//! end are unchanged, to the bit.

use std::ffi::CStr;

use weir_plugin_api::sdk::{Feature, IntervalPlugin, Plugin, Verdict, Zeroable};
use weir_plugin_api::{
    FlowKeyV1, PacketV1, WEIR_DIR_DST_TO_SRC, WEIR_TCP_ACK, WEIR_TCP_CWR, WEIR_TCP_ECE,
    WEIR_TCP_FIN, WEIR_TCP_PSH, WEIR_TCP_RST, WEIR_TCP_SYN, WEIR_TCP_URG,
};

/// Welford running mean and M2 of packet sizes and of gaps, and the gaps' range: what a
/// direction keeps beyond its count and last time (both directions together derive those).
#[derive(Clone, Copy, Debug, Default, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct Moments {
    pub ps_mean: f64,
    pub ps_m2: f64,
    pub piat_mean: f64,
    pub piat_m2: f64,
    pub piat_min: u32,
    pub piat_max: u32,
}

impl Moments {
    /// Account one packet of `size` bytes, the `packets`-th (counting it) of its sequence,
    /// `gap` ms after the previous one (ignored for the first). NFStream's f64 operation order.
    #[inline]
    fn add(&mut self, packets: u64, size: u32, gap: u64) {
        let x = size as f64;
        if packets == 1 {
            self.ps_mean = x;
            return;
        }
        let old = self.ps_mean;
        self.ps_mean += (x - old) / packets as f64;
        self.ps_m2 += (x - old) * (x - self.ps_mean);

        let g32 = u32::try_from(gap).unwrap_or(u32::MAX);
        let g = gap as f64;
        if packets == 2 {
            self.piat_min = g32;
            self.piat_max = g32;
            self.piat_mean = g;
        } else {
            self.piat_min = self.piat_min.min(g32);
            self.piat_max = self.piat_max.max(g32);
            let old = self.piat_mean;
            self.piat_mean += (g - old) / (packets - 1) as f64;
            self.piat_m2 += (g - old) * (g - self.piat_mean);
        }
    }

    fn ps_stddev(&self, packets: u64) -> f64 {
        if packets > 1 {
            (self.ps_m2 / (packets - 1) as f64).sqrt()
        } else {
            0.0
        }
    }

    fn piat_stddev(&self, packets: u64) -> f64 {
        if packets > 2 {
            (self.piat_m2 / (packets - 2) as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// Running statistics of one direction: 64 bytes.
#[derive(Clone, Copy, Debug, Default, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct DirStats {
    pub m: Moments,
    /// Time of the last packet, ms.
    pub last_ms: u64,
    pub packets: u64,
    pub ps_min: u32,
    pub ps_max: u32,
}

impl DirStats {
    /// Account one packet of `size` bytes at `t_ms`.
    #[inline]
    pub fn add(&mut self, size: u32, t_ms: u64) {
        self.packets += 1;
        if self.packets == 1 {
            self.ps_min = size;
            self.ps_max = size;
        } else {
            self.ps_min = self.ps_min.min(size);
            self.ps_max = self.ps_max.max(size);
        }
        // Times never go backwards (host contract); saturate anyway rather than wrap.
        let gap = t_ms.saturating_sub(self.last_ms);
        self.last_ms = t_ms;
        self.m.add(self.packets, size, gap);
    }

    pub fn ps_stddev(&self) -> f64 {
        self.m.ps_stddev(self.packets)
    }

    pub fn piat_stddev(&self) -> f64 {
        self.m.piat_stddev(self.packets)
    }
}

/// The interval part of the state: bidirectional packet sizes and gaps since the last
/// `interval_emit` (56 bytes).
#[derive(Clone, Copy, Debug, Default, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct IntervalStats {
    pub ps_mean: f64,
    pub ps_m2: f64,
    pub piat_mean: f64,
    pub piat_m2: f64,
    pub packets: u32,
    /// Gaps counted (packets that had a packet of the flow before them).
    pub gaps: u32,
    pub ps_min: u32,
    pub ps_max: u32,
    pub piat_min: u32,
    pub piat_max: u32,
}

impl IntervalStats {
    /// Account one packet of `size` bytes; `gap` is the ms since the flow's previous packet.
    #[inline]
    pub fn add(&mut self, size: u32, gap: Option<u64>) {
        self.packets += 1;
        let x = size as f64;
        if self.packets == 1 {
            self.ps_min = size;
            self.ps_max = size;
            self.ps_mean = x;
        } else {
            self.ps_min = self.ps_min.min(size);
            self.ps_max = self.ps_max.max(size);
            let old = self.ps_mean;
            self.ps_mean += (x - old) / self.packets as f64;
            self.ps_m2 += (x - old) * (x - self.ps_mean);
        }
        let Some(gap) = gap else { return };
        self.gaps += 1;
        let g32 = u32::try_from(gap).unwrap_or(u32::MAX);
        let g = gap as f64;
        if self.gaps == 1 {
            self.piat_min = g32;
            self.piat_max = g32;
            self.piat_mean = g;
        } else {
            self.piat_min = self.piat_min.min(g32);
            self.piat_max = self.piat_max.max(g32);
            let old = self.piat_mean;
            self.piat_mean += (g - old) / self.gaps as f64;
            self.piat_m2 += (g - old) * (g - self.piat_mean);
        }
    }

    /// The 8 interval columns into their places of the 48 (`out` is NaN elsewhere).
    pub fn write(&self, out: &mut [f64]) {
        if self.packets == 0 {
            return;
        }
        out[0] = self.ps_min as f64;
        out[1] = self.ps_mean;
        out[2] = if self.packets > 1 {
            (self.ps_m2 / (self.packets - 1) as f64).sqrt()
        } else {
            0.0
        };
        out[3] = self.ps_max as f64;
        if self.gaps > 0 {
            out[12] = self.piat_min as f64;
            out[13] = self.piat_mean;
            out[14] = if self.gaps > 1 {
                (self.piat_m2 / (self.gaps - 1) as f64).sqrt()
            } else {
                0.0
            };
            out[15] = self.piat_max as f64;
        }
    }
}

/// TCP flags in NFStream's column order: syn, cwr, ece, urg, ack, psh, rst, fin.
pub const FLAG_ORDER: [u8; 8] = [
    WEIR_TCP_SYN,
    WEIR_TCP_CWR,
    WEIR_TCP_ECE,
    WEIR_TCP_URG,
    WEIR_TCP_ACK,
    WEIR_TCP_PSH,
    WEIR_TCP_RST,
    WEIR_TCP_FIN,
];

/// Both directions together: their Welford moments and gap range, their packet count and
/// last time (kept, not derived from the directions', so a packet touches only its own
/// direction's lines and these). 56 bytes; the size range is derived at emit.
#[derive(Clone, Copy, Debug, Default, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct BiStats {
    pub m: Moments,
    pub last_ms: u64,
    pub packets: u64,
}

/// Per-flow state: 248 bytes, laid out in the order a packet touches it: both directions,
/// then per direction its flag counters next to its statistics.
#[derive(Clone, Copy, Debug, Default, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct FlowStats {
    pub bidirectional: BiStats,
    /// `[FLAG_ORDER index]` of src2dst.
    pub src2dst_flags: [u32; 8],
    pub src2dst: DirStats,
    pub dst2src: DirStats,
    /// `[FLAG_ORDER index]` of dst2src.
    pub dst2src_flags: [u32; 8],
}

const _: () = assert!(core::mem::size_of::<DirStats>() == 64);
const _: () = assert!(core::mem::size_of::<IntervalStats>() == 56);
const _: () = assert!(core::mem::size_of::<FlowStats>() == 248);

impl FlowStats {
    /// Packets of both directions.
    #[inline]
    pub fn packets(&self) -> u64 {
        self.bidirectional.packets
    }

    /// Both directions' smallest and largest packet size (0, 0 without packets).
    fn ps_range(&self) -> (u32, u32) {
        match (self.src2dst.packets, self.dst2src.packets) {
            (0, 0) => (0, 0),
            (_, 0) => (self.src2dst.ps_min, self.src2dst.ps_max),
            (0, _) => (self.dst2src.ps_min, self.dst2src.ps_max),
            _ => (
                self.src2dst.ps_min.min(self.dst2src.ps_min),
                self.src2dst.ps_max.max(self.dst2src.ps_max),
            ),
        }
    }

    /// Account one packet.
    #[inline]
    pub fn add(&mut self, pkt: &PacketV1) {
        let t = pkt.ts_ms();
        let reverse = pkt.direction == WEIR_DIR_DST_TO_SRC;
        let bi = &mut self.bidirectional;
        bi.packets += 1;
        // Times never go backwards (host contract); saturate anyway rather than wrap.
        let gap = t.saturating_sub(bi.last_ms);
        bi.last_ms = t;
        bi.m.add(bi.packets, pkt.wire_len, gap);
        let (dir, counters) = if reverse {
            (&mut self.dst2src, &mut self.dst2src_flags)
        } else {
            (&mut self.src2dst, &mut self.src2dst_flags)
        };
        dir.add(pkt.wire_len, t);
        for (c, bit) in counters.iter_mut().zip(FLAG_ORDER) {
            *c += u32::from(pkt.tcp_flags & bit != 0);
        }
    }

    /// Account one packet in the flow's state and in its interval part.
    #[inline]
    pub fn add_with_interval(&mut self, interval: &mut IntervalStats, pkt: &PacketV1) {
        let bi = &self.bidirectional;
        let since_prev = (bi.packets > 0).then(|| pkt.ts_ms().saturating_sub(bi.last_ms));
        interval.add(pkt.wire_len, since_prev);
        self.add(pkt);
    }

    /// The 48 features in NFStream's column order.
    pub fn write(&self, out: &mut [f64]) {
        let (bi_min, bi_max) = self.ps_range();
        // (moments, packets, smallest and largest size) of bidirectional, src2dst, dst2src.
        let dirs = [
            (&self.bidirectional.m, self.packets(), bi_min, bi_max),
            (
                &self.src2dst.m,
                self.src2dst.packets,
                self.src2dst.ps_min,
                self.src2dst.ps_max,
            ),
            (
                &self.dst2src.m,
                self.dst2src.packets,
                self.dst2src.ps_min,
                self.dst2src.ps_max,
            ),
        ];
        let mut i = 0;
        let mut put = |v: f64| {
            out[i] = v;
            i += 1;
        };
        for (m, n, min, max) in dirs {
            put(min as f64);
            put(m.ps_mean);
            put(m.ps_stddev(n));
            put(max as f64);
        }
        for (m, n, _, _) in dirs {
            put(m.piat_min as f64);
            put(m.piat_mean);
            put(m.piat_stddev(n));
            put(m.piat_max as f64);
        }
        for k in 0..8 {
            put((self.src2dst_flags[k] + self.dst2src_flags[k]) as f64);
        }
        for dir in [&self.src2dst_flags, &self.dst2src_flags] {
            for &c in dir {
                put(c as f64);
            }
        }
    }
}

/// The plugin (stateless apart from per-flow state).
pub struct Flowstats;

/// Column names and kinds, in NFStream's order.
pub const FEATURES: &[Feature] = &[
    Feature::u64(
        c"bidirectional_min_ps",
        c"bidirectional: smallest packet size (wire bytes)",
    ),
    Feature::f64(
        c"bidirectional_mean_ps",
        c"bidirectional: mean packet size (wire bytes)",
    ),
    Feature::f64(
        c"bidirectional_stddev_ps",
        c"bidirectional: sample stddev of packet size",
    ),
    Feature::u64(
        c"bidirectional_max_ps",
        c"bidirectional: largest packet size (wire bytes)",
    ),
    Feature::u64(
        c"src2dst_min_ps",
        c"src2dst: smallest packet size (wire bytes)",
    ),
    Feature::f64(
        c"src2dst_mean_ps",
        c"src2dst: mean packet size (wire bytes)",
    ),
    Feature::f64(
        c"src2dst_stddev_ps",
        c"src2dst: sample stddev of packet size",
    ),
    Feature::u64(
        c"src2dst_max_ps",
        c"src2dst: largest packet size (wire bytes)",
    ),
    Feature::u64(
        c"dst2src_min_ps",
        c"dst2src: smallest packet size (wire bytes)",
    ),
    Feature::f64(
        c"dst2src_mean_ps",
        c"dst2src: mean packet size (wire bytes)",
    ),
    Feature::f64(
        c"dst2src_stddev_ps",
        c"dst2src: sample stddev of packet size",
    ),
    Feature::u64(
        c"dst2src_max_ps",
        c"dst2src: largest packet size (wire bytes)",
    ),
    Feature::u64(
        c"bidirectional_min_piat_ms",
        c"bidirectional: smallest inter-arrival time (ms)",
    ),
    Feature::f64(
        c"bidirectional_mean_piat_ms",
        c"bidirectional: mean inter-arrival time (ms)",
    ),
    Feature::f64(
        c"bidirectional_stddev_piat_ms",
        c"bidirectional: sample stddev of inter-arrival time (ms)",
    ),
    Feature::u64(
        c"bidirectional_max_piat_ms",
        c"bidirectional: largest inter-arrival time (ms)",
    ),
    Feature::u64(
        c"src2dst_min_piat_ms",
        c"src2dst: smallest inter-arrival time (ms)",
    ),
    Feature::f64(
        c"src2dst_mean_piat_ms",
        c"src2dst: mean inter-arrival time (ms)",
    ),
    Feature::f64(
        c"src2dst_stddev_piat_ms",
        c"src2dst: sample stddev of inter-arrival time (ms)",
    ),
    Feature::u64(
        c"src2dst_max_piat_ms",
        c"src2dst: largest inter-arrival time (ms)",
    ),
    Feature::u64(
        c"dst2src_min_piat_ms",
        c"dst2src: smallest inter-arrival time (ms)",
    ),
    Feature::f64(
        c"dst2src_mean_piat_ms",
        c"dst2src: mean inter-arrival time (ms)",
    ),
    Feature::f64(
        c"dst2src_stddev_piat_ms",
        c"dst2src: sample stddev of inter-arrival time (ms)",
    ),
    Feature::u64(
        c"dst2src_max_piat_ms",
        c"dst2src: largest inter-arrival time (ms)",
    ),
    Feature::u64(
        c"bidirectional_syn_packets",
        c"bidirectional: TCP packets with SYN set",
    ),
    Feature::u64(
        c"bidirectional_cwr_packets",
        c"bidirectional: TCP packets with CWR set",
    ),
    Feature::u64(
        c"bidirectional_ece_packets",
        c"bidirectional: TCP packets with ECE set",
    ),
    Feature::u64(
        c"bidirectional_urg_packets",
        c"bidirectional: TCP packets with URG set",
    ),
    Feature::u64(
        c"bidirectional_ack_packets",
        c"bidirectional: TCP packets with ACK set",
    ),
    Feature::u64(
        c"bidirectional_psh_packets",
        c"bidirectional: TCP packets with PSH set",
    ),
    Feature::u64(
        c"bidirectional_rst_packets",
        c"bidirectional: TCP packets with RST set",
    ),
    Feature::u64(
        c"bidirectional_fin_packets",
        c"bidirectional: TCP packets with FIN set",
    ),
    Feature::u64(c"src2dst_syn_packets", c"src2dst: TCP packets with SYN set"),
    Feature::u64(c"src2dst_cwr_packets", c"src2dst: TCP packets with CWR set"),
    Feature::u64(c"src2dst_ece_packets", c"src2dst: TCP packets with ECE set"),
    Feature::u64(c"src2dst_urg_packets", c"src2dst: TCP packets with URG set"),
    Feature::u64(c"src2dst_ack_packets", c"src2dst: TCP packets with ACK set"),
    Feature::u64(c"src2dst_psh_packets", c"src2dst: TCP packets with PSH set"),
    Feature::u64(c"src2dst_rst_packets", c"src2dst: TCP packets with RST set"),
    Feature::u64(c"src2dst_fin_packets", c"src2dst: TCP packets with FIN set"),
    Feature::u64(c"dst2src_syn_packets", c"dst2src: TCP packets with SYN set"),
    Feature::u64(c"dst2src_cwr_packets", c"dst2src: TCP packets with CWR set"),
    Feature::u64(c"dst2src_ece_packets", c"dst2src: TCP packets with ECE set"),
    Feature::u64(c"dst2src_urg_packets", c"dst2src: TCP packets with URG set"),
    Feature::u64(c"dst2src_ack_packets", c"dst2src: TCP packets with ACK set"),
    Feature::u64(c"dst2src_psh_packets", c"dst2src: TCP packets with PSH set"),
    Feature::u64(c"dst2src_rst_packets", c"dst2src: TCP packets with RST set"),
    Feature::u64(c"dst2src_fin_packets", c"dst2src: TCP packets with FIN set"),
];

impl Plugin for Flowstats {
    const NAME: &'static CStr = c"flowstats";
    const VERSION: &'static CStr = c"1.2.0";
    const DESCRIPTION: Option<&'static CStr> =
        Some(c"NFStream's statistical features: packet sizes, inter-arrival times, TCP flags");
    const FEATURES: &'static [Feature] = FEATURES;
    type State = FlowStats;

    fn create(config_json: &str, _worker: u32) -> Result<Self, String> {
        // No options; refuse anything but an empty table so a typo is not silently ignored.
        let trimmed: String = config_json.chars().filter(|c| !c.is_whitespace()).collect();
        if trimmed == "{}" || trimmed.is_empty() {
            Ok(Flowstats)
        } else {
            Err(format!("flowstats takes no options, got {config_json}"))
        }
    }

    #[inline]
    fn update(&mut self, state: &mut FlowStats, pkt: &PacketV1) -> Verdict {
        state.add(pkt);
        Verdict::Continue
    }

    fn emit(&mut self, _key: &FlowKeyV1, state: &FlowStats, out: &mut [f64]) {
        state.write(out);
    }
}

impl IntervalPlugin for Flowstats {
    type Interval = IntervalStats;

    #[inline]
    fn update_with_interval(
        &mut self,
        state: &mut FlowStats,
        interval: &mut IntervalStats,
        pkt: &PacketV1,
    ) -> Verdict {
        state.add_with_interval(interval, pkt);
        Verdict::Continue
    }

    fn emit_interval(
        &mut self,
        _key: &FlowKeyV1,
        _state: &FlowStats,
        interval: &mut IntervalStats,
        out: &mut [f64],
    ) {
        interval.write(out);
        *interval = IntervalStats::default();
    }
}

weir_plugin_api::export_plugin!(Flowstats, intervals);

#[cfg(test)]
mod tests;
