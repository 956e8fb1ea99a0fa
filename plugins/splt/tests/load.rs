//! The built `libweir_splt.so` through its exported symbol.

use weir_plugin_api::harness::{built_library, LoadedPlugin};
use weir_plugin_api::*;

#[test]
fn descriptor_done_flag_and_emit_through_the_c_abi() {
    let lib = LoadedPlugin::open(&built_library("weir_splt")).unwrap();
    let d = lib.descriptor();
    assert_eq!(lib.name(), "splt");
    assert_eq!((d.state_size, d.state_align), (208, 8));
    assert!(!d.config_schema.is_null());
    let f = lib.features();
    assert_eq!(f.len(), 96);
    assert_eq!(f[33].name, "splt_ps_1");
    assert!(f.iter().all(|f| f.kind == WEIR_FEATURE_F64));

    // ABI 1.3: the declared 208 bytes are the most (n = 32); an instance asks for what its n
    // needs: 16 bytes, then 6 per packet, rounded up to 8.
    assert!(d.struct_size as usize >= PLUGIN_V1_3_SIZE && d.flow_state_size.is_some());
    for (n, want) in [(1, 24), (2, 32), (8, 64), (31, 208), (32, 208)] {
        let i = lib.instance(&format!("{{\"n\": {n}}}"), 0).unwrap();
        assert_eq!(i.flow_state_size(), want, "n = {n}");
    }
    assert_eq!(lib.instance("{}", 0).unwrap().flow_state_size(), 64);

    let mut inst = lib.instance("{\"n\": 2}", 0).unwrap();
    let key = FlowKeyV1::default();
    let p = |t_ms: u64, dir: u8| PacketV1 {
        ts_ns: t_ms * 1_000_000,
        wire_len: 90,
        direction: dir,
        ..PacketV1::EMPTY
    };
    let mut flows = vec![inst.new_flow(&key).unwrap(), inst.new_flow(&key).unwrap()];
    let done = inst
        .update_burst(
            &mut flows,
            &[(0, p(0, 0)), (1, p(1, 0)), (0, p(5, 1)), (0, p(9, 0))],
        )
        .unwrap();
    assert_eq!(done, [0, 0, 1, 1]);
    let out = inst.emit(&key, &mut flows[0]).unwrap();
    assert_eq!(&out[0..2], &[0.0, 1.0]);
    assert_eq!(&out[32..34], &[90.0, 90.0]);
    assert_eq!(&out[64..66], &[0.0, 5.0]);
    assert!(out[2].is_nan() && out[95].is_nan());
    let out = inst.emit(&key, &mut flows[1]).unwrap();
    assert_eq!(&out[0..2], &[0.0, -1.0]);

    let e = lib.instance("{\"n\": 99}", 0).err().unwrap();
    assert!(e.starts_with("create: config key 'n' must be"), "{e}");
}
