//! Fuzz `weir::parse::parse`: any frame either parses into a view whose offsets stay inside
//! the captured bytes, or is refused with a named reason; never a panic. The first two input
//! bytes give the wire length's excess over the captured length (a snap length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::parse::parse;
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_NO_OFFSET};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let extra = u16::from_le_bytes([data[0], data[1]]) as u32;
    let frame = &data[2..];
    let wire = frame.len() as u32 + extra;
    let mut p = PacketV1::EMPTY;
    let mut k = FlowKeyV1::default();
    let first = parse(frame, wire, 7, &mut p, &mut k);
    // Deterministic: the same frame gives the same answer.
    let mut p2 = PacketV1::EMPTY;
    let mut k2 = FlowKeyV1::default();
    let second = parse(frame, wire, 7, &mut p2, &mut k2);
    assert_eq!(first, second);
    if first.is_err() {
        return;
    }
    assert_eq!(k, k2);
    assert_eq!(p.cap_len as usize, frame.len());
    assert!((p.l3_off as usize) < frame.len());
    assert!(p.ip_version == 4 || p.ip_version == 6);
    assert_eq!(k.ip_version, p.ip_version);
    assert_eq!(k.protocol, p.protocol);
    if p.l4_off != WEIR_NO_OFFSET {
        assert!(p.l4_off > p.l3_off);
        let min = match p.protocol {
            6 => 20,
            17 => 8,
            _ => 4,
        };
        assert!(p.l4_off as usize + min <= frame.len());
    }
    if p.payload_off != WEIR_NO_OFFSET {
        assert!(p.l4_off != WEIR_NO_OFFSET && p.payload_off > p.l4_off);
    }
    // The IP length the view reports exceeds what the wire carried after L3 only for an IPv4
    // packet cut on the wire: its header's Total Length, counted as `ipv4_truncated`.
    assert!(
        p.l3_off as u32 + p.ip_len as u32 <= wire.max(frame.len() as u32)
            || weir::parse::ipv4_truncated(&p)
    );
    if weir::parse::ipv4_truncated(&p) {
        assert_eq!(p.ip_version, 4);
        assert_eq!(p.wire_len, wire);
    }
});
