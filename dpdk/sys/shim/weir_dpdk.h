/*
 * The DPDK headers weir-dpdk-sys binds, plus the few things bindgen cannot reach by itself:
 * rte_errno (a per-lcore TLS variable behind a macro) and the RTE_BIT64() constants,
 * re-exported as evaluated `static const` values so they follow the installed headers.
 */
#ifndef WEIR_DPDK_H
#define WEIR_DPDK_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_thash.h>
/* libpcap: only its filter compiler (pcap_open_dead + pcap_compile). */
#include <pcap/pcap.h>

/* rte_errno of the calling thread (it is `per_lcore__rte_errno`, thread-local). */
int weir_rte_errno(void);

#define WEIR_U64(name) static const uint64_t WEIR_##name = (name);
WEIR_U64(RTE_ETH_RSS_IPV4)
WEIR_U64(RTE_ETH_RSS_FRAG_IPV4)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV4_TCP)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV4_UDP)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV4_SCTP)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV4_OTHER)
WEIR_U64(RTE_ETH_RSS_IPV6)
WEIR_U64(RTE_ETH_RSS_FRAG_IPV6)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV6_TCP)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV6_UDP)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV6_SCTP)
WEIR_U64(RTE_ETH_RSS_NONFRAG_IPV6_OTHER)
WEIR_U64(RTE_ETH_RSS_IPV6_EX)
WEIR_U64(RTE_ETH_RSS_IPV6_TCP_EX)
WEIR_U64(RTE_ETH_RSS_IPV6_UDP_EX)
WEIR_U64(RTE_ETH_RSS_IP)
WEIR_U64(RTE_ETH_RSS_TCP)
WEIR_U64(RTE_ETH_RSS_UDP)
WEIR_U64(RTE_ETH_RX_OFFLOAD_RSS_HASH)
WEIR_U64(RTE_ETH_RX_OFFLOAD_SCATTER)
WEIR_U64(RTE_MBUF_F_RX_RSS_HASH)
WEIR_U64(RTE_ETH_MQ_RX_RSS)
WEIR_U64(RTE_ETH_MQ_RX_NONE)


/*
 * External buffers (rte_pktmbuf_attach_extbuf) for memory weir owns and keeps alive itself,
 * e.g. a mapped capture file: one call per packet instead of alloc + shinfo set-up + attach.
 * Each mbuf's rte_mbuf_ext_shared_info lives in its own private area (a pool made with
 * WEIR_EXTBUF_PRIV_SIZE of private room), with refcnt 1 and a free callback that does
 * nothing: freeing the mbuf detaches it (no atomic, as the count is 1) and the buffer stays
 * its owner's. The IOVA is RTE_BAD_IOVA: such memory is not DMA-mapped, and these mbufs must
 * never be handed to a NIC (they only travel through rings).
 */
static const uint16_t WEIR_EXTBUF_PRIV_SIZE =
	RTE_ALIGN_CEIL(sizeof(struct rte_mbuf_ext_shared_info), RTE_MBUF_PRIV_ALIGN);
static const uint64_t WEIR_RTE_BAD_IOVA = RTE_BAD_IOVA;
static const uint64_t WEIR_RTE_MBUF_F_EXTERNAL = RTE_MBUF_F_EXTERNAL;

/* A fresh mbuf of `mp` (made with WEIR_EXTBUF_PRIV_SIZE of private room) whose one segment is
 * the `len` bytes at `addr`, not copied; NULL when the pool is empty. */
struct rte_mbuf *weir_pktmbuf_alloc_attached(struct rte_mempool *mp, void *addr, uint16_t len);

/* Offsets of fields that sit in anonymous unions (their Rust names depend on bindgen). */
#include <stddef.h>
static const uint64_t WEIR_MBUF_HASH_RSS_OFFSET = offsetof(struct rte_mbuf, hash.rss);

#endif
