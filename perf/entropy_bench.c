/*
 * entropy_bench: cycles per packet and per sampled byte of the entropy plugin's update_burst,
 * and per flow of its flow_emit, loaded from built .so files (so builds can be compared side
 * by side, alternating passes). x86-64 (rdtsc).
 *
 * Build:  cc -std=c11 -O2 -I plugin-api/include perf/entropy_bench.c -o /tmp/entropy_bench -ldl
 * Usage:  /tmp/entropy_bench [--hot] [--passes N] LIB.so [LIB.so ...]
 *   (up to 4 libraries: the passes alternate between them, so the shared machine's noise hits
 *   each alike; e.g. main's build against a candidate)
 *   default (cold): a ~350 MiB synthetic capture laid out like a pcap (16-byte record header,
 *     54 bytes of headers, payload), read once per pass, packets spread over 400 k flows in
 *     bursts of 64 (weir's default burst), states on transparent huge pages: payloads and
 *     states come from memory, as in weir.
 *   --hot: 256 packets over 256 fresh flows, repeated: payloads and states in cache, so
 *     the counting itself is measured.
 * Payloads: 30 % empty (ACKs), 20 % 1-99 B, 20 % 100-599 B, 30 % 1460 B (mean ~520 B); 60 %
 * random bytes, 40 % text-like (a skewed 40-letter alphabet). Every pass starts from zeroed
 * states; rdtsc around each update_burst call, and around flow_emit of every flow (those
 * without packets too: 22 % of them in cold mode) after the pass. Prints the median and min
 * over passes of TSC cycles per packet and per sampled byte (sampled bytes summed from
 * flow_emit), and of flow_emit's cycles per flow.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <x86intrin.h>

#include "weir_plugin.h"

#define BURST 64u

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_f(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_LIBS 4

int main(int argc, char **argv) {
    int hot = 0, passes = 0, n_libs = 0;
    const char *path[MAX_LIBS];
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--hot") == 0) hot = 1;
        else if (strcmp(argv[a], "--passes") == 0 && a + 1 < argc) passes = atoi(argv[++a]);
        else if (n_libs < MAX_LIBS) path[n_libs++] = argv[a];
    }
    if (n_libs == 0) {
        fprintf(stderr, "usage: %s [--hot] [--passes N] LIB.so [LIB.so ...]\n", argv[0]);
        return 2;
    }
    if (passes <= 0) passes = hot ? 2000 : 9;
    const weir_plugin_v1 *d[MAX_LIBS];
    void *inst[MAX_LIBS];
    size_t ssz = 0;
    for (int l = 0; l < n_libs; l++) {
        void *lib = dlopen(path[l], RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        weir_plugin_entry_v1_fn entry =
            (weir_plugin_entry_v1_fn)dlsym(lib, WEIR_PLUGIN_ENTRY_SYMBOL);
        d[l] = entry ? entry(WEIR_ABI_MAJOR, WEIR_ABI_MINOR) : NULL;
        if (d[l] == NULL || d[l]->create("{}", 0, &inst[l]) != WEIR_OK) {
            fprintf(stderr, "%s: no entropy plugin\n", path[l]);
            return 1;
        }
        size_t z = d[l]->flow_state_size ? d[l]->flow_state_size(inst[l]) : d[l]->state_size;
        if (z > ssz) ssz = z;
    }
    ssz = (ssz + 7) / 8 * 8;

    size_t n_pkts = hot ? 256 : 600000, n_flows = hot ? 256 : 400000;
    size_t cap = n_pkts * (16 + 54 + 1460);
    uint8_t *capture = aligned_alloc(4096, (cap + 4095) / 4096 * 4096);
    weir_packet_v1 *pkts = calloc(n_pkts, sizeof *pkts);
    /* weir keeps flow states on huge pages (flows.reserved_hugepages): so does this, else
     * every state prefetch walks the page table. */
    size_t states_sz = (n_flows * ssz + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    uint8_t *states = aligned_alloc(2u << 20, states_sz);
    madvise(states, states_sz, MADV_HUGEPAGE);
    void **sp = calloc(n_pkts, sizeof *sp);
    size_t off = 0, total_payload = 0;
    for (size_t i = 0; i < n_pkts; i++) {
        uint64_t r = next() % 100, len;
        if (r < 30) len = 0;
        else if (r < 50) len = 1 + next() % 99;
        else if (r < 70) len = 100 + next() % 500;
        else len = 1460;
        off += 16; /* pcap record header */
        uint8_t *f = capture + off;
        memset(f, 0x45, 54);
        int text = next() % 10 < 4;
        for (size_t j = 0; j < len; j++) {
            uint64_t x = next();
            uint8_t a = (uint8_t)(x % 40), b = (uint8_t)((x >> 8) % 40); /* min: skewed */
            f[54 + j] = text ? (uint8_t)(' ' + (a < b ? a : b)) : (uint8_t)(x >> 16);
        }
        pkts[i] = (weir_packet_v1){.data = f, .wire_len = 54 + len, .cap_len = 54 + len,
                                   .l3_off = 14, .l4_off = 34, .payload_off = 54,
                                   .payload_len = (uint16_t)len, .ip_len = 40 + len,
                                   .direction = (uint8_t)(next() & 1), .ip_version = 4,
                                   .protocol = 6};
        sp[i] = states + (hot ? i : next() % n_flows) * ssz;
        off += 54 + len;
        total_payload += len;
    }
    double *cpp = calloc((size_t)passes * n_libs, sizeof *cpp);
    double *cpb = calloc((size_t)passes * n_libs, sizeof *cpb);
    double *cpf = calloc((size_t)passes * n_libs, sizeof *cpf);
    uint8_t done[BURST];
    double out[6];
    size_t flush_sz = 64u << 20;
    uint8_t *flush = malloc(flush_sz);
    memset(flush, 1, flush_sz);
    for (int p = 0; p < passes; p++) {
        for (int l = 0; l < n_libs; l++) { /* alternate: the machine's noise hits both */
            memset(states, 0, n_flows * ssz);
            if (!hot) memset(flush, p, flush_sz); /* evict the capture and states from L3 */
            uint64_t cyc = 0;
            for (size_t i = 0; i < n_pkts; i += BURST) {
                uint32_t n = (uint32_t)(n_pkts - i < BURST ? n_pkts - i : BURST);
                uint64_t t0 = __rdtsc();
                if (d[l]->update_burst(inst[l], &sp[i], &pkts[i], done, n) != WEIR_OK) return 1;
                cyc += __rdtsc() - t0;
            }
            uint64_t sampled = 0, e0 = __rdtsc();
            for (size_t f = 0; f < n_flows; f++) {
                d[l]->flow_emit(inst[l], NULL, states + f * ssz, out, 6);
                sampled += (uint64_t)(out[4] + out[5]);
            }
            cpf[l * passes + p] = (double)(__rdtsc() - e0) / n_flows;
            cpp[l * passes + p] = (double)cyc / n_pkts;
            cpb[l * passes + p] = (double)cyc / sampled;
            if (p == 0 && l == 0)
                printf("%zu packets, %zu flows, mean payload %.0f B, %.0f B sampled/packet\n",
                       n_pkts, n_flows, (double)total_payload / n_pkts,
                       (double)sampled / n_pkts);
        }
    }
    for (int l = 0; l < n_libs; l++) {
        double *x = cpp + l * passes, *y = cpb + l * passes, *z = cpf + l * passes;
        qsort(x, passes, sizeof *x, cmp_f);
        qsort(y, passes, sizeof *y, cmp_f);
        qsort(z, passes, sizeof *z, cmp_f);
        printf("%s %s: update_burst cycles/packet median %.1f min %.1f, cycles/sampled byte "
               "median %.3f min %.3f; flow_emit cycles/flow median %.1f min %.1f\n",
               path[l], hot ? "hot" : "cold", x[passes / 2], x[0], y[passes / 2], y[0],
               z[passes / 2], z[0]);
        d[l]->destroy(inst[l]);
    }
    return 0;
}
