/*
 * Cycles per packet of the engines that could run a capture filter on weir's data path, over
 * the frames of one capture held in mbufs: DPDK's librte_bpf (libpcap's classic BPF converted
 * to eBPF by rte_bpf_convert, run by the x86 JIT one packet at a time and by
 * rte_bpf_exec_burst) and libpcap's own bpf_filter (pcap_offline_filter). weir's interpreter
 * (appliance/src/filter.rs) over the same frames: `cargo bench -p weir --bench filter`, and on
 * the data path the `filter` row of `weir cost CAPTURE --filter EXPR`. perf/bpf_engines.sh
 * builds and runs both; results in perf/RESULTS.md.
 *
 *   bpf_engines CAPTURE EXPR [ROUNDS]
 *
 * Prints, per engine, the packets accepted (per pass) and the cycles per packet: the least
 * over 20 blocks of ROUNDS passes each (default 20), after a warm-up block, so that other
 * processes on a shared machine weigh as little as they can. Frames go in single-segment mbufs with
 * data_len = pkt_len = the captured length (what the converted program's `len` reads).
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <rte_bpf.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 16384
#define BURST 64

static struct rte_mbuf *mbufs[MAX_FRAMES];
static struct pcap_pkthdr hdrs[MAX_FRAMES];
static const u_char *datas[MAX_FRAMES];

static void die(const char *what) {
	fprintf(stderr, "bpf_engines: %s\n", what);
	exit(1);
}

int main(int argc, char **argv) {
	char *eal[] = {argv[0], "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
		       "--log-level=*:error", "-l", "0"};
	if (rte_eal_init(9, eal) < 0)
		die("rte_eal_init");
	if (argc < 3)
		die("usage: bpf_engines CAPTURE EXPR [ROUNDS]");
	int rounds = argc > 3 ? atoi(argv[3]) : 20;
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *in = pcap_open_offline(argv[1], err);
	if (!in)
		die(err);
	struct rte_mempool *pool =
		rte_pktmbuf_pool_create("frames", MAX_FRAMES + 511, 0, 0, 9216 + 128, SOCKET_ID_ANY);
	if (!pool)
		die("rte_pktmbuf_pool_create");
	unsigned n = 0;
	struct pcap_pkthdr *h;
	const u_char *d;
	while (n < MAX_FRAMES && pcap_next_ex(in, &h, &d) == 1) {
		if (h->caplen > 9216)
			continue;
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		char *p = rte_pktmbuf_append(m, h->caplen);
		memcpy(p, d, h->caplen);
		mbufs[n] = m;
		hdrs[n] = *h;
		datas[n] = rte_pktmbuf_mtod(m, const u_char *);
		n++;
	}
	/* The program as weir and tcpdump compile it: Ethernet, optimised, netmask unknown. */
	pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
	struct bpf_program prog;
	if (pcap_compile(dead, &prog, argv[2], 1, PCAP_NETMASK_UNKNOWN) != 0)
		die(pcap_geterr(dead));
	struct rte_bpf_prm *prm = rte_bpf_convert(&prog);
	if (!prm)
		die("rte_bpf_convert");
	struct rte_bpf *bpf = rte_bpf_load(prm);
	if (!bpf)
		die("rte_bpf_load");
	struct rte_bpf_jit jit;
	if (rte_bpf_get_jit(bpf, &jit) != 0 || !jit.func)
		die("no JIT for this program");
	printf("%u frames of %s, filter \"%s\": %u cBPF -> %u eBPF instructions, JIT %zu bytes\n",
	       n, argv[1], argv[2], prog.bf_len, prm->nb_ins, jit.sz);

	uint64_t acc = 0, t0, cyc;
	/* The least cycles of BLOCKS blocks of `rounds` passes over the frames (block 0 warms). */
#define MEASURE(NAME, PASS)                                                                    \
	cyc = UINT64_MAX;                                                                      \
	for (int b = 0; b <= 20; b++) {                                                        \
		t0 = rte_rdtsc();                                                              \
		for (int r = 0; r < rounds; r++) {                                             \
			uint64_t a = 0;                                                        \
			PASS;                                                                  \
			acc = a;                                                               \
		}                                                                              \
		uint64_t c = rte_rdtsc() - t0;                                                 \
		if (b > 0 && c < cyc)                                                          \
			cyc = c;                                                               \
	}                                                                                      \
	printf("%-34s accepted %6" PRIu64 "  %7.1f cycles/packet\n", NAME, acc,                 \
	       (double)cyc / ((double)n * rounds));

	/* JIT, one call per packet (what a worker would do per frame). */
	MEASURE("rte_bpf JIT (one call per packet)",
		for (unsigned i = 0; i < n; i++) a += jit.func(mbufs[i]) != 0);

	/* rte_bpf_exec_burst: DPDK's eBPF interpreter over bursts of 64. */
	uint64_t rc[BURST];
	MEASURE("rte_bpf_exec_burst (eBPF interp.)",
		for (unsigned i = 0; i < n; i += BURST) {
			unsigned k = n - i < BURST ? n - i : BURST;
			rte_bpf_exec_burst(bpf, (void **)&mbufs[i], rc, k);
			for (unsigned j = 0; j < k; j++)
				a += rc[j] != 0;
		});

	/* libpcap's bpf_filter, as tcpdump -r runs it (len = wire length). */
	MEASURE("libpcap pcap_offline_filter",
		for (unsigned i = 0; i < n; i++) a += pcap_offline_filter(&prog, &hdrs[i], datas[i]) != 0);
	rte_bpf_destroy(bpf);
	pcap_freecode(&prog);
	pcap_close(dead);
	pcap_close(in);
	return 0;
}
