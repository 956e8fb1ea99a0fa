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


/* Offsets of fields that sit in anonymous unions (their Rust names depend on bindgen). */
#include <stddef.h>
static const uint64_t WEIR_MBUF_HASH_RSS_OFFSET = offsetof(struct rte_mbuf, hash.rss);

#endif
