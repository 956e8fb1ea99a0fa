/*
 * weir_entropy: payload byte entropy, a weir plugin written in plain C11 against
 * plugin-api/include/weir_plugin.h (ABI v1) with no Rust in it.
 *
 * Features, per direction d = src2dst (packets from the flow's first sender) or dst2src:
 *   {d}_payload_entropy  Shannon entropy, bits per byte (0..8), of the first K captured transport
 *                        payload bytes of d: H = -sum p_b log2 p_b over byte values b, p_b = count
 *                        of b / bytes sampled (C. E. Shannon, "A Mathematical Theory of
 *                        Communication", 1948). NaN when d carried no captured payload.
 *   {d}_payload_bytes    transport payload bytes of d per the IP header (payload_len), summed
 *                        over all packets, captured or not.
 *   {d}_payload_sampled  payload bytes that went into the entropy (at most K; fewer when the
 *                        capture truncated payloads).
 * Config: {"k": K}, 1 <= K <= 1024, default 1024.
 * State: 278 + 2 * (K / 16) bytes per flow, rounded up to 8 (408 at the default K = 1024,
 * 312 at K = 256). Each direction's histogram is exact but packed: a 4-bit counter per byte
 * value (count mod 16, 128 bytes: byte i holds values i and i + 128) and a list of the byte
 * values whose counter wrapped (one entry per wrap, so count = low nibble + 16 * occurrences
 * in the list). K bytes wrap at most K / 16 times, so each direction's list has K / 16
 * entries. A 256 x u16 histogram per direction (1048 bytes in all) was 60 % of every flow's
 * plugin state. The descriptor declares the most (K = 1024); flow_state_size (ABI 1.3) tells
 * the host what this instance's K needs.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir_plugin.h"

#define EXPORT __attribute__((visibility("default")))

#define DEFAULT_K 1024u
#define MAX_K 1024u
/* Wraps of a 4-bit counter K bytes can cause: K / 16. */
#define MAX_WRAPS (MAX_K / 16u)
#define N_FEATURES 6
/* Packets ahead whose state, then whose payload, update_burst asks the caches for. How much
 * payload to ask for is read from the state, so its line must have been asked for earlier:
 * the same distance (4) stalls on it, 20 % more cycles (perf/entropy_bench.c); 1 and 2 tie. */
#define PREFETCH_AHEAD 4u
#define PAYLOAD_AHEAD 2u
_Static_assert(PAYLOAD_AHEAD < PREFETCH_AHEAD, "a payload's length is read from its state");

typedef struct entropy_state {
    uint64_t payload_bytes[2];
    uint16_t sampled[2];          /* <= K <= 1024 */
    uint8_t n_wraps[2];           /* entries used in direction d's wraps list */
    uint8_t nibbles[2][128];      /* byte value b: bits 4*(b>>7).. of nibbles[d][b&127] */
    /* Byte values whose nibble went 15 -> 0, once per wrap: direction d's K / 16 entries at
     * d * (K / 16). Only the first 2 * (K / 16) bytes exist when the host sized the state by
     * flow_state_size. */
    uint8_t wraps[2 * MAX_WRAPS];
    uint8_t pad_[2];
} entropy_state;

/* Count one byte value b in direction d's packed histogram; w = K / 16 wraps per direction. */
static inline void hist_add(entropy_state *s, unsigned d, uint8_t b, uint32_t w) {
    uint8_t *cell = &s->nibbles[d][b & 127u];
    unsigned shift = (b >> 7) * 4u;
    if (((*cell >> shift) & 0xFu) == 0xFu) {
        *cell = (uint8_t)(*cell & ~(0xFu << shift)); /* 15 + 1 = 16: nibble 0, one wrap */
        s->wraps[d * w + s->n_wraps[d]++] = b;       /* n_wraps < w: sampled <= K */
    } else {
        *cell = (uint8_t)(*cell + (1u << shift));
    }
}

typedef struct entropy_instance {
    /* hist_add_bulk's local histograms, all zero between calls (its merge zeroes what it
     * read), so a packet costs no memset; four, so that a run of one byte value (padding,
     * text) is four chains of increments, not one waiting on each store (2x faster on runs of
     * zeros than two tables). Line-aligned for the merge's vector loads. */
    _Alignas(64) uint16_t tbl[4][256];
    uint32_t k;
    uint32_t wraps; /* K / 16: wrap entries per direction */
    char error[256];
    /* c * log2(c) for every count a histogram can hold (0 and 1 give 0), computed once per
     * instance: a flow's emit then takes 512 lookups instead of up to 512 log2 calls, which
     * made entropy the dearest plugin wherever flows end during the run (tcp_teardown). The
     * terms are the same doubles the direct formula gives. */
    double clog2c[MAX_K + 1];
    /* clog2c of a packed byte's two nibbles, summed: pair_clog2c[x] = clog2c[x & 15] +
     * clog2c[x >> 4]; halves the lookups and additions of a flow's emit. */
    double pair_clog2c[256];
} entropy_instance;

/* Payloads of at least this many bytes are counted by hist_add_bulk, shorter ones byte by byte
 * by hist_add (perf/entropy_bench.c --hot: 48 and 64 about 2 % fewer cycles than 96 or 160). */
#define BULK_MIN 64u

/* The merge costs about what counting 300 bytes does in 16-byte vectors: on x86-64 ELF with
 * GCC or Clang it is also compiled for AVX2 and the loader picks the build the CPU runs (an
 * ifunc), 10 % fewer cycles per packet (perf/entropy_bench.c --hot). -DENTROPY_PORTABLE
 * builds the portable loop only; the tests run both builds against the oracle. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__) && !defined(ENTROPY_PORTABLE)
#define MERGE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MERGE_CLONES
#endif

/* Add the local histograms to the packed nibbles (old: their values before, nib: the result)
 * and zero the histograms. Byte i of the nibbles holds values i (low) and i + 128 (high), so
 * both halves are contiguous runs of the 16-bit counters. w[i] gets the wraps of value i
 * (low byte) and i + 128 (high byte); returns the OR of all w. restrict: the loop vectorizes
 * without runtime alias checks. */
MERGE_CLONES static uint16_t merge_halves(uint16_t *restrict t0, uint16_t *restrict t1,
                                          uint16_t *restrict t2, uint16_t *restrict t3,
                                          const uint8_t *restrict old, uint8_t *restrict nib,
                                          uint16_t *restrict w) {
    uint16_t any = 0;
    for (unsigned i = 0; i < 128; i++) {
        uint16_t lo = (uint16_t)((old[i] & 0xFu) + t0[i] + t1[i] + t2[i] + t3[i]);
        uint16_t hi = (uint16_t)((old[i] >> 4) + t0[i + 128] + t1[i + 128] + t2[i + 128] +
                                 t3[i + 128]);
        t0[i] = t1[i] = t2[i] = t3[i] = 0;
        t0[i + 128] = t1[i + 128] = t2[i + 128] = t3[i + 128] = 0;
        nib[i] = (uint8_t)((lo & 0xFu) | ((hi & 0xFu) << 4));
        w[i] = (uint16_t)((lo >> 4) | ((hi >> 4) << 8)); /* each <= (15 + 1024) / 16 */
        any |= w[i];
    }
    return any;
}

/* Count n bytes (n <= K - sampled) into direction d's packed histogram: the same state
 * hist_add byte by byte leaves (each value's nibble is its count mod 16 and the wraps list
 * holds it count / 16 times; only the order of the list may differ, and no reader depends on
 * it). Counting into the instance's 16-bit histograms first turns a dependent
 * read-test-write of a nibble per byte into one increment per byte; the packed cells are
 * then updated once per packet, in a loop the compiler vectorizes. */
static void hist_add_bulk(entropy_instance *inst, entropy_state *s, unsigned d,
                          const uint8_t *b, uint32_t n) {
    uint16_t(*c)[256] = inst->tbl;
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        c[0][b[j]]++;
        c[1][b[j + 1]]++;
        c[2][b[j + 2]]++;
        c[3][b[j + 3]]++;
    }
    for (; j < n; j++) c[0][b[j]]++;
    uint8_t old[128];
    memcpy(old, s->nibbles[d], sizeof old);
    union {
        uint16_t w[128];
        uint64_t any[32];
    } wr;
    if (merge_halves(c[0], c[1], c[2], c[3], old, s->nibbles[d], wr.w) == 0)
        return; /* usual: no value reached another multiple of 16 */
    uint8_t *wraps = &s->wraps[d * inst->wraps];
    for (unsigned g = 0; g < 32; g++) {
        if (wr.any[g] == 0) continue; /* values 4g.. 4g+3 and 4g+128.. 4g+131 did not wrap */
        for (unsigned i = 4 * g; i < 4 * g + 4; i++) {
            for (uint32_t k = wr.w[i] & 0xFFu; k > 0; k--) wraps[s->n_wraps[d]++] = (uint8_t)i;
            for (uint32_t k = wr.w[i] >> 8; k > 0; k--)
                wraps[s->n_wraps[d]++] = (uint8_t)(i + 128);
        }
    }
}

/* create's error (and errors without an instance), per thread as the header asks. */
static _Thread_local char thread_error[256] = "no error";

static const weir_feature_v1 features[N_FEATURES] = {
    {"src2dst_payload_entropy", WEIR_FEATURE_F64, 0,
     "entropy of the first K src2dst payload bytes, bits/byte"},
    {"dst2src_payload_entropy", WEIR_FEATURE_F64, 0,
     "entropy of the first K dst2src payload bytes, bits/byte"},
    {"src2dst_payload_bytes", WEIR_FEATURE_U64, 0, "src2dst transport payload bytes"},
    {"dst2src_payload_bytes", WEIR_FEATURE_U64, 0, "dst2src transport payload bytes"},
    {"src2dst_payload_sampled", WEIR_FEATURE_U64, 0, "src2dst payload bytes in the entropy"},
    {"dst2src_payload_sampled", WEIR_FEATURE_U64, 0, "dst2src payload bytes in the entropy"},
};

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Parse "{}" or {"k": N}. Returns 0 and sets *k, or -1 with a message in err. */
static int parse_config(const char *json, uint32_t *k, char *err, size_t errlen) {
    const char *p = skip_ws(json ? json : "{}");
    *k = DEFAULT_K;
    if (*p++ != '{') goto bad;
    p = skip_ws(p);
    if (*p == '}') {
        p++;
        goto end;
    }
    if (strncmp(p, "\"k\"", 3) != 0) {
        snprintf(err, errlen, "create: unknown config key in %.64s (entropy takes 'k')", json);
        return -1;
    }
    p = skip_ws(p + 3);
    if (*p++ != ':') goto bad;
    p = skip_ws(p);
    if (*p < '0' || *p > '9') goto bad_k;
    unsigned long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned long)(*p++ - '0');
        if (v > MAX_K) goto bad_k;
    }
    if (v < 1) goto bad_k;
    *k = (uint32_t)v;
    p = skip_ws(p);
    if (*p++ != '}') goto bad;
end:
    p = skip_ws(p);
    if (*p != '\0') goto bad;
    return 0;
bad_k:
    snprintf(err, errlen, "create: config key 'k' must be an integer from 1 to %u", MAX_K);
    return -1;
bad:
    snprintf(err, errlen, "create: config is not {} or {\"k\": N}: %.64s", json);
    return -1;
}

static int32_t entropy_create(const char *config_json, uint32_t worker, void **instance) {
    (void)worker;
    uint32_t k;
    if (instance == NULL) {
        snprintf(thread_error, sizeof thread_error, "create: null instance pointer");
        return WEIR_ERR;
    }
    if (parse_config(config_json, &k, thread_error, sizeof thread_error) != 0) return WEIR_ERR;
    /* aligned_alloc (C11) takes a size that is a multiple of the alignment: a struct size is. */
    entropy_instance *inst = aligned_alloc(_Alignof(entropy_instance), sizeof *inst);
    if (inst == NULL) {
        snprintf(thread_error, sizeof thread_error, "create: out of memory");
        return WEIR_ERR;
    }
    memset(inst, 0, sizeof *inst);
    inst->k = k;
    inst->wraps = k / 16u;
    for (uint32_t c = 2; c <= MAX_K; c++) inst->clog2c[c] = c * log2((double)c);
    for (uint32_t x = 0; x < 256; x++)
        inst->pair_clog2c[x] = inst->clog2c[x & 0xFu] + inst->clog2c[x >> 4];
    strcpy(inst->error, "no error");
    *instance = inst;
    return WEIR_OK;
}

static void entropy_destroy(void *instance) { free(instance); }

static int32_t fail(entropy_instance *inst, const char *msg) {
    if (inst == NULL) {
        snprintf(thread_error, sizeof thread_error, "%s", msg);
    } else {
        snprintf(inst->error, sizeof inst->error, "%s", msg);
    }
    return WEIR_ERR;
}

static int32_t entropy_flow_init(void *instance, const weir_flow_key_v1 *key, void *state) {
    (void)key;
    if (instance == NULL) return fail(NULL, "flow_init: null instance");
    if (state == NULL) return fail(instance, "flow_init: null state");
    return WEIR_OK; /* the zeroed state is the initial state */
}

/* The payload bytes of p that go into the entropy: what was captured, up to K - sampled. */
static inline uint32_t sample_len(const entropy_instance *inst, const entropy_state *s,
                                  const weir_packet_v1 *p) {
    unsigned d = p->direction & 1u;
    if (s->sampled[d] >= inst->k || p->payload_off == WEIR_NO_OFFSET || p->data == NULL ||
        p->payload_off >= p->cap_len)
        return 0;
    uint32_t take = p->cap_len - p->payload_off;
    if (take > p->payload_len) take = p->payload_len;
    if (take > inst->k - s->sampled[d]) take = inst->k - s->sampled[d];
    return take;
}

static int32_t entropy_update_burst(void *instance, void *const *states,
                                    const weir_packet_v1 *pkts, uint8_t *done, uint32_t n) {
    entropy_instance *inst = instance;
    (void)done; /* payload byte counts need every packet: never done */
    if (inst == NULL) return fail(NULL, "update_burst: null instance");
    if (n == 0) return WEIR_OK;
    if (states == NULL || pkts == NULL) return fail(inst, "update_burst: null array");
    for (uint32_t i = 0; i < n; i++) {
        /* A flow's state is usually not in cache: ask for the counters' line and the
         * direction's packed histogram a few packets ahead. */
        if (i + PREFETCH_AHEAD < n && states[i + PREFETCH_AHEAD] != NULL) {
            const char *q = states[i + PREFETCH_AHEAD];
            const char *h = q + offsetof(entropy_state, nibbles) +
                            128u * (pkts[i + PREFETCH_AHEAD].direction & 1u);
            __builtin_prefetch(q);
            __builtin_prefetch(h);
            __builtin_prefetch(h + 64);
            __builtin_prefetch(h + 127);
        }
        /* Nor is the payload (first read here, from the capture or the NIC's buffer): ask for
         * the lines that will be sampled, fewer packets ahead (their states asked for
         * earlier decide how many). */
        if (i + PAYLOAD_AHEAD < n && states[i + PAYLOAD_AHEAD] != NULL) {
            const weir_packet_v1 *q = &pkts[i + PAYLOAD_AHEAD];
            uint32_t len = sample_len(inst, states[i + PAYLOAD_AHEAD], q);
            if (len > 0) {
                uintptr_t a = (uintptr_t)(q->data + q->payload_off);
                for (uintptr_t l = a & ~(uintptr_t)63; l < a + len; l += 64)
                    __builtin_prefetch((const void *)l);
            }
        }
        const weir_packet_v1 *p = &pkts[i];
        entropy_state *s = states[i];
        if (s == NULL) return fail(inst, "update_burst: null state");
        unsigned d = p->direction & 1u;
        s->payload_bytes[d] += p->payload_len;
        uint32_t take = sample_len(inst, s, p);
        if (take == 0) continue;
        const uint8_t *b = p->data + p->payload_off;
        if (take < BULK_MIN) {
            for (uint32_t j = 0; j < take; j++) hist_add(s, d, b[j], inst->wraps);
        } else {
            hist_add_bulk(inst, s, d, b, take);
        }
        s->sampled[d] = (uint16_t)(s->sampled[d] + take);
    }
    return WEIR_OK;
}

/* Direction d's entropy in bits per byte: H = log2(n) - (1/n) sum c log2 c over its counts c
 * (n sampled bytes), the terms from the instance's tables. The nibbles are summed a packed
 * byte (two values) at a time from pair_clog2c, in four partial sums (one running sum is a
 * chain of dependent additions at every flow's end; four chains overlap); then each wrapped
 * value's nibble term is replaced by its full count's. The sum may differ from a one-term-
 * at-a-time sum in its last bits (well within the tests' 1e-9 of the oracle); a single
 * value's histogram still gives exactly 0 (its nibble term is subtracted from itself). */
static double entropy_bits(const entropy_instance *inst, const entropy_state *s, unsigned d) {
    uint32_t n = s->sampled[d];
    if (n == 0) return NAN;
    const uint8_t *nib = s->nibbles[d];
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    for (unsigned i = 0; i < 128; i += 4) {
        acc[0] += inst->pair_clog2c[nib[i]];
        acc[1] += inst->pair_clog2c[nib[i + 1]];
        acc[2] += inst->pair_clog2c[nib[i + 2]];
        acc[3] += inst->pair_clog2c[nib[i + 3]];
    }
    double sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (s->n_wraps[d] > 0) {
        /* Usual for text, rare for encrypted payloads (1024 random bytes seldom put 16 on
         * one value). times[v]: v's wraps, counted then cleared at v's first entry. */
        const uint8_t *w = &s->wraps[d * inst->wraps];
        uint8_t times[256];
        memset(times, 0, sizeof times);
        for (unsigned i = 0; i < s->n_wraps[d]; i++) times[w[i]]++;
        double full = 0.0;
        for (unsigned i = 0; i < s->n_wraps[d]; i++) {
            uint8_t v = w[i];
            if (times[v] == 0) continue;
            uint32_t low = (nib[v & 127u] >> ((v >> 7) * 4u)) & 0xFu;
            sum -= inst->clog2c[low];
            uint32_t c = low + 16u * times[v];
            /* c <= n <= K: the else cannot happen, but a table index stays in bounds. */
            full += c <= MAX_K ? inst->clog2c[c] : c * log2((double)c);
            times[v] = 0;
        }
        sum += full;
    }
    double h = log2((double)n) - sum / n;
    return h < 0.0 ? 0.0 : h; /* -0.0 and rounding below zero for a single value */
}

static int32_t entropy_flow_emit(void *instance, const weir_flow_key_v1 *key, const void *state,
                                 double *out, uint32_t n_features) {
    (void)key;
    if (instance == NULL) return fail(NULL, "flow_emit: null instance");
    if (state == NULL || out == NULL) return fail(instance, "flow_emit: null state or output");
    if (n_features != N_FEATURES) return fail(instance, "flow_emit: the host asked for a feature count other than 6");
    const entropy_state *s = state;
    for (unsigned d = 0; d < 2; d++) {
        out[d] = entropy_bits(instance, s, d);
        out[2 + d] = (double)s->payload_bytes[d];
        out[4 + d] = (double)s->sampled[d];
    }
    return WEIR_OK;
}

/* ABI 1.3: the state this instance's K needs (the wraps lists of both directions, no more). */
static uint32_t entropy_flow_state_size(void *instance) {
    if (instance == NULL) return UINT32_MAX; /* refused by the host */
    size_t n = offsetof(entropy_state, wraps) + 2u * ((entropy_instance *)instance)->wraps;
    size_t a = _Alignof(entropy_state);
    return (uint32_t)((n + a - 1) / a * a);
}

static const char *entropy_last_error(void *instance) {
    if (instance == NULL) return thread_error;
    return ((entropy_instance *)instance)->error;
}

static const weir_plugin_v1 descriptor = {
    .magic = WEIR_PLUGIN_MAGIC,
    .abi_major = WEIR_ABI_MAJOR,
    .abi_minor = WEIR_ABI_MINOR,
    .struct_size = sizeof(weir_plugin_v1),
    .flags = 0,
    .name = "entropy",
    .version = "1.0.0",
    .description = "payload byte entropy (bits/byte) of the first K payload bytes per direction",
    .features = features,
    .n_features = N_FEATURES,
    .state_size = sizeof(entropy_state),
    .state_align = _Alignof(entropy_state),
    .reserved0 = 0,
    .config_schema = "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"integer\","
                     "\"minimum\":1,\"maximum\":1024,\"default\":1024}},"
                     "\"additionalProperties\":false}",
    .create = entropy_create,
    .destroy = entropy_destroy,
    .flow_init = entropy_flow_init,
    .update_burst = entropy_update_burst,
    .flow_emit = entropy_flow_emit,
    .last_error = entropy_last_error,
    .flow_state_size = entropy_flow_state_size,
};

_Static_assert(sizeof(entropy_state) == 408, "the most state (K = 1024) is documented as 408 bytes");
_Static_assert(offsetof(entropy_state, wraps) == 278, "state size is documented as 278 + 2 * (K / 16)");
_Static_assert(MAX_WRAPS <= 255, "n_wraps is a uint8_t");

EXPORT const weir_plugin_v1 *weir_plugin_entry_v1(uint16_t host_major, uint16_t host_minor) {
    (void)host_minor; /* an older host minor reads a prefix; structs only grow */
    if (host_major != WEIR_ABI_MAJOR) return NULL;
    return &descriptor;
}
