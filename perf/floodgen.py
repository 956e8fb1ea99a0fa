#!/usr/bin/env python3
"""A flood of one-packet UDP flows from spoofed sources beside a few steady flows (classic pcap).

    python3 perf/floodgen.py OUT.pcap [--capacity 65536] [--times 10] [--steady 10]
                                      [--seconds 10] [--every-ms 10]

`--steady` flows (10.0.0.1:5000+i -> 10.9.9.9:53) send one packet every `--every-ms` for
`--seconds` + 2 s; from 1 s on, `--times` x `--capacity` one-packet flows from spoofed
100.x.y.z sources arrive evenly over `--seconds`. With `[flows] capacity = --capacity`, a fair
table keeps the steady flows (each comes back long before the table turns over) and evicts
only flood flows. Used by perf/robustness.md (section 6).
"""
import argparse
import struct


def udp4(src, dst, sport, dport, payload):
    total = 20 + 8 + payload
    eth = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 17, 0, bytes(src), bytes(dst))
    udp = struct.pack(">HHHH", sport, dport, 8 + payload, 0)
    return eth + ip + udp + b"\xab" * payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--capacity", type=int, default=65536)
    ap.add_argument("--times", type=int, default=10)
    ap.add_argument("--steady", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--every-ms", type=float, default=10.0)
    a = ap.parse_args()
    t0 = 1_700_000_000 * 10**9
    ev = []
    every = int(a.every_ms * 1e6)
    end = int((a.seconds + 2) * 1e9)
    for t in range(0, end + 1, every):
        for i in range(a.steady):
            ev.append((t + i * 1000, udp4([10, 0, 0, 1], [10, 9, 9, 9], 5000 + i, 53, 40)))
    n = a.capacity * a.times
    step = int(a.seconds * 1e9) // n
    x = 0x9E3779B97F4A7C15
    for k in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        src = [100, (k >> 16) & 255, (k >> 8) & 255, k & 255]
        ev.append((10**9 + k * step + 500, udp4(src, [10, 9, 9, 9], ((x >> 33) & 0xFFFF) | 1024, 53, (x >> 50) % 32)))
    ev.sort(key=lambda e: e[0])
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for t, fr in ev:
            ts = t0 + t
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(fr), len(fr)))
            f.write(fr)
    print(f"{a.out}: {len(ev)} packets, {n} flood flows, {a.steady} steady flows")


if __name__ == "__main__":
    main()
