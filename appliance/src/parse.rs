//! Frame -> packet view + flow key, with a named reason for every frame that is skipped.
//!
//! [`parse`] reads one Ethernet frame through the [`crate::wire`] views and fills the ABI's
//! 64-byte [`PacketV1`] and an *unoriented* [`FlowKeyV1`] (src is this packet's sender; the flow
//! table orients it and sets `direction`). It never reads past the captured bytes, never panics
//! and never allocates. A worker counts each `Err` in its [`SkipCounters`].
//!
//! What is a flow and what is skipped follows NFStream 6.6.0 (`packet_process` and
//! `packet_get_ip_info` in `nfstream/engine/lib_engine.c`, nDPI's
//! `ndpi_handle_ipv6_extension_headers`, and `get_flow_key` in `nfstream/meter.py`), so that
//! weir's flow records equal NFStream's on the same capture:
//! - Ethernet II and 802.3 LLC/SNAP; VLAN tags; MPLS label stacks; PPPoE sessions. The flow's
//!   `vlan_id` is the VID of the *innermost* tag: NFStream overwrites it tag by tag (the
//!   bundled QinQ captures `4in4tunnel.pcap` and `ipv6_in_gtp.pcap` confirm it).
//! - IPv4 with options; non-first fragments skipped, first fragments flagged. IPv4 Total
//!   Length 0 (a host capture of TCP segmentation offload) is skipped, as NFStream does. A
//!   Total Length past the frame on the wire (a frame cut on the wire or by the capturing
//!   device) counts for its flow with its wire length, as in NFStream, and is counted as
//!   `ipv4_truncated` ([`SkipCounters::ipv4_truncated`]).
//! - A first fragment (or a packet cut on the wire) that ends inside the TCP/UDP header belongs
//!   to a flow with ports 0, as in NFStream.
//! - IPv6 with the extension headers nDPI walks (hop-by-hop, routing, fragment, destination
//!   options, mobility); non-first fragments skipped. AH, ESP and anything else is the flow's
//!   protocol, with ports 0.
//! - IP-in-IP (4in4, 6in4, 4in6, 6in6) is decapsulated; the flow is the innermost header's,
//!   `tunnel_id` stays 0. With `flows.decode_tunnels` (the default, as NFStream's
//!   `decode_tunnels`) GTP-U T-PDUs (UDP port 2152) are decapsulated with `tunnel_id` 1,
//!   CAPWAP data packets (UDP 5247) with `tunnel_id` 2 and TZSP (UDP 37008) with `tunnel_id` 3
//!   (nDPI's `ndpi_packet_tunnel` values); see [`decode_tunnel`]. GRE is not decapsulated (a
//!   protocol 47 flow), as in NFStream.
//! - TCP/UDP ports in host order; ICMP, ICMPv6 and other protocols have ports 0.
//!
//! Where weir departs from NFStream (in each case NFStream reads bytes that are not what it
//! takes them for, or drops a valid packet); of the bundled captures only the first case
//! occurs (`ajp.pcap`, `fuzz-2020-02-16-11740.pcap`):
//! - The EtherType decides. NFStream parses whatever follows as IP when its first nibble is 4
//!   or 6: Cisco FabricPath frames (0x8903) become flows of made-up addresses.
//! - 802.1ad (0x88a8) and 0x9100 outer tags are parsed; NFStream knows only 0x8100. At most
//!   [`MAX_VLAN_TAGS`] tags (NFStream: any number).
//! - IPv4 IHL < 5 is skipped (NFStream reads ports from inside the IP header).
//! - An IPv6 Payload Length beyond the frame on the wire is skipped (as NFStream does), and
//!   so is a TCP/UDP header cut by the snap length (NFStream reads past the captured bytes).
//!   A TCP/UDP header cut on the wire (IPv4) gives ports 0 (NFStream reads past the frame).
//! - TCP or UDP whose IP-stated length is shorter than its fixed header is skipped unless the
//!   packet is a first fragment (NFStream makes any of them a flow with ports 0).
//! - An IPv6 packet cut by a snap length is parsed like an IPv4 one (NFStream skips any IPv6
//!   packet not captured whole); IPv6 No Next Header (59) is a protocol 59 packet (NFStream
//!   skips it).
//! - GTP-U under an outer IPv6 header is decapsulated: NFStream looks for that UDP header at
//!   the IPv6 header's offset plus the remaining payload length, not after the extension
//!   headers.
//! - CAPWAP and TZSP are decoded by their headers' fields where NFStream assumes a fixed
//!   layout ([`decode_tunnel`] lists the cases); a datagram that carries no IP packet weir can
//!   read stays in the outer UDP flow, with `tunnel_id` 0.

mod skip;
mod tunnel;

pub use skip::{SkipCounters, SkipReason};
use tunnel::decode_tunnel;

use crate::wire::capwap::{self, CapwapPacket, WlanDataFrame};
use crate::wire::ethernet::{self, ethertype, EthernetFrame, LlcSnap};
use crate::wire::gtp::{self, GtpuPacket};
use crate::wire::icmp;
use crate::wire::ipv4::{protocol, Ipv4Packet};
use crate::wire::ipv6::{self, ExtHeader, Ipv6Packet};
use crate::wire::mpls::{self, MplsEntry};
use crate::wire::pppoe::{self, ppp_protocol, PppoeSession};
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::tzsp::{self, TzspPacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::vlan::{self, VlanTag};
use crate::wire::Error as WireError;
use std::sync::atomic::{AtomicBool, Ordering};
use weir_plugin_api::{
    FlowKeyV1, PacketV1, WEIR_NO_OFFSET, WEIR_PKT_IP_FRAGMENT, WEIR_PKT_TUNNELED,
};

/// Most VLAN tags accepted in one frame: 802.1ad service tag plus 802.1Q customer tag. Deeper
/// stacks are not standard and are skipped as [`SkipReason::VlanTooDeep`].
pub const MAX_VLAN_TAGS: usize = 2;
/// Most MPLS label stack entries accepted before the bottom of stack.
pub const MAX_MPLS_LABELS: usize = 8;
/// Most IP headers in one frame (outer plus nested IP-in-IP / GTP-U levels).
pub const MAX_IP_DEPTH: usize = 4;
/// `tunnel_id` of flows carried in GTP-U, as NFStream's `ndpi_gtp_tunnel`.
pub const TUNNEL_GTP: u32 = 1;
/// `tunnel_id` of flows carried in CAPWAP data packets, as nDPI's `ndpi_capwap_tunnel`.
pub const TUNNEL_CAPWAP: u32 = 2;
/// `tunnel_id` of flows carried in TZSP, as nDPI's `ndpi_tzsp_tunnel`.
pub const TUNNEL_TZSP: u32 = 3;

/// Whether GTP-U, CAPWAP and TZSP are decapsulated (`flows.decode_tunnels`). Set once at start,
/// before any worker runs, and read with one relaxed load per packet; IP-in-IP is always
/// decapsulated (it has no ports to make an outer flow of).
static DECODE_TUNNELS: AtomicBool = AtomicBool::new(true);

/// Set `flows.decode_tunnels` for every later [`parse`].
pub fn set_decode_tunnels(on: bool) {
    DECODE_TUNNELS.store(on, Ordering::Relaxed);
}

/// What [`parse_with`] decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// Decapsulate GTP-U, CAPWAP data and TZSP (else their packets count for the outer UDP
    /// flow).
    pub decode_tunnels: bool,
}

impl ParseOptions {
    /// The options [`set_decode_tunnels`] set (default: tunnels decoded).
    #[inline]
    pub fn current() -> ParseOptions {
        ParseOptions {
            decode_tunnels: DECODE_TUNNELS.load(Ordering::Relaxed),
        }
    }
}

/// True when `pkt` (parsed) is an IPv4 packet whose Total Length runs past the frame on the
/// wire: the frame was cut on the wire or by the capturing device.
#[inline]
pub fn ipv4_truncated(pkt: &PacketV1) -> bool {
    pkt.ip_version == 4
        && usize::from(pkt.l3_off) + usize::from(pkt.ip_len)
            > (pkt.wire_len as usize).max(pkt.cap_len as usize)
}

/// What an L2 walk found: where the IP header starts and which version the L2 announced
/// (`None` when only the version nibble can tell, after MPLS).
struct L3Start {
    off: usize,
    version: Option<u8>,
}

/// Parse one Ethernet frame.
///
/// `frame` is the captured bytes from the Ethernet header; `wire_len` the frame's length on the
/// wire (what byte counters count; may exceed `frame.len()` under a snap length); `ts_ns` the
/// packet time. On success `pkt` describes the innermost IP packet (its `data` points into
/// `frame`, so it is valid as long as `frame` is; `direction` is left 0 for the flow table) and
/// `key` is the unoriented flow key. On error `pkt` and `key` hold partial values and must not
/// be used.
#[inline]
pub fn parse(
    frame: &[u8],
    wire_len: u32,
    ts_ns: u64,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Result<(), SkipReason> {
    parse_with(ParseOptions::current(), frame, wire_len, ts_ns, pkt, key)
}

/// [`parse`] with explicit options.
pub fn parse_with(
    opts: ParseOptions,
    frame: &[u8],
    wire_len: u32,
    ts_ns: u64,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Result<(), SkipReason> {
    *pkt = PacketV1::EMPTY;
    *key = FlowKeyV1::default();
    pkt.ts_ns = ts_ns;
    pkt.data = frame.as_ptr();
    pkt.wire_len = wire_len;
    if frame.len() > usize::from(u16::MAX) {
        return Err(SkipReason::FrameTooLong);
    }
    pkt.cap_len = frame.len() as u32;
    // Bytes of the frame on the wire; a capture never holds more than the wire carried, but a
    // broken capture header may say so: trust the larger.
    let wire = (wire_len as usize).max(frame.len());

    let l3 = parse_l2(frame, 0, key)?;
    let cx = Cx { frame, wire, opts };
    parse_ip(&cx, l3.off, l3.version, 0, pkt, key)
}

/// What every level of one frame's parse shares.
struct Cx<'a> {
    frame: &'a [u8],
    /// Bytes of the frame on the wire.
    wire: usize,
    opts: ParseOptions,
}

/// Ethernet, LLC/SNAP, VLAN tags, MPLS, PPPoE: find the IP header of the Ethernet frame that
/// starts at `at` (0, or an Ethernet frame inside a tunnel).
fn parse_l2(frame: &[u8], at: usize, key: &mut FlowKeyV1) -> Result<L3Start, SkipReason> {
    let eth = EthernetFrame::new_checked(frame.get(at..).unwrap_or(&[]))
        .map_err(|_| SkipReason::TruncatedEthernet)?;
    let mut off = at + ethernet::HEADER_LEN;
    let mut etype = eth.ethertype();
    if eth.is_8023_length() {
        let llc = LlcSnap::new_checked(&frame[off..]).map_err(|_| SkipReason::TruncatedL2)?;
        if !llc.is_snap() || llc.oui() != 0 {
            return Err(SkipReason::NotIp);
        }
        etype = llc.ethertype();
        off += ethernet::LLC_SNAP_LEN;
    }

    let mut tags = 0;
    while vlan::is_vlan_tpid(etype) {
        if tags == MAX_VLAN_TAGS {
            return Err(SkipReason::VlanTooDeep);
        }
        let tag = VlanTag::new_checked(&frame[off..]).map_err(|_| SkipReason::TruncatedL2)?;
        // NFStream keeps the last tag's VID: the innermost (customer) VLAN.
        key.vlan_id = tag.vid();
        etype = tag.ethertype();
        off += vlan::TAG_LEN;
        tags += 1;
    }

    match etype {
        ethertype::IPV4 => Ok(L3Start {
            off,
            version: Some(4),
        }),
        ethertype::IPV6 => Ok(L3Start {
            off,
            version: Some(6),
        }),
        ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST => {
            for _ in 0..MAX_MPLS_LABELS {
                let entry =
                    MplsEntry::new_checked(&frame[off..]).map_err(|_| SkipReason::TruncatedL2)?;
                off += mpls::ENTRY_LEN;
                if entry.bottom_of_stack() {
                    // RFC 3032 leaves the payload type to the label; like NFStream (and most
                    // monitors) look at the version nibble.
                    return match frame.get(off).map(|b| b >> 4) {
                        Some(4) => Ok(L3Start {
                            off,
                            version: Some(4),
                        }),
                        Some(6) => Ok(L3Start {
                            off,
                            version: Some(6),
                        }),
                        Some(_) => Err(SkipReason::NotIp),
                        None => Err(SkipReason::TruncatedL2),
                    };
                }
            }
            Err(SkipReason::MplsTooDeep)
        }
        ethertype::PPPOE_SESSION => {
            let s =
                PppoeSession::new_checked(&frame[off..]).map_err(|_| SkipReason::TruncatedL2)?;
            off += pppoe::HEADER_LEN;
            match s.ppp_protocol() {
                ppp_protocol::IPV4 => Ok(L3Start {
                    off,
                    version: Some(4),
                }),
                ppp_protocol::IPV6 => Ok(L3Start {
                    off,
                    version: Some(6),
                }),
                _ => Err(SkipReason::NotIp),
            }
        }
        _ => Err(SkipReason::NotIp),
    }
}

/// One IP header at `off` (and, through tunnels, the ones inside it), then the transport.
fn parse_ip(
    cx: &Cx<'_>,
    off: usize,
    version: Option<u8>,
    depth: usize,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Result<(), SkipReason> {
    if depth == MAX_IP_DEPTH {
        return Err(SkipReason::TunnelTooDeep);
    }
    let (frame, wire) = (cx.frame, cx.wire);
    if depth > 0 {
        pkt.flags |= WEIR_PKT_TUNNELED;
    }
    let nibble = match frame.get(off) {
        Some(b) => b >> 4,
        None => {
            return Err(match version {
                Some(6) => SkipReason::TruncatedIpv6,
                _ => SkipReason::TruncatedIpv4,
            })
        }
    };
    let version = version.unwrap_or(nibble);
    if version != nibble {
        return Err(SkipReason::BadIpVersion);
    }
    // The offsets below are < frame.len() <= u16::MAX (checked in `parse`).
    pkt.l3_off = off as u16;
    // (protocol, where the transport starts, its length by the IP header, its bytes on the wire)
    let (proto, l4_off, l4_len, l4_wire) = match version {
        4 => {
            let ip = Ipv4Packet::new_checked(&frame[off..]).map_err(|e| match e {
                WireError::Malformed if frame[off] & 0x0f < 5 => SkipReason::BadIpv4Ihl,
                WireError::Malformed => SkipReason::BadIpVersion,
                WireError::Truncated => SkipReason::TruncatedIpv4,
            })?;
            let hlen = ip.header_len();
            let total = usize::from(ip.total_len());
            if total < hlen {
                return Err(SkipReason::Ipv4TotalLength);
            }
            // A Total Length past the frame on the wire: the frame was cut on the wire or by
            // the capturing device. The packet was still sent: it counts for its flow with
            // its wire length (as in NFStream), from what the wire carried
            // (`ipv4_truncated` counts these).
            let on_wire = total.min(wire - off);
            if ip.frag_offset() != 0 {
                return Err(SkipReason::Ipv4Fragment);
            }
            if ip.more_frags() {
                pkt.flags |= WEIR_PKT_IP_FRAGMENT;
            }
            pkt.ip_version = 4;
            pkt.ip_len = ip.total_len();
            pkt.ttl = ip.ttl();
            key.ip_version = 4;
            key.src_ip = [0; 16];
            key.dst_ip = [0; 16];
            key.src_ip[..4].copy_from_slice(&ip.src_addr());
            key.dst_ip[..4].copy_from_slice(&ip.dst_addr());
            (
                ip.protocol(),
                off + hlen,
                total - hlen,
                on_wire.saturating_sub(hlen),
            )
        }
        6 => {
            let ip = Ipv6Packet::new_checked(&frame[off..]).map_err(|e| match e {
                WireError::Malformed => SkipReason::BadIpVersion,
                WireError::Truncated => SkipReason::TruncatedIpv6,
            })?;
            let plen = usize::from(ip.payload_len());
            if off + ipv6::HEADER_LEN + plen > wire {
                return Err(SkipReason::Ipv6PayloadLength);
            }
            pkt.ip_version = 6;
            pkt.ip_len = (ipv6::HEADER_LEN + plen).min(usize::from(u16::MAX)) as u16;
            pkt.ttl = ip.hop_limit();
            key.ip_version = 6;
            key.src_ip = ip.src_addr();
            key.dst_ip = ip.dst_addr();
            let (proto, ext_len) =
                walk_ipv6_extensions(frame, off + ipv6::HEADER_LEN, plen, ip.next_header(), pkt)?;
            let l4_len = plen - ext_len;
            (proto, off + ipv6::HEADER_LEN + ext_len, l4_len, l4_len)
        }
        _ => return Err(SkipReason::NotIp),
    };

    match proto {
        protocol::IPIP => parse_ip(cx, l4_off, Some(4), depth + 1, pkt, key),
        protocol::IPV6 => parse_ip(cx, l4_off, Some(6), depth + 1, pkt, key),
        _ => {
            let l4 = L4 {
                proto,
                off: l4_off,
                len: l4_len,
                wire: l4_wire,
            };
            parse_transport(cx, l4, depth, pkt, key)
        }
    }
}

/// Walk the IPv6 extension headers starting at `at` (right after the fixed header), within
/// `plen` bytes of payload. Returns the upper-layer protocol and the bytes of extension headers.
fn walk_ipv6_extensions(
    frame: &[u8],
    at: usize,
    plen: usize,
    first: u8,
    pkt: &mut PacketV1,
) -> Result<(u8, usize), SkipReason> {
    let mut next = first;
    let mut used = 0usize;
    // Each header is at least 8 bytes and must fit in plen <= 65535: the loop is bounded.
    while ipv6::is_walked_extension(next) {
        let rest = frame.get(at + used..).unwrap_or(&[]);
        // The length the header states, as far as its Hdr Ext Len octet was captured.
        let stated = match rest.get(1) {
            Some(&l) => ipv6::ext_header_len(next, l),
            None => ipv6::FRAGMENT_HEADER_LEN,
        };
        if used + stated > plen {
            // Runs past the Payload Length: malformed whatever was captured.
            return Err(SkipReason::Ipv6ExtChain);
        }
        // Inside the payload but past the captured bytes: a snap length cut it.
        let h = ExtHeader::new_checked(next, rest).map_err(|_| SkipReason::TruncatedIpv6)?;
        if next == protocol::IPV6_FRAG {
            if h.frag_offset() != 0 {
                return Err(SkipReason::Ipv6Fragment);
            }
            if h.more_frags() {
                pkt.flags |= WEIR_PKT_IP_FRAGMENT;
            }
        }
        used += h.len();
        next = h.next_header();
    }
    Ok((next, used))
}

/// Where the transport segment is: its protocol, offset, the length the IP header states, and
/// how much of that was on the wire (less than `len` only for a packet cut on the wire).
#[derive(Clone, Copy)]
struct L4 {
    proto: u8,
    off: usize,
    len: usize,
    wire: usize,
}

/// Fill the transport fields.
fn parse_transport(
    cx: &Cx<'_>,
    l4: L4,
    depth: usize,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Result<(), SkipReason> {
    let frame = cx.frame;
    let L4 {
        proto,
        off: l4_off,
        len: l4_len,
        wire: l4_wire,
    } = l4;
    pkt.protocol = proto;
    key.protocol = proto;
    let bytes = frame.get(l4_off..).unwrap_or(&[]);
    // The fixed TCP/UDP header is not in the packet: a first fragment that ends inside it, or
    // a packet cut on the wire inside it. The packet belongs to a flow with ports 0 (as
    // NFStream's); any other packet whose IP header leaves no room for it is malformed.
    let first_fragment = pkt.flags & WEIR_PKT_IP_FRAGMENT != 0;
    let no_ports = |min: usize| -> Result<bool, SkipReason> {
        if l4_len < min {
            if first_fragment {
                return Ok(true);
            }
            return Err(SkipReason::BadL4Length);
        }
        Ok(l4_wire < min)
    };
    match proto {
        protocol::TCP => {
            if no_ports(tcp::MIN_HEADER_LEN)? {
                return Ok(());
            }
            let t = TcpPacket::new_checked(bytes).map_err(|_| SkipReason::TruncatedL4)?;
            key.src_port = t.src_port();
            key.dst_port = t.dst_port();
            pkt.l4_off = l4_off as u16;
            pkt.tcp_flags = t.flags();
            pkt.tcp_seq = t.seq_number();
            pkt.tcp_ack = t.ack_number();
            pkt.tcp_window = t.window();
            let hlen = t.header_len();
            pkt.tcp_hdr_len = hlen as u16;
            // A data offset below 5 or beyond the segment is malformed: the packet still
            // counts for its flow (as in NFStream) but has no payload to offer.
            if (tcp::MIN_HEADER_LEN..=l4_wire).contains(&hlen) {
                set_payload(pkt, l4_off + hlen, l4_wire - hlen);
            }
            Ok(())
        }
        protocol::UDP => {
            if no_ports(udp::HEADER_LEN)? {
                return Ok(());
            }
            let u = UdpPacket::new_checked(bytes).map_err(|_| SkipReason::TruncatedL4)?;
            if cx.opts.decode_tunnels && key.tunnel_id == 0 {
                if let Some(r) = decode_tunnel(cx, &u, l4_off + udp::HEADER_LEN, depth, pkt, key) {
                    return r;
                }
            }
            key.src_port = u.src_port();
            key.dst_port = u.dst_port();
            pkt.l4_off = l4_off as u16;
            set_payload(pkt, l4_off + udp::HEADER_LEN, l4_wire - udp::HEADER_LEN);
            Ok(())
        }
        protocol::ICMP | protocol::ICMPV6 => {
            if icmp::IcmpPacket::new_checked(bytes).is_ok() && l4_wire >= icmp::MIN_HEADER_LEN {
                pkt.l4_off = l4_off as u16;
                if l4_wire >= icmp::HEADER_LEN {
                    set_payload(pkt, l4_off + icmp::HEADER_LEN, l4_wire - icmp::HEADER_LEN);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[inline]
fn set_payload(pkt: &mut PacketV1, off: usize, len: usize) {
    pkt.payload_off = if off <= usize::from(u16::MAX - 1) {
        off as u16
    } else {
        WEIR_NO_OFFSET
    };
    pkt.payload_len = len.min(usize::from(u16::MAX)) as u16;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(etype: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&etype.to_be_bytes());
        f
    }

    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = 20 + payload.len();
        let mut h = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            proto,
            0,
            0,
        ];
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        h.extend_from_slice(payload);
        h
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = 8 + payload.len();
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&(len as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn run(f: &[u8]) -> Result<(PacketV1, FlowKeyV1), SkipReason> {
        let mut p = PacketV1::EMPTY;
        let mut k = FlowKeyV1::default();
        let opts = ParseOptions {
            decode_tunnels: true,
        };
        parse_with(opts, f, f.len() as u32, 0, &mut p, &mut k).map(|_| (p, k))
    }

    #[test]
    fn udp_over_ipv4() {
        let mut f = eth(0x0800);
        f.extend(ipv4(17, &udp(1234, 53, b"hello")));
        let (p, k) = run(&f).unwrap();
        assert_eq!(
            (k.src_port, k.dst_port, k.protocol, k.ip_version),
            (1234, 53, 17, 4)
        );
        assert_eq!(&k.src_ip[..4], &[10, 0, 0, 1]);
        assert_eq!(
            (p.l3_off, p.l4_off, p.payload_off, p.payload_len),
            (14, 34, 42, 5)
        );
        assert_eq!(p.ip_len, 33);
    }

    #[test]
    fn qinq_takes_innermost_vid() {
        let mut f = eth(0x88a8);
        f.extend_from_slice(&[0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00]);
        f.extend(ipv4(17, &udp(1, 2, b"")));
        assert_eq!(run(&f).unwrap().1.vlan_id, 200);
        let mut deep = eth(0x8100);
        deep.extend_from_slice(&[0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0]);
        deep.extend(ipv4(17, &udp(1, 2, b"")));
        assert_eq!(run(&deep).unwrap_err(), SkipReason::VlanTooDeep);
    }

    #[test]
    fn gtp_u_sets_tunnel_id() {
        let inner = ipv4(
            6,
            &[
                0, 80, 0, 81, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
            ],
        );
        let mut g = vec![0x30, 0xff, 0, inner.len() as u8, 0, 0, 0, 1];
        g.extend(inner);
        let mut f = eth(0x0800);
        f.extend(ipv4(17, &udp(2152, 2152, &g)));
        let (p, k) = run(&f).unwrap();
        assert_eq!(
            (k.tunnel_id, k.protocol, k.src_port, k.dst_port),
            (1, 6, 80, 81)
        );
        assert_eq!(p.tcp_flags, 0x02);
        assert_ne!(p.flags & WEIR_PKT_TUNNELED, 0);
    }

    #[test]
    fn fragments() {
        let mut f = eth(0x0800);
        let mut ip = ipv4(17, &udp(1, 2, b"xx"));
        ip[6] = 0x00;
        ip[7] = 0x10;
        f.extend(ip);
        assert_eq!(run(&f).unwrap_err(), SkipReason::Ipv4Fragment);
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, payload.len() as u8, next, 64];
        h.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn mpls_pppoe_and_snap_reach_ip() {
        let inner = ipv4(17, &udp(7, 9, b"m"));
        // Two MPLS labels, the second bottom of stack.
        let mut f = eth(0x8847);
        f.extend_from_slice(&[0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64]);
        f.extend(inner.clone());
        let (p, k) = run(&f).unwrap();
        assert_eq!((p.l3_off, k.src_port, k.dst_port), (22, 7, 9));
        // PPPoE session carrying PPP IPv4.
        let mut f = eth(0x8864);
        f.extend_from_slice(&[
            0x11,
            0x00,
            0x00,
            0x01,
            0x00,
            (inner.len() + 2) as u8,
            0x00,
            0x21,
        ]);
        f.extend(inner.clone());
        assert_eq!(run(&f).unwrap().0.l3_off, 22);
        // PPPoE carrying something else (LCP).
        let mut f = eth(0x8864);
        f.extend_from_slice(&[0x11, 0x00, 0x00, 0x01, 0x00, 0x10, 0xc0, 0x21]);
        f.extend(inner.clone());
        assert_eq!(run(&f).unwrap_err(), SkipReason::NotIp);
        // 802.3 length + LLC/SNAP with the IPv4 EtherType.
        let mut f = eth((inner.len() + 8) as u16);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend(inner.clone());
        assert_eq!(run(&f).unwrap().0.l3_off, 22);
        // 802.3 with a plain LLC header (spanning tree).
        let mut f = eth(38);
        f.extend_from_slice(&[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
        f.extend(inner);
        assert_eq!(run(&f).unwrap_err(), SkipReason::NotIp);
    }

    #[test]
    fn ip_in_ip_takes_the_innermost_header() {
        let tcp_syn = [
            0, 1, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0, 0, 0, 0, 0,
        ];
        // 6in4
        let mut f = eth(0x0800);
        f.extend(ipv4(41, &ipv6(6, &tcp_syn)));
        let (p, k) = run(&f).unwrap();
        assert_eq!(
            (k.ip_version, k.protocol, k.src_port, k.tunnel_id),
            (6, 6, 1, 0)
        );
        assert_eq!(
            (p.l3_off, p.l4_off, p.tcp_hdr_len, p.tcp_seq),
            (34, 74, 20, 9)
        );
        assert_ne!(p.flags & WEIR_PKT_TUNNELED, 0);
        // 4in6
        let mut f = eth(0x86dd);
        f.extend(ipv6(4, &ipv4(6, &tcp_syn)));
        let (p, k) = run(&f).unwrap();
        assert_eq!((k.ip_version, k.protocol, k.dst_port), (4, 6, 2));
        assert_eq!((p.l3_off, p.ip_len, p.ttl), (54, 40, 64));
        // Plain IPv6 ICMPv6 echo: ports 0, payload after 8 bytes.
        let mut f = eth(0x86dd);
        f.extend(ipv6(
            58,
            &[128, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g'],
        ));
        let (p, k) = run(&f).unwrap();
        assert_eq!((k.protocol, k.src_port, k.dst_port), (58, 0, 0));
        assert_eq!((p.l4_off, p.payload_off, p.payload_len), (54, 62, 4));
    }

    fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x02;
        t
    }

    #[test]
    fn ipv4_cut_on_the_wire_counts_with_its_wire_length() {
        // Total Length says 137 bytes; the wire carried 66 (telnet.pcap's frames).
        let mut f = eth(0x0800);
        let mut ip = ipv4(6, &tcp_syn(1550, 23));
        ip[2..4].copy_from_slice(&137u16.to_be_bytes());
        f.extend(ip);
        let (p, k) = run(&f).unwrap();
        assert_eq!((k.src_port, k.dst_port, p.wire_len), (1550, 23, 54));
        assert!(ipv4_truncated(&p));
        let mut c = SkipCounters::new();
        c.note(&p);
        assert_eq!((c.ipv4_truncated, c.total()), (1, 0));
        // Cut inside the TCP header: the flow has ports 0.
        let (_, k) = run(&f[..14 + 20 + 10]).unwrap();
        assert_eq!((k.protocol, k.src_port, k.dst_port), (6, 0, 0));
        // A Total Length below the header is still malformed.
        let mut g = f.clone();
        g[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(run(&g).unwrap_err(), SkipReason::Ipv4TotalLength);
        // A whole packet is not truncated.
        let mut h = eth(0x0800);
        h.extend(ipv4(6, &tcp_syn(1, 2)));
        assert!(!ipv4_truncated(&run(&h).unwrap().0));
    }

    #[test]
    fn first_fragment_without_the_whole_l4_header_has_ports_0() {
        // More Fragments, offset 0, 8 bytes of TCP: the rest of the header is in the next one.
        let mut f = eth(0x0800);
        let mut ip = ipv4(6, &tcp_syn(80, 81)[..8]);
        ip[6] = 0x20;
        f.extend(ip.clone());
        let (p, k) = run(&f).unwrap();
        assert_eq!((k.protocol, k.src_port, k.dst_port), (6, 0, 0));
        assert_ne!(p.flags & WEIR_PKT_IP_FRAGMENT, 0);
        // The same without More Fragments is a malformed segment.
        let mut g = eth(0x0800);
        ip[6] = 0;
        g.extend(ip);
        assert_eq!(run(&g).unwrap_err(), SkipReason::BadL4Length);
    }

    fn capwap_80211(inner: &[u8], swapped_fc: bool) -> Vec<u8> {
        // CAPWAP: HLEN 4 (16 bytes), WBID 1, T and W set.
        let mut c = vec![0x00, 0x20, 0x03, 0x20, 0, 0, 0, 0];
        c.extend_from_slice(&[0; 8]);
        // 802.11 data frame to the DS, 24-byte header.
        let mut w = vec![0u8; 24];
        w[0] = 0x08;
        w[1] = 0x01;
        if swapped_fc {
            w.swap(0, 1);
        }
        c.extend(w);
        c.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        c.extend_from_slice(inner);
        c
    }

    #[test]
    fn capwap_and_tzsp_are_decapsulated_unless_told_not_to() {
        let inner = ipv4(6, &tcp_syn(47025, 443));
        for swapped in [false, true] {
            let mut f = eth(0x0800);
            f.extend(ipv4(17, &udp(41264, 5247, &capwap_80211(&inner, swapped))));
            let (p, k) = run(&f).unwrap();
            assert_eq!(
                (k.tunnel_id, k.protocol, k.src_port, k.dst_port),
                (TUNNEL_CAPWAP, 6, 47025, 443)
            );
            assert_ne!(p.flags & WEIR_PKT_TUNNELED, 0);
            // Tunnel decoding off: the outer UDP flow.
            let mut pk = PacketV1::EMPTY;
            let mut key = FlowKeyV1::default();
            let off = ParseOptions {
                decode_tunnels: false,
            };
            parse_with(off, &f, f.len() as u32, 0, &mut pk, &mut key).unwrap();
            assert_eq!((key.tunnel_id, key.dst_port), (0, 5247));
        }
        // The control channel carries no frames.
        let mut f = eth(0x0800);
        f.extend(ipv4(17, &udp(41264, 5246, &capwap_80211(&inner, false))));
        assert_eq!(run(&f).unwrap().1.dst_port, 5246);
        // TZSP: version 1, received, Ethernet; an RSSI tag, END; then a VLAN-tagged frame.
        let mut t = vec![1, 0, 0, 1, 10, 1, 0xc4, 1];
        t.extend(eth(0x8100));
        t.extend_from_slice(&[0x00, 0x07, 0x08, 0x00]);
        t.extend(inner.clone());
        let mut f = eth(0x0800);
        f.extend(ipv4(17, &udp(37008, 37008, &t)));
        let (_, k) = run(&f).unwrap();
        assert_eq!(
            (k.tunnel_id, k.vlan_id, k.src_port, k.dst_port),
            (TUNNEL_TZSP, 7, 47025, 443)
        );
        // A TZSP datagram that is not a received Ethernet frame stays the outer flow's.
        t[3] = 18;
        let mut f = eth(0x0800);
        f.extend(ipv4(17, &udp(37008, 37008, &t)));
        assert_eq!(run(&f).unwrap().1.tunnel_id, 0);
    }

    #[test]
    fn skip_names_are_unique_snake_case() {
        let names: Vec<_> = SkipCounters::names().collect();
        assert_eq!(names.len(), SkipReason::COUNT);
        for (i, n) in names.iter().enumerate() {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()));
            assert!(!names[..i].contains(n), "duplicate {n}");
            assert_eq!(SkipReason::ALL[i].index(), i);
        }
    }
}
