#!/usr/bin/env bash
# perf/e2e.sh: weir against the C flow meters and NFStream end to end, as a user measures it:
# every tool reads the same capture file (from the page cache) and the wall clock runs from
# start to exit. Prints Markdown tables (also saved to perf/out/e2e-<time>.md, logs beside).
#
# Traces (weir-tracegen, made once under perf/out/):
#   - many.pcap: 2 M packets, 200 k concurrent flows, Zipf flow sizes, data frames 60/590/1514
#     bytes weighted 2:2:5 (524 B per frame on average), the many-flow case;
#   - bench.pcap: 200 k packets, 10 k concurrent flows, simple IMIX (bench.sh's), the
#     cache-resident case.
#
# End to end, on the many-flow trace (--runs rounds, tools alternated in each round; medians):
#   weir extract: CSV and Parquet with the default plugins, CSV with flowstats only, CSV with no
#   plugins; nfpcapd -r (nfdump), argus -r, ndpiReader -i (nDPI), NFStream
#   (statistical_analysis, one meter, no DPI; build/nfvenv). Packets/s = packets in the capture /
#   wall seconds; peak RSS from /usr/bin/time -v; the ratio of weir's default-plugins CSV run to
#   each tool.
# Then `weir cost` on both traces (default plugins, flowstats only, no plugins): cycles per packet
# of every stage and plugin, the sum after rx, and its wall time against `weir extract`'s.
#
# Hugepages: a DPDK host reserves 2 MiB hugepages (deploy/docs/config.md), and weir puts a flow
# table it makes resident at start on them when enough are free (flows.reserved_hugepages). Run
# as root, the script reserves --hugepages N pages (default 320: the default plugins' and ndpi's
# tables) as such a host has, gives them back at the end, and also runs weir's default-plugins
# CSV row without them (reserved_hugepages = false), so both standings are in the table.
# --hugepages 0 reserves none.
#
# Usage: perf/e2e.sh [--runs N] [--skip-peers] [--skip-nfstream] [--capture FILE] [--hugepages N]
# Needs: a release build (make build), /usr/bin/time (Debian package time), capinfos, and for
# the peers nfpcapd (nfdump), softflowd, argus (argus-server), ndpiReader (libndpi-bin);
# `make bench` installs them. A missing peer is reported as skipped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${WEIR_BENCH_OUT:-$ROOT/perf/out}
BIN=$ROOT/target/release
WEIR=$BIN/weir
TRACEGEN=$BIN/weir-tracegen
NF_PY=$ROOT/build/nfvenv/bin/python
RUNS=3
SKIP_PEERS=0
SKIP_NF=0
MANY=""
HUGEPAGES=320

while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --capture) MANY=$2; shift 2 ;;
        --skip-peers) SKIP_PEERS=1; shift ;;
        --skip-nfstream) SKIP_NF=1; shift ;;
        --hugepages) HUGEPAGES=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "e2e.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "e2e.sh: $*" >&2; exit 1; }
for tool in "$WEIR" "$TRACEGEN"; do
    [ -x "$tool" ] || die "$tool is missing: run 'make build' first"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
command -v capinfos >/dev/null || die "capinfos is missing (Debian package wireshark-common)"

WORK=$OUT/e2e
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/tmp" "$WORK/no-plugins"

# Reserve the hugepages a DPDK host has (see above); given back on exit.
NR_HUGE=/proc/sys/vm/nr_hugepages
huge_free() { awk '/^HugePages_Free/ {print $2}' /proc/meminfo; }
if [ "$HUGEPAGES" -gt 0 ] && [ -w "$NR_HUGE" ]; then
    HUGE_BEFORE=$(cat "$NR_HUGE")
    short=$((HUGEPAGES - $(huge_free)))
    if [ "$short" -gt 0 ]; then
        trap 'echo "$HUGE_BEFORE" >"$NR_HUGE"' EXIT
        echo $((HUGE_BEFORE + short)) >"$NR_HUGE"
    fi
fi
HUGE_NOTE="$(huge_free) free 2 MiB hugepages during the runs"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
REPORT=$OUT/e2e-$STAMP.md

if [ -z "$MANY" ]; then
    MANY=$OUT/many.pcap
    [ -f "$MANY" ] || "$TRACEGEN" --out "$MANY" --packets 2000000 --flows 200000 --imix 2:2:5 \
        --seed 19 --quiet
fi
SMALL=$OUT/bench.pcap
[ -f "$SMALL" ] || "$TRACEGEN" --out "$SMALL" --packets 200000 --flows 10000 --seed 1 --quiet
npkt() { capinfos -c -M -T "$1" | awk -F'\t' 'NR==2 {print $2}'; }
NPKT=$(npkt "$MANY")
[ -n "$NPKT" ] || die "capinfos cannot count the packets of $MANY"
MEAN=$(capinfos -z -M -T "$MANY" | awk -F'\t' 'NR==2 {print $2}')

# weir runs with its defaults, as a user runs it (on the 200 k-flow trace that makes the flow
# table resident at start, flows.prefault unset: the capture is larger than the table), but
# for the flowstats-only rows, which enable one plugin.
printf '[plugins]\nenabled = ["flowstats"]\n' >"$WORK/flowstats.toml"
# "Default plugins" rows are the four statistical plugins (flowstats, splt, tcp, entropy): the
# ndpi plugin (DPI labels, when built) is disabled there, and measured in a row of its own.
printf '[plugins]\ndisabled = ["ndpi"]\n' >"$WORK/stat.toml"
printf '[plugins]\ndisabled = ["ndpi"]\n[flows]\nreserved_hugepages = false\n' >"$WORK/stat-nohuge.toml"

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# Wall seconds and peak RSS (KiB) of a /usr/bin/time -v report.
wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for (i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
maxrss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
# CPU seconds (user + system) of all the tool's threads: on a shared machine the wall time
# includes waiting for a core, the CPU time does not.
cpu_s() { awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$1"; }

# $1 = name, then the command. Appends "wall_s rss_kb" to $LOGS/$1.rates; a failed run is
# reported and left out.
run() {
    local name=$1 log=$LOGS/$1.$ROUND.log; shift
    if /usr/bin/time -v -o "$log.time" "$@" >"$log" 2>&1; then
        echo "$(wall_s "$log.time") $(maxrss_kb "$log.time") $(cpu_s "$log.time")" \
            >>"$LOGS/$name.rates"
    else
        echo "e2e.sh: $name failed (exit $?), see $log" >&2
    fi
}

# name|label|command (run from the tool's own scratch directory $WORK/tmp).
VARIANTS=(
    "weir-csv|\`weir extract\`, default plugins, CSV|$WEIR extract $MANY --config $WORK/stat.toml --out $WORK/tmp/r.csv --no-progress --quiet"
    "weir-csv-nohuge|\`weir extract\`, default plugins, CSV, reserved hugepages not used|$WEIR extract $MANY --config $WORK/stat-nohuge.toml --out $WORK/tmp/r.csv --no-progress --quiet"
    "weir-parquet|\`weir extract\`, default plugins, Parquet|$WEIR extract $MANY --config $WORK/stat.toml --out $WORK/tmp/r.parquet --no-progress --quiet"
    "weir-ndpi|\`weir extract\`, default plugins and ndpi (DPI labels), CSV|$WEIR extract $MANY --out $WORK/tmp/r.csv --no-progress --quiet"
    "weir-flowstats|\`weir extract\`, flowstats only, CSV|$WEIR extract $MANY --config $WORK/flowstats.toml --out $WORK/tmp/r.csv --no-progress --quiet"
    "weir-none|\`weir extract --no-plugins\`, CSV|$WEIR extract $MANY --no-plugins --out $WORK/tmp/r.csv --no-progress --quiet"
)
if [ "$SKIP_PEERS" = 0 ]; then
    if command -v nfpcapd >/dev/null; then
        VARIANTS+=("nfpcapd|\`nfpcapd -r\` (nfdump $(nfpcapd -V 2>&1 | sed -n 's/.*Version: *//p' | head -1))|nfpcapd -r $MANY -w $WORK/tmp")
    fi
    # softflowd -r is not run: Debian's 1.1.0 opens the capture, then blocks in accept() on
    # its control socket and never reads it (strace; also with -d, with or without -n). Its
    # row says so.
    if command -v argus >/dev/null; then
        VARIANTS+=("argus|\`argus -r\` ($(dpkg-query -W -f '${Version}' argus-server 2>/dev/null))|argus -r $MANY -w $WORK/tmp/out.argus")
    fi
    if command -v ndpiReader >/dev/null; then
        VARIANTS+=("ndpi|\`ndpiReader -i\` (nDPI $(ndpiReader -h 2>&1 | sed -n 's/.*nDPI \([0-9.]*\).*/\1/p' | head -1), full DPI)|ndpiReader -q -i $MANY")
    fi
fi
if [ "$SKIP_NF" = 0 ] && "$NF_PY" -c 'import nfstream' 2>/dev/null; then
    VARIANTS+=("nfstream|NFStream $("$NF_PY" -c 'import nfstream; print(nfstream.__version__)'), statistical features, 1 meter|$NF_PY $ROOT/perf/nfstream_rate.py $MANY")
fi

rm -f "$LOGS"/*.rates
echo "e2e.sh: $MANY ($NPKT packets), $RUNS rounds; logs in $LOGS" >&2
for ROUND in $(seq 1 "$RUNS"); do
    echo "e2e.sh: round $ROUND/$RUNS" >&2
    for v in "${VARIANTS[@]}"; do
        IFS='|' read -r name _ cmd <<<"$v"
        rm -rf "$WORK/tmp" && mkdir -p "$WORK/tmp"
        # shellcheck disable=SC2086  # the command line is split on purpose
        (cd "$WORK/tmp" && run "$name" $cmd)
    done
done

# weir cost (no sink) on both traces: the data path alone, after the rounds. COST_RUNS runs of
# each (alternated); the report takes the run with the median total cycles (one run on this
# shared machine can be a quarter off).
ROUND=cost
COST_RUNS=${COST_RUNS:-3}
cost_json() {  # $1 = name, $2 = run, $3 = capture, then extra args
    local name=$1 r=$2 cap=$3; shift 3
    /usr/bin/time -v -o "$LOGS/$name.r$r.log.time" "$WEIR" cost "$cap" --json "$LOGS/$name.r$r.json" "$@" \
        >"$LOGS/$name.r$r.log" 2>&1 || echo "e2e.sh: weir cost $name failed, see $LOGS/$name.r$r.log" >&2
}
for r in $(seq "$COST_RUNS"); do
    for t in many small; do
        cap=$MANY; [ "$t" = small ] && cap=$SMALL
        cost_json "cost-$t-default" "$r" "$cap" --config "$WORK/stat.toml"
        cost_json "cost-$t-flowstats" "$r" "$cap" --config "$WORK/flowstats.toml"
        cost_json "cost-$t-none" "$r" "$cap" --config "$WORK/stat.toml" --plugin-dir "$WORK/no-plugins"
    done
done
for t in many small; do
    for v in default flowstats none; do
        python3 - "$LOGS" "cost-$t-$v" "$COST_RUNS" <<'EOF2'
import json, os, shutil, sys
logs, name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
got = []
for r in range(1, runs + 1):
    p = os.path.join(logs, f"{name}.r{r}.json")
    if os.path.exists(p):
        with open(p) as f:
            got.append((sum(x["cycles"] for x in json.load(f)["rows"]), r))
if got:
    r = sorted(got)[len(got) // 2][1]
    for ext in ("json", "log", "log.time"):
        shutil.copy(os.path.join(logs, f"{name}.r{r}.{ext}"), os.path.join(logs, f"{name}.{ext}"))
EOF2
    done
done

# ---- report ----------------------------------------------------------------------------------

med() { [ -f "$LOGS/$1.rates" ] && awk -v c="$2" '{print $c}' "$LOGS/$1.rates" | median || echo nan; }
BASE=$(med weir-csv 1)
{
echo "## End to end: weir extract against the flow meters ($STAMP)"
echo
echo "Capture \`$(basename "$MANY")\`: $NPKT packets, mean frame $MEAN B, read from the page"
echo "cache; $RUNS rounds, tools alternated, medians of wall time from start to exit."
echo "Machine: $(nproc) vCPUs, shared (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end);"
echo "$HUGE_NOTE (weir's prefaulted tables go there unless \`reserved_hugepages = false\`;"
echo "the kernel leaves hugetlb pages out of a process's RSS, so those rows' peak RSS does not count"
echo "the table: the row without reserved hugepages shows weir's whole footprint)."
echo
echo "Packets per CPU second counts the CPU time (user + system) of all of a tool's threads:"
echo "it does not include waiting for a core, so it is the steadier number on a shared machine."
echo
echo "| tool | packets/s (wall) | weir CSV (default plugins) x this | wall s | peak RSS MiB | CPU s | packets per CPU s | weir CSV x this (CPU) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
BASE_CPU=$(med weir-csv 3)
for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name label _ <<<"$v"
    w=$(med "$name" 1); r=$(med "$name" 2); c=$(med "$name" 3)
    awk -v l="$label" -v w="$w" -v r="$r" -v c="$c" -v b="$BASE" -v bc="$BASE_CPU" -v n="$NPKT" 'BEGIN {
        if (w == "nan" || w <= 0) { printf "| %s | failed | | | | | | |\n", l; exit }
        printf "| %s | %.0f | %.2f | %.2f | %.0f | %.2f | %.0f | %.2f |\n", l, n / w, w / b, w, r / 1024,
            c, (c > 0 ? n / c : 0), (bc > 0 ? c / bc : 0) }'
done
if [ "$SKIP_PEERS" = 0 ] && command -v softflowd >/dev/null; then
    echo "| \`softflowd -r\` (1.1.0) | not run: blocks in accept() on its control socket before reading the capture | | | | | | |"
fi
echo
echo "### weir cost: cycles per packet received of every stage and plugin (no sink; of $COST_RUNS runs each, the one with the median total)"
echo
python3 - "$LOGS" "$NPKT" "$BASE" <<'EOF'
import json, os, sys
logs, npkt, base = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
cols = [(t, v) for t in ("many", "small") for v in ("default", "flowstats", "none")]
tables = {}
for t, v in cols:
    p = os.path.join(logs, f"cost-{t}-{v}.json")
    if os.path.exists(p):
        with open(p) as f:
            tables[(t, v)] = json.load(f)
names = []
for tab in tables.values():
    for r in tab["rows"]:
        if r["name"] not in names:
            names.append(r["name"])
head = [f"{'200k' if t == 'many' else '10k'} flows, {v}" for t, v in cols if (t, v) in tables]
print("| stage or plugin | " + " | ".join(head) + " |")
print("|---|" + "---:|" * len(head))
def cell(tab, n):
    # Every row over the packets received (rx's), so the column adds up to the sum below;
    # rows that count records (community_id) or flows (expiry) are per packet too.
    rx = next((r for r in tab["rows"] if r["name"] == "rx"), None)
    pk = max(1, rx["packets"] if rx else 1)
    for r in tab["rows"]:
        if r["name"] == n and r["cycles"] > 0:
            return r["cycles"] / pk, r
    return None, None
for n in names:
    out = []
    for k in cols:
        if k not in tables:
            continue
        c, _ = cell(tables[k], n)
        out.append("-" if c is None else f"{c:.0f}")
    print(f"| {n} | " + " | ".join(out) + " |")
# After rx: every row's cycles over the packets received (rx's packets).
# rx included too: the extract worker asks for the next bursts' mbuf headers and first lines
# right after receiving them (their misses then overlap the work), which the rx row carries.
sums, alls, idle = [], [], []
for k in cols:
    if k not in tables:
        continue
    rows = tables[k]["rows"]
    rx = next((r for r in rows if r["name"] == "rx"), None)
    pk = max(1, rx["packets"] if rx else 1)
    sums.append(f"**{sum(r['cycles'] for r in rows if r['name'] != 'rx') / pk:.0f}**")
    alls.append(f"{sum(r['cycles'] for r in rows) / pk:.0f}")
    d = tables[k].get("descheduled")
    idle.append("-" if not d else f"{100 * d.get('share', 0):.1f} %")
print("| all after rx, per packet received | " + " | ".join(sums) + " |")
print("| all, rx included | " + " | ".join(alls) + " |")
print("| worker time not running (descheduled) | " + " | ".join(idle) + " |")
per_rec = []
for k in cols:
    if k not in tables:
        continue
    r = next((r for r in tables[k]["rows"] if r["name"] == "community_id"), None)
    per_rec.append("-" if not r or not r["packets"] else f"{r['cycles'] / r['packets']:.0f}")
print("| community_id, cycles per record | " + " | ".join(per_rec) + " |")
print()
def wall(name):
    p = os.path.join(logs, name + ".log.time")
    if not os.path.exists(p):
        return None
    for line in open(p):
        if "Elapsed (wall clock)" in line:
            s = 0.0
            for part in line.split(": ", 1)[1].strip().split(":"):
                s = s * 60 + float(part)
            return s
cw = wall("cost-many-default")
if cw:
    print(f"`weir extract` (default plugins, CSV) wall {base:.2f} s against `weir cost` {cw:.2f} s "
          f"on the same capture: **{base / cw:.2f}x** (target at most 1.3x).")
EOF
echo
echo "Commands: \`perf/e2e.sh --runs $RUNS\` (the rows' command lines are in $LOGS/*.log.time)."
} | tee "$REPORT"
echo "e2e.sh: report saved to $REPORT" >&2
