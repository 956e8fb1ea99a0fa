#!/usr/bin/env python3
"""NFStream's packet rate on a capture: the peer weir is measured against in bench.sh.

One meter process (n_meters=1: one core, as weir's one worker), the 48 statistical features
(statistical_analysis=True, what weir's flowstats plugin computes), no nDPI dissection
(n_dissections=0: weir does no DPI either). Prints one line:
    nfstream packets=<sum of flows' packets> flows=<n> seconds=<s> pps=<packets/s>
The time covers opening the capture to the last flow, as `weir extract` reports its own.
"""
import sys
import time

from nfstream import NFStreamer


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: nfstream_rate.py CAPTURE", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    streamer = NFStreamer(
        source=sys.argv[1],
        statistical_analysis=True,
        n_dissections=0,
        n_meters=1,
    )
    packets = flows = 0
    for f in streamer:
        packets += f.bidirectional_packets
        flows += 1
    secs = time.perf_counter() - t0
    print(f"nfstream packets={packets} flows={flows} seconds={secs:.3f} pps={packets / secs:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
