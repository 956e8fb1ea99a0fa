#!/usr/bin/env python3
"""Build the fuzz seed corpora from the shared captures (nothing binary is committed).

    python3 appliance/fuzz/seeds.py [OUT_DIR]     (default: appliance/fuzz/corpus)

parse, packet_view: the first few frames of a spread of captures (tunnels, VLAN, IPv6
extension headers, fragments, ICMP, malformed ones), each prefixed as the target reads it.
capture: the smallest whole captures, and the first packets of larger classic pcaps re-written
as small pcap files; every pcapng under 16 KiB whole.
config: the README's and perf's example configs (TOML blocks), and a few edge cases.
flow_table: frames of one capture in the target's op format.
dns: the UDP payloads of port-53 packets (queries and answers) of the DNS captures.
"""
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PCAPS = os.path.join(ROOT, "appliance/tests/data/nfstream/pcaps")
FRAME_PICKS = [
    ("4in4tunnel.pcap", 2), ("6in6tunnel.pcap", 2), ("ipv6_in_gtp.pcap", 2), ("gtp-u.pcap", 4),
    ("dns_fragmented.pcap", 8), ("ajp.pcap", 4), ("http_ipv6.pcap", 4), ("malformed_icmp.pcap", 1),
    ("malformed_dns.pcap", 4), ("fuzz-2021-06-07-c6c72a0a56.pcap", 1), ("synscan.pcap", 4),
    ("skype.pcap", 6), ("among_us.pcap", 2), ("netflow-fritz.pcap", 2), ("cpha.pcap", 1),
]


def read_pcap(path, limit):
    """(linktype, header bytes, [(record header, data)]) of a classic pcap, or None."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 24:
        return None
    magic = blob[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    linktype = struct.unpack(e + "I", blob[20:24])[0]
    out, off = [], 24
    while off + 16 <= len(blob) and len(out) < limit:
        incl = struct.unpack(e + "I", blob[off + 8:off + 12])[0]
        rec = blob[off:off + 16]
        data = blob[off + 16:off + 16 + incl]
        out.append((rec, data))
        off += 16 + incl
    return linktype, blob[:24], out


def pcapng(options, frames):
    """A little-endian pcapng: one section, one Ethernet interface with `options` ((code,
    bytes) pairs, e.g. if_tsresol = 9, if_tsoffset = 14), and an Enhanced Packet Block per
    (timestamp, frame)."""
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", kind, n) + body + struct.pack("<I", n)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = struct.pack("<HHI", 1, 0, 0)
    for code, v in options:
        idb += struct.pack("<HH", code, len(v)) + v + b"\0" * (-len(v) % 4)
    out += block(1, idb + b"\0\0\0\0")
    for ts, frame in frames:
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                    len(frame)) + frame)
    return out


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "appliance/fuzz/corpus")
    n = 0
    caps = 0
    for name, k in FRAME_PICKS:
        got = read_pcap(os.path.join(PCAPS, name), k)
        if not got or got[0] != 1:
            continue
        _, hdr, recs = got
        for i, (rec, data) in enumerate(recs):
            write(os.path.join(out, "parse"), f"{name}-{i}", b"\0\0" + data)
            write(os.path.join(out, "packet_view"), f"{name}-{i}",
                  struct.pack("<HHHH", len(data), 0xffff, 0, 0) + data)
            n += 1
        # A short classic pcap of the same packets for the capture target.
        write(os.path.join(out, "capture"), f"{name}-head.pcap",
              hdr + b"".join(r + d for r, d in recs))
        caps += 1
    for name in sorted(os.listdir(PCAPS)):
        p = os.path.join(PCAPS, name)
        if os.path.getsize(p) <= 16384:
            with open(p, "rb") as f:
                write(os.path.join(out, "capture"), name, f.read())
                caps += 1
    # pcapng with the interface options that scale and shift times (if_tsresol, code 9:
    # 10^-n or 2^-n s; if_tsoffset, code 14: signed seconds), in range and at the edges.
    got = read_pcap(os.path.join(PCAPS, "ajp.pcap"), 3)
    if got:
        frames = [d for _, d in got[2]]
        for name, opts in [
            ("ns", [(9, b"\x09")]),
            ("2pow20", [(9, b"\x94")]),
            ("1s", [(9, b"\x00")]),
            ("ps", [(9, b"\x0c")]),
            ("offset", [(9, b"\x06"), (14, struct.pack("<q", 1_600_000_000))]),
            ("offset_neg", [(14, struct.pack("<q", -10))]),
            ("offset_max", [(14, struct.pack("<q", 2**63 - 1))]),
            ("offset_min", [(9, b"\x09"), (14, struct.pack("<q", -2**63))]),
        ]:
            stamps = [1_500_000_000_000_000 + i * 1000 for i in range(len(frames))]
            write(os.path.join(out, "capture"), f"opts-{name}.pcapng",
                  pcapng(opts, list(zip(stamps, frames))))
            caps += 1
    # flow_table ops: [len][dt][kind=0x80 raw][frame...], frames of one TCP capture.
    got = read_pcap(os.path.join(PCAPS, "ajp.pcap"), 12)
    if got:
        ops = b"".join(bytes([min(len(d) + 1, 255), 2, 0x80]) + d[:254] for _, d in got[2])
        write(os.path.join(out, "flow_table"), "ajp-raw", b"\0" + ops)
    synth = bytes([0, 7, 0, 0x00, 1, 2, 1, 0, 0x02, 7, 0, 0x00, 2, 1, 0, 1, 0x12,
                   7, 4, 0x10, 1, 2, 3, 1, 0x11, 7, 1, 0x40, 0, 1, 2, 0, 0])
    write(os.path.join(out, "flow_table"), "synthetic", synth)
    # DNS messages: UDP port 53 payloads over Ethernet + IPv4 (no options in these captures).
    dns = 0
    for name in ("android.pcap", "iphone.pcap", "malformed_dns.pcap", "dns_long_domainname.pcap",
                 "dns_ambiguous_names.pcap", "dns_fragmented.pcap"):
        got = read_pcap(os.path.join(PCAPS, name), 400)
        if not got or got[0] != 1:
            continue
        for i, (_, d) in enumerate(got[2]):
            if len(d) < 42 or d[12:14] != b"\x08\x00" or d[23] != 17:
                continue
            ihl = (d[14] & 15) * 4
            sport, dport = struct.unpack(">HH", d[14 + ihl:18 + ihl])
            if 53 in (sport, dport) and dns < 200:
                write(os.path.join(out, "dns"), f"{name}-{i}", d[22 + ihl:])
                dns += 1
    # Configs: every ```toml block of the README, plus edge cases.
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = re.findall(r"```toml\n(.*?)```", f.read(), re.S)
    extra = ["", "[flows]\ncapacity = 1\n", "[flows]\nidle_timeout_s = 1e300\n",
             "[workers]\ncount = 65535\nburst = 512\n", "[[ports]]\nvdev = \"net_null0\"\n",
             "[model]\ndir = \"/x\"\nbatch = 0\n"]
    for i, b in enumerate(blocks + extra):
        write(os.path.join(out, "config"), f"config-{i}.toml", b.encode())
    print(f"seeds in {out}: {n} frames, "
          f"{caps} captures, {dns} DNS messages, "
          f"{len(blocks) + len(extra)} configs")


if __name__ == "__main__":
    main()
