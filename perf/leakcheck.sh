#!/usr/bin/env bash
# Leak check: weir under valgrind memcheck, with plugins, on a bundled
# capture (`weir extract`) and on a live vdev stopped by SIGTERM (`weir run`). Fails when
# valgrind reports a definitely-lost block or a memory error outside perf/valgrind.supp
# (which lists DPDK's and glibc's own allocations, and the one deliberate leak of EAL's argv).
#
#   perf/leakcheck.sh [WEIR_BINARY]      logs: build/leakcheck/*.log
set -euo pipefail
WEIR=${1:-target/release/weir}
OUT=${LEAK_OUT:-build/leakcheck}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUPP=$(cd "$(dirname "$0")" && pwd)/valgrind.supp
CAP=appliance/tests/data/nfstream/pcaps/instagram.pcap
VG=(valgrind --leak-check=full --show-leak-kinds=definite,possible
    --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=40
    --suppressions="$SUPP")
fail=0

echo "leakcheck: weir extract $CAP"
"${VG[@]}" --log-file="$OUT/extract.log" "$WEIR" extract "$CAP" --out "$OUT/extract.csv" \
    --quiet || fail=1

cat > "$OUT/run.toml" <<TOML
[eal]
no_huge = true
no_pci = true
memory_mb = 256
[[ports]]
vdev = "net_pcap0,rx_pcap=$PWD/$CAP"
[sinks]
records = "$OUT/run.csv"
TOML
echo "leakcheck: weir run (SIGTERM after 8 s)"
"${VG[@]}" --log-file="$OUT/run.log" "$WEIR" run --config "$OUT/run.toml" 2>"$OUT/run.stderr" &
pid=$!
sleep 8
kill -TERM $pid
wait $pid || fail=1

for l in "$OUT/extract.log" "$OUT/run.log"; do
  echo "== $(basename "$l")"
  grep -E "definitely lost|indirectly lost|possibly lost|ERROR SUMMARY|suppressed:" "$l" | sed 's/^==[0-9]*== *//'
done
if [ $fail -ne 0 ]; then
  echo "LEAKCHECK FAILED: see $OUT/*.log"
  exit 1
fi
echo "leakcheck: no leak or memory error in weir's own code"
