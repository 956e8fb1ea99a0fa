/*
 * weir plugin ABI, version 1.4 (1.1 appended interval_emit to weir_plugin_v1; 1.2 appended
 * interval_state_size and update_burst_intervals, so interval accounting costs nothing when
 * interval records are off; 1.3 appended flow_state_size, so a flow's state can be sized from
 * the plugin's config; 1.4 added text features: the kind WEIR_FEATURE_TEXT, the struct
 * weir_text_v1 and the callback flow_emit_text).
 *
 * This header is the contract between the weir appliance (the host) and a feature-extractor
 * plugin (a shared object in the plugin directory). It is plain C11 so that plugins can be
 * written in C, Rust (see the weir-plugin-api crate, which mirrors every struct here and checks
 * the layout at compile time) or anything that can export a C symbol.
 *
 * Rules of the ABI:
 *  - A plugin exports exactly one symbol, weir_plugin_entry_v1, which returns a pointer to a
 *    static descriptor (weir_plugin_v1). The host calls it once, right after dlopen.
 *  - The first 16 bytes of the descriptor (magic, ABI major/minor, struct_size, flags) are frozen
 *    forever. The host refuses another major, a newer minor, bad magic or a struct_size smaller
 *    than the fields it needs.
 *  - Structs only grow by appending fields; a new field is read only when struct_size says it is
 *    there. Minor versions add fields; majors break.
 *  - Nothing is freed across the boundary. Per-flow state is plain data owned by the host: the
 *    host allocates state_size bytes (aligned to state_align) per flow and per plugin, zeroes it,
 *    and hands the plugin a pointer to it. A plugin must not keep pointers into packets or states
 *    beyond the call that gave them.
 *  - Callbacks return WEIR_OK (0) or a negative error; after an error the host reads
 *    last_error(instance) and quarantines the plugin on that worker (its features become NaN,
 *    traffic goes on).
 *  - One instance per worker thread: a plugin instance is only ever called from one thread.
 */
#ifndef WEIR_PLUGIN_H
#define WEIR_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "WEIR" read as a little-endian u32. */
#define WEIR_PLUGIN_MAGIC 0x52494557u
#define WEIR_ABI_MAJOR 1
#define WEIR_ABI_MINOR 4

#define WEIR_OK 0
#define WEIR_ERR (-1)

/* Direction of a packet relative to its flow: src is the sender of the flow's first packet. */
#define WEIR_DIR_SRC_TO_DST 0
#define WEIR_DIR_DST_TO_SRC 1

/* weir_packet_v1.flags */
#define WEIR_PKT_FIRST_OF_FLOW 0x01u /* this packet created the flow */
#define WEIR_PKT_IP_FRAGMENT 0x02u   /* first fragment of a fragmented IPv4/IPv6 datagram */
#define WEIR_PKT_TUNNELED 0x04u      /* the IP header at l3_off is inside an IP-in-IP tunnel */

/* TCP flag bits, as in the TCP header's flags byte (RFC 9293 section 3.1, plus RFC 3168). */
#define WEIR_TCP_FIN 0x01u
#define WEIR_TCP_SYN 0x02u
#define WEIR_TCP_RST 0x04u
#define WEIR_TCP_PSH 0x08u
#define WEIR_TCP_ACK 0x10u
#define WEIR_TCP_URG 0x20u
#define WEIR_TCP_ECE 0x40u
#define WEIR_TCP_CWR 0x80u

/* Offsets that do not exist (no transport header, no payload) are WEIR_NO_OFFSET. */
#define WEIR_NO_OFFSET 0xffffu

/*
 * One packet, as the host parsed it. Exactly 64 bytes (one cache line). Frozen: new packet
 * information goes into the reserved bytes, announced by a new minor version.
 */
typedef struct weir_packet_v1 {
    uint64_t ts_ns;          /*  0: packet time, ns since the Unix epoch (capture or NIC time,
                                    never earlier than the previous packet's) */
    const uint8_t *data;     /*  8: the frame from its Ethernet header, cap_len bytes readable */
    uint32_t wire_len;       /* 16: frame length on the wire (what byte counters count) */
    uint32_t cap_len;        /* 20: bytes captured and readable at data */
    uint16_t l3_off;         /* 24: offset of the (innermost) IP header */
    uint16_t l4_off;         /* 26: offset of the TCP/UDP/ICMP header, or WEIR_NO_OFFSET */
    uint16_t payload_off;    /* 28: offset of the transport payload, or WEIR_NO_OFFSET */
    uint16_t payload_len;    /* 30: transport payload length per the IP header (may exceed what
                                    was captured: check against cap_len) */
    uint16_t ip_len;         /* 32: IP datagram length per the IP header */
    uint8_t direction;       /* 34: WEIR_DIR_* */
    uint8_t ip_version;      /* 35: 4 or 6 */
    uint8_t protocol;        /* 36: IP protocol number of the transport (6 TCP, 17 UDP, ...) */
    uint8_t tcp_flags;       /* 37: WEIR_TCP_* bits, 0 for other protocols */
    uint16_t tcp_window;     /* 38: TCP window field (unscaled) */
    uint32_t tcp_seq;        /* 40: TCP sequence number */
    uint32_t tcp_ack;        /* 44: TCP acknowledgement number */
    uint8_t ttl;             /* 48: IPv4 TTL or IPv6 hop limit */
    uint8_t flags;           /* 49: WEIR_PKT_* */
    uint16_t tcp_hdr_len;    /* 50: TCP header length in bytes (data offset * 4), 0 if not TCP */
    uint32_t reserved[3];    /* 52: zero; room for ABI minor versions */
} weir_packet_v1;

/*
 * The key of a bidirectional flow. src is the sender of the flow's first packet. IPv4
 * addresses are stored in the first 4 bytes of the 16-byte fields, the rest zero. Ports are in
 * host byte order; ICMP flows have ports 0. 48 bytes.
 */
typedef struct weir_flow_key_v1 {
    uint8_t src_ip[16];  /*  0 */
    uint8_t dst_ip[16];  /* 16 */
    uint16_t src_port;   /* 32 */
    uint16_t dst_port;   /* 34 */
    uint16_t vlan_id;    /* 36: innermost 802.1Q VLAN id (NFStream's choice), 0 if untagged */
    uint8_t protocol;    /* 38 */
    uint8_t ip_version;  /* 39 */
    uint32_t tunnel_id;  /* 40: 0 if the flow is not tunneled */
    uint32_t reserved;   /* 44 */
} weir_flow_key_v1;

/* Kinds of feature values. Every numeric value crosses the ABI as a double; the kind tells sinks
 * how to write it (an integer column, a float column, a 0/1 column). ABI 1.4 adds text: a UTF-8
 * string column (see weir_text_v1 and flow_emit_text below); a descriptor of minor < 4 that
 * declares it is refused (unknown kind).
 * weir_feature_v1 is read as an array, so it is frozen like weir_packet_v1: it never grows. */
#define WEIR_FEATURE_F64 0u
#define WEIR_FEATURE_U64 1u
#define WEIR_FEATURE_BOOL 2u
#define WEIR_FEATURE_TEXT 3u

/*
 * ABI 1.4: one text value, written by the plugin into a buffer the host owns.
 *
 * Why a bounded buffer the host owns, and not a vocabulary of strings the plugin declares and
 * extends through a host callback, emitting an index in the double slot: the text worth having
 * is open-ended (a TLS SNI or an HTTP Host is whatever the peer sent), so a vocabulary would be
 * an unbounded table fed by hostile input, shared across workers (a lock, or a merge on the
 * output side) and outliving the flows. One buffer per text feature, allocated once per worker
 * by the host and reused for every flow, keeps the data path free of allocation, locks and
 * callbacks: the plugin copies at most WEIR_TEXT_MAX bytes at flow end, the host checks them
 * (length, UTF-8) and appends them to the record it builds anyway. Nothing crosses the boundary
 * to be freed, as for every other struct here.
 *
 * Protocol: on entry buf points to cap (= WEIR_TEXT_MAX) writable bytes and len is
 * WEIR_TEXT_MISSING. The plugin either leaves len as it is (the value is missing: an empty CSV
 * cell, null in JSON) or copies the value's bytes to buf (no NUL needed) and sets len to the
 * value's full length in bytes, also when that exceeds cap (then it copies only cap bytes, as
 * snprintf does). The host refuses, and counts, a value whose len exceeds cap (too long) or
 * whose bytes are not UTF-8: it is written as missing, never cut or repaired.
 * 16 bytes; frozen like weir_feature_v1 (it is passed as an array).
 */
#define WEIR_TEXT_MAX 256u
#define WEIR_TEXT_MISSING 0xffffffffu

typedef struct weir_text_v1 {
    char *buf;    /*  0: cap writable bytes, owned by the host, valid during the call only */
    uint32_t cap; /*  8: WEIR_TEXT_MAX */
    uint32_t len; /* 12: in: WEIR_TEXT_MISSING; out: the value's length in bytes */
} weir_text_v1;

typedef struct weir_feature_v1 {
    const char *name;        /* column name: [a-z0-9_]+, unique across all loaded plugins */
    uint32_t kind;           /* WEIR_FEATURE_* */
    uint32_t reserved;
    const char *description; /* one line, may be NULL */
} weir_feature_v1;

/* weir_plugin_v1.flags: none defined in 1.0. */

typedef struct weir_plugin_v1 {
    /* ---- frozen header (16 bytes): never changes, in any version ---- */
    uint32_t magic;        /* WEIR_PLUGIN_MAGIC */
    uint16_t abi_major;    /* WEIR_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;    /* WEIR_ABI_MINOR the plugin was built against */
    uint32_t struct_size;  /* sizeof(weir_plugin_v1) as the plugin was built */
    uint32_t flags;

    /* ---- ABI 1.0 ---- */
    const char *name;          /* [a-z0-9_]+, unique among loaded plugins */
    const char *version;       /* free text, e.g. "1.2.0" */
    const char *description;   /* one line, may be NULL */
    const weir_feature_v1 *features;
    uint32_t n_features;
    uint32_t state_size;       /* bytes of per-flow state (0 allowed) */
    uint32_t state_align;      /* power of two, <= 64 */
    uint32_t reserved0;
    const char *config_schema; /* optional: JSON text describing the plugin's config keys */

    /* Create one instance for a worker. config is the plugin's table from weir's config as JSON
     * text ("{}" when absent). On success store the instance (may be NULL) and return WEIR_OK.
     * On error return WEIR_ERR; the host then calls last_error(NULL) on the same thread, so keep
     * that message per thread (thread-local), not process-wide. */
    int32_t (*create)(const char *config_json, uint32_t worker, void **instance);
    void (*destroy)(void *instance);

    /* A new flow: state points to state_size zeroed bytes. */
    int32_t (*flow_init)(void *instance, const weir_flow_key_v1 *key, void *state);

    /* A burst of n packets in arrival order; states[i] is the state of pkts[i]'s flow (one flow
     * may appear several times in a burst). done[i] is 0 on entry; set it to 1 when the plugin
     * needs no more packets of that flow: the host then stops passing them. */
    int32_t (*update_burst)(void *instance, void *const *states, const weir_packet_v1 *pkts,
                            uint8_t *done, uint32_t n);

    /* The flow ended: write n_features doubles to out (NaN = missing). */
    int32_t (*flow_emit)(void *instance, const weir_flow_key_v1 *key, const void *state,
                         double *out, uint32_t n_features);

    /* A message for the last error on this instance (or of create when instance is NULL). The
     * string stays valid until the next call on the same instance. */
    const char *(*last_error)(void *instance);

    /* ---- ABI 1.1 (read by the host only when struct_size covers it) ---- */

    /* Optional (NULL: the plugin's columns are NaN in interval records). The flow's current
     * interval ended (weir's [intervals] schedule): write n_features doubles describing the
     * packets since the previous interval_emit of this flow (or since flow_init), NaN =
     * missing, then reset the interval part of the state. The flow goes on: flow_emit still
     * describes the whole flow, so the interval part must not disturb the flow-long part.
     * The host calls it for every interval in which the flow had packets, the last one just
     * before flow_emit. */
    int32_t (*interval_emit)(void *instance, const weir_flow_key_v1 *key, void *state,
                             double *out, uint32_t n_features);

    /* ---- ABI 1.2 (read by the host only when struct_size covers it) ---- */

    /* Optional (0 and NULL: state_size and update_burst cover intervals too, as in 1.1). A
     * plugin with interval_emit may keep its interval accounting out of the run when interval
     * records are off:
     *  - interval records on (some [intervals] or [[services]] every_ms > 0): each flow's state
     *    is state_size + interval_state_size bytes (the interval part after the first
     *    state_size, same state_align), and the host calls update_burst_intervals (when not
     *    NULL) instead of update_burst, and interval_emit as in 1.1;
     *  - off: each flow's state is state_size bytes, the host calls update_burst and never
     *    interval_emit.
     * A plugin with interval_state_size > 0 must set update_burst_intervals and
     * interval_emit (the host refuses it otherwise). */
    uint32_t interval_state_size;
    uint32_t reserved1;
    int32_t (*update_burst_intervals)(void *instance, void *const *states,
                                      const weir_packet_v1 *pkts, uint8_t *done, uint32_t n);

    /* ---- ABI 1.3 (read by the host only when struct_size covers it) ---- */

    /* Optional (NULL: every flow gets state_size bytes). The bytes of per-flow state this
     * instance uses, from its config: at most state_size, which stays the most any config
     * needs (a 1.2 host allocates that). The host calls it once on every instance right after
     * create, and then allocates that many bytes per flow instead of state_size (the interval
     * part, when on, follows them). The answer must depend on the config only: the host
     * refuses the plugin when it exceeds state_size or when two workers' instances differ. */
    uint32_t (*flow_state_size)(void *instance);

    /* ---- ABI 1.4 (read by the host only when struct_size covers it) ---- */

    /* Required when the plugin declares a WEIR_FEATURE_TEXT feature (the host refuses it
     * otherwise), optional else. Called instead of flow_emit at the flow's end: write the
     * numeric features to out as flow_emit does (the double slot of a text feature is not read)
     * and the text features to texts, one weir_text_v1 per text feature in declaration order
     * (n_texts of them; see weir_text_v1 for the protocol). Unlike flow_emit's, the state is not
     * const: this is the flow's last call, so the plugin may release what the state refers to
     * (a pool slot, a library's per-flow allocations). Interval records carry no text: their
     * text columns are missing. */
    int32_t (*flow_emit_text)(void *instance, const weir_flow_key_v1 *key, void *state,
                              double *out, uint32_t n_features, weir_text_v1 *texts,
                              uint32_t n_texts);
} weir_plugin_v1;

/* sizeof(weir_plugin_v1) of ABI 1.0 (up to last_error): the smallest struct_size accepted. */
#define WEIR_PLUGIN_V1_0_SIZE 120u
/* sizeof(weir_plugin_v1) of ABI 1.1 (up to interval_emit). */
#define WEIR_PLUGIN_V1_1_SIZE 128u
/* sizeof(weir_plugin_v1) of ABI 1.2 (up to update_burst_intervals). */
#define WEIR_PLUGIN_V1_2_SIZE 144u
/* sizeof(weir_plugin_v1) of ABI 1.3 (up to flow_state_size). */
#define WEIR_PLUGIN_V1_3_SIZE 152u

/* The one symbol a plugin exports. host_major/host_minor are the host's ABI version: a plugin
 * may return NULL when it cannot work with that host. */
typedef const weir_plugin_v1 *(*weir_plugin_entry_v1_fn)(uint16_t host_major, uint16_t host_minor);
const weir_plugin_v1 *weir_plugin_entry_v1(uint16_t host_major, uint16_t host_minor);

#define WEIR_PLUGIN_ENTRY_SYMBOL "weir_plugin_entry_v1"

#ifdef __cplusplus
}
#endif

#endif /* WEIR_PLUGIN_H */
