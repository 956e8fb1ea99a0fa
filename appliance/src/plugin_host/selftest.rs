//! The load-time self-test: run a plugin on two small synthetic flows before it sees traffic.
//!
//! One IPv4 TCP connection (handshake, a request and a response with payload, FIN both ways)
//! and one IPv6 UDP exchange, interleaved in arrival order and handed over in two bursts, both
//! directions. The frames are real Ethernet/IP/TCP|UDP bytes, so plugins that read payload work.
//! The plugin must return WEIR_OK from every call and write every feature in `flow_emit`, with
//! values that fit the declared kind (u64: NaN or a non-negative integer; bool: NaN, 0 or 1).
//! A plugin with the ABI 1.1 `interval_emit` has it called on each flow before `flow_emit`,
//! under the same rules. The test runs the plugin as the run will (see
//! `Descriptor::for_run`): with interval records off there is no `interval_emit` and no
//! interval part; with them on, the ABI 1.2 interval part and `update_burst_intervals`.
//!
//! Then a second round on malformed packets, as the parser hands them over in production (run
//! through `crate::parse::parse`, one flow each): a TCP segment cut by the snap length inside its
//! payload, a UDP datagram without payload, ICMP and ICMPv6 echoes, and the first and a later
//! fragment of a fragmented IPv4 datagram.
//!
//! Every flow state, every `flow_emit`/`interval_emit` output array and every `done` array is
//! surrounded by guard bytes; a plugin that writes past one is refused at load with the stage
//! and how far it wrote, rather than corrupting a neighbouring flow in production.

use super::descriptor::{Callbacks, Descriptor, FeatureKind};
use super::refusal::RefusalReason;
pub use super::synthetic::SyntheticTraffic;
use std::alloc::Layout;
use std::ffi::{c_void, CString};
use weir_plugin_api::*;

/// A canary written into `flow_emit`'s output before the call: a NaN with a payload no
/// arithmetic produces, so a feature left unwritten is told apart from a NaN the plugin wrote.
const UNWRITTEN: u64 = 0x7ff4_dead_beef_0001;

/// Guard bytes on each side of every state the self-test hands out (a multiple of every
/// allowed `state_align`, so the state stays aligned).
const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xa5;
/// Guard values around the output arrays: a NaN with a payload no arithmetic produces.
const GUARD_WORDS: usize = 8;
const GUARD_F64: u64 = 0x7ff4_5afe_9a4d_0002;

/// A zeroed, aligned heap block for one state during the self-test, between guard bytes.
struct StateBuf {
    base: *mut u8,
    ptr: *mut u8,
    size: usize,
    layout: Layout,
}

impl StateBuf {
    fn new(size: u32, align: u32) -> StateBuf {
        let size = size as usize;
        let layout = Layout::from_size_align(GUARD + size + GUARD, (align as usize).max(64))
            .expect("state_align was checked to be a power of two <= 64");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: base points to layout.size() writable bytes; the state is [GUARD, GUARD+size).
        let ptr = unsafe {
            std::ptr::write_bytes(base, GUARD_BYTE, layout.size());
            let ptr = base.add(GUARD);
            std::ptr::write_bytes(ptr, 0, size);
            ptr
        };
        StateBuf {
            base,
            ptr,
            size,
            layout,
        }
    }

    /// Where the plugin wrote outside the state, if it did.
    fn overrun(&self) -> Option<String> {
        // SAFETY: base..base+layout.size() is this allocation, initialised in new.
        let all = unsafe { std::slice::from_raw_parts(self.base, self.layout.size()) };
        let (before, rest) = all.split_at(GUARD);
        let after = &rest[self.size..];
        if let Some(k) = after.iter().rposition(|&b| b != GUARD_BYTE) {
            return Some(format!(
                "wrote past the end of its {}-byte flow state (up to byte {} after it)",
                self.size,
                k + 1
            ));
        }
        if let Some(k) = before.iter().position(|&b| b != GUARD_BYTE) {
            return Some(format!(
                "wrote {} bytes before the start of its {}-byte flow state",
                GUARD - k,
                self.size
            ));
        }
        None
    }
}

impl Drop for StateBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in new with this layout.
        unsafe { std::alloc::dealloc(self.base, self.layout) };
    }
}

/// The first state a plugin overran, as a refusal of `stage`.
fn check_states(states: &[StateBuf], stage: &'static str) -> Result<(), RefusalReason> {
    match states.iter().find_map(StateBuf::overrun) {
        Some(m) => Err(fail(stage, m)),
        None => Ok(()),
    }
}

/// An output array of `n` doubles (filled with `fill`) between guard words.
fn guarded_out(n: usize, fill: u64) -> Vec<f64> {
    let mut v = vec![f64::from_bits(GUARD_F64); GUARD_WORDS + n + GUARD_WORDS];
    for x in &mut v[GUARD_WORDS..GUARD_WORDS + n] {
        *x = f64::from_bits(fill);
    }
    v
}

/// Whether the guard words of [`guarded_out`]'s array are intact.
fn check_out(v: &[f64], n: usize, stage: &'static str) -> Result<(), RefusalReason> {
    let (before, rest) = v.split_at(GUARD_WORDS);
    let after = &rest[n..];
    if let Some(k) = after.iter().rposition(|x| x.to_bits() != GUARD_F64) {
        return Err(fail(
            stage,
            format!(
                "wrote past the end of its {n}-value output array (up to value {} after it)",
                k + 1
            ),
        ));
    }
    if before.iter().any(|x| x.to_bits() != GUARD_F64) {
        return Err(fail(
            stage,
            format!("wrote before the start of its {n}-value output array"),
        ));
    }
    Ok(())
}

/// The plugin's last_error text for `inst`, or a placeholder.
///
/// # Safety
/// `cb` belongs to a loaded plugin and `inst` is one of its instances (or NULL after create).
pub(crate) unsafe fn last_error(cb: &Callbacks, inst: *mut c_void) -> String {
    // SAFETY: forwarded; the string is valid until the next call on the instance.
    match unsafe { super::descriptor::c_string((cb.last_error)(inst), 4096) } {
        Ok(Some(s)) if !s.is_empty() => s,
        Ok(_) => "(the plugin gave no error message)".to_string(),
        Err(e) => format!("(last_error: {e})"),
    }
}

/// Check one emitted value against its feature's kind.
pub(crate) fn value_fits(kind: FeatureKind, v: f64) -> bool {
    if v.is_nan() {
        return true;
    }
    match kind {
        FeatureKind::F64 => true,
        FeatureKind::U64 => v >= 0.0 && v.fract() == 0.0 && v.is_finite(),
        FeatureKind::Bool => v == 0.0 || v == 1.0,
        FeatureKind::Text => true,
    }
}

fn fail(stage: &'static str, message: String) -> RefusalReason {
    RefusalReason::SelfTest { stage, message }
}

/// Create an instance with `config_json` for `worker`; a failure is the `create` stage's.
pub(crate) fn create(
    desc: &Descriptor,
    config_json: &str,
    worker: u32,
) -> Result<*mut c_void, RefusalReason> {
    let cb = desc.cb;
    let config = CString::new(config_json).map_err(|_| {
        fail(
            "create",
            "the plugin's config JSON contains a NUL byte".into(),
        )
    })?;
    let mut inst: *mut c_void = std::ptr::null_mut();
    // SAFETY: create is a checked non-NULL callback of a plugin that stays loaded; config is a
    // NUL-terminated string that outlives the call.
    let rc = unsafe { (cb.create)(config.as_ptr(), worker, &mut inst) };
    if rc != WEIR_OK {
        // SAFETY: last_error(NULL) is defined for a failed create.
        return Err(fail("create", unsafe {
            last_error(&cb, std::ptr::null_mut())
        }));
    }
    Ok(inst)
}

/// Run the self-test. `config_json` is what `create` will get on the workers.
pub fn run(desc: &Descriptor, config_json: &str) -> Result<(), RefusalReason> {
    let cb = desc.cb;
    let inst = create(desc, config_json, 0)?;
    let result = exercise(desc, inst);
    if let Some(destroy) = cb.destroy {
        // SAFETY: inst came from this plugin's create and is not used afterwards.
        unsafe { destroy(inst) };
    }
    result
}

fn exercise(desc: &Descriptor, inst: *mut c_void) -> Result<(), RefusalReason> {
    exercise_on(desc, inst, &SyntheticTraffic::new())?;
    exercise_on(desc, inst, &SyntheticTraffic::malformed())
}

// Long: the calls in the order a run makes them, each result checked where it is made.
fn exercise_on(
    desc: &Descriptor,
    inst: *mut c_void,
    traffic: &SyntheticTraffic,
) -> Result<(), RefusalReason> {
    let cb = desc.cb;
    let states: Vec<StateBuf> = traffic
        .keys
        .iter()
        .map(|_| StateBuf::new(desc.state_size, desc.state_align))
        .collect();
    for (k, s) in traffic.keys.iter().zip(&states) {
        // SAFETY: inst is live; key and state outlive the call; state is zeroed, state_size
        // bytes at state_align.
        let rc = unsafe { (cb.flow_init)(inst, k, s.ptr as *mut c_void) };
        if rc != WEIR_OK {
            // SAFETY: inst is live.
            return Err(fail("flow_init", unsafe { last_error(&cb, inst) }));
        }
        check_states(&states, "flow_init")?;
    }
    // Two bursts, so state is carried across calls; packets of a flow the plugin marked done
    // are held back, as the host does.
    let mut flow_done = vec![false; traffic.keys.len()];
    let half = traffic.pkts.len() / 2;
    for range in [0..half, half..traffic.pkts.len()] {
        let idx: Vec<usize> = range.filter(|&i| !flow_done[traffic.flow_of[i]]).collect();
        if idx.is_empty() {
            continue;
        }
        let pkts: Vec<PacketV1> = idx.iter().map(|&i| traffic.pkts[i]).collect();
        let sp: Vec<*mut c_void> = idx
            .iter()
            .map(|&i| states[traffic.flow_of[i]].ptr as *mut c_void)
            .collect();
        // `done` between guard bytes too.
        let mut done_buf = vec![GUARD_BYTE; GUARD + idx.len() + GUARD];
        done_buf[GUARD..GUARD + idx.len()].fill(0);
        // SAFETY: the three arrays have idx.len() entries (done's from offset GUARD); packets
        // point into live frames.
        let rc = unsafe {
            (cb.update_burst)(
                inst,
                sp.as_ptr(),
                pkts.as_ptr(),
                done_buf.as_mut_ptr().add(GUARD),
                idx.len() as u32,
            )
        };
        if rc != WEIR_OK {
            // SAFETY: inst is live.
            return Err(fail("update_burst", unsafe { last_error(&cb, inst) }));
        }
        check_states(&states, "update_burst")?;
        let (pre, rest) = done_buf.split_at(GUARD);
        let (done, post) = rest.split_at(idx.len());
        if pre.iter().chain(post).any(|&b| b != GUARD_BYTE) {
            return Err(fail(
                "update_burst",
                format!("wrote outside its {}-entry done array", idx.len()),
            ));
        }
        for (j, &i) in idx.iter().enumerate() {
            if done[j] != 0 {
                flow_done[traffic.flow_of[i]] = true;
            }
        }
    }
    let n = desc.features.len();
    for (k, s) in traffic.keys.iter().zip(&states) {
        // ABI 1.1: the flow's interval ends first (as the host does before flow_emit), so the
        // interval callback is exercised and its reset must not disturb flow_emit.
        if let Some(interval_emit) = cb.interval_emit {
            let mut buf = guarded_out(n, UNWRITTEN);
            // SAFETY: buf has n doubles from GUARD_WORDS; key and state are live.
            let rc = unsafe {
                interval_emit(
                    inst,
                    k,
                    s.ptr.cast(),
                    buf.as_mut_ptr().add(GUARD_WORDS),
                    n as u32,
                )
            };
            if rc != WEIR_OK {
                // SAFETY: inst is live.
                return Err(fail("interval_emit", unsafe { last_error(&cb, inst) }));
            }
            check_out(&buf, n, "interval_emit")?;
            check_states(&states, "interval_emit")?;
            let out = &buf[GUARD_WORDS..GUARD_WORDS + n];
            for (f, v) in desc.features.iter().zip(out) {
                if f.kind != FeatureKind::Text
                    && (v.to_bits() == UNWRITTEN || !value_fits(f.kind, *v))
                {
                    return Err(fail(
                        "interval_emit",
                        format!(
                            "feature {:?} of kind {} was left unwritten or got {v} (write NaN \
                             for a value an interval does not have)",
                            f.name, f.kind
                        ),
                    ));
                }
            }
        }
        let mut buf = guarded_out(n, UNWRITTEN);
        // ABI 1.4: text buffers between guard bytes, as the host hands them over.
        let n_texts = desc.n_texts();
        let stride = WEIR_TEXT_MAX as usize + GUARD;
        let mut text_bytes = vec![GUARD_BYTE; GUARD + n_texts * stride];
        let mut texts: Vec<TextV1> = (0..n_texts)
            .map(|j| TextV1 {
                buf: text_bytes[GUARD + j * stride..].as_mut_ptr().cast(),
                cap: WEIR_TEXT_MAX,
                len: WEIR_TEXT_MISSING,
            })
            .collect();
        let (stage, rc) = match cb.flow_emit_text {
            // SAFETY: buf has n doubles from GUARD_WORDS, texts n_texts entries with cap
            // writable bytes each; key and state are live.
            Some(f) => ("flow_emit_text", unsafe {
                f(
                    inst,
                    k,
                    s.ptr.cast(),
                    buf.as_mut_ptr().add(GUARD_WORDS),
                    n as u32,
                    texts.as_mut_ptr(),
                    n_texts as u32,
                )
            }),
            // SAFETY: as above, without texts.
            None => ("flow_emit", unsafe {
                (cb.flow_emit)(
                    inst,
                    k,
                    s.ptr as *const c_void,
                    buf.as_mut_ptr().add(GUARD_WORDS),
                    n as u32,
                )
            }),
        };
        if rc != WEIR_OK {
            // SAFETY: inst is live.
            return Err(fail(stage, unsafe { last_error(&cb, inst) }));
        }
        check_out(&buf, n, stage)?;
        // Writing past a text buffer is refused here; a value too long or not UTF-8 is not (it
        // is refused and counted value by value at run time).
        for j in 0..n_texts {
            let g = &text_bytes[GUARD + j * stride + WEIR_TEXT_MAX as usize..][..GUARD];
            if g.iter().any(|&b| b != GUARD_BYTE)
                || text_bytes[..GUARD].iter().any(|&b| b != GUARD_BYTE)
            {
                return Err(fail(
                    stage,
                    format!("wrote outside its {WEIR_TEXT_MAX}-byte text buffer {j}"),
                ));
            }
        }
        check_states(&states, "flow_emit")?;
        let out = &buf[GUARD_WORDS..GUARD_WORDS + n];
        for (f, v) in desc.features.iter().zip(out) {
            if f.kind == FeatureKind::Text {
                continue; // its double slot is not read
            }
            if v.to_bits() == UNWRITTEN {
                return Err(fail(
                    "flow_emit",
                    format!(
                        "feature {:?} was not written (write NaN for a missing value)",
                        f.name
                    ),
                ));
            }
            if !value_fits(f.kind, *v) {
                return Err(fail(
                    "flow_emit",
                    format!("feature {:?} of kind {} got the value {v}", f.name, f.kind),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_frames_are_consistent() {
        let t = SyntheticTraffic::new();
        assert_eq!(t.pkts.len(), 11);
        for p in &t.pkts {
            // SAFETY: the views point into t's frames.
            let b = unsafe { p.bytes() };
            assert_eq!(b.len(), p.cap_len as usize);
            assert_eq!(p.l3_off as usize + p.ip_len as usize, b.len());
            assert_eq!(b[p.l3_off as usize] >> 4, p.ip_version);
            let l4 = p.l4_off as usize;
            let k = &t.keys[t.flow_of[t.pkts.iter().position(|q| q.ts_ns == p.ts_ns).unwrap()]];
            let (sp, dp) = (
                u16::from_be_bytes([b[l4], b[l4 + 1]]),
                u16::from_be_bytes([b[l4 + 2], b[l4 + 3]]),
            );
            if p.direction == WEIR_DIR_SRC_TO_DST {
                assert_eq!((sp, dp), (k.src_port, k.dst_port));
            } else {
                assert_eq!((sp, dp), (k.dst_port, k.src_port));
            }
            // SAFETY: as above.
            assert_eq!(unsafe { p.payload() }.len(), p.payload_len as usize);
        }
        // Both directions of both flows, one FIRST_OF_FLOW per flow.
        let firsts = t
            .pkts
            .iter()
            .filter(|p| p.flags & WEIR_PKT_FIRST_OF_FLOW != 0)
            .count();
        assert_eq!(firsts, 2);
        // The IPv4 header checksum verifies (sums to 0xffff including itself).
        let ip = crate::wire::ipv4::Ipv4Packet::new_checked(&t._frames[0][14..]).unwrap();
        assert!(ip.verify_checksum());
    }

    #[test]
    fn malformed_round_reaches_plugins() {
        let t = SyntheticTraffic::malformed();
        // Every crafted frame parses, except (today) the later fragment, which the parser
        // skips without an L4 header; it stays in the round for when it is accepted.
        assert!(t.pkts.len() >= 6, "{:?}", t.keys);
        let protos: Vec<u8> = t.pkts.iter().map(|p| p.protocol).collect();
        assert!(protos.contains(&1) && protos.contains(&58), "{protos:?}");
        // The snap-cut segments: fewer bytes captured than on the wire.
        assert!(t.pkts.iter().filter(|p| p.cap_len < p.wire_len).count() >= 2);
        // A packet without payload and a fragment.
        assert!(t
            .pkts
            .iter()
            .any(|p| p.protocol == 17 && p.payload_len == 0));
        for p in &t.pkts {
            // SAFETY: the views point into t's frames.
            let b = unsafe { p.bytes() };
            assert_eq!(b.len(), p.cap_len as usize);
            // SAFETY: as above.
            assert!(unsafe { p.payload() }.len() <= p.payload_len as usize);
        }
    }

    #[test]
    fn guards_find_overruns() {
        let s = StateBuf::new(24, 8);
        assert_eq!(s.overrun(), None);
        assert_eq!(s.ptr as usize % 8, 0);
        // SAFETY: inside the allocation (the guard after the state).
        unsafe { *s.ptr.add(24 + 3) = 0 };
        let m = s.overrun().unwrap();
        assert!(
            m.contains("past the end of its 24-byte") && m.contains("byte 4"),
            "{m}"
        );
        let s = StateBuf::new(0, 1);
        // SAFETY: inside the allocation (the guard before the state).
        unsafe { *s.ptr.sub(1) = 0 };
        assert!(s.overrun().unwrap().contains("before the start"));
        let mut v = guarded_out(3, UNWRITTEN);
        assert!(check_out(&v, 3, "flow_emit").is_ok());
        v[GUARD_WORDS + 3] = 1.0;
        assert!(check_out(&v, 3, "flow_emit").is_err());
    }

    #[test]
    fn kinds() {
        assert!(value_fits(FeatureKind::U64, 3.0));
        assert!(!value_fits(FeatureKind::U64, -1.0));
        assert!(!value_fits(FeatureKind::U64, 1.5));
        assert!(value_fits(FeatureKind::Bool, f64::NAN));
        assert!(!value_fits(FeatureKind::Bool, 2.0));
    }
}
