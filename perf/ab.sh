#!/usr/bin/env bash
# perf/ab.sh: before/after packet rates of several weir binaries on one `weir run` config,
# interleaved round by round (A B C A B C ...) so that machine noise hits each alike; prints the
# median packets/s of each and every sample.
#
# Usage: perf/ab.sh CONFIG SECONDS ROUNDS WEIR_BINARY...
# The binaries should sit in target/release (weir finds its plugins beside its executable).
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
config=$1 secs=$2 rounds=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
    i=0
    for bin in "$@"; do
        i=$((i + 1))
        pkts=$("$bin" run --config "$config" --duration-s "$secs" 2>&1 |
            sed -n 's/^weir run: \([0-9]*\) packets.*/\1/p')
        echo $(( ${pkts:-0} / secs )) >>"$tmp/$i"
        echo "round $r $(basename "$bin"): $(( ${pkts:-0} / secs )) packets/s" >&2
    done
done
i=0
for bin in "$@"; do
    i=$((i + 1))
    med=$(sort -n "$tmp/$i" | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')
    echo "$(basename "$bin"): median $med packets/s over $rounds runs ($(tr '\n' ' ' <"$tmp/$i"))"
done
