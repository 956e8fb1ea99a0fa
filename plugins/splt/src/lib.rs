//! # weir_splt
//!
//! NFStream's early-flow features (`splt_analysis=N`): the sequence of packet lengths and
//! times of a flow's first N packets, one column per packet.
//!
//! | column (i = 0..31) | definition |
//! | --- | --- |
//! | `splt_direction_{i}` | direction of the flow's packet i: 0 = src→dst (sender of the first packet), 1 = dst→src |
//! | `splt_ps_{i}` | size of packet i: `wire_len` (NFStream accounting mode 0), saturated at 65535 |
//! | `splt_piat_ms_{i}` | ms since the flow's previous packet (either direction), times truncated to ms; 0 for packet 0 |
//!
//! As in NFStream, a flow with fewer than N packets reports -1 for the packets it does not
//! have. N comes from the plugin's config, `{"n": 8}` (default 8, 1 to 32). The descriptor is
//! static, so it always declares [`MAX_N`] = 32 packets (96 columns); the columns of packets
//! i >= N are NaN (missing). The plugin sets `done` after the N-th packet, so the host stops
//! handing it the flow. All columns are of kind F64 because -1 is not an unsigned value.
//!
//! State: 16 + 6·N bytes per flow, rounded up to 8 (64 for the default N = 8, 208 for 32):
//! last time, count and a direction bitmap, then N (size, gap) pairs; gaps saturate at ~49
//! days. The plugin is a [`SizedPlugin`] (ABI 1.3): the host asks each instance for its state
//! size, so a flow pays for N packets, not for 32.

use std::ffi::CStr;

use weir_plugin_api::sdk::{Feature, Plugin, SizedPlugin, Verdict, Zeroable};
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_DIR_DST_TO_SRC};

/// Most packets a flow's sequence can hold (the state is sized for it).
pub const MAX_N: usize = 32;
/// N when the config does not say.
pub const DEFAULT_N: usize = 8;

/// The fixed part of the per-flow state: 16 bytes, followed by N [`SpltPacket`]s.
#[derive(Clone, Copy, Debug, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct Splt {
    /// Time of the last recorded packet, ms.
    pub last_ms: u64,
    /// Packets recorded so far (at most N).
    pub count: u32,
    /// Bit i: direction of packet i.
    pub directions: u32,
}

const _: () = assert!(core::mem::size_of::<Splt>() == 16);

/// One recorded packet: 6 bytes, byte arrays so that N of them pack without padding.
#[derive(Clone, Copy, Debug, Default, Zeroable)]
#[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")]
#[repr(C)]
pub struct SpltPacket {
    ps: [u8; 2],
    piat_ms: [u8; 4],
}

impl SpltPacket {
    pub fn new(ps: u16, piat_ms: u32) -> Self {
        SpltPacket {
            ps: ps.to_le_bytes(),
            piat_ms: piat_ms.to_le_bytes(),
        }
    }

    /// Wire size, saturated at 65535.
    pub fn ps(&self) -> u16 {
        u16::from_le_bytes(self.ps)
    }

    /// ms since the flow's previous packet, saturated at `u32::MAX`.
    pub fn piat_ms(&self) -> u32 {
        u32::from_le_bytes(self.piat_ms)
    }
}

const _: () = assert!(core::mem::size_of::<SpltPacket>() == 6);

/// One instance: N from the config.
pub struct SpltPlugin {
    n: usize,
}

impl SpltPlugin {
    pub fn n(&self) -> usize {
        self.n
    }
}

macro_rules! cstr {
    ($($s:expr),+) => {
        match CStr::from_bytes_with_nul(concat!($($s),+, "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("bad feature name"),
        }
    };
}

macro_rules! splt_features {
    ($($i:literal)+) => {
        &[
            $(Feature::f64(cstr!("splt_direction_", $i),
                c"direction of packet i: 0 src->dst, 1 dst->src, -1 no such packet"),)+
            $(Feature::f64(cstr!("splt_ps_", $i),
                c"wire size of packet i in bytes, -1 no such packet"),)+
            $(Feature::f64(cstr!("splt_piat_ms_", $i),
                c"ms since the previous packet (0 for packet 0), -1 no such packet"),)+
        ]
    };
}

/// `splt_direction_0..31`, then `splt_ps_0..31`, then `splt_piat_ms_0..31`.
pub const FEATURES: &[Feature] = splt_features!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
);
const _: () = assert!(FEATURES.len() == 3 * MAX_N);

/// Parse `{"n": N}`; every other key is an error naming it.
pub fn parse_config(config_json: &str) -> Result<usize, String> {
    let v: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| format!("config is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("config must be a JSON object")?;
    let mut n = DEFAULT_N;
    for (k, val) in obj {
        match k.as_str() {
            "n" => {
                n = val
                    .as_u64()
                    .filter(|n| (1..=MAX_N as u64).contains(n))
                    .ok_or_else(|| {
                        format!("config key 'n' must be an integer from 1 to {MAX_N}, got {val}")
                    })? as usize;
            }
            other => return Err(format!("unknown config key '{other}' (splt takes 'n')")),
        }
    }
    Ok(n)
}

impl Plugin for SpltPlugin {
    const NAME: &'static CStr = c"splt";
    const VERSION: &'static CStr = c"1.0.0";
    const DESCRIPTION: Option<&'static CStr> =
        Some(c"sizes, directions and inter-arrival times of the first N packets (NFStream splt)");
    const CONFIG_SCHEMA: Option<&'static CStr> = Some(
        cr#"{"type":"object","properties":{"n":{"type":"integer","minimum":1,"maximum":32,"default":8}},"additionalProperties":false}"#,
    );
    const FEATURES: &'static [Feature] = FEATURES;
    type State = Splt;

    fn create(config_json: &str, _worker: u32) -> Result<Self, String> {
        Ok(SpltPlugin {
            n: parse_config(config_json)?,
        })
    }

    /// Not called by the host (the plugin is exported as a [`SizedPlugin`]): with no room
    /// for packets it records none.
    fn update(&mut self, s: &mut Splt, pkt: &PacketV1) -> Verdict {
        self.update_sized(s, &mut [], pkt)
    }

    /// Not called by the host, as [`Plugin::update`].
    fn emit(&mut self, key: &FlowKeyV1, s: &Splt, out: &mut [f64]) {
        self.emit_sized(key, s, &[], out)
    }
}

impl SizedPlugin for SpltPlugin {
    type Item = SpltPacket;
    const MAX_ITEMS: usize = MAX_N;

    fn items(&self) -> usize {
        self.n
    }

    #[inline]
    fn update_sized(&mut self, s: &mut Splt, items: &mut [SpltPacket], pkt: &PacketV1) -> Verdict {
        let i = s.count as usize;
        let Some(slot) = items.get_mut(i) else {
            // Full: a packet of the same flow later in the burst that set done.
            return Verdict::Done;
        };
        let t = pkt.ts_ms();
        let gap = if i == 0 {
            0
        } else {
            t.saturating_sub(s.last_ms)
        };
        s.last_ms = t;
        *slot = SpltPacket::new(
            u16::try_from(pkt.wire_len).unwrap_or(u16::MAX),
            u32::try_from(gap).unwrap_or(u32::MAX),
        );
        s.directions |= u32::from(pkt.direction == WEIR_DIR_DST_TO_SRC) << i;
        s.count += 1;
        if s.count as usize >= items.len() {
            Verdict::Done
        } else {
            Verdict::Continue
        }
    }

    fn emit_sized(&mut self, _key: &FlowKeyV1, s: &Splt, items: &[SpltPacket], out: &mut [f64]) {
        // out arrives all NaN: packets i >= n stay missing.
        let seen = (s.count as usize).min(items.len());
        for i in 0..self.n {
            let (d, ps, piat) = match items.get(i) {
                Some(p) if i < seen => (
                    ((s.directions >> i) & 1) as f64,
                    p.ps() as f64,
                    p.piat_ms() as f64,
                ),
                _ => (-1.0, -1.0, -1.0),
            };
            out[i] = d;
            out[MAX_N + i] = ps;
            out[2 * MAX_N + i] = piat;
        }
    }
}

weir_plugin_api::export_plugin!(SpltPlugin, sized);

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(t_ms: u64, dir: u8, len: u32) -> PacketV1 {
        PacketV1 {
            ts_ns: t_ms * 1_000_000 + 123_456,
            wire_len: len,
            direction: dir,
            ..PacketV1::EMPTY
        }
    }

    fn run(n: usize, pkts: &[PacketV1]) -> (Vec<f64>, Vec<Verdict>) {
        let mut p = SpltPlugin::create(&format!("{{\"n\":{n}}}"), 0).unwrap();
        let mut s = Splt::zeroed();
        let mut items = vec![SpltPacket::default(); p.items()];
        let v = pkts
            .iter()
            .map(|x| p.update_sized(&mut s, &mut items, x))
            .collect();
        let mut out = vec![f64::NAN; 3 * MAX_N];
        p.emit_sized(&FlowKeyV1::default(), &s, &items, &mut out);
        (out, v)
    }

    #[test]
    fn short_flow_pads_with_minus_one_and_nan_beyond_n() {
        let (out, v) = run(4, &[pkt(100, 0, 60), pkt(130, 1, 1500), pkt(131, 0, 52)]);
        assert_eq!(v, [Verdict::Continue; 3]);
        assert_eq!(&out[0..4], &[0.0, 1.0, 0.0, -1.0]);
        assert_eq!(&out[32..36], &[60.0, 1500.0, 52.0, -1.0]);
        assert_eq!(&out[64..68], &[0.0, 30.0, 1.0, -1.0]);
        for base in [0, 32, 64] {
            assert!(out[base + 4..base + 32].iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn stops_after_n_and_ignores_later_packets() {
        let pkts: Vec<_> = (0..10)
            .map(|i| pkt(i * 7, (i % 2) as u8, 100 + i as u32))
            .collect();
        let (out, v) = run(3, &pkts);
        assert_eq!(
            &v[..3],
            &[Verdict::Continue, Verdict::Continue, Verdict::Done]
        );
        assert!(v[3..].iter().all(|v| *v == Verdict::Done));
        assert_eq!(&out[0..3], &[0.0, 1.0, 0.0]);
        assert_eq!(&out[32..35], &[100.0, 101.0, 102.0]);
        assert_eq!(&out[64..67], &[0.0, 7.0, 7.0]);
    }

    #[test]
    fn full_32_and_saturation() {
        let pkts: Vec<_> = (0..32u64)
            .map(|i| {
                pkt(
                    i * i,
                    (i % 3 == 0) as u8,
                    70_000 * (i == 5) as u32 + i as u32,
                )
            })
            .collect();
        let (out, v) = run(32, &pkts);
        assert_eq!(v[31], Verdict::Done);
        for i in 0..32u64 {
            let ii = i as usize;
            assert_eq!(out[ii], (i % 3 == 0) as u8 as f64);
            let want_ps = if i == 5 { 65535.0 } else { i as f64 };
            assert_eq!(out[32 + ii], want_ps);
            let want_gap = if i == 0 { 0 } else { i * i - (i - 1) * (i - 1) };
            assert_eq!(out[64 + ii], want_gap as f64);
        }
    }

    #[test]
    fn config_defaults_and_errors() {
        assert_eq!(parse_config("{}").unwrap(), 8);
        assert_eq!(parse_config("{\"n\": 32}").unwrap(), 32);
        for (bad, needle) in [
            ("{\"n\": 0}", "'n' must be an integer from 1 to 32"),
            ("{\"n\": 33}", "'n' must be"),
            ("{\"n\": \"8\"}", "'n' must be"),
            ("{\"m\": 8}", "unknown config key 'm'"),
            ("[8]", "must be a JSON object"),
            ("{", "not JSON"),
        ] {
            let e = parse_config(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn feature_names() {
        let n: Vec<&str> = FEATURES.iter().map(|f| f.name.to_str().unwrap()).collect();
        assert_eq!(n[0], "splt_direction_0");
        assert_eq!(n[31], "splt_direction_31");
        assert_eq!(n[32], "splt_ps_0");
        assert_eq!(n[95], "splt_piat_ms_31");
    }
}
