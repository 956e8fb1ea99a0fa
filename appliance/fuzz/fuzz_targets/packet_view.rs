//! Fuzz the packet view plugins read (`PacketV1::bytes` / `PacketV1::payload`): for a parsed
//! frame the payload is exactly the captured part of what the view claims; for a view with
//! arbitrary (hostile) offsets over a buffer, `payload()` still returns a subslice of the
//! captured bytes (C plugins index it directly, so clamping there is what keeps them safe).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::parse::parse;
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_NO_OFFSET};

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    // Part 1: arbitrary offsets over the rest of the input.
    let frame = &data[8..];
    let mut v = PacketV1::EMPTY;
    v.data = frame.as_ptr();
    v.cap_len = (u16::from_le_bytes([data[0], data[1]]) as usize).min(frame.len()) as u32;
    v.payload_off = u16::from_le_bytes([data[2], data[3]]);
    v.payload_len = u16::from_le_bytes([data[4], data[5]]);
    // SAFETY: data/cap_len describe a prefix of `frame`, alive for this call.
    let (all, pl) = unsafe { (v.bytes(), v.payload()) };
    assert_eq!(all.len(), v.cap_len as usize);
    assert!(within(all, pl));
    assert!(pl.len() <= v.payload_len as usize);
    if v.payload_off == WEIR_NO_OFFSET {
        assert!(pl.is_empty());
    }

    // Part 2: the view the parser builds over the same bytes.
    let mut p = PacketV1::EMPTY;
    let mut k = FlowKeyV1::default();
    let wire = frame.len() as u32 + data[6] as u32;
    if parse(frame, wire, 1, &mut p, &mut k).is_ok() {
        // SAFETY: the parser pointed the view at `frame`.
        let (all, pl) = unsafe { (p.bytes(), p.payload()) };
        assert_eq!(all.as_ptr(), frame.as_ptr());
        assert_eq!(all.len(), frame.len());
        assert!(within(all, pl));
        if p.payload_off != WEIR_NO_OFFSET {
            let start = p.payload_off as usize;
            let expect = (p.payload_len as usize).min(frame.len().saturating_sub(start));
            assert_eq!(pl.len(), expect);
        } else {
            assert!(pl.is_empty());
        }
    }
});
