/*
 * Layout of the ABI v1 structs as a C11 compiler sees include/weir_plugin.h. The static
 * assertions are the same numbers as the `const _` block in src/abi.rs, so a change to either
 * side alone fails a build. When run, it also prints every size and offset as "NAME VALUE"
 * lines, which tests/layout.rs compares with the Rust mirror's size_of/offset_of.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "weir_plugin.h"

#define CHECK(expr, n) _Static_assert((expr) == (n), #expr " == " #n)
#define OFF(T, f, n) CHECK(offsetof(T, f), n)

CHECK(sizeof(weir_packet_v1), 64);
OFF(weir_packet_v1, ts_ns, 0);
OFF(weir_packet_v1, data, 8);
OFF(weir_packet_v1, wire_len, 16);
OFF(weir_packet_v1, cap_len, 20);
OFF(weir_packet_v1, l3_off, 24);
OFF(weir_packet_v1, l4_off, 26);
OFF(weir_packet_v1, payload_off, 28);
OFF(weir_packet_v1, payload_len, 30);
OFF(weir_packet_v1, ip_len, 32);
OFF(weir_packet_v1, direction, 34);
OFF(weir_packet_v1, ip_version, 35);
OFF(weir_packet_v1, protocol, 36);
OFF(weir_packet_v1, tcp_flags, 37);
OFF(weir_packet_v1, tcp_window, 38);
OFF(weir_packet_v1, tcp_seq, 40);
OFF(weir_packet_v1, tcp_ack, 44);
OFF(weir_packet_v1, ttl, 48);
OFF(weir_packet_v1, flags, 49);
OFF(weir_packet_v1, tcp_hdr_len, 50);
OFF(weir_packet_v1, reserved, 52);

CHECK(sizeof(weir_flow_key_v1), 48);
OFF(weir_flow_key_v1, src_ip, 0);
OFF(weir_flow_key_v1, dst_ip, 16);
OFF(weir_flow_key_v1, src_port, 32);
OFF(weir_flow_key_v1, dst_port, 34);
OFF(weir_flow_key_v1, vlan_id, 36);
OFF(weir_flow_key_v1, protocol, 38);
OFF(weir_flow_key_v1, ip_version, 39);
OFF(weir_flow_key_v1, tunnel_id, 40);

CHECK(sizeof(weir_feature_v1), 24);
OFF(weir_feature_v1, name, 0);
OFF(weir_feature_v1, kind, 8);
OFF(weir_feature_v1, description, 16);

CHECK(sizeof(weir_text_v1), 16);
OFF(weir_text_v1, buf, 0);
OFF(weir_text_v1, cap, 8);
OFF(weir_text_v1, len, 12);

CHECK(sizeof(weir_plugin_v1), 160);
OFF(weir_plugin_v1, magic, 0);
OFF(weir_plugin_v1, abi_major, 4);
OFF(weir_plugin_v1, abi_minor, 6);
OFF(weir_plugin_v1, struct_size, 8);
OFF(weir_plugin_v1, flags, 12);
OFF(weir_plugin_v1, name, 16);
OFF(weir_plugin_v1, version, 24);
OFF(weir_plugin_v1, description, 32);
OFF(weir_plugin_v1, features, 40);
OFF(weir_plugin_v1, n_features, 48);
OFF(weir_plugin_v1, state_size, 52);
OFF(weir_plugin_v1, state_align, 56);
OFF(weir_plugin_v1, config_schema, 64);
OFF(weir_plugin_v1, create, 72);
OFF(weir_plugin_v1, destroy, 80);
OFF(weir_plugin_v1, flow_init, 88);
OFF(weir_plugin_v1, update_burst, 96);
OFF(weir_plugin_v1, flow_emit, 104);
OFF(weir_plugin_v1, last_error, 112);
OFF(weir_plugin_v1, interval_emit, 120);
OFF(weir_plugin_v1, interval_state_size, 128);
OFF(weir_plugin_v1, reserved1, 132);
OFF(weir_plugin_v1, update_burst_intervals, 136);
OFF(weir_plugin_v1, flow_state_size, 144);
OFF(weir_plugin_v1, flow_emit_text, 152);
CHECK(WEIR_PLUGIN_V1_0_SIZE, 120);
CHECK(WEIR_PLUGIN_V1_1_SIZE, 128);
CHECK(WEIR_PLUGIN_V1_2_SIZE, 144);
CHECK(WEIR_PLUGIN_V1_3_SIZE, 152);

#define SHOW(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
#define SIZE(T) printf(#T " %zu\n", sizeof(T))
#define CONST(c) printf(#c " %lld\n", (long long)(c))

int main(void) {
    uint32_t magic = WEIR_PLUGIN_MAGIC;
    if (memcmp(&magic, "WEIR", 4) != 0) return 1; /* little-endian hosts only, like weir */

    SIZE(weir_packet_v1);
    SHOW(weir_packet_v1, ts_ns); SHOW(weir_packet_v1, data); SHOW(weir_packet_v1, wire_len);
    SHOW(weir_packet_v1, cap_len); SHOW(weir_packet_v1, l3_off); SHOW(weir_packet_v1, l4_off);
    SHOW(weir_packet_v1, payload_off); SHOW(weir_packet_v1, payload_len);
    SHOW(weir_packet_v1, ip_len); SHOW(weir_packet_v1, direction);
    SHOW(weir_packet_v1, ip_version); SHOW(weir_packet_v1, protocol);
    SHOW(weir_packet_v1, tcp_flags); SHOW(weir_packet_v1, tcp_window);
    SHOW(weir_packet_v1, tcp_seq); SHOW(weir_packet_v1, tcp_ack); SHOW(weir_packet_v1, ttl);
    SHOW(weir_packet_v1, flags); SHOW(weir_packet_v1, tcp_hdr_len);
    SHOW(weir_packet_v1, reserved);

    SIZE(weir_flow_key_v1);
    SHOW(weir_flow_key_v1, src_ip); SHOW(weir_flow_key_v1, dst_ip);
    SHOW(weir_flow_key_v1, src_port); SHOW(weir_flow_key_v1, dst_port);
    SHOW(weir_flow_key_v1, vlan_id); SHOW(weir_flow_key_v1, protocol);
    SHOW(weir_flow_key_v1, ip_version); SHOW(weir_flow_key_v1, tunnel_id);
    SHOW(weir_flow_key_v1, reserved);

    SIZE(weir_feature_v1);
    SHOW(weir_feature_v1, name); SHOW(weir_feature_v1, kind);
    SHOW(weir_feature_v1, reserved); SHOW(weir_feature_v1, description);

    SIZE(weir_text_v1);
    SHOW(weir_text_v1, buf); SHOW(weir_text_v1, cap); SHOW(weir_text_v1, len);

    SIZE(weir_plugin_v1);
    SHOW(weir_plugin_v1, magic); SHOW(weir_plugin_v1, abi_major);
    SHOW(weir_plugin_v1, abi_minor); SHOW(weir_plugin_v1, struct_size);
    SHOW(weir_plugin_v1, flags); SHOW(weir_plugin_v1, name); SHOW(weir_plugin_v1, version);
    SHOW(weir_plugin_v1, description); SHOW(weir_plugin_v1, features);
    SHOW(weir_plugin_v1, n_features); SHOW(weir_plugin_v1, state_size);
    SHOW(weir_plugin_v1, state_align); SHOW(weir_plugin_v1, reserved0);
    SHOW(weir_plugin_v1, config_schema); SHOW(weir_plugin_v1, create);
    SHOW(weir_plugin_v1, destroy); SHOW(weir_plugin_v1, flow_init);
    SHOW(weir_plugin_v1, update_burst); SHOW(weir_plugin_v1, flow_emit);
    SHOW(weir_plugin_v1, last_error); SHOW(weir_plugin_v1, interval_emit);
    SHOW(weir_plugin_v1, interval_state_size); SHOW(weir_plugin_v1, reserved1);
    SHOW(weir_plugin_v1, update_burst_intervals); SHOW(weir_plugin_v1, flow_state_size);
    SHOW(weir_plugin_v1, flow_emit_text);

    CONST(WEIR_PLUGIN_MAGIC); CONST(WEIR_ABI_MAJOR); CONST(WEIR_ABI_MINOR);
    CONST(WEIR_PLUGIN_V1_0_SIZE); CONST(WEIR_PLUGIN_V1_1_SIZE);
    CONST(WEIR_PLUGIN_V1_2_SIZE); CONST(WEIR_PLUGIN_V1_3_SIZE);
    CONST(WEIR_OK); CONST(WEIR_ERR);
    CONST(WEIR_DIR_SRC_TO_DST); CONST(WEIR_DIR_DST_TO_SRC);
    CONST(WEIR_PKT_FIRST_OF_FLOW); CONST(WEIR_PKT_IP_FRAGMENT); CONST(WEIR_PKT_TUNNELED);
    CONST(WEIR_TCP_FIN); CONST(WEIR_TCP_SYN); CONST(WEIR_TCP_RST); CONST(WEIR_TCP_PSH);
    CONST(WEIR_TCP_ACK); CONST(WEIR_TCP_URG); CONST(WEIR_TCP_ECE); CONST(WEIR_TCP_CWR);
    CONST(WEIR_NO_OFFSET);
    CONST(WEIR_FEATURE_F64); CONST(WEIR_FEATURE_U64); CONST(WEIR_FEATURE_BOOL);
    CONST(WEIR_FEATURE_TEXT); CONST(WEIR_TEXT_MAX); CONST(WEIR_TEXT_MISSING);
    printf("WEIR_PLUGIN_ENTRY_SYMBOL %s\n", WEIR_PLUGIN_ENTRY_SYMBOL);
    return 0;
}
