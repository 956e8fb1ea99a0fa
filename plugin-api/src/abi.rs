//! The repr(C) mirror of `include/weir_plugin.h`. Every struct here has its size and field
//! offsets asserted at compile time, so the Rust side and the C header cannot drift apart
//! silently (the C side asserts the same numbers in `tests/c/layout.c`).

use core::ffi::{c_char, c_void};
use core::mem::{offset_of, size_of};

/// "WEIR" as a little-endian u32.
pub const WEIR_PLUGIN_MAGIC: u32 = 0x5249_4557;
pub const WEIR_ABI_MAJOR: u16 = 1;
pub const WEIR_ABI_MINOR: u16 = 4;
pub const WEIR_OK: i32 = 0;
pub const WEIR_ERR: i32 = -1;
pub const WEIR_DIR_SRC_TO_DST: u8 = 0;
pub const WEIR_DIR_DST_TO_SRC: u8 = 1;
pub const WEIR_PKT_FIRST_OF_FLOW: u8 = 0x01;
pub const WEIR_PKT_IP_FRAGMENT: u8 = 0x02;
pub const WEIR_PKT_TUNNELED: u8 = 0x04;
pub const WEIR_TCP_FIN: u8 = 0x01;
pub const WEIR_TCP_SYN: u8 = 0x02;
pub const WEIR_TCP_RST: u8 = 0x04;
pub const WEIR_TCP_PSH: u8 = 0x08;
pub const WEIR_TCP_ACK: u8 = 0x10;
pub const WEIR_TCP_URG: u8 = 0x20;
pub const WEIR_TCP_ECE: u8 = 0x40;
pub const WEIR_TCP_CWR: u8 = 0x80;
pub const WEIR_NO_OFFSET: u16 = 0xffff;
pub const WEIR_FEATURE_F64: u32 = 0;
pub const WEIR_FEATURE_U64: u32 = 1;
pub const WEIR_FEATURE_BOOL: u32 = 2;
/// ABI 1.4: a UTF-8 text column, written through [`TextV1`] by `flow_emit_text`.
pub const WEIR_FEATURE_TEXT: u32 = 3;
/// ABI 1.4: bytes of each host-owned text buffer (the longest text value accepted).
pub const WEIR_TEXT_MAX: u32 = 256;
/// ABI 1.4: [`TextV1::len`] of a missing text value (its value on entry).
pub const WEIR_TEXT_MISSING: u32 = u32::MAX;
/// The name of the one exported symbol, NUL-terminated for dlsym.
pub const WEIR_PLUGIN_ENTRY_SYMBOL: &[u8] = b"weir_plugin_entry_v1\0";

/// `weir_packet_v1`: one parsed packet, exactly one 64-byte cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PacketV1 {
    pub ts_ns: u64,
    pub data: *const u8,
    pub wire_len: u32,
    pub cap_len: u32,
    pub l3_off: u16,
    pub l4_off: u16,
    pub payload_off: u16,
    pub payload_len: u16,
    pub ip_len: u16,
    pub direction: u8,
    pub ip_version: u8,
    pub protocol: u8,
    pub tcp_flags: u8,
    pub tcp_window: u16,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub ttl: u8,
    pub flags: u8,
    pub tcp_hdr_len: u16,
    pub reserved: [u32; 3],
}

impl PacketV1 {
    /// An all-zero packet with no data and no offsets.
    pub const EMPTY: PacketV1 = PacketV1 {
        ts_ns: 0,
        data: core::ptr::null(),
        wire_len: 0,
        cap_len: 0,
        l3_off: 0,
        l4_off: WEIR_NO_OFFSET,
        payload_off: WEIR_NO_OFFSET,
        payload_len: 0,
        ip_len: 0,
        direction: 0,
        ip_version: 0,
        protocol: 0,
        tcp_flags: 0,
        tcp_window: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        ttl: 0,
        flags: 0,
        tcp_hdr_len: 0,
        reserved: [0; 3],
    };

    /// The captured bytes of this packet.
    ///
    /// # Safety
    /// `data` must point to `cap_len` readable bytes that outlive the returned slice (the host
    /// guarantees this for the duration of the callback that received the packet).
    pub unsafe fn bytes(&self) -> &[u8] {
        if self.data.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees data/cap_len describe a live buffer.
            unsafe { core::slice::from_raw_parts(self.data, self.cap_len as usize) }
        }
    }

    /// The captured part of the transport payload (empty when there is none).
    ///
    /// # Safety
    /// As for [`PacketV1::bytes`].
    pub unsafe fn payload(&self) -> &[u8] {
        if self.payload_off == WEIR_NO_OFFSET {
            return &[];
        }
        // SAFETY: forwarded from the caller.
        let all = unsafe { self.bytes() };
        let start = (self.payload_off as usize).min(all.len());
        let end = (start + self.payload_len as usize).min(all.len());
        &all[start..end]
    }

    /// Packet time truncated to whole milliseconds (NFStream's convention).
    pub fn ts_ms(&self) -> u64 {
        self.ts_ns / 1_000_000
    }
}

/// `weir_flow_key_v1`: the bidirectional flow key (src = sender of the first packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKeyV1 {
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub vlan_id: u16,
    pub protocol: u8,
    pub ip_version: u8,
    pub tunnel_id: u32,
    pub reserved: u32,
}

/// `weir_feature_v1`: one feature column a plugin writes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FeatureV1 {
    pub name: *const c_char,
    pub kind: u32,
    pub reserved: u32,
    pub description: *const c_char,
}
// SAFETY: descriptors point only to 'static, immutable strings.
unsafe impl Sync for FeatureV1 {}

/// `weir_text_v1` (ABI 1.4): one text value, written by the plugin into a host-owned buffer of
/// `cap` bytes; `len` is [`WEIR_TEXT_MISSING`] on entry and the value's full length after
/// (more than `cap`: too long, refused by the host).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TextV1 {
    pub buf: *mut c_char,
    pub cap: u32,
    pub len: u32,
}

pub type CreateFn = unsafe extern "C" fn(*const c_char, u32, *mut *mut c_void) -> i32;
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);
pub type FlowInitFn = unsafe extern "C" fn(*mut c_void, *const FlowKeyV1, *mut c_void) -> i32;
pub type UpdateBurstFn =
    unsafe extern "C" fn(*mut c_void, *const *mut c_void, *const PacketV1, *mut u8, u32) -> i32;
pub type FlowEmitFn =
    unsafe extern "C" fn(*mut c_void, *const FlowKeyV1, *const c_void, *mut f64, u32) -> i32;
pub type LastErrorFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
/// ABI 1.3: the per-flow state bytes of one instance.
pub type FlowStateSizeFn = unsafe extern "C" fn(*mut c_void) -> u32;
/// ABI 1.1: like [`FlowEmitFn`], with a mutable state (the plugin resets its interval part).
pub type IntervalEmitFn =
    unsafe extern "C" fn(*mut c_void, *const FlowKeyV1, *mut c_void, *mut f64, u32) -> i32;
/// ABI 1.4: `flow_emit_text`, like [`FlowEmitFn`] plus the text values (and a mutable state:
/// the flow's last call).
pub type FlowEmitTextFn = unsafe extern "C" fn(
    *mut c_void,
    *const FlowKeyV1,
    *mut c_void,
    *mut f64,
    u32,
    *mut TextV1,
    u32,
) -> i32;
pub type EntryFn = unsafe extern "C" fn(u16, u16) -> *const PluginV1;

/// `weir_plugin_v1`: the static descriptor a plugin's entry symbol returns.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1 {
    // frozen header
    pub magic: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub struct_size: u32,
    pub flags: u32,
    // ABI 1.0
    pub name: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
    pub features: *const FeatureV1,
    pub n_features: u32,
    pub state_size: u32,
    pub state_align: u32,
    pub reserved0: u32,
    pub config_schema: *const c_char,
    pub create: Option<CreateFn>,
    pub destroy: Option<DestroyFn>,
    pub flow_init: Option<FlowInitFn>,
    pub update_burst: Option<UpdateBurstFn>,
    pub flow_emit: Option<FlowEmitFn>,
    pub last_error: Option<LastErrorFn>,
    // ABI 1.1 (present when struct_size >= PLUGIN_V1_1_SIZE)
    pub interval_emit: Option<IntervalEmitFn>,
    // ABI 1.2 (present when struct_size >= PLUGIN_V1_2_SIZE)
    /// Bytes of interval state the host appends to `state_size` when interval records are on.
    pub interval_state_size: u32,
    pub reserved1: u32,
    /// Called instead of `update_burst` when interval records are on (states then hold
    /// `state_size + interval_state_size` bytes).
    pub update_burst_intervals: Option<UpdateBurstFn>,
    // ABI 1.3 (present when struct_size >= PLUGIN_V1_3_SIZE)
    /// Bytes of per-flow state this instance uses (at most `state_size`), asked once per
    /// instance after `create`; `None`: `state_size`.
    pub flow_state_size: Option<FlowStateSizeFn>,
    // ABI 1.4 (present when struct_size >= PLUGIN_V1_4_SIZE)
    /// Called instead of `flow_emit` when set; required with a text feature.
    pub flow_emit_text: Option<FlowEmitTextFn>,
}
// SAFETY: a descriptor is immutable static data (strings and function pointers).
unsafe impl Sync for PluginV1 {}

/// Size of the frozen header every version starts with.
pub const PLUGIN_HEADER_SIZE: usize = 16;
/// `sizeof(weir_plugin_v1)` in ABI 1.0 (up to `last_error`): the smallest descriptor accepted.
pub const PLUGIN_V1_0_SIZE: usize = 120;
/// `sizeof(weir_plugin_v1)` in ABI 1.1 (up to `interval_emit`).
pub const PLUGIN_V1_1_SIZE: usize = 128;
/// `sizeof(weir_plugin_v1)` in ABI 1.2 (up to `update_burst_intervals`).
pub const PLUGIN_V1_2_SIZE: usize = 144;
/// `sizeof(weir_plugin_v1)` in ABI 1.3 (up to `flow_state_size`).
pub const PLUGIN_V1_3_SIZE: usize = 152;
/// `sizeof(weir_plugin_v1)` in ABI 1.4 (up to `flow_emit_text`).
pub const PLUGIN_V1_4_SIZE: usize = 160;

// ---- layout assertions: must equal the numbers in tests/c/layout.c ----
const _: () = {
    assert!(size_of::<PacketV1>() == 64);
    assert!(offset_of!(PacketV1, ts_ns) == 0);
    assert!(offset_of!(PacketV1, data) == 8);
    assert!(offset_of!(PacketV1, wire_len) == 16);
    assert!(offset_of!(PacketV1, cap_len) == 20);
    assert!(offset_of!(PacketV1, l3_off) == 24);
    assert!(offset_of!(PacketV1, l4_off) == 26);
    assert!(offset_of!(PacketV1, payload_off) == 28);
    assert!(offset_of!(PacketV1, payload_len) == 30);
    assert!(offset_of!(PacketV1, ip_len) == 32);
    assert!(offset_of!(PacketV1, direction) == 34);
    assert!(offset_of!(PacketV1, ip_version) == 35);
    assert!(offset_of!(PacketV1, protocol) == 36);
    assert!(offset_of!(PacketV1, tcp_flags) == 37);
    assert!(offset_of!(PacketV1, tcp_window) == 38);
    assert!(offset_of!(PacketV1, tcp_seq) == 40);
    assert!(offset_of!(PacketV1, tcp_ack) == 44);
    assert!(offset_of!(PacketV1, ttl) == 48);
    assert!(offset_of!(PacketV1, flags) == 49);
    assert!(offset_of!(PacketV1, tcp_hdr_len) == 50);
    assert!(offset_of!(PacketV1, reserved) == 52);

    assert!(size_of::<FlowKeyV1>() == 48);
    assert!(offset_of!(FlowKeyV1, src_ip) == 0);
    assert!(offset_of!(FlowKeyV1, dst_ip) == 16);
    assert!(offset_of!(FlowKeyV1, src_port) == 32);
    assert!(offset_of!(FlowKeyV1, dst_port) == 34);
    assert!(offset_of!(FlowKeyV1, vlan_id) == 36);
    assert!(offset_of!(FlowKeyV1, protocol) == 38);
    assert!(offset_of!(FlowKeyV1, ip_version) == 39);
    assert!(offset_of!(FlowKeyV1, tunnel_id) == 40);

    assert!(size_of::<FeatureV1>() == 24);
    assert!(offset_of!(FeatureV1, name) == 0);
    assert!(offset_of!(FeatureV1, kind) == 8);
    assert!(offset_of!(FeatureV1, description) == 16);

    assert!(size_of::<TextV1>() == 16);
    assert!(offset_of!(TextV1, buf) == 0);
    assert!(offset_of!(TextV1, cap) == 8);
    assert!(offset_of!(TextV1, len) == 12);

    assert!(size_of::<PluginV1>() == PLUGIN_V1_4_SIZE);
    assert!(offset_of!(PluginV1, flow_emit_text) == PLUGIN_V1_3_SIZE);
    assert!(offset_of!(PluginV1, flow_state_size) == PLUGIN_V1_2_SIZE);
    assert!(offset_of!(PluginV1, interval_state_size) == PLUGIN_V1_1_SIZE);
    assert!(offset_of!(PluginV1, reserved1) == 132);
    assert!(offset_of!(PluginV1, update_burst_intervals) == 136);
    assert!(offset_of!(PluginV1, interval_emit) == PLUGIN_V1_0_SIZE);
    assert!(offset_of!(PluginV1, magic) == 0);
    assert!(offset_of!(PluginV1, abi_major) == 4);
    assert!(offset_of!(PluginV1, abi_minor) == 6);
    assert!(offset_of!(PluginV1, struct_size) == 8);
    assert!(offset_of!(PluginV1, flags) == 12);
    assert!(offset_of!(PluginV1, name) == 16);
    assert!(offset_of!(PluginV1, version) == 24);
    assert!(offset_of!(PluginV1, description) == 32);
    assert!(offset_of!(PluginV1, features) == 40);
    assert!(offset_of!(PluginV1, n_features) == 48);
    assert!(offset_of!(PluginV1, state_size) == 52);
    assert!(offset_of!(PluginV1, state_align) == 56);
    assert!(offset_of!(PluginV1, config_schema) == 64);
    assert!(offset_of!(PluginV1, create) == 72);
    assert!(offset_of!(PluginV1, destroy) == 80);
    assert!(offset_of!(PluginV1, flow_init) == 88);
    assert!(offset_of!(PluginV1, update_burst) == 96);
    assert!(offset_of!(PluginV1, flow_emit) == 104);
    assert!(offset_of!(PluginV1, last_error) == 112);
    assert!(offset_of!(PluginV1, interval_emit) == 120);
};
