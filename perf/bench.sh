#!/usr/bin/env bash
# perf/bench.sh: weir against the packet I/O ceiling and against NFStream, on one input, in one
# run; prints Markdown tables (also saved to perf/out/results-<time>.md, raw logs beside).
#
# Rates (each measured --runs times, interleaved so machine noise spreads evenly; medians):
#   - dpdk-testpmd --forward-mode=rxonly on net_pcap0,rx_pcap=CAPTURE,infinite_rx=1: the ceiling
#   - weir run on the same vdev string: no plugins, the default plugins, the default plugins
#     with the demo model (build/models/demo), with tcp_teardown (records made during the run),
#     and with cost accounting off (the accounting overhead)
#   - weir extract CAPTURE (its own capture reader, ring port)
#   - NFStream (statistical_analysis=True, one meter, no DPI) on CAPTURE
# Peak resident memory of each from /usr/bin/time -v.
# Then: cycles per packet of every stage and plugin on a large trace (weir extract), and memory
# per flow with 1 M concurrent flows (weir extract, RSS growth over a tiny capture).
#
# Usage: perf/bench.sh [--capture FILE] [--seconds S] [--runs N] [--nfstream-python PY]
#                      [--skip-big] [--skip-memory] [--skip-nfstream] [--big-packets N]
# Needs: a release build (make build), dpdk-testpmd, /usr/bin/time (Debian package `time`),
# capinfos (wireshark-common), and for the NFStream row a Python with nfstream
# (default build/nfvenv/bin/python; created with `python3 -m venv build/nfvenv &&
# build/nfvenv/bin/pip install nfstream`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${WEIR_BENCH_OUT:-$ROOT/perf/out}
BIN=$ROOT/target/release
WEIR=$BIN/weir
TRACEGEN=$BIN/weir-tracegen
CAPTURE=""
SECS=10
RUNS=3
NF_PY=$ROOT/build/nfvenv/bin/python
BIG_PACKETS=10000000
SKIP_BIG=0
SKIP_MEM=0
SKIP_NF=0
MODEL=$ROOT/build/models/demo

while [ $# -gt 0 ]; do
    case $1 in
        --capture) CAPTURE=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --nfstream-python) NF_PY=$2; shift 2 ;;
        --big-packets) BIG_PACKETS=$2; shift 2 ;;
        --skip-big) SKIP_BIG=1; shift ;;
        --skip-memory) SKIP_MEM=1; shift ;;
        --skip-nfstream) SKIP_NF=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "bench.sh: $*" >&2; exit 1; }
for tool in "$WEIR" "$TRACEGEN"; do
    [ -x "$tool" ] || die "$tool is missing: run 'cargo build --release --workspace' first"
done
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd is missing (Debian package dpdk)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
command -v capinfos >/dev/null || die "capinfos is missing (Debian package wireshark-common)"

mkdir -p "$OUT/logs" "$OUT/empty-plugins"
LOGS=$OUT/logs
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
REPORT=$OUT/results-$STAMP.md
ln -sf /dev/null "$OUT/null.csv"

if [ -z "$CAPTURE" ]; then
    CAPTURE=$OUT/bench.pcap
    [ -f "$CAPTURE" ] || "$TRACEGEN" --out "$CAPTURE" --packets 200000 --flows 10000 --seed 1
fi
[ -f "$CAPTURE" ] || die "capture $CAPTURE does not exist"
CAPTURE=$(cd "$(dirname "$CAPTURE")" && pwd)/$(basename "$CAPTURE")
NPKT=$(capinfos -c -M -T "$CAPTURE" | awk -F'\t' 'NR==2 {print $2}')
[ -n "$NPKT" ] || die "capinfos cannot count the packets of $CAPTURE"
# net_pcap's infinite_rx holds the whole capture in mbufs of the RX queue's pool and copies each
# packet into a fresh mbuf: the pool must hold the capture and the ring in flight.
MBUFS=$(( NPKT + 16384 ))
MEM_MB=$(( MBUFS * 2500 / 1048576 + 512 ))
VDEV="net_pcap0,rx_pcap=$CAPTURE,infinite_rx=1"

# ---- helpers -----------------------------------------------------------------------------------

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
maxrss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
# Run a command under /usr/bin/time -v: stdout+stderr to LOG, the time report to LOG.time.
timed() { local log=$1; shift; /usr/bin/time -v -o "$log.time" "$@" >"$log" 2>&1; }

# A weir config for `weir run` on the vdev. $1 = file, $2 = plugin dir or "", then extra TOML.
weir_run_config() {
    local file=$1 pdir=$2; shift 2
    {
        printf '[eal]\nno_huge = true\nno_pci = true\nmemory_mb = %s\n\n' "$MEM_MB"
        printf '[[ports]]\nvdev = "%s"\n\n' "$VDEV"
        printf '[workers]\nmbufs = %s\n\n' "$MBUFS"
        printf '[log]\nstatus_interval_s = 0\n\n'
        # "Default plugins" are the statistical ones (flowstats, splt, tcp, entropy), as in
        # e2e.sh: the ndpi plugin (DPI labels, loaded by default when built) is measured there.
        if [ -n "$pdir" ]; then printf '[plugins]\ndir = "%s"\n\n' "$pdir"
        else printf '[plugins]\ndisabled = ["ndpi"]\n\n'; fi
        for extra in "$@"; do printf '%s\n' "$extra"; done
    } >"$file"
}

# The cost table of a weir log as "name cyc/pkt" lines (plugins unindented).
cost_rows() { awk '/^name +calls/ {on=1; next} /^total cycles/ {on=0} on && NF>=6 {print $1, $6}' "$1"; }
tsc_ghz() { sed -n 's/.* at \([0-9.]*\) GHz TSC.*/\1/p' "$1" | tail -1; }

# ---- the variants -------------------------------------------------------------------------------

run_testpmd() {  # $1 = run index
    local log=$LOGS/testpmd.$1.log
    # Loading the capture takes a few seconds before forwarding starts: give it time, then take
    # the median of the per-second Rx-pps samples once forwarding runs.
    timed "$log" timeout -s INT $(( SECS + 8 )) dpdk-testpmd --no-huge -m "$MEM_MB" --no-pci \
        --no-shconf --file-prefix="tp$$" -l 0,1 --log-level='*:warning' --vdev="$VDEV" -- \
        --forward-mode=rxonly --stats-period 1 --total-num-mbufs="$MBUFS" --nb-cores=1 || true
    local pps
    pps=$(awk '/Rx-pps:/ && $2>0 {n++; v[n]=$2} END {for (i=2;i<n;i++) print v[i]}' "$log" | median)
    echo "$pps $(maxrss_kb "$log.time")" >>"$LOGS/testpmd.rates"
}

# $1 = variant name, $2 = run index; the config is $OUT/$1.toml.
run_weir() {
    local log=$LOGS/$1.$2.log pkts
    timed "$log" "$WEIR" run --config "$OUT/$1.toml" --duration-s "$SECS" || {
        echo "bench.sh: weir run ($1) failed, see $log" >&2; return 0; }
    pkts=$(sed -n 's/^weir run: \([0-9]*\) packets.*/\1/p' "$log")
    echo "$(awk -v p="$pkts" -v s="$SECS" 'BEGIN {printf "%.0f", p/s}') $(maxrss_kb "$log.time")" \
        >>"$LOGS/$1.rates"
}

run_extract() {
    local log=$LOGS/extract.$1.log
    timed "$log" "$WEIR" extract "$CAPTURE" --out "$OUT/null.csv" --no-progress \
        --config "$OUT/stat.toml" || {
        echo "bench.sh: weir extract failed, see $log" >&2; return 0; }
    echo "$(sed -n 's/.*(\([0-9]*\) packets\/s).*/\1/p' "$log") $(maxrss_kb "$log.time")" \
        >>"$LOGS/extract.rates"
}

run_nfstream() {
    local log=$LOGS/nfstream.$1.log
    timed "$log" "$NF_PY" "$ROOT/perf/nfstream_rate.py" "$CAPTURE" || {
        echo "bench.sh: NFStream failed, see $log" >&2; return 0; }
    echo "$(sed -n 's/.* pps=\([0-9]*\).*/\1/p' "$log") $(maxrss_kb "$log.time")" \
        >>"$LOGS/nfstream.rates"
}

# ---- configs ----------------------------------------------------------------------------------

printf '[plugins]\ndisabled = ["ndpi"]\n' >"$OUT/stat.toml"
VARIANTS=(weir-none weir-default weir-teardown weir-nocost)
weir_run_config "$OUT/weir-none.toml" "$OUT/empty-plugins"
weir_run_config "$OUT/weir-default.toml" ""
weir_run_config "$OUT/weir-teardown.toml" "" '[flows]' 'tcp_teardown = true'
weir_run_config "$OUT/weir-nocost.toml" "" '[cost]' 'enabled = false'
HAVE_MODEL=0
if [ -f "$MODEL/model.json" ]; then
    HAVE_MODEL=1
    VARIANTS+=(weir-model)
    # `weir run` loads ONNX Runtime only from ort_library, ORT_DYLIB_PATH or the install
    # location: name the project venv's wheel explicitly.
    ORT_LIB="${ORT_DYLIB_PATH:-$(ls "$ROOT"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | tail -n 1)}"
    weir_run_config "$OUT/weir-model.toml" "" '[flows]' 'tcp_teardown = true' \
        '[model]' "dir = \"$MODEL\"" "ort_library = \"$ORT_LIB\""
fi
HAVE_NF=0
if [ "$SKIP_NF" = 0 ] && "$NF_PY" -c 'import nfstream' 2>/dev/null; then HAVE_NF=1; fi

rm -f "$LOGS"/*.rates
echo "bench.sh: $CAPTURE ($NPKT packets), $RUNS runs of $SECS s each; logs in $LOGS" >&2
for r in $(seq 1 "$RUNS"); do
    echo "bench.sh: round $r/$RUNS" >&2
    run_testpmd "$r"
    for v in "${VARIANTS[@]}"; do run_weir "$v" "$r"; done
    run_extract "$r"
    if [ "$HAVE_NF" = 1 ]; then run_nfstream "$r"; fi
done

# ---- report -----------------------------------------------------------------------------------

med_col() { [ -f "$LOGS/$1.rates" ] && awk -v c="$2" '{print $c}' "$LOGS/$1.rates" | median || echo nan; }
GHZ=$(tsc_ghz "$LOGS/weir-default.1.log")
GHZ=${GHZ:-0}
TP_PPS=$(med_col testpmd 1)
TP_RSS=$(med_col testpmd 2)
NF_PPS=$(med_col nfstream 1)
NF_RSS=$(med_col nfstream 2)

{
echo "## weir against testpmd and NFStream ($STAMP)"
echo
echo "Capture: \`$(basename "$CAPTURE")\`, $NPKT packets; $RUNS runs of ${SECS} s, medians;"
echo "cycles/packet = TSC ($GHZ GHz) / packets per second (the whole core, wall time)."
echo
echo "| what | packets/s | x testpmd | x NFStream | cycles/packet | peak RSS MiB | RSS x testpmd | RSS x NFStream |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
row() {
    local label=$1 name=$2 pps rss
    pps=$(med_col "$name" 1); rss=$(med_col "$name" 2)
    awk -v l="$label" -v p="$pps" -v r="$rss" -v tp="$TP_PPS" -v tr="$TP_RSS" -v np="$NF_PPS" \
        -v nr="$NF_RSS" -v g="$GHZ" 'function d(a,b) {return (b>0 && a==a) ? sprintf("%.3f", a/b) : "-"}
        BEGIN {printf "| %s | %.0f | %s | %s | %s | %.0f | %s | %s |\n", l, p, d(p,tp), d(p,np),
               (p>0 ? sprintf("%.0f", g*1e9/p) : "-"), r/1024, d(r,tr), d(r,nr)}'
}
row "dpdk-testpmd rxonly (net_pcap, infinite_rx)" testpmd
row "weir run, no plugins" weir-none
row "weir run, default plugins" weir-default
row "weir run, default plugins, cost accounting off" weir-nocost
row "weir run, default plugins, tcp_teardown" weir-teardown
if [ "$HAVE_MODEL" = 1 ]; then
    row "weir run, default plugins, tcp_teardown, demo model" weir-model
else
    echo "| weir run with the demo model | skipped: $MODEL absent (make demo-model) | | | | | | |"
fi
row "weir extract (capture reader), default plugins" extract
if [ "$HAVE_NF" = 1 ]; then
    row "NFStream 6.x, statistical_analysis, 1 meter, no DPI" nfstream
else
    echo "| NFStream | skipped: no nfstream in $NF_PY | | | | | | |"
fi
echo
ON=$(med_col weir-default 1); OFF=$(med_col weir-nocost 1)
awk -v on="$ON" -v off="$OFF" 'BEGIN {if (off>0) printf "Accounting overhead (default plugins, on vs off, medians): %.2f %%\n\n", 100*(off-on)/off}'

echo "### Cycles per packet by stage and plugin (weir's cost table, run 1 of each)"
echo
mapfile -t NAMES < <(cost_rows "$LOGS/weir-default.1.log" | awk '{print $1}')
printf '| variant |'; printf ' %s |' "${NAMES[@]}"; echo ' sum |'
printf '|---|'; for _ in "${NAMES[@]}"; do printf -- '---:|'; done; echo '---:|'
for v in weir-none weir-default weir-teardown weir-model; do
    [ -f "$LOGS/$v.1.log" ] || continue
    printf '| %s |' "$v"
    sum=0
    for n in "${NAMES[@]}"; do
        c=$(cost_rows "$LOGS/$v.1.log" | awk -v n="$n" '$1==n {print $2}')
        printf ' %s |' "${c:--}"
        sum=$(awk -v s="$sum" -v c="${c:-0}" 'BEGIN {print s+c}')
    done
    echo " $sum |"
done
echo
} | tee "$REPORT"

# ---- large trace: cycles per packet per plugin ---------------------------------------------------

if [ "$SKIP_BIG" = 0 ]; then
    BIG=$OUT/big.pcap
    if [ ! -f "$BIG" ]; then
        timed "$LOGS/tracegen-big.log" "$TRACEGEN" --out "$BIG" --packets "$BIG_PACKETS" \
            --flows 100000 --seed 7
    fi
    # A table that holds every flow of the trace (no evictions), then the same with a heavy-hitter
    # table on source addresses (its cost shows in the rates row).
    printf '[flows]\ncapacity = 2097152\n' >"$OUT/big.toml"
    cp "$OUT/big.toml" "$OUT/big-hh.toml"
    printf '\n[[heavy_hitters]]\nkey = "src_ip"\nthreshold_fraction = 0.02\ntop_k = 10\ncapacity = 4096\n' \
        >>"$OUT/big-hh.toml"
    timed "$LOGS/extract-big.log" "$WEIR" extract "$BIG" --config "$OUT/big.toml" \
        --out "$OUT/null.csv" --no-progress
    timed "$LOGS/extract-big-hh.log" "$WEIR" extract "$BIG" --config "$OUT/big-hh.toml" \
        --out "$OUT/null.csv" --alerts "$OUT/big-alerts.jsonl" --no-progress
    {
    echo "### Large trace: weir extract, default plugins, flows.capacity = 2097152"
    echo
    sed -n 's/^weir-tracegen: //p' "$LOGS/tracegen-big.log" 2>/dev/null | sed 's/^/    tracegen: /'
    grep -h '^weir extract:' "$LOGS/extract-big.log" "$LOGS/extract-big-hh.log" | sed 's/^/    /'
    echo
    echo "| stage or plugin | cycles/packet | with a src_ip heavy-hitter table |"
    echo "|---|---:|---:|"
    join -a1 <(cost_rows "$LOGS/extract-big.log" | nl -w3 -s' ' | sort -k2,2) \
        <(cost_rows "$LOGS/extract-big-hh.log" | sort -k1,1) -1 2 -2 1 |
        sort -k2,2n | awk '{printf "| %s | %s | %s |\n", $1, $3, $4}'
    echo
    echo "Heavy-hitter alerts: $(wc -l <"$OUT/big-alerts.jsonl") lines; sources alerted:" \
        "$(grep -o '"key":"[^"]*"' "$OUT/big-alerts.jsonl" | sort -u | tr '\n' ' ')"
    echo
    } | tee -a "$REPORT"
fi

# ---- memory per flow at 1 M concurrent flows -----------------------------------------------------

if [ "$SKIP_MEM" = 0 ]; then
    M1=$OUT/flows1m.pcap
    TINY=$OUT/tiny.pcap
    # 1 M concurrent flows of >= 100 packets each (none ends within 3 M packets), no heavy
    # sources; frames cut to 128 bytes (wire lengths kept) to keep the file small.
    [ -f "$M1" ] || "$TRACEGEN" --out "$M1" --packets 3000000 --flows 1000000 \
        --min-flow-packets 100 --heavy-share 0 --snaplen 128 --seed 3 --quiet
    [ -f "$TINY" ] || "$TRACEGEN" --out "$TINY" --packets 1000 --flows 100 --seed 3 --quiet
    printf '[flows]\ncapacity = 1048576\n' >"$OUT/mem.toml"
    {
    echo "### Memory per flow, 1 M concurrent flows (weir extract, flows.capacity = 1048576)"
    echo
    echo "| plugins | flows | peak RSS MiB | baseline RSS MiB (1000 packets) | RSS growth / flow, bytes | table bytes_per_flow() |"
    echo "|---|---:|---:|---:|---:|---:|"
    for mode in default none; do
        args=(); [ "$mode" = none ] && args=(--no-plugins)
        # RUST_LOG=info: the worker logs its table size (bytes_per_flow) at info level.
        RUST_LOG=info timed "$LOGS/mem-$mode.log" "$WEIR" --log-format json extract "$M1" --config "$OUT/mem.toml" \
            --out "$OUT/null.csv" --no-progress "${args[@]}"
        timed "$LOGS/mem-$mode-tiny.log" "$WEIR" extract "$TINY" --config "$OUT/mem.toml" \
            --out "$OUT/null.csv" --no-progress "${args[@]}"
        flows=$(sed -n 's/.* -> \([0-9]*\) flows in .*/\1/p' "$LOGS/mem-$mode.log")
        big=$(maxrss_kb "$LOGS/mem-$mode.log.time")
        small=$(maxrss_kb "$LOGS/mem-$mode-tiny.log.time")
        bpf=$(sed -n 's/.*"bytes_per_flow":\([0-9]*\).*/\1/p' "$LOGS/mem-$mode.log" | head -1)
        awk -v m="$mode" -v f="$flows" -v b="$big" -v s="$small" -v t="${bpf:--}" \
            'BEGIN {printf "| %s | %d | %.0f | %.0f | %.0f | %s |\n", m, f, b/1024, s/1024, (b-s)*1024/f, t}'
    done
    echo
    } | tee -a "$REPORT"
fi
echo "bench.sh: report saved to $REPORT" >&2
