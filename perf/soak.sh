#!/usr/bin/env bash
# Soak test: `weir run` replays a capture of many flows in a loop (net_pcap,
# infinite_rx=1) through a table smaller than the flow set, so flows are evicted and re-created
# all the time (churn through plugins, records and sinks), for SOAK_SECONDS. VmRSS is sampled
# every second from /proc/PID/status; after the warm-up (WARMUP_SECONDS) it must stay within
# SOAK_TOLERANCE_PCT of its first post-warm-up sample. Writes OUT/rss.csv and OUT/summary.txt.
#
#   perf/soak.sh [WEIR_BINARY]       env: SOAK_SECONDS (600) WARMUP_SECONDS (60) SOAK_FLOWS (20000)
set -euo pipefail
WEIR=${1:-target/release/weir}
SOAK_SECONDS=${SOAK_SECONDS:-600}
WARMUP_SECONDS=${WARMUP_SECONDS:-60}
SOAK_FLOWS=${SOAK_FLOWS:-20000}
TOL=${SOAK_TOLERANCE_PCT:-5}
OUT=${SOAK_OUT:-build/soak}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# A capture of SOAK_FLOWS random UDP flows, 2 packets each (one per direction).
python3 - "$OUT/churn.pcap" "$SOAK_FLOWS" <<'PY'
import random, struct, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(9)
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    t = 1_700_000_000.0
    for i in range(n):
        a = bytes([10, rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)])
        b = bytes([172, 16, rnd.randrange(256), rnd.randrange(1, 255)])
        sp, dp = rnd.randrange(1024, 65535), rnd.choice([53, 80, 443, 123, 5000])
        for (s, d, x, y) in ((a, b, sp, dp), (b, a, dp, sp)):
            pl = rnd.randrange(0, 200)
            udp = struct.pack(">HHHH", x, y, 8 + pl, 0) + bytes(pl)
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, s, d)
            frame = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + udp
            t += 0.0001
            f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)))
            f.write(frame)
PY
ln -sf /dev/null "$OUT/records.csv"
cat > "$OUT/weir.toml" <<TOML
[eal]
no_huge = true
no_pci = true
memory_mb = 512

[[ports]]
vdev = "net_pcap0,rx_pcap=$OUT/churn.pcap,infinite_rx=1"

[workers]
mbufs = 65535

[flows]
capacity = 4096

[sinks]
records = "$OUT/records.csv"

[log]
status_interval_s = 10
TOML

RUST_LOG=info "$WEIR" run --config "$OUT/weir.toml" 2>"$OUT/weir.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
echo "second,vm_rss_kib" >"$OUT/rss.csv"
for ((s = 1; s <= SOAK_SECONDS; s++)); do
  sleep 1
  if ! kill -0 $PID 2>/dev/null; then
    echo "weir exited during the soak:"; tail -20 "$OUT/weir.log"; exit 1
  fi
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/$PID/status)
  echo "$s,$rss" >>"$OUT/rss.csv"
done
kill -TERM $PID
status=0
wait $PID || status=$?
trap - EXIT

python3 - "$OUT" "$WARMUP_SECONDS" "$TOL" "$status" <<'PY'
import csv, sys, re
out, warm, tol, status = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = [(int(r["second"]), int(r["vm_rss_kib"])) for r in csv.DictReader(open(f"{out}/rss.csv"))]
after = [kib for s, kib in rows if s > warm] or [rows[-1][1]]
base, lo, hi = after[0], min(after), max(after)
drift = 100.0 * (hi - lo) / base
log = re.sub(r"\x1b\[[0-9;]*m", "", open(f"{out}/weir.log").read())
summary = [l for l in log.splitlines() if l.startswith("weir run:")]
port = [l for l in log.splitlines() if "port statistics" in l]
lines = [
    f"soak: {len(rows)} s, VmRSS sampled every second",
    f"start {rows[0][1]} KiB; after {warm} s warm-up: first {base}, min {lo}, max {hi} KiB "
    f"(spread {drift:.2f}% of the first; limit {tol}%)",
    "curve (every 10th sample, KiB): " + " ".join(str(k) for s, k in rows[::10]),
    *(summary + port),
    f"weir exit status {status}",
]
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
ok = drift <= tol and status == 0
if not ok:
    print("SOAK FAILED: resident memory not flat or weir failed")
sys.exit(0 if ok else 1)
PY
