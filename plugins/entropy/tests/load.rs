//! The C plugin `libweir_entropy.so`, loaded with libloading and driven through its C ABI,
//! against a Shannon entropy computed here in Rust from the same bytes (an independent oracle).

use std::path::Path;

use weir_entropy_build::{LIBRARY_PATH, PORTABLE_LIBRARY_PATH};
use weir_plugin_api::harness::{built_library, LoadedPlugin};
use weir_plugin_api::*;

/// Entropy in bits per byte, straight from the definition.
fn oracle(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            p * p.log2()
        })
        .sum::<f64>()
}

/// A packet whose payload is `payload`, preceded by 54 bytes of (ignored) headers.
fn packet(buf: &mut Vec<u8>, dir: u8, payload: &[u8], payload_len: u16) -> PacketV1 {
    buf.clear();
    buf.resize(54, 0xee);
    buf.extend_from_slice(payload);
    PacketV1 {
        data: buf.as_ptr(),
        cap_len: buf.len() as u32,
        wire_len: 54 + payload_len as u32,
        l4_off: 34,
        payload_off: 54,
        payload_len,
        direction: dir,
        ..PacketV1::EMPTY
    }
}

fn open() -> LoadedPlugin {
    LoadedPlugin::open(Path::new(LIBRARY_PATH)).unwrap()
}

/// The plugin as weir loads it, and its portable build (on x86-64 the first also holds an
/// AVX2 build of the merge loop, which the loader picks on CPUs that have AVX2).
fn builds() -> [(&'static str, LoadedPlugin); 2] {
    [
        (LIBRARY_PATH, open()),
        (
            PORTABLE_LIBRARY_PATH,
            LoadedPlugin::open(Path::new(PORTABLE_LIBRARY_PATH)).unwrap(),
        ),
    ]
}

#[test]
fn build_put_the_library_next_to_the_rust_plugins() {
    let copy = built_library("weir_entropy");
    assert!(copy.exists(), "{} missing", copy.display());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(LIBRARY_PATH).unwrap()
    );
}

#[test]
fn descriptor() {
    let lib = open();
    let d = lib.descriptor();
    assert_eq!(d.magic, WEIR_PLUGIN_MAGIC);
    assert_eq!((d.abi_major, d.abi_minor), (1, 4));
    assert_eq!(d.struct_size as usize, std::mem::size_of::<PluginV1>());
    assert!(d.flow_emit_text.is_none(), "no text features");
    // Built against the 1.4 header without interval callbacks: NULL (NaN in interval
    // records) and no interval part.
    assert!(d.interval_emit.is_none());
    assert!(d.update_burst_intervals.is_none() && d.interval_state_size == 0);
    assert_eq!(lib.name(), "entropy");
    // The most (K = 1024) is declared; an instance asks for 278 + 2 * (K / 16) bytes,
    // rounded up to 8 (ABI 1.3 flow_state_size).
    assert_eq!((d.state_size, d.state_align), (408, 8));
    assert!(d.flow_state_size.is_some());
    for (k, want) in [
        (1, 280),
        (15, 280),
        (16, 280),
        (32, 288),
        (256, 312),
        (300, 320),
        (1024, 408),
    ] {
        let i = lib.instance(&format!("{{\"k\": {k}}}"), 0).unwrap();
        assert_eq!(i.flow_state_size(), want, "k = {k}");
    }
    assert_eq!(lib.instance("{}", 0).unwrap().flow_state_size(), 408);
    let names: Vec<String> = lib.features().into_iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "src2dst_payload_entropy",
            "dst2src_payload_entropy",
            "src2dst_payload_bytes",
            "dst2src_payload_bytes",
            "src2dst_payload_sampled",
            "dst2src_payload_sampled"
        ]
    );
    // SAFETY: the entry point takes any version numbers and returns NULL or a descriptor.
    assert!(unsafe { lib.entry().unwrap()(2, 0) }.is_null());
    // SAFETY: as above.
    assert!(!unsafe { lib.entry().unwrap()(1, 7) }.is_null());
}

#[test]
fn entropy_matches_the_oracle() {
    for (build, lib) in builds() {
        eprintln!("build: {build}");
        entropy_matches_the_oracle_on(&lib);
    }
}

fn entropy_matches_the_oracle_on(lib: &LoadedPlugin) {
    let mut inst = lib.instance("{\"k\": 300}", 0).unwrap();
    let key = FlowKeyV1::default();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for trial in 0..50 {
        let mut flow = vec![inst.new_flow(&key).unwrap()];
        let mut sent: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut bytes = [0u64; 2];
        let mut bufs: Vec<Vec<u8>> = (0..12).map(|_| Vec::new()).collect();
        let mut pkts = Vec::new();
        for buf in bufs.iter_mut() {
            let dir = (next() % 2) as u8;
            let len = (next() % 120) as usize;
            let alphabet = 1 + next() % 256; // from constant to uniform bytes
            let payload: Vec<u8> = (0..len).map(|_| (next() % alphabet) as u8).collect();
            // Sometimes the capture holds only part of the payload.
            let captured = if trial % 3 == 0 { len / 2 } else { len };
            sent[dir as usize].extend_from_slice(&payload[..captured]);
            bytes[dir as usize] += len as u64;
            pkts.push((0, packet(buf, dir, &payload[..captured], len as u16)));
        }
        inst.update_burst(&mut flow, &pkts).unwrap();
        let out = inst.emit(&key, &mut flow[0]).unwrap();
        for d in 0..2 {
            let sample = &sent[d][..sent[d].len().min(300)];
            if sample.is_empty() {
                assert!(out[d].is_nan(), "trial {trial} dir {d}");
            } else {
                let want = oracle(sample);
                assert!(
                    (out[d] - want).abs() < 1e-9,
                    "trial {trial} dir {d}: {} vs {want}",
                    out[d]
                );
            }
            assert_eq!(out[2 + d], bytes[d] as f64);
            assert_eq!(out[4 + d], sample.len() as f64);
        }
    }
}

/// The packed histogram (4-bit counters and a wrap list) at the largest K, where counters
/// wrap most: skewed alphabets down to a single byte value (1024 / 16 = 64 wraps of one bin,
/// every entry of the list), sampled over several bursts, against the oracle.
#[test]
fn packed_histogram_matches_the_oracle_at_the_largest_k() {
    for (build, lib) in builds() {
        eprintln!("build: {build}");
        packed_histogram_matches_the_oracle_at_the_largest_k_on(&lib);
    }
}

fn packed_histogram_matches_the_oracle_at_the_largest_k_on(lib: &LoadedPlugin) {
    let mut inst = lib.instance("{\"k\": 1024}", 0).unwrap();
    let key = FlowKeyV1::default();
    let mut rng = 0x0dd_ba11_cafe_f00du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for trial in 0..60u64 {
        let mut flow = vec![inst.new_flow(&key).unwrap()];
        let mut sent: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        // Alphabets 1, 2, 3, ... then wide ones; a few very skewed mixes.
        let alphabet = if trial < 20 {
            1 + trial
        } else {
            1 + next() % 256
        };
        let skew = trial % 4 == 3;
        for _burst in 0..4 {
            let mut bufs: Vec<Vec<u8>> = (0..6).map(|_| Vec::new()).collect();
            let mut pkts = Vec::new();
            for buf in bufs.iter_mut() {
                let dir = (next() % 2) as u8;
                let len = (next() % 400) as usize;
                let payload: Vec<u8> = (0..len)
                    .map(|_| {
                        if skew && next() % 8 != 0 {
                            0xaa
                        } else {
                            (next() % alphabet) as u8
                        }
                    })
                    .collect();
                sent[dir as usize].extend_from_slice(&payload);
                pkts.push((0, packet(buf, dir, &payload, len as u16)));
            }
            inst.update_burst(&mut flow, &pkts).unwrap();
        }
        let out = inst.emit(&key, &mut flow[0]).unwrap();
        for d in 0..2 {
            let sample = &sent[d][..sent[d].len().min(1024)];
            if sample.is_empty() {
                assert!(out[d].is_nan(), "trial {trial} dir {d}");
            } else {
                let want = oracle(sample);
                assert!(
                    (out[d] - want).abs() < 1e-9,
                    "trial {trial} dir {d}: {} vs {want}",
                    out[d]
                );
            }
            assert_eq!(out[4 + d], sample.len() as f64);
        }
    }
    // 1024 copies of one byte value: its counter wraps 64 times, filling the list.
    let mut flow = vec![inst.new_flow(&key).unwrap()];
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    let pkts = [
        (0, packet(&mut b1, 0, &[0x42; 1000], 1000)),
        (0, packet(&mut b2, 0, &[0x42; 500], 500)),
    ];
    inst.update_burst(&mut flow, &pkts).unwrap();
    let out = inst.emit(&key, &mut flow[0]).unwrap();
    assert_eq!(&out[0..1], &[0.0]);
    assert_eq!(&out[2..6], &[1500.0, 0.0, 1024.0, 0.0]);
}

/// Counters carried from packet to packet and burst to burst through both counting paths
/// (payloads below and above the bulk threshold of 64 bytes, the K cut inside a packet),
/// with 8 to 65 values spread over all 256 (every group of value pairs) wrapping up to 8
/// times each, against the oracle.
#[test]
fn wraps_carried_across_packets_match_the_oracle() {
    for (build, lib) in builds() {
        eprintln!("build: {build}");
        wraps_carried_across_packets_match_the_oracle_on(&lib);
    }
}

fn wraps_carried_across_packets_match_the_oracle_on(lib: &LoadedPlugin) {
    let mut inst = lib.instance("{}", 0).unwrap();
    let key = FlowKeyV1::default();
    let mut rng = 0x5eed_0fca_11ab_1e00u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for trial in 0..20usize {
        let n_values = 8 + trial * 3;
        let values: Vec<u8> = (0..n_values)
            .map(|i| (i * 256 / n_values) as u8 ^ trial as u8)
            .collect();
        let mut flow = vec![inst.new_flow(&key).unwrap()];
        let mut sent = Vec::new();
        // 1,136 bytes: the last packets cross K = 1024.
        for burst in [1usize, 63, 64, 65, 7, 300, 500, 40, 96].chunks(3) {
            let mut bufs: Vec<Vec<u8>> = burst.iter().map(|_| Vec::new()).collect();
            let mut pkts = Vec::new();
            for (buf, &len) in bufs.iter_mut().zip(burst) {
                let payload: Vec<u8> = (0..len)
                    .map(|_| values[next() as usize % n_values])
                    .collect();
                sent.extend_from_slice(&payload);
                pkts.push((0, packet(buf, 0, &payload, len as u16)));
            }
            inst.update_burst(&mut flow, &pkts).unwrap();
        }
        let out = inst.emit(&key, &mut flow[0]).unwrap();
        let sample = &sent[..1024];
        let want = oracle(sample);
        assert!(
            (out[0] - want).abs() < 1e-9,
            "trial {trial}: {} vs {want}",
            out[0]
        );
        assert_eq!(&out[2..6], &[1136.0, 0.0, 1024.0, 0.0], "trial {trial}");
        assert!(out[1].is_nan());
    }
}

#[test]
fn known_values() {
    for (build, lib) in builds() {
        eprintln!("build: {build}");
        known_values_on(&lib);
    }
}

fn known_values_on(lib: &LoadedPlugin) {
    let mut inst = lib.instance("{}", 0).unwrap();
    let key = FlowKeyV1::default();
    let all: Vec<u8> = (0..=255).collect();
    let (mut b1, mut b2, mut b3) = (Vec::new(), Vec::new(), Vec::new());
    let mut flow = vec![inst.new_flow(&key).unwrap()];
    let pkts = [
        (0, packet(&mut b1, 0, &all, 256)), // every byte value once: 8 bits
        (0, packet(&mut b2, 1, &[7; 40], 40)), // one value: 0 bits
        (0, packet(&mut b3, 1, &[], 0)),    // no payload
    ];
    inst.update_burst(&mut flow, &pkts).unwrap();
    let out = inst.emit(&key, &mut flow[0]).unwrap();
    assert_eq!(out, [8.0, 0.0, 256.0, 40.0, 256.0, 40.0]);
    // K caps the sample: 1024 default, so 2000 bytes of "ab" give 1 bit over 1024 bytes.
    let ab: Vec<u8> = (0..2000).map(|i| b"ab"[i % 2]).collect();
    let mut flow = vec![inst.new_flow(&key).unwrap()];
    inst.update_burst(&mut flow, &[(0, packet(&mut b1, 0, &ab, 2000))])
        .unwrap();
    let out = inst.emit(&key, &mut flow[0]).unwrap();
    assert_eq!(&out[0..1], &[1.0]);
    assert!(out[1].is_nan());
    assert_eq!(&out[2..6], &[2000.0, 0.0, 1024.0, 0.0]);
}

#[test]
fn config_errors_and_host_misuse_are_weir_err_with_messages() {
    let lib = open();
    for (bad, needle) in [
        ("{\"k\": 0}", "'k' must be an integer from 1 to 1024"),
        ("{\"k\": 1025}", "'k' must be"),
        ("{\"k\": 70000}", "'k' must be"),
        ("{\"n\": 3}", "unknown config key"),
        ("[]", "config is not"),
        ("{\"k\": 5} x", "config is not"),
    ] {
        let e = lib.instance(bad, 0).err().unwrap();
        assert!(e.contains(needle), "{bad}: {e}");
    }
    assert!(lib.instance(" { \"k\" : 12 } ", 0).is_ok());

    let d = lib.descriptor();
    let inst = lib.instance("{}", 0).unwrap();
    drop(inst);
    let mut raw = std::ptr::null_mut();
    // SAFETY: the config is NUL-terminated, raw a valid out-pointer; update_burst is given a
    // NULL states array on purpose (the plugin must refuse it) and a one-packet burst; the
    // error message is read before any other call on the instance; flow_emit gets a zeroed
    // state and 5 outputs where the plugin declares 6 (it must refuse them before touching
    // either); raw is destroyed once, last.
    unsafe {
        assert_eq!(d.create.unwrap()(c"{}".as_ptr(), 0, &mut raw), WEIR_OK);
        let pkt = PacketV1::EMPTY;
        let mut done = 0u8;
        let rc = d.update_burst.unwrap()(raw, std::ptr::null(), &pkt, &mut done, 1);
        assert_eq!(rc, WEIR_ERR);
        let msg = std::ffi::CStr::from_ptr(d.last_error.unwrap()(raw));
        assert_eq!(msg.to_str().unwrap(), "update_burst: null array");
        let mut out = [0.0; 5];
        let state = [0u64; 131];
        let rc = d.flow_emit.unwrap()(
            raw,
            &FlowKeyV1::default(),
            state.as_ptr().cast(),
            out.as_mut_ptr(),
            5,
        );
        assert_eq!(rc, WEIR_ERR);
        d.destroy.unwrap()(raw);
    }
}
