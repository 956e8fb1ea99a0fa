/*
 * weir_ndpi: application labels from nDPI, a weir plugin written in plain C11 against
 * plugin-api/include/weir_plugin.h (ABI 1.4, text features) and the distribution's libndpi 4.2
 * (Debian 12 libndpi-dev).
 *
 * Features (NFStream's names where NFStream has the column):
 *   application_name           text  nDPI's protocol name, "MASTER.APP" when both are known
 *                                    (ndpi_protocol2name, as ndpiReader and NFStream print it),
 *                                    "Unknown" when nDPI found nothing
 *   application_category_name  text  nDPI's category of that protocol (ndpi_category_get_name)
 *   requested_server_name      text  the server name the client asked for (TLS/QUIC SNI, HTTP
 *                                    Host, DNS query name: nDPI's host_server_name); missing
 *                                    when nDPI saw none
 *   ndpi_master_protocol_id    u64   nDPI's master protocol id (0 = unknown)
 *   ndpi_app_protocol_id       u64   nDPI's application protocol id (0 = unknown)
 *   application_is_guessed     bool  1 when nDPI detected nothing and the result is its guess
 *                                    (ndpi_detection_giveup: ports, addresses)
 *   ndpi_dissected_packets     u64   packets of the flow handed to nDPI
 *
 * Config: {"n_dissections": N}, 1 <= N <= 65535, default 20 (NFStream's default). A flow's
 * packets go to nDPI until it has a result it will not refine (detected and
 * ndpi_extra_dissection_possible false) or N packets were dissected; then the plugin marks the
 * flow done and the host stops passing its packets, so the cost ends early in each flow. A flow
 * still undetected by then, or when it ends, gets nDPI's guess (ndpi_detection_giveup), as in
 * ndpiReader and NFStream.
 *
 * State: nDPI's struct ndpi_flow_struct (688 bytes in 4.2) lives in the flow's slab, zeroed by
 * the host exactly as nDPI wants a new flow (ndpiReader and NFStream calloc it), followed by 16
 * bytes of the plugin's own. nDPI allocates some per-flow data on its own heap (HTTP URL, TLS
 * certificate names...); the plugin frees it (ndpi_free_flow_data) as soon as dissection ends,
 * or at flow end (flow_emit_text: the flow's last call), so nothing outlives the flow.
 *
 * One nDPI detection module per instance (one per worker), created in create: nothing is shared
 * between workers, no lock on the data path. Module creation is serialised by a mutex (it
 * initialises libgcrypt, process-wide).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ndpi_api.h>
#include <ndpi_config.h>

#include "weir_plugin.h"

#define EXPORT __attribute__((visibility("default")))

#define DEFAULT_N_DISSECTIONS 20u
#define MAX_N_DISSECTIONS 65535u
#define N_FEATURES 7
#define N_TEXTS 3

typedef struct ndpi_state {
    struct ndpi_flow_struct flow; /* nDPI's flow; all-zero is a new flow */
    ndpi_protocol proto;          /* the latest result (final once completed) */
    uint16_t dissected;           /* packets handed to nDPI */
    uint8_t completed;            /* dissection ended: proto is final */
    uint8_t guessed;              /* proto is ndpi_detection_giveup's guess */
    uint8_t freed;                /* nDPI's per-flow heap data was released */
    uint8_t pad_[1];
} ndpi_state;

typedef struct instance {
    struct ndpi_detection_module_struct *mod;
    uint32_t n_dissections;
    char err[256];
} instance;

static _Thread_local char create_err[256];
static pthread_mutex_t module_lock = PTHREAD_MUTEX_INITIALIZER;

/* Parse {"n_dissections": N} (the only key); anything else is an error naming the key. */
static int parse_config(const char *json, uint32_t *n_dissections, char *err, size_t errlen) {
    *n_dissections = DEFAULT_N_DISSECTIONS;
    if (!json)
        return 0;
    const char *p = json;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p != '{') {
        snprintf(err, errlen, "config: expected a JSON object, got %.40s", p);
        return -1;
    }
    p++;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
            p++;
        if (*p == '}')
            return 0;
        if (*p != '"') {
            snprintf(err, errlen, "config: expected a key at %.40s", p);
            return -1;
        }
        const char *k = ++p;
        while (*p && *p != '"')
            p++;
        size_t klen = (size_t)(p - k);
        if (*p != '"') {
            snprintf(err, errlen, "config: unterminated key");
            return -1;
        }
        p++;
        while (*p == ' ' || *p == ':')
            p++;
        if (klen == strlen("n_dissections") && strncmp(k, "n_dissections", klen) == 0) {
            char *end = NULL;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno != 0 || v < 1 || v > (long)MAX_N_DISSECTIONS ||
                (*end == '.' || *end == 'e' || *end == 'E')) {
                snprintf(err, errlen,
                         "config key n_dissections: expected an integer from 1 to %u, got %.20s",
                         MAX_N_DISSECTIONS, p);
                return -1;
            }
            *n_dissections = (uint32_t)v;
            p = end;
        } else {
            snprintf(err, errlen,
                     "config: unknown key \"%.*s\" (the ndpi plugin has only n_dissections)",
                     (int)(klen > 64 ? 64 : klen), k);
            return -1;
        }
    }
}

static int32_t create(const char *config_json, uint32_t worker, void **out) {
    (void)worker;
    uint32_t n;
    if (parse_config(config_json, &n, create_err, sizeof create_err) != 0)
        return WEIR_ERR;
    instance *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(create_err, sizeof create_err, "out of memory");
        return WEIR_ERR;
    }
    in->n_dissections = n;
    pthread_mutex_lock(&module_lock);
    in->mod = ndpi_init_detection_module(ndpi_no_prefs);
    if (in->mod) {
        NDPI_PROTOCOL_BITMASK all;
        NDPI_BITMASK_SET_ALL(all);
        ndpi_set_protocol_detection_bitmask2(in->mod, &all);
        ndpi_finalize_initialization(in->mod);
    }
    pthread_mutex_unlock(&module_lock);
    if (!in->mod) {
        free(in);
        snprintf(create_err, sizeof create_err, "ndpi_init_detection_module failed");
        return WEIR_ERR;
    }
    *out = in;
    return WEIR_OK;
}

static void destroy(void *inst) {
    instance *in = inst;
    if (!in)
        return;
    ndpi_exit_detection_module(in->mod);
    free(in);
}

static int32_t flow_init(void *inst, const weir_flow_key_v1 *key, void *state) {
    (void)inst;
    (void)key;
    (void)state; /* zeroed by the host: a new nDPI flow */
    return WEIR_OK;
}

/* Dissection is over: keep the result, guess when nDPI found nothing, free nDPI's heap data. */
static void finish(instance *in, ndpi_state *s) {
    if (s->completed)
        return;
    if (s->proto.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
        uint8_t guessed = 0;
        s->proto = ndpi_detection_giveup(in->mod, &s->flow, 1, &guessed);
        s->guessed = guessed ? 1 : 0;
    }
    s->completed = 1;
    if (!s->freed) {
        ndpi_free_flow_data(&s->flow);
        s->freed = 1;
    }
}

static int32_t update_burst(void *inst, void *const *states, const weir_packet_v1 *pkts,
                            uint8_t *done, uint32_t n) {
    instance *in = inst;
    for (uint32_t i = 0; i < n; i++) {
        ndpi_state *s = states[i];
        const weir_packet_v1 *p = &pkts[i];
        if (s->completed) {
            done[i] = 1; /* a later packet of a flow completed earlier in this burst */
            continue;
        }
        if (p->l3_off >= p->cap_len)
            continue;
        uint32_t len = p->cap_len - p->l3_off;
        if (p->ip_len != 0 && p->ip_len < len)
            len = p->ip_len;
        if (len > 0xffffu)
            len = 0xffffu;
        s->proto = ndpi_detection_process_packet(in->mod, &s->flow, p->data + p->l3_off,
                                                 (unsigned short)len, p->ts_ns / 1000000u);
        s->dissected++;
        int detected = s->proto.app_protocol != NDPI_PROTOCOL_UNKNOWN;
        if ((detected && !ndpi_extra_dissection_possible(in->mod, &s->flow)) ||
            s->dissected >= in->n_dissections) {
            finish(in, s);
            done[i] = 1;
        }
    }
    return WEIR_OK;
}

/* Copy a NUL-terminated string into a text value (len = its full length: the host refuses
 * one longer than cap rather than cutting it). */
static void put_text(weir_text_v1 *t, const char *s) {
    if (!s)
        return;
    size_t len = strlen(s);
    memcpy(t->buf, s, len < t->cap ? len : t->cap);
    t->len = len > 0xfffffffeu ? 0xfffffffeu : (uint32_t)len;
}

static int32_t flow_emit_text(void *inst, const weir_flow_key_v1 *key, void *state, double *out,
                              uint32_t n, weir_text_v1 *texts, uint32_t n_texts) {
    instance *in = inst;
    ndpi_state *s = state;
    (void)key;
    if (n != N_FEATURES || n_texts != N_TEXTS) {
        snprintf(in->err, sizeof in->err, "host passed %u features and %u texts, want %d and %d",
                 n, n_texts, N_FEATURES, N_TEXTS);
        return WEIR_ERR;
    }
    finish(in, s);
    char name[64];
    put_text(&texts[0], ndpi_protocol2name(in->mod, s->proto, name, sizeof name));
    put_text(&texts[1],
             ndpi_category_get_name(in->mod, ndpi_get_proto_category(in->mod, s->proto)));
    /* host_server_name is nDPI's fixed array: read at most its size, NUL or not. */
    size_t hl = strnlen(s->flow.host_server_name, sizeof s->flow.host_server_name);
    if (hl > 0) {
        memcpy(texts[2].buf, s->flow.host_server_name, hl < texts[2].cap ? hl : texts[2].cap);
        texts[2].len = (uint32_t)hl;
    }
    out[0] = out[1] = out[2] = 0.0; /* text slots: not read */
    out[3] = (double)s->proto.master_protocol;
    out[4] = (double)s->proto.app_protocol;
    out[5] = (double)s->guessed;
    out[6] = (double)s->dissected;
    return WEIR_OK;
}

/* Without texts (a host that calls flow_emit: ABI 1.4 hosts never do for this plugin, which
 * declares text features; kept for completeness): numbers only. The state is const here, so
 * nDPI's heap data is not freed: a 1.4 host is required (the descriptor says so). */
static int32_t flow_emit(void *inst, const weir_flow_key_v1 *key, const void *state, double *out,
                         uint32_t n) {
    instance *in = inst;
    const ndpi_state *s = state;
    (void)key;
    if (n != N_FEATURES) {
        snprintf(in->err, sizeof in->err, "host passed %u features, want %d", n, N_FEATURES);
        return WEIR_ERR;
    }
    out[0] = out[1] = out[2] = 0.0;
    out[3] = (double)s->proto.master_protocol;
    out[4] = (double)s->proto.app_protocol;
    out[5] = (double)s->guessed;
    out[6] = (double)s->dissected;
    return WEIR_OK;
}

static const char *last_error(void *inst) {
    if (!inst)
        return create_err;
    return ((instance *)inst)->err;
}

static const weir_feature_v1 features[N_FEATURES] = {
    {"application_name", WEIR_FEATURE_TEXT, 0, "nDPI protocol name, MASTER.APP (ndpi_protocol2name)"},
    {"application_category_name", WEIR_FEATURE_TEXT, 0, "nDPI category of the protocol"},
    {"requested_server_name", WEIR_FEATURE_TEXT, 0, "server name the client asked for (SNI, HTTP Host, DNS query)"},
    {"ndpi_master_protocol_id", WEIR_FEATURE_U64, 0, "nDPI master protocol id (0 unknown)"},
    {"ndpi_app_protocol_id", WEIR_FEATURE_U64, 0, "nDPI application protocol id (0 unknown)"},
    {"application_is_guessed", WEIR_FEATURE_BOOL, 0, "1 when the protocol is nDPI's guess"},
    {"ndpi_dissected_packets", WEIR_FEATURE_U64, 0, "packets of the flow handed to nDPI"},
};

static const weir_plugin_v1 descriptor = {
    .magic = WEIR_PLUGIN_MAGIC,
    .abi_major = WEIR_ABI_MAJOR,
    .abi_minor = WEIR_ABI_MINOR,
    .struct_size = sizeof(weir_plugin_v1),
    .flags = 0,
    .name = "ndpi",
    .version = "0.1.0 (libndpi " NDPI_GIT_RELEASE ")",
    .description = "application labels from nDPI: application_name, category, server name",
    .features = features,
    .n_features = N_FEATURES,
    .state_size = sizeof(ndpi_state),
    .state_align = _Alignof(ndpi_state),
    .config_schema = "{\"n_dissections\": \"integer 1..65535, default 20: packets per flow "
                     "handed to nDPI at most\"}",
    .create = create,
    .destroy = destroy,
    .flow_init = flow_init,
    .update_burst = update_burst,
    .flow_emit = flow_emit,
    .last_error = last_error,
    .flow_emit_text = flow_emit_text,
};

EXPORT const weir_plugin_v1 *weir_plugin_entry_v1(uint16_t host_major, uint16_t host_minor) {
    /* Text features need a 1.4 host (an older one would refuse the kind anyway). */
    if (host_major != WEIR_ABI_MAJOR || host_minor < 4)
        return NULL;
    return &descriptor;
}
