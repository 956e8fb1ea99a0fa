//! The built `libweir_tcp.so` through its exported symbol.

use weir_plugin_api::harness::{built_library, LoadedPlugin};
use weir_plugin_api::*;

#[test]
fn descriptor_and_flows_through_the_c_abi() {
    let lib = LoadedPlugin::open(&built_library("weir_tcp")).unwrap();
    let d = lib.descriptor();
    assert_eq!(lib.name(), "tcp");
    // ABI 1.2: the 64-byte interval part only when interval records are on.
    assert_eq!((d.state_size, d.state_align), (128, 8));
    assert_eq!(lib.interval_state_size(), 64);
    let f = lib.features();
    assert_eq!(f.len(), 15);
    assert_eq!(f[8].name, "tcp_handshake_ms");
    assert_eq!(f[8].kind, WEIR_FEATURE_F64);

    let mut inst = lib.instance("{}", 1).unwrap();
    let tcp = FlowKeyV1 {
        protocol: 6,
        ..Default::default()
    };
    let udp = FlowKeyV1 {
        protocol: 17,
        ..Default::default()
    };
    let seg = |t_us: u64, dir: u8, flags: u8, seq: u32, ack: u32, proto: u8| PacketV1 {
        ts_ns: t_us * 1000,
        direction: dir,
        protocol: proto,
        tcp_flags: flags,
        tcp_seq: seq,
        tcp_ack: ack,
        tcp_window: 512,
        ..PacketV1::EMPTY
    };
    let mut flows = vec![inst.new_flow(&tcp).unwrap(), inst.new_flow(&udp).unwrap()];
    let burst = [
        (0, seg(0, 0, WEIR_TCP_SYN, 10, 0, 6)),
        (1, seg(1, 0, 0, 0, 0, 17)),
        (0, seg(3_000, 1, WEIR_TCP_SYN | WEIR_TCP_ACK, 90, 11, 6)),
        (0, seg(4_250, 0, WEIR_TCP_ACK, 11, 91, 6)),
    ];
    assert_eq!(inst.update_burst(&mut flows, &burst).unwrap(), [0, 1, 0, 0]);
    let out = inst.emit(&tcp, &mut flows[0]).unwrap();
    assert_eq!(&out[6..9], &[3.0, 1.25, 4.25]);
    assert_eq!(&out[9..12], &[512.0, 512.0, 512.0]);
    let out = inst.emit(&udp, &mut flows[1]).unwrap();
    assert!(out.iter().all(|v| v.is_nan()));
}
