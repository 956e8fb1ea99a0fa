#!/usr/bin/env bash
# perf/bpf_engines.sh: cycles per packet of the engines that could run weir's capture filter,
# on the frames of one capture, for each expression: DPDK's rte_bpf (cBPF converted to eBPF:
# x86 JIT, and rte_bpf_exec_burst's interpreter) and libpcap's bpf_filter (perf/bpf_engines.c),
# weir's interpreter in the same tight loop (appliance/benches/filter.rs), and weir's `filter`
# row of `weir cost CAPTURE --filter EXPR` (the data path: mbufs from the ring port, one
# burst at a time, between rx and parse).
#
# Usage: perf/bpf_engines.sh [CAPTURE [EXPR...]]   (cargo bench runs in appliance/: paths are made absolute)
# Default: appliance/tests/data/nfstream/pcaps/1kxun.pcap and five expressions. Needs
# `make build` (target/release/weir); builds perf/out/bpf_engines with gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = -h ] && { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; }
capture=$(realpath "${1:-appliance/tests/data/nfstream/pcaps/1kxun.pcap}")
shift || true
if [ $# -eq 0 ]; then
    set -- "tcp port 443 or udp port 53" "ip6" "not port 53" "greater 200" \
        "tcp[tcpflags] & tcp-syn != 0"
fi
mkdir -p perf/out
gcc -O2 -Wall -DALLOW_EXPERIMENTAL_API -o perf/out/bpf_engines perf/bpf_engines.c \
    $(pkg-config --cflags libdpdk) $(pkg-config --libs libdpdk) -lpcap
cargo bench -q -p weir --bench filter --no-run 2>/dev/null
for e in "$@"; do
    echo "== $e"
    # DPDK 22.11's JIT crashes (SIGSEGV inside the generated code) on some programs, e.g.
    # `tcp[tcpflags] & tcp-syn != 0`: say so and go on.
    perf/out/bpf_engines "$capture" "$e" | tail -n +2 ||
        echo "bpf_engines: exit status $? (the rte_bpf JIT crashed on this program)"
    cargo bench -q -p weir --bench filter -- "$capture" "$e" 2>/dev/null | tail -n 1
    target/release/weir cost "$capture" --filter "$e" 2>/dev/null |
        awk '$1 == "filter" { printf "%-34s packets %7s  %7s cycles/packet (mean; p50 of bursts %s)\n", "weir cost: filter row (data path)", $3, $6, $7 }'
done
