/* perf/fresh_memory.c: how fast the kernel makes memory resident, by kind.
 *
 *   cc -O2 perf/fresh_memory.c -o /tmp/fresh_memory
 *   /tmp/fresh_memory MB thp|4k|hugetlb
 *
 * thp/4k: a private anonymous mapping (MADV_HUGEPAGE or MADV_NOHUGEPAGE) populated with
 * MADV_POPULATE_WRITE, as weir's flow-table prefault does; hugetlb: MAP_HUGETLB pages from the
 * reserved pool (vm.nr_hugepages), touched once per 4 KiB. Prints seconds and GB/s. On a
 * virtual machine with free page reporting, memory freed a few seconds earlier is slow again
 * ("cold"); run it twice in a row to see the warm figure. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MB thp|4k|hugetlb\n", argv[0]);
        return 2;
    }
    size_t len = (size_t)atoi(argv[1]) << 20;
    const char *kind = argv[2];
    int hugetlb = strcmp(kind, "hugetlb") == 0;
    double t0 = now();
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (hugetlb ? MAP_HUGETLB : 0);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (hugetlb) {
        for (size_t i = 0; i < len; i += 4096) p[i] = 1;
    } else {
        madvise(p, len, strcmp(kind, "thp") == 0 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        if (madvise(p, len, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
    }
    double s = now() - t0;
    printf("%s %zu MB: %.3f s (%.2f GB/s)\n", kind, len >> 20, s, len / s / 1e9);
    return 0;
}
