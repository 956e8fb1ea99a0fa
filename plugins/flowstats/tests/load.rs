//! The built `libweir_flowstats.so` through its exported symbol: descriptor fields, version
//! refusal, and a synthetic flow through update_burst/flow_emit.

use weir_plugin_api::harness::{built_library, LoadedPlugin};
use weir_plugin_api::*;

#[test]
fn descriptor_and_a_synthetic_flow() {
    let lib = LoadedPlugin::open(&built_library("weir_flowstats")).unwrap();
    let d = lib.descriptor();
    assert_eq!(d.magic, WEIR_PLUGIN_MAGIC);
    assert_eq!(d.struct_size as usize, std::mem::size_of::<PluginV1>());
    assert_eq!(lib.name(), "flowstats");
    // ABI 1.2: the 56-byte interval part is only allocated when interval records are on.
    assert_eq!((d.state_size, d.state_align), (248, 8));
    assert_eq!(lib.interval_state_size(), 56);
    assert!(lib.update_burst_intervals().is_some() && d.interval_emit.is_some());
    let f = lib.features();
    assert_eq!(f.len(), 48);
    assert_eq!(f[0].name, "bidirectional_min_ps");
    assert_eq!(f[0].kind, WEIR_FEATURE_U64);
    assert_eq!(f[1].kind, WEIR_FEATURE_F64);
    assert_eq!(f[47].name, "dst2src_fin_packets");
    let entry = lib.entry().unwrap();
    // SAFETY: the entry point takes any version numbers and returns NULL or a descriptor.
    assert!(unsafe { entry(2, 0) }.is_null());

    // Interval records off: no interval part, interval_emit is not for this instance.
    {
        let mut inst = lib.instance("{}", 3).unwrap();
        let mut flows = vec![inst.new_flow(&FlowKeyV1::default()).unwrap()];
        let pk = PacketV1 {
            ts_ns: 5,
            wire_len: 70,
            ..PacketV1::EMPTY
        };
        inst.update_burst(&mut flows, &[(0, pk)]).unwrap();
        let out = inst.emit(&FlowKeyV1::default(), &mut flows[0]).unwrap();
        assert_eq!(&out[0..4], &[70.0, 70.0, 0.0, 70.0]);
        assert!(inst
            .interval_emit(&FlowKeyV1::default(), &mut flows[0])
            .is_err());
    }

    let mut inst = lib.instance_with_intervals("{}", 3).unwrap();
    let key = FlowKeyV1::default();
    let p = |t_ms: u64, dir: u8, len: u32| PacketV1 {
        ts_ns: t_ms * 1_000_000 + 999,
        wire_len: len,
        direction: dir,
        tcp_flags: WEIR_TCP_ACK,
        ..PacketV1::EMPTY
    };
    // Two flows interleaved in one burst.
    let mut flows = vec![inst.new_flow(&key).unwrap(), inst.new_flow(&key).unwrap()];
    let burst = [
        (0, p(0, 0, 100)),
        (1, p(1, 0, 60)),
        (0, p(10, 1, 300)),
        (0, p(40, 0, 200)),
    ];
    assert_eq!(inst.update_burst(&mut flows, &burst).unwrap(), vec![0; 4]);
    let out = inst.emit(&key, &mut flows[0]).unwrap();
    assert_eq!(&out[0..4], &[100.0, 200.0, 100.0, 300.0]); // sizes 100, 300, 200
    assert_eq!(&out[12..16], &[10.0, 20.0, (200.0f64).sqrt(), 30.0]); // gaps 10, 30
    assert_eq!(&out[16..20], &[40.0, 40.0, 0.0, 40.0]);
    assert_eq!(out[28], 3.0); // bidirectional_ack_packets
    let out = inst.emit(&key, &mut flows[1]).unwrap();
    assert_eq!(&out[0..4], &[60.0, 60.0, 0.0, 60.0]);
    // interval_emit through the exported callback: the interval so far, then reset.
    let iv = inst
        .interval_emit(&key, &mut flows[0])
        .unwrap()
        .expect("interval callback");
    assert_eq!(&iv[0..4], &[100.0, 200.0, 100.0, 300.0]);
    assert_eq!(&iv[12..16], &[10.0, 20.0, (200.0f64).sqrt(), 30.0]);
    assert!(iv[4..12].iter().all(|v| v.is_nan()));
    inst.update_burst(&mut flows, &[(0, p(45, 1, 80))]).unwrap();
    let iv = inst.interval_emit(&key, &mut flows[0]).unwrap().unwrap();
    assert_eq!(&iv[0..4], &[80.0, 80.0, 0.0, 80.0]);
    assert_eq!(
        &iv[12..16],
        &[5.0, 5.0, 0.0, 5.0],
        "the gap from the previous interval"
    );
    // The flow's features still cover every packet.
    let out = inst.emit(&key, &mut flows[0]).unwrap();
    assert_eq!(&out[0..4], &[80.0, 170.0, out[2], 300.0]);
    // A bad config is refused with the plugin's message.
    let e = lib.instance("{\"x\":1}", 0).err().unwrap();
    assert!(e.contains("flowstats takes no options"), "{e}");
}
