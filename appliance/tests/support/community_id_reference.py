"""Check weir's `community_id` column against the reference implementation (the `communityid`
package) on weir's CSV records.

Input (argv[1], JSON): {"seed": N, "jobs": [{"csv": PATH, "pcap": PATH or null,
"icmp": {"SRC|DST|FIRST_SEEN_MS": [TYPE, CODE]} or null}]}. The ICMP type and code of an ICMP
flow's first packet come from `icmp` when given (synthetic captures), else from tshark's
dissection of `pcap` (the first ICMP packet from the record's source to its destination in the
record's first millisecond). Prints a JSON summary; exits 1 on any mismatch.
"""
import csv
import json
import subprocess
import sys

import communityid


def ms_of(epoch: str) -> int:
    sec, _, frac = epoch.partition(".")
    return int(sec) * 1000 + int((frac + "000")[:3])


def tshark_icmp(pcap):
    """(src, dst, ms) -> [(type, code)] of every ICMP/ICMPv6 packet, in capture order."""
    out = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-Y", "icmp or icmpv6", "-T", "fields",
         "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
         "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src",
         "-e", "ipv6.dst", "-e", "icmp.type", "-e", "icmp.code", "-e", "icmpv6.type",
         "-e", "icmpv6.code"],
        check=True, capture_output=True, text=True).stdout
    pkts = []
    for line in out.splitlines():
        f = line.split("\t")
        f += [""] * (9 - len(f))
        srcs = [s for s in (f[1] + "," + f[3]).split(",") if s]
        dsts = [s for s in (f[2] + "," + f[4]).split(",") if s]
        v4 = (f[5].split(",")[0], f[6].split(",")[0])
        v6 = (f[7].split(",")[0], f[8].split(",")[0])
        pkts.append((ms_of(f[0]), srcs, dsts, v4, v6))
    return pkts


def main():
    job = json.loads(open(sys.argv[1]).read())
    cid = communityid.CommunityID(job["seed"])
    summary = {"records": 0, "icmp_records": 0, "icmpv6_records": 0, "mismatches": [],
               "unmatched_icmp": []}
    for j in job["jobs"]:
        pkts = None
        with open(j["csv"], newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            proto = int(r["protocol"])
            src, dst = r["src_ip"], r["dst_ip"]
            sport, dport = int(r["src_port"]), int(r["dst_port"])
            first = int(r["bidirectional_first_seen_ms"])
            if proto in (1, 58):
                key = f"{src}|{dst}|{first}"
                if j.get("icmp") is not None:
                    tc = j["icmp"].get(key)
                else:
                    if pkts is None:
                        pkts = tshark_icmp(j["pcap"])
                    tc = None
                    for ms, srcs, dsts, v4, v6 in pkts:
                        if ms == first and src in srcs and dst in dsts:
                            t, c = v4 if proto == 1 else v6
                            if t != "" and c != "":
                                tc = (int(t), int(c))
                                break
                if tc is None:
                    summary["unmatched_icmp"].append(f"{j['csv']}: {key}")
                    continue
                summary["icmp_records" if proto == 1 else "icmpv6_records"] += 1
                tup = communityid.FlowTuple(proto, src, dst, tc[0], tc[1])
            elif proto in (6, 17, 132):
                tup = communityid.FlowTuple(proto, src, dst, sport, dport)
            else:
                tup = communityid.FlowTuple(proto, src, dst)
            want = cid.calc(tup)
            summary["records"] += 1
            if r["community_id"] != want:
                summary["mismatches"].append(
                    f"{j['csv']}: {src}:{sport} -> {dst}:{dport} proto {proto} first {first}: "
                    f"weir {r['community_id']!r}, reference {want!r}")
    print(json.dumps(summary))
    sys.exit(1 if summary["mismatches"] else 0)


if __name__ == "__main__":
    main()
