//! # weir_tcp
//!
//! TCP health features of the kind Traffic Refinery (Bronzino et al., SIGMETRICS 2021) and
//! tstat collect, from what a passive tap sees. All are NaN for flows that are not TCP
//! (the plugin also sets `done` on their first packet, so it costs nothing afterwards).
//!
//! `{d}` is `src2dst` (packets from the flow's first sender) or `dst2src`. A segment's
//! sequence length is `payload_len + SYN + FIN` (RFC 9293 §3.4); sequence numbers compare
//! modulo 2^32 (RFC 1982 serial arithmetic). Per direction the plugin keeps `high`, the highest
//! sequence end seen, and the most recent gap: the range `[high, seq)` skipped when a segment
//! starts beyond `high`.
//!
//! | column | definition |
//! | --- | --- |
//! | `tcp_{d}_retransmissions` | segments with sequence length > 0 that start below `high` outside the open gap: data the tap has already seen go by (full or partial repeats) |
//! | `tcp_{d}_out_of_order` | segments with sequence length > 0 that start inside the open gap: data arriving after later data (reordered, or resent after a loss upstream of the tap; like tstat, timing is not used to tell the two apart) |
//! | `tcp_{d}_zero_window` | segments advertising a zero receive window (RST segments excluded: they often carry 0) |
//! | `tcp_syn_synack_ms` | ms from the last src2dst SYN to the dst2src SYN/ACK that answers it: the tap-to-server RTT (f64) |
//! | `tcp_synack_ack_ms` | ms from that SYN/ACK to the src2dst ACK acknowledging it (`ack = synack.seq + 1`): the tap-to-client RTT |
//! | `tcp_handshake_ms` | ms from that SYN to that ACK: the full handshake RTT; NaN for each step not seen |
//! | `tcp_{d}_window_{min,mean,max}` | receive window advertised by `{d}` in bytes: the window field shifted by the window scale `{d}` announced in its SYN when both SYNs carried the option (RFC 7323 §2.2-2.3; never shifted on SYN segments); NaN when `{d}` sent no packet |
//!
//! State: 128 bytes per flow (two 48-byte direction trackers and the handshake times), plus
//! the 64-byte [`TcpInterval`] only when interval records are on (ABI 1.2
//! `interval_state_size`; with them off the interval bookkeeping is neither stored nor run).
//!
//! ## Interval records (ABI 1.2 `interval_emit`, `update_burst_intervals`)
//!
//! In an interval record the counters (`retransmissions`, `out_of_order`, `zero_window`) and
//! the window statistics cover the interval's segments only (counters as differences from the
//! previous interval's end, windows tracked per interval); the three handshake times are the
//! flow's as known at the interval's end (NaN until seen).

use std::ffi::CStr;

use weir_plugin_api::sdk::{Feature, IntervalPlugin, Plugin, Verdict, Zeroable};
use weir_plugin_api::{
    FlowKeyV1, PacketV1, WEIR_DIR_DST_TO_SRC, WEIR_NO_OFFSET, WEIR_TCP_ACK, WEIR_TCP_FIN,
    WEIR_TCP_RST, WEIR_TCP_SYN,
};

const IPPROTO_TCP: u8 = 6;

/// `a < b` modulo 2^32 (RFC 1982).
#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

// Dir.flags bits.
const SEQ_SEEN: u8 = 1;
const GAP_OPEN: u8 = 2;
const WS_SEEN: u8 = 4;

/// One direction's sequence tracker and window statistics: 48 bytes.
#[derive(Clone, Copy, Debug, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct Dir {
    pub high: u32,
    pub gap_lo: u32,
    pub gap_hi: u32,
    pub flags: u8,
    /// Window scale shift this direction announced in its SYN (valid with WS_SEEN).
    pub wscale: u8,
    pub _pad: u16,
    pub retransmissions: u32,
    pub out_of_order: u32,
    pub zero_window: u32,
    pub win_min: u32,
    pub win_max: u32,
    pub packets: u32,
    pub win_sum: u64,
}

impl Dir {
    /// Track one segment's sequence range.
    #[inline]
    fn track(&mut self, seq: u32, len: u32) {
        if len == 0 {
            return; // pure ACKs occupy no sequence space
        }
        let end = seq.wrapping_add(len);
        if self.flags & SEQ_SEEN == 0 {
            self.flags |= SEQ_SEEN;
            self.high = end;
            return;
        }
        if !seq_lt(seq, self.high) {
            if seq != self.high {
                // Skipped [high, seq): remember it as the open gap.
                self.gap_lo = self.high;
                self.gap_hi = seq;
                self.flags |= GAP_OPEN;
            }
            self.high = end;
            return;
        }
        let in_gap =
            self.flags & GAP_OPEN != 0 && !seq_lt(seq, self.gap_lo) && seq_lt(seq, self.gap_hi);
        if in_gap {
            self.out_of_order += 1;
            if seq == self.gap_lo {
                // Filled from the bottom: shrink (or close) the gap.
                if seq_lt(end, self.gap_hi) {
                    self.gap_lo = end;
                } else {
                    self.flags &= !GAP_OPEN;
                }
            }
        } else {
            self.retransmissions += 1;
        }
        if seq_lt(self.high, end) {
            self.high = end;
        }
    }

    #[inline]
    fn window(&mut self, w: u32) {
        if self.packets == 0 || w < self.win_min {
            self.win_min = w;
        }
        self.win_max = self.win_max.max(w);
        self.win_sum += w as u64;
        self.packets += 1;
    }
}

/// The interval part of the state: the whole-flow counters at the previous interval's end and
/// the windows seen since (64 bytes).
#[derive(Clone, Copy, Debug, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct TcpInterval {
    /// retransmissions, out_of_order, zero_window of src2dst then dst2src, at the last reset.
    pub base: [u32; 6],
    /// `Dir::packets` and `Dir::win_sum` per direction at the last reset.
    pub win_packets: [u32; 2],
    pub win_sum: [u64; 2],
    pub win_min: [u32; 2],
    pub win_max: [u32; 2],
}

impl TcpInterval {
    fn counters(dirs: &[Dir; 2]) -> [u32; 6] {
        let [a, b] = dirs;
        [
            a.retransmissions,
            b.retransmissions,
            a.out_of_order,
            b.out_of_order,
            a.zero_window,
            b.zero_window,
        ]
    }
}

// Handshake.stage bits.
const NOT_TCP: u8 = 1;
const SYN_SEEN: u8 = 2;
const SYNACK_SEEN: u8 = 4;
const ACK_SEEN: u8 = 8;

/// Per-flow state: 128 bytes (the interval part is separate: [`TcpInterval`]).
#[derive(Clone, Copy, Debug, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct TcpState {
    pub dirs: [Dir; 2],
    pub syn_ns: u64,
    pub synack_ns: u64,
    pub ack_ns: u64,
    pub synack_seq: u32,
    pub stage: u8,
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<Dir>() == 48);
const _: () = assert!(core::mem::size_of::<TcpInterval>() == 64);
const _: () = assert!(core::mem::size_of::<TcpState>() == 128);

/// The window scale option (kind 3, RFC 7323 §2.2) of a SYN, if the captured header has one.
/// Shifts above 14 are treated as 14, as the RFC says.
pub fn window_scale(pkt: &PacketV1) -> Option<u8> {
    if pkt.l4_off == WEIR_NO_OFFSET || pkt.tcp_hdr_len <= 20 {
        return None;
    }
    // SAFETY: the host guarantees data/cap_len are readable during the callback.
    let bytes = unsafe { pkt.bytes() };
    let start = pkt.l4_off as usize + 20;
    let end = (pkt.l4_off as usize + pkt.tcp_hdr_len as usize).min(bytes.len());
    let opts = bytes.get(start..end)?;
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = *opts.get(i + 1)? as usize;
                if len < 2 {
                    return None; // malformed: stop rather than loop
                }
                if kind == 3 && len == 3 {
                    return opts.get(i + 2).map(|s| (*s).min(14));
                }
                i += len;
            }
        }
    }
    None
}

/// The plugin (no options).
pub struct Tcp;

pub const FEATURES: &[Feature] = &[
    Feature::u64(
        c"tcp_src2dst_retransmissions",
        c"src2dst segments repeating sequence space already seen",
    ),
    Feature::u64(
        c"tcp_dst2src_retransmissions",
        c"dst2src segments repeating sequence space already seen",
    ),
    Feature::u64(
        c"tcp_src2dst_out_of_order",
        c"src2dst segments filling a sequence gap after later data",
    ),
    Feature::u64(
        c"tcp_dst2src_out_of_order",
        c"dst2src segments filling a sequence gap after later data",
    ),
    Feature::u64(
        c"tcp_src2dst_zero_window",
        c"src2dst non-RST segments advertising a zero window",
    ),
    Feature::u64(
        c"tcp_dst2src_zero_window",
        c"dst2src non-RST segments advertising a zero window",
    ),
    Feature::f64(
        c"tcp_syn_synack_ms",
        c"ms from SYN to SYN/ACK (tap-server RTT)",
    ),
    Feature::f64(
        c"tcp_synack_ack_ms",
        c"ms from SYN/ACK to the handshake ACK (tap-client RTT)",
    ),
    Feature::f64(c"tcp_handshake_ms", c"ms from SYN to the handshake ACK"),
    Feature::u64(
        c"tcp_src2dst_window_min",
        c"smallest src2dst receive window, bytes (scaled)",
    ),
    Feature::f64(
        c"tcp_src2dst_window_mean",
        c"mean src2dst receive window, bytes (scaled)",
    ),
    Feature::u64(
        c"tcp_src2dst_window_max",
        c"largest src2dst receive window, bytes (scaled)",
    ),
    Feature::u64(
        c"tcp_dst2src_window_min",
        c"smallest dst2src receive window, bytes (scaled)",
    ),
    Feature::f64(
        c"tcp_dst2src_window_mean",
        c"mean dst2src receive window, bytes (scaled)",
    ),
    Feature::u64(
        c"tcp_dst2src_window_max",
        c"largest dst2src receive window, bytes (scaled)",
    ),
];

impl Plugin for Tcp {
    const NAME: &'static CStr = c"tcp";
    const VERSION: &'static CStr = c"1.1.0";
    const DESCRIPTION: Option<&'static CStr> =
        Some(c"TCP health: retransmissions, out-of-order, zero windows, handshake RTT, windows");
    const FEATURES: &'static [Feature] = FEATURES;
    type State = TcpState;

    fn create(config_json: &str, _worker: u32) -> Result<Self, String> {
        let trimmed: String = config_json.chars().filter(|c| !c.is_whitespace()).collect();
        if trimmed == "{}" || trimmed.is_empty() {
            Ok(Tcp)
        } else {
            Err(format!("tcp takes no options, got {config_json}"))
        }
    }

    fn flow_init(&mut self, key: &FlowKeyV1, s: &mut TcpState) {
        if key.protocol != IPPROTO_TCP {
            s.stage = NOT_TCP;
        }
    }

    #[inline]
    fn update(&mut self, s: &mut TcpState, pkt: &PacketV1) -> Verdict {
        update(s, None, pkt)
    }

    fn emit(&mut self, _key: &FlowKeyV1, s: &TcpState, out: &mut [f64]) {
        emit(s, out)
    }
}

impl IntervalPlugin for Tcp {
    type Interval = TcpInterval;

    #[inline]
    fn update_with_interval(
        &mut self,
        s: &mut TcpState,
        iv: &mut TcpInterval,
        pkt: &PacketV1,
    ) -> Verdict {
        update(s, Some(iv), pkt)
    }

    fn emit_interval(
        &mut self,
        _key: &FlowKeyV1,
        s: &TcpState,
        iv: &mut TcpInterval,
        out: &mut [f64],
    ) {
        if s.stage & NOT_TCP != 0 {
            return; // all NaN
        }
        let now = TcpInterval::counters(&s.dirs);
        for (o, (n, b)) in out.iter_mut().zip(now.iter().zip(iv.base)) {
            *o = n.wrapping_sub(b) as f64;
        }
        write_handshake(s, out);
        for (i, d) in s.dirs.iter().enumerate() {
            let n = d.packets.wrapping_sub(iv.win_packets[i]);
            if n > 0 {
                out[9 + 3 * i] = iv.win_min[i] as f64;
                out[10 + 3 * i] = d.win_sum.wrapping_sub(iv.win_sum[i]) as f64 / n as f64;
                out[11 + 3 * i] = iv.win_max[i] as f64;
            }
            iv.win_packets[i] = d.packets;
            iv.win_sum[i] = d.win_sum;
        }
        iv.base = now;
    }
}

/// One segment; `iv` is the interval part when interval records are on (inlined into both
/// callers, so the off path has no interval code at all).
#[inline(always)]
fn update(s: &mut TcpState, iv: Option<&mut TcpInterval>, pkt: &PacketV1) -> Verdict {
    if s.stage & NOT_TCP != 0 || pkt.protocol != IPPROTO_TCP {
        s.stage |= NOT_TCP;
        return Verdict::Done;
    }
    let rev = pkt.direction == WEIR_DIR_DST_TO_SRC;
    let f = pkt.tcp_flags;
    let syn = f & WEIR_TCP_SYN != 0;
    let ack = f & WEIR_TCP_ACK != 0;

    // Handshake (RFC 9293 §3.5).
    if syn {
        if let Some(ws) = window_scale(pkt) {
            let d = &mut s.dirs[rev as usize];
            d.wscale = ws;
            d.flags |= WS_SEEN;
        }
        if !rev && !ack && s.stage & SYNACK_SEEN == 0 {
            s.syn_ns = pkt.ts_ns; // the last SYN before the answer (retransmitted SYNs)
            s.stage |= SYN_SEEN;
        } else if rev && ack && s.stage & SYN_SEEN != 0 && s.stage & SYNACK_SEEN == 0 {
            s.synack_ns = pkt.ts_ns;
            s.synack_seq = pkt.tcp_seq;
            s.stage |= SYNACK_SEEN;
        }
    } else if !rev
        && ack
        && s.stage & (SYNACK_SEEN | ACK_SEEN) == SYNACK_SEEN
        && pkt.tcp_ack == s.synack_seq.wrapping_add(1)
    {
        s.ack_ns = pkt.ts_ns;
        s.stage |= ACK_SEEN;
    }

    // Window: scaled only when both SYNs carried the option, never on SYNs.
    let both_ws = s.dirs[0].flags & s.dirs[1].flags & WS_SEEN != 0;
    let d = &mut s.dirs[rev as usize];
    let shift = if both_ws && !syn { d.wscale } else { 0 };
    let win = (pkt.tcp_window as u32) << shift;
    if let Some(iv) = iv {
        let r = rev as usize;
        if d.packets == iv.win_packets[r] || win < iv.win_min[r] {
            iv.win_min[r] = win;
        }
        if d.packets == iv.win_packets[r] || win > iv.win_max[r] {
            iv.win_max[r] = win;
        }
    }
    d.window(win);
    if pkt.tcp_window == 0 && f & WEIR_TCP_RST == 0 {
        d.zero_window += 1;
    }

    let len = pkt.payload_len as u32 + syn as u32 + u32::from(f & WEIR_TCP_FIN != 0);
    d.track(pkt.tcp_seq, len);
    Verdict::Continue
}

/// The flow's features.
fn emit(s: &TcpState, out: &mut [f64]) {
    if s.stage & NOT_TCP != 0 {
        return; // all NaN
    }
    let [a, b] = &s.dirs;
    out[0] = a.retransmissions as f64;
    out[1] = b.retransmissions as f64;
    out[2] = a.out_of_order as f64;
    out[3] = b.out_of_order as f64;
    out[4] = a.zero_window as f64;
    out[5] = b.zero_window as f64;
    write_handshake(s, out);
    for (i, d) in s.dirs.iter().enumerate() {
        if d.packets > 0 {
            out[9 + 3 * i] = d.win_min as f64;
            out[10 + 3 * i] = d.win_sum as f64 / d.packets as f64;
            out[11 + 3 * i] = d.win_max as f64;
        }
    }
}

/// The three handshake times (columns 6..9), NaN for each step not seen.
fn write_handshake(s: &TcpState, out: &mut [f64]) {
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    if s.stage & SYNACK_SEEN != 0 {
        out[6] = ms(s.syn_ns, s.synack_ns);
    }
    if s.stage & ACK_SEEN != 0 {
        out[7] = ms(s.synack_ns, s.ack_ns);
        out[8] = ms(s.syn_ns, s.ack_ns);
    }
}

weir_plugin_api::export_plugin!(Tcp, intervals);

#[cfg(test)]
mod tests;
