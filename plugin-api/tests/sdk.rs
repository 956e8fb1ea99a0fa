//! The SDK through its generated `extern "C"` functions: a test plugin exported with
//! `export_plugin!` in this test binary, driven through the descriptor that
//! `weir_plugin_entry_v1` returns, as a host would.

use std::ffi::{c_void, CStr};
use std::mem::{align_of, size_of};

use weir_plugin_api::sdk::{self, Burst, Feature, Plugin, Verdict, Zeroable};
use weir_plugin_api::*;

/// Counts heap allocations made by the current thread, to prove the generated per-packet path
/// allocates nothing.
struct Counting;
thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
// SAFETY: every call is passed on unchanged to the system allocator, which upholds the
// GlobalAlloc contract; counting touches only a thread-local Cell.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: p came from System.alloc with layout l (alloc above), per the caller.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|a| a.get())
}

/// Counts packets and bytes; fails on demand: config `{"fail":true}` makes create return Err,
/// `{"panic":true}` makes create panic; a packet with wire_len 0xdead makes update panic; a
/// flow key with src_port 666 makes emit panic. Done after `limit` packets.
struct Probe {
    worker: u32,
    limit: u64,
}

#[derive(Clone, Copy, Zeroable)]
#[repr(C, align(16))]
struct ProbeState {
    packets: u64,
    bytes: u64,
    init_port: u16,
}

impl Plugin for Probe {
    const NAME: &'static CStr = c"probe";
    const VERSION: &'static CStr = c"0.1.0";
    const DESCRIPTION: Option<&'static CStr> = Some(c"SDK test plugin");
    const FEATURES: &'static [Feature] = &[
        Feature::u64(c"probe_packets", c"packets"),
        Feature::u64(c"probe_bytes", c"bytes"),
        Feature::f64(c"probe_worker", c"worker id"),
        Feature::u64(c"probe_init_port", c"src port seen in flow_init"),
        Feature::f64(c"probe_missing", c"never written: stays NaN"),
    ];
    type State = ProbeState;

    fn create(config_json: &str, worker: u32) -> Result<Self, String> {
        if config_json.contains("\"panic\":true") {
            panic!("create was told to panic");
        }
        if config_json.contains("\"fail\":true") {
            return Err("bad config key 'fail'".into());
        }
        Ok(Probe { worker, limit: 3 })
    }

    fn flow_init(&mut self, key: &FlowKeyV1, state: &mut ProbeState) {
        assert_eq!(state.packets, 0, "state must arrive zeroed");
        state.init_port = key.src_port;
    }

    fn update(&mut self, s: &mut ProbeState, pkt: &PacketV1) -> Verdict {
        if pkt.wire_len == 0xdead {
            panic!("update saw the poison packet");
        }
        s.packets += 1;
        s.bytes += pkt.wire_len as u64;
        if s.packets >= self.limit {
            Verdict::Done
        } else {
            Verdict::Continue
        }
    }

    fn update_burst(&mut self, burst: &mut Burst<'_, ProbeState>) {
        // Same as the default, but skips flows already done earlier in this burst.
        for i in 0..burst.len() {
            let (pkt, s) = burst.get_mut(i);
            if s.packets >= self.limit {
                burst.set_done(i);
                continue;
            }
            if self.update(s, pkt) == Verdict::Done {
                burst.set_done(i);
            }
        }
    }

    fn emit(&mut self, key: &FlowKeyV1, s: &ProbeState, out: &mut [f64]) {
        assert!(key.src_port != 666, "emit was told to panic");
        out[0] = s.packets as f64;
        out[1] = s.bytes as f64;
        out[2] = self.worker as f64;
        out[3] = s.init_port as f64;
    }
}

weir_plugin_api::export_plugin!(Probe);

fn desc() -> &'static PluginV1 {
    let d = weir_plugin_entry_v1(WEIR_ABI_MAJOR, WEIR_ABI_MINOR);
    // SAFETY: the entry returns NULL or a pointer to its static descriptor.
    unsafe { d.as_ref() }.expect("descriptor for host 1.0")
}

fn s(p: *const std::ffi::c_char) -> String {
    // SAFETY: callers pass descriptor strings and error messages: NUL-terminated, static or
    // alive until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn create(config: &CStr) -> Result<*mut c_void, String> {
    let d = desc();
    let mut inst = std::ptr::null_mut();
    // SAFETY: config is NUL-terminated; inst is a valid out-pointer.
    let rc = unsafe { d.create.unwrap()(config.as_ptr(), 7, &mut inst) };
    if rc == WEIR_OK {
        Ok(inst)
    } else {
        assert_eq!(rc, WEIR_ERR);
        // SAFETY: last_error accepts NULL (the thread's create error).
        Err(s(unsafe { d.last_error.unwrap()(std::ptr::null_mut()) }))
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Slot([u8; 64]);

fn pkt(wire_len: u32) -> PacketV1 {
    PacketV1 {
        wire_len,
        ..PacketV1::EMPTY
    }
}

#[test]
fn descriptor_fields() {
    let d = desc();
    assert_eq!(d.magic, WEIR_PLUGIN_MAGIC);
    assert_eq!(&d.magic.to_le_bytes(), b"WEIR");
    assert_eq!((d.abi_major, d.abi_minor), (1, 4));
    assert_eq!(d.struct_size as usize, size_of::<PluginV1>());
    // The probe does not implement interval_emit (Plugin::INTERVALS is false): NULL.
    assert!(d.interval_emit.is_none());
    assert!(d.update_burst_intervals.is_none() && d.interval_state_size == 0);
    assert!(d.flow_state_size.is_none());
    // No text feature: no flow_emit_text (ABI 1.4), the host calls flow_emit.
    assert!(d.flow_emit_text.is_none());
    assert_eq!(d.flags, 0);
    assert_eq!(s(d.name), "probe");
    assert_eq!(s(d.version), "0.1.0");
    assert_eq!(s(d.description), "SDK test plugin");
    assert!(d.config_schema.is_null());
    assert_eq!(d.state_size as usize, size_of::<ProbeState>());
    assert_eq!(d.state_size, 32);
    assert_eq!(d.state_align as usize, align_of::<ProbeState>());
    assert_eq!(d.state_align, 16);
    assert_eq!(d.n_features, 5);
    // SAFETY: the descriptor declares n_features = 5 static feature descriptors (checked above).
    let f = unsafe { std::slice::from_raw_parts(d.features, 5) };
    let names: Vec<String> = f.iter().map(|f| s(f.name)).collect();
    assert_eq!(
        names,
        [
            "probe_packets",
            "probe_bytes",
            "probe_worker",
            "probe_init_port",
            "probe_missing"
        ]
    );
    assert_eq!(f[0].kind, WEIR_FEATURE_U64);
    assert_eq!(f[2].kind, WEIR_FEATURE_F64);
    assert_eq!(s(f[1].description), "bytes");
    assert!(d.create.is_some() && d.destroy.is_some() && d.flow_init.is_some());
    assert!(d.update_burst.is_some() && d.flow_emit.is_some() && d.last_error.is_some());
}

#[test]
fn entry_refuses_another_major_and_accepts_older_minor() {
    assert!(weir_plugin_entry_v1(2, 0).is_null());
    assert!(weir_plugin_entry_v1(0, 9).is_null());
    assert!(!weir_plugin_entry_v1(1, 0).is_null());
    // A newer host minor still gets the descriptor (the host decides what it reads).
    assert!(!weir_plugin_entry_v1(1, 3).is_null());
}

#[test]
fn create_err_and_panic_become_weir_err_with_message() {
    let e = create(c"{\"fail\":true}").unwrap_err();
    assert_eq!(e, "create: bad config key 'fail'");
    let e = create(c"{\"panic\":true}").unwrap_err();
    assert_eq!(e, "create panicked: create was told to panic");
    // The message is per thread: another thread sees its own (none yet).
    let other =
        // SAFETY: last_error accepts NULL (the thread's create error).
        std::thread::spawn(|| s(unsafe { desc().last_error.unwrap()(std::ptr::null_mut()) }))
            .join()
            .unwrap();
    assert_eq!(other, "no error");
    // Non-UTF-8 config is an error, not a panic.
    let d = desc();
    let mut inst = std::ptr::null_mut();
    let bad = [0xffu8, 0xfe, 0];
    // SAFETY: bad is NUL-terminated; inst is a valid out-pointer.
    let rc = unsafe { d.create.unwrap()(bad.as_ptr().cast(), 0, &mut inst) };
    assert_eq!(rc, WEIR_ERR);
    // SAFETY: last_error accepts NULL (the thread's create error).
    let e = s(unsafe { d.last_error.unwrap()(std::ptr::null_mut()) });
    assert!(e.starts_with("create: the config is not UTF-8"), "{e}");
}

#[test]
fn flow_runs_through_extern_callbacks() {
    let d = desc();
    let inst = create(c"{}").unwrap();
    let key = FlowKeyV1 {
        src_port: 4242,
        ..Default::default()
    };
    let mut a = Slot([0; 64]);
    let mut b = Slot([0; 64]);
    let pa = a.0.as_mut_ptr() as *mut c_void;
    let pb = b.0.as_mut_ptr() as *mut c_void;
    // SAFETY: the states are live 64-byte, 64-aligned slots (the declared state needs 32, 16)
    // of this instance; packets, outputs and done arrays have the lengths passed.
    unsafe {
        assert_eq!(d.flow_init.unwrap()(inst, &key, pa), WEIR_OK);
        assert_eq!(
            d.flow_init.unwrap()(inst, &FlowKeyV1::default(), pb),
            WEIR_OK
        );
        // Interleaved flows in one burst; a reaches its limit (3) at index 3, then is skipped.
        let states = [pa, pb, pa, pa, pb, pa];
        let pkts = [pkt(100), pkt(10), pkt(200), pkt(300), pkt(20), pkt(400)];
        let mut done = [0u8; 6];
        let rc =
            d.update_burst.unwrap()(inst, states.as_ptr(), pkts.as_ptr(), done.as_mut_ptr(), 6);
        assert_eq!(rc, WEIR_OK);
        assert_eq!(done, [0, 0, 0, 1, 0, 1]);
        // n = 0 is a no-op even with null arrays.
        let rc = d.update_burst.unwrap()(
            inst,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null_mut(),
            0,
        );
        assert_eq!(rc, WEIR_OK);
        let mut out = [0.0f64; 5];
        assert_eq!(
            d.flow_emit.unwrap()(inst, &key, pa, out.as_mut_ptr(), 5),
            WEIR_OK
        );
        assert_eq!(&out[..4], &[3.0, 600.0, 7.0, 4242.0]);
        assert!(out[4].is_nan(), "unwritten features are NaN");
        assert_eq!(
            d.flow_emit.unwrap()(inst, &key, pb, out.as_mut_ptr(), 5),
            WEIR_OK
        );
        assert_eq!(&out[..4], &[2.0, 30.0, 7.0, 0.0]);
        // A wrong feature count is refused with a message naming both numbers.
        assert_eq!(
            d.flow_emit.unwrap()(inst, &key, pb, out.as_mut_ptr(), 4),
            WEIR_ERR
        );
        assert_eq!(
            s(d.last_error.unwrap()(inst)),
            "flow_emit: the host asked for 4 features, the plugin has 5"
        );
        // A misaligned state is refused, not dereferenced.
        let rc = d.flow_init.unwrap()(inst, &key, pa.cast::<u8>().add(8).cast());
        assert_eq!(rc, WEIR_ERR);
        assert_eq!(
            s(d.last_error.unwrap()(inst)),
            "flow_init: the state is null or not aligned to 16"
        );
        d.destroy.unwrap()(inst);
    }
}

#[test]
fn panic_in_update_is_weir_err_and_instance_stays_failed() {
    let d = desc();
    let inst = create(c"{}").unwrap();
    let mut a = Slot([0; 64]);
    let pa = a.0.as_mut_ptr() as *mut c_void;
    // SAFETY: the states are live 64-byte, 64-aligned slots (the declared state needs 32, 16)
    // of this instance; packets, outputs and done arrays have the lengths passed.
    unsafe {
        assert_eq!(
            d.flow_init.unwrap()(inst, &FlowKeyV1::default(), pa),
            WEIR_OK
        );
        assert_eq!(s(d.last_error.unwrap()(inst)), "no error");
        let states = [pa, pa];
        let pkts = [pkt(1), pkt(0xdead)];
        let mut done = [0u8; 2];
        let rc =
            d.update_burst.unwrap()(inst, states.as_ptr(), pkts.as_ptr(), done.as_mut_ptr(), 2);
        assert_eq!(rc, WEIR_ERR);
        assert_eq!(
            s(d.last_error.unwrap()(inst)),
            "update_burst panicked: update saw the poison packet"
        );
        // Every later call fails with the first message kept.
        let mut out = [0.0f64; 5];
        let rc = d.flow_emit.unwrap()(inst, &FlowKeyV1::default(), pa, out.as_mut_ptr(), 5);
        assert_eq!(rc, WEIR_ERR);
        assert_eq!(
            s(d.last_error.unwrap()(inst)),
            "update_burst panicked: update saw the poison packet"
        );
        d.destroy.unwrap()(inst);
    }
    // A fresh instance is unaffected.
    let inst = create(c"{}").unwrap();
    let key = FlowKeyV1 {
        src_port: 666,
        ..Default::default()
    };
    let mut b = Slot([0; 64]);
    let pb = b.0.as_mut_ptr() as *mut c_void;
    // SAFETY: the states are live 64-byte, 64-aligned slots (the declared state needs 32, 16)
    // of this instance; packets, outputs and done arrays have the lengths passed.
    unsafe {
        assert_eq!(d.flow_init.unwrap()(inst, &key, pb), WEIR_OK);
        let mut out = [0.0f64; 5];
        assert_eq!(
            d.flow_emit.unwrap()(inst, &key, pb, out.as_mut_ptr(), 5),
            WEIR_ERR
        );
        assert_eq!(
            s(d.last_error.unwrap()(inst)),
            "flow_emit panicked: emit was told to panic"
        );
        d.destroy.unwrap()(inst);
    }
}

#[test]
fn callbacks_do_not_allocate_per_packet_or_per_burst() {
    let d = desc();
    let inst = create(c"{}").unwrap();
    let mut slots = [Slot([0; 64]); 4];
    let ptrs: Vec<*mut c_void> = slots
        .iter_mut()
        .map(|s| s.0.as_mut_ptr() as *mut c_void)
        .collect();
    let key = FlowKeyV1::default();
    let states: Vec<*mut c_void> = (0..32).map(|i| ptrs[i % 4]).collect();
    let pkts: Vec<PacketV1> = (0..32).map(|i| pkt(60 + i)).collect();
    let mut done = vec![0u8; 32];
    let mut out = [0.0f64; 5];
    let before = allocs();
    // SAFETY: the states are live 64-byte, 64-aligned slots (the declared state needs 32, 16)
    // of this instance; packets, outputs and done arrays have the lengths passed.
    unsafe {
        for p in &ptrs {
            assert_eq!(d.flow_init.unwrap()(inst, &key, *p), WEIR_OK);
        }
        for _ in 0..100 {
            let rc = d.update_burst.unwrap()(
                inst,
                states.as_ptr(),
                pkts.as_ptr(),
                done.as_mut_ptr(),
                32,
            );
            assert_eq!(rc, WEIR_OK);
        }
        for p in &ptrs {
            assert_eq!(
                d.flow_emit.unwrap()(inst, &key, *p, out.as_mut_ptr(), 5),
                WEIR_OK
            );
        }
    }
    assert_eq!(allocs() - before, 0, "the generated callbacks allocated");
    // The counter works: an error path does allocate (its message).
    // SAFETY: the states are live 64-byte, 64-aligned slots (the declared state needs 32, 16)
    // of this instance; packets, outputs and done arrays have the lengths passed.
    unsafe {
        assert_eq!(
            d.flow_emit.unwrap()(inst, &key, ptrs[0], out.as_mut_ptr(), 1),
            WEIR_ERR
        );
        assert!(allocs() > before);
        d.destroy.unwrap()(inst);
    }
}

/// ABI 1.4 through the SDK: a plugin with text features gets `flow_emit_text`, its values go
/// into the host's buffers with their full length (an overrun is reported, not cut), raw bytes
/// pass as they are (the host judges UTF-8), and an unset value stays missing.
struct Texter;

impl Plugin for Texter {
    const NAME: &'static CStr = c"texter";
    const VERSION: &'static CStr = c"0.1.0";
    const FEATURES: &'static [Feature] = &[
        Feature::text(c"texter_name", c"a name"),
        Feature::u64(c"texter_packets", c"packets"),
        Feature::text(c"texter_long", c"300 bytes"),
        Feature::text(c"texter_raw", c"raw bytes"),
        Feature::text(c"texter_unset", c"never set"),
    ];
    type State = ProbeState;
    fn create(_: &str, _: u32) -> Result<Self, String> {
        Ok(Texter)
    }
    fn update(&mut self, s: &mut ProbeState, _: &PacketV1) -> Verdict {
        s.packets += 1;
        Verdict::Continue
    }
    fn emit(&mut self, _: &FlowKeyV1, _: &ProbeState, _: &mut [f64]) {
        unreachable!("a plugin with text features is emitted through emit_text");
    }
    fn emit_text(
        &mut self,
        _: &FlowKeyV1,
        s: &mut ProbeState,
        out: &mut [f64],
        texts: &mut [weir_plugin_api::TextOut],
    ) {
        out[1] = s.packets as f64;
        texts[0].set("TLS.YouTube ünï");
        texts[1].set(&"x".repeat(300));
        texts[2].set_bytes(&[0xff, 0xfe]);
    }
}

#[test]
fn text_features_through_the_sdk() {
    static FEATURES: [FeatureV1; 5] = sdk::features_v1(Texter::FEATURES);
    static D: PluginV1 = sdk::descriptor::<Texter>(&FEATURES);
    assert_eq!(FEATURES[0].kind, WEIR_FEATURE_TEXT);
    assert_eq!(FEATURES[1].kind, WEIR_FEATURE_U64);
    let emit_text = D.flow_emit_text.expect("text features set flow_emit_text");
    let mut inst = std::ptr::null_mut();
    assert_eq!(
        // SAFETY: a NUL-terminated config and a valid out pointer, as create requires.
        unsafe { D.create.unwrap()(c"{}".as_ptr(), 0, &mut inst) },
        WEIR_OK
    );
    let mut state = ProbeState::zeroed();
    state.packets = 4;
    let cap = WEIR_TEXT_MAX as usize;
    let mut bufs = vec![0u8; 4 * cap];
    let mut texts: Vec<TextV1> = bufs
        .chunks_exact_mut(cap)
        .map(|c| TextV1 {
            buf: c.as_mut_ptr().cast(),
            cap: WEIR_TEXT_MAX,
            len: 12345, // the SDK resets every value to missing first
        })
        .collect();
    let mut out = [0.0f64; 5];
    let key = FlowKeyV1::default();
    // SAFETY: a live instance and state; out has 5 doubles, texts 4 views of cap bytes each.
    let rc = unsafe {
        emit_text(
            inst,
            &key,
            (&mut state as *mut ProbeState).cast(),
            out.as_mut_ptr(),
            5,
            texts.as_mut_ptr(),
            4,
        )
    };
    assert_eq!(rc, WEIR_OK);
    assert_eq!(out[1], 4.0);
    assert_eq!(texts[0].len as usize, "TLS.YouTube ünï".len());
    assert_eq!(&bufs[..texts[0].len as usize], "TLS.YouTube ünï".as_bytes());
    assert_eq!(texts[1].len, 300, "an overrun reports the full length");
    assert!(bufs[cap..2 * cap].iter().all(|&b| b == b'x'));
    assert_eq!(texts[2].len, 2);
    assert_eq!(&bufs[2 * cap..2 * cap + 2], &[0xff, 0xfe]);
    assert_eq!(texts[3].len, WEIR_TEXT_MISSING);
    // The host's count of text values must match the plugin's.
    // SAFETY: as above, with fewer views than the plugin declares (refused, nothing written).
    let rc = unsafe {
        emit_text(
            inst,
            &key,
            (&mut state as *mut ProbeState).cast(),
            out.as_mut_ptr(),
            5,
            texts.as_mut_ptr(),
            3,
        )
    };
    assert_eq!(rc, WEIR_ERR);
    // SAFETY: the instance create made, destroyed once.
    unsafe { D.destroy.unwrap()(inst) };
}
