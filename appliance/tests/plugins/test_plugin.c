/*
 * A purpose-built plugin for the plugin host's tests, written against weir_plugin.h.
 *
 * Built with no macros it is a good plugin: per flow it counts packets in each direction and
 * bytes on the wire, and emits them as NAME_s2d_packets, NAME_d2s_packets, NAME_bytes.
 * Each -D macro below breaks it in exactly one way, so every refusal path of the host has a
 * plugin that takes it:
 *
 *   NAME="x"             plugin name and feature prefix (default "counter")
 *   NO_ENTRY             export no entry symbol at all
 *   ENTRY_V2             export weir_plugin_entry_v2 instead of _v1
 *   ENTRY_NULL           the entry returns NULL
 *   MAGIC=, MAJOR=, MINOR=, STRUCT_SIZE=, STATE_SIZE=, STATE_ALIGN=   descriptor overrides
 *   NULL_UPDATE          update_burst is NULL
 *   DUP_FEATURE          the second feature has the first one's name
 *   FEATURE0="name"      name of the first feature
 *   BAD_KIND             the first feature's kind is 7
 *   KIND0=k              kind of the first feature (default WEIR_FEATURE_U64)
 *   CREATE_FAIL          create returns an error
 *   FAIL_AT=n            update_burst fails once the instance has seen n packets
 *   FAIL_WORKER=w        ... but only on worker w (so it passes the load-time self-test)
 *   EMIT_FAIL            flow_emit fails
 *   SKIP_LAST            flow_emit leaves the last feature unwritten
 *   DONE_AFTER=n         set done for a flow once it has n packets
 *   INTERVAL_TAIL        a good ABI 1.2 interval plugin: an 8-byte interval part (packets since
 *                        the last interval_emit) after the state, update_burst_intervals, and
 *                        interval_emit writing that count as NAME_s2d_packets (0 in the
 *                        other two columns)
 *   INTERVAL_STATE_SIZE=n  interval_state_size n, with no interval callbacks
 *   TAIL_NO_UPDATE       with INTERVAL_TAIL: update_burst_intervals is NULL
 *   FLOW_STATE_SIZE=n    ABI 1.3: flow_state_size answers n (the plugin uses only its 24-byte
 *                        flow_state, so n >= 24 works; pair with STATE_SIZE= for the declared max)
 *   FLOW_STATE_SIZE_W1=n ... but worker 1's instance answers n
 *   TEXT                 ABI 1.4: three more features of kind text, written by flow_emit_text:
 *                        NAME_label "proto=P ünï" (P the flow's IP protocol; valid UTF-8),
 *                        NAME_long 300 bytes of 'x' (reported with len 300 > WEIR_TEXT_MAX:
 *                        refused), NAME_bad the bytes ff fe (not UTF-8: refused)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir_plugin.h>

#ifndef NAME
#define NAME "counter"
#endif
#ifndef MAGIC
#define MAGIC WEIR_PLUGIN_MAGIC
#endif
#ifndef MAJOR
#define MAJOR WEIR_ABI_MAJOR
#endif
#ifndef MINOR
#define MINOR WEIR_ABI_MINOR
#endif
#ifndef STRUCT_SIZE
#define STRUCT_SIZE sizeof(weir_plugin_v1)
#endif
#ifndef STATE_SIZE
#define STATE_SIZE sizeof(struct flow_state)
#endif
#ifndef STATE_ALIGN
#define STATE_ALIGN _Alignof(struct flow_state)
#endif
#ifndef FEATURE0
#define FEATURE0 NAME "_s2d_packets"
#endif
#ifndef KIND0
#define KIND0 WEIR_FEATURE_U64
#endif

struct flow_state {
    uint64_t packets[2];
    uint64_t bytes;
};

struct instance {
    uint32_t worker;
    uint64_t seen; /* packets this instance received, all flows */
    char err[128];
};

static char create_err[] = "create refused as built (CREATE_FAIL)";

static int32_t create(const char *config_json, uint32_t worker, void **out) {
    (void)config_json;
#ifdef CREATE_FAIL
    (void)worker;
    (void)out;
    return WEIR_ERR;
#else
    struct instance *in = calloc(1, sizeof *in);
    if (!in)
        return WEIR_ERR;
    in->worker = worker;
    *out = in;
    return WEIR_OK;
#endif
}

static void destroy(void *inst) { free(inst); }

static int32_t flow_init(void *inst, const weir_flow_key_v1 *key, void *state) {
    (void)inst;
    (void)key;
    (void)state; /* zeroed by the host */
    return WEIR_OK;
}

static int32_t update_burst(void *inst, void *const *states, const weir_packet_v1 *pkts,
                            uint8_t *done, uint32_t n) {
    struct instance *in = inst;
    for (uint32_t i = 0; i < n; i++) {
        struct flow_state *s = states[i];
        in->seen++;
#ifdef FAIL_AT
#ifdef FAIL_WORKER
        int fail = in->seen >= FAIL_AT && in->worker == FAIL_WORKER;
#else
        int fail = in->seen >= FAIL_AT;
#endif
        if (fail) {
            strcpy(in->err, "failing on purpose at packet " NAME);
            return WEIR_ERR;
        }
#endif
#ifdef REJECT_ICMP
        if (pkts[i].protocol == 1 || pkts[i].protocol == 58) {
            strcpy(in->err, "cannot handle ICMP (REJECT_ICMP)");
            return WEIR_ERR;
        }
#endif
        s->packets[pkts[i].direction & 1]++;
        s->bytes += pkts[i].wire_len;
#ifdef OVERRUN_STATE
        /* One 8-byte word past the end of the state, as an off-by-one array would. */
        memset((char *)s + STATE_SIZE, 0x5a, 8);
#endif
#ifdef DONE_AFTER
        if (s->packets[0] + s->packets[1] >= DONE_AFTER)
            done[i] = 1;
#else
        (void)done;
#endif
    }
    return WEIR_OK;
}

static int32_t flow_emit(void *inst, const weir_flow_key_v1 *key, const void *state, double *out,
                         uint32_t n) {
    const struct flow_state *s = state;
    (void)key;
#ifdef EMIT_FAIL
    strcpy(((struct instance *)inst)->err, "emit fails as built (EMIT_FAIL)");
    return WEIR_ERR;
#endif
    (void)inst;
    if (n != 3)
        return WEIR_ERR;
    out[0] = (double)s->packets[0];
    out[1] = (double)s->packets[1];
#ifdef OVERRUN_OUT
    out[n] = 0.0; /* one past the end */
#endif
#ifndef SKIP_LAST
    out[2] = (double)s->bytes;
#endif
    return WEIR_OK;
}

#ifdef INTERVAL_TAIL
/* The interval part the host appends when interval records are on. */
struct interval_part {
    uint64_t packets;
};

static int32_t update_burst_intervals(void *inst, void *const *states, const weir_packet_v1 *pkts,
                                      uint8_t *done, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        struct interval_part *iv = (void *)((char *)states[i] + sizeof(struct flow_state));
        iv->packets++;
    }
    return update_burst(inst, states, pkts, done, n);
}

static int32_t interval_emit(void *inst, const weir_flow_key_v1 *key, void *state, double *out,
                             uint32_t n) {
    struct interval_part *iv = (void *)((char *)state + sizeof(struct flow_state));
    (void)inst;
    (void)key;
    if (n != 3)
        return WEIR_ERR;
    out[0] = (double)iv->packets;
    out[1] = 0.0; /* the self-test wants every column written */
    out[2] = 0.0;
    iv->packets = 0;
    return WEIR_OK;
}
#define INTERVAL_STATE_SIZE sizeof(struct interval_part)
#endif
#ifndef INTERVAL_STATE_SIZE
#define INTERVAL_STATE_SIZE 0
#endif

#ifdef TEXT
static int32_t flow_emit_text(void *inst, const weir_flow_key_v1 *key, void *state, double *out,
                              uint32_t n, weir_text_v1 *texts, uint32_t n_texts) {
    if (n != 6 || n_texts != 3)
        return WEIR_ERR;
    int32_t rc = flow_emit(inst, key, state, out, 3);
    if (rc != WEIR_OK)
        return rc;
    char label[32];
    int len = snprintf(label, sizeof label, "proto=%u \xc3\xbcn\xc3\xaf", (unsigned)key->protocol);
    memcpy(texts[0].buf, label, (size_t)len);
    texts[0].len = (uint32_t)len;
    memset(texts[1].buf, 'x', texts[1].cap);
    texts[1].len = 300; /* the whole value: more than cap, so the host refuses it */
    texts[2].buf[0] = (char)0xff;
    texts[2].buf[1] = (char)0xfe;
    texts[2].len = 2;
    return WEIR_OK;
}
#define N_FEATURES 6
#else
#define N_FEATURES 3
#endif

static const char *last_error(void *inst) {
    if (!inst)
        return create_err;
    return ((struct instance *)inst)->err;
}

static const weir_feature_v1 features[N_FEATURES] = {
#ifdef BAD_KIND
    {FEATURE0, 7, 0, "packets from src to dst"},
#else
    {FEATURE0, KIND0, 0, "packets from src to dst"},
#endif
#ifdef DUP_FEATURE
    {FEATURE0, WEIR_FEATURE_U64, 0, "the same name again"},
#else
    {NAME "_d2s_packets", WEIR_FEATURE_U64, 0, "packets from dst to src"},
#endif
    {NAME "_bytes", WEIR_FEATURE_U64, 0, "bytes on the wire, both directions"},
#ifdef TEXT
    {NAME "_label", WEIR_FEATURE_TEXT, 0, "proto=P and three non-ASCII bytes"},
    {NAME "_long", WEIR_FEATURE_TEXT, 0, "300 bytes: refused"},
    {NAME "_bad", WEIR_FEATURE_TEXT, 0, "not UTF-8: refused"},
#endif
};

#ifdef FLOW_STATE_SIZE
static uint32_t flow_state_size(void *inst) {
#ifdef FLOW_STATE_SIZE_W1
    if (((struct instance *)inst)->worker == 1)
        return FLOW_STATE_SIZE_W1;
#else
    (void)inst;
#endif
    return FLOW_STATE_SIZE;
}
#endif

static const weir_plugin_v1 descriptor = {
    .magic = MAGIC,
    .abi_major = MAJOR,
    .abi_minor = MINOR,
    .struct_size = STRUCT_SIZE,
    .flags = 0,
    .name = NAME,
    .version = "0.0.1-test",
    .description = "test plugin for the weir plugin host",
    .features = features,
    .n_features = N_FEATURES,
    .state_size = STATE_SIZE,
    .state_align = STATE_ALIGN,
    .config_schema = NULL,
    .create = create,
    .destroy = destroy,
    .flow_init = flow_init,
#ifdef NULL_UPDATE
    .update_burst = NULL,
#else
    .update_burst = update_burst,
#endif
    .flow_emit = flow_emit,
    .last_error = last_error,
#if WEIR_ABI_MINOR >= 2 /* also built against the frozen 1.0 header */
    .interval_state_size = INTERVAL_STATE_SIZE,
#endif
#ifdef INTERVAL_TAIL
    .interval_emit = interval_emit,
#ifndef TAIL_NO_UPDATE
    .update_burst_intervals = update_burst_intervals,
#endif
#endif
#ifdef FLOW_STATE_SIZE
    .flow_state_size = flow_state_size,
#endif
#ifdef TEXT
    .flow_emit_text = flow_emit_text,
#endif
};

#if defined(NO_ENTRY)
const weir_plugin_v1 *not_the_entry(uint16_t major, uint16_t minor) {
    (void)major;
    (void)minor;
    return &descriptor;
}
#elif defined(ENTRY_V2)
const weir_plugin_v1 *weir_plugin_entry_v2(uint16_t major, uint16_t minor) {
    (void)major;
    (void)minor;
    return &descriptor;
}
#else
const weir_plugin_v1 *weir_plugin_entry_v1(uint16_t major, uint16_t minor) {
    (void)major;
    (void)minor;
#ifdef ENTRY_NULL
    return NULL;
#else
    return &descriptor;
#endif
}
#endif
