//! Tunnels weir decodes inside UDP (GTP-U, CAPWAP, TZSP): the inner packet becomes the flow,
//! with the tunnel's `tunnel_id`.

use super::*;

/// A UDP payload at `inner_at` that is a tunnel weir decodes: `Some` with the inner packet's
/// parse (the flow is the inner one, with the tunnel's `tunnel_id`), `None` when it is not
/// (the packet is then an ordinary UDP packet of the outer flow).
///
/// - GTP-U T-PDUs on port 2152 (3GPP TS 29.281).
/// - CAPWAP data packets on port 5247 (RFC 5415) carrying an IEEE 802.11 data frame with an
///   LLC/SNAP header (RFC 5416; a Frame Control sent with its octets swapped, as Cisco access
///   points do, is read too) or, with the T bit clear, an Ethernet frame. Keep-alives,
///   fragments after the first, encrypted or body-less 802.11 frames and non-IP payloads stay
///   packets of the outer flow: the access point did send them. (NFStream takes any payload of
///   33 bytes or more for a 24-byte 802.11 header and LLC, whatever its flags say, and drops
///   the packet when what follows is not IP.) Control packets (port 5246) carry no frames.
/// - TZSP on port 37008 carrying an Ethernet frame, after the tag list walked to its END tag.
///   (NFStream jumps to the frame after the first tag, and gives `tunnel_id` 3 to the outer flow
///   of datagrams it cannot decode.)
pub(super) fn decode_tunnel(
    cx: &Cx<'_>,
    u: &UdpPacket<'_>,
    inner_at: usize,
    depth: usize,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Option<Result<(), SkipReason>> {
    let frame = cx.frame;
    let inner = frame.get(inner_at..).unwrap_or(&[]);
    let on = |port: u16| u.src_port() == port || u.dst_port() == port;
    // A malformed inner IP header is the tunnel's fault.
    let inner_err = |e: SkipReason| match e {
        SkipReason::NotIp | SkipReason::TruncatedIpv4 | SkipReason::TruncatedIpv6 => {
            SkipReason::BadTunnel
        }
        other => other,
    };
    if on(gtp::UDP_PORT) {
        let hlen = gtpu_t_pdu(inner)?;
        key.tunnel_id = TUNNEL_GTP;
        return Some(parse_ip(cx, inner_at + hlen, None, depth + 1, pkt, key).map_err(inner_err));
    }
    if on(capwap::DATA_PORT) {
        let c = CapwapPacket::new_checked(inner).ok()?;
        if c.keep_alive() || (c.fragment() && c.frag_offset() != 0) {
            return None;
        }
        let at = inner_at + c.header_len();
        if !c.native_frame() {
            return ethernet_in_tunnel(cx, at, TUNNEL_CAPWAP, depth, pkt, key);
        }
        if c.wbid() != capwap::WBID_IEEE80211 {
            return None;
        }
        let w = WlanDataFrame::new_checked_either_fc(frame.get(at..).unwrap_or(&[])).ok()?;
        if !w.has_body() || w.protected() {
            return None;
        }
        let llc_at = at + w.header_len();
        let llc = LlcSnap::new_checked(frame.get(llc_at..).unwrap_or(&[])).ok()?;
        let version = match (llc.is_snap() && llc.oui() == 0, llc.ethertype()) {
            (true, ethertype::IPV4) => 4,
            (true, ethertype::IPV6) => 6,
            _ => return None,
        };
        let ip_at = llc_at + ethernet::LLC_SNAP_LEN;
        frame.get(ip_at)?;
        key.tunnel_id = TUNNEL_CAPWAP;
        return Some(parse_ip(cx, ip_at, Some(version), depth + 1, pkt, key).map_err(inner_err));
    }
    if on(tzsp::UDP_PORT) {
        let t = TzspPacket::new_checked(inner).ok()?;
        if t.packet_type() != tzsp::TYPE_RECEIVED || t.encapsulation() != tzsp::ENCAP_ETHERNET {
            return None;
        }
        return ethernet_in_tunnel(cx, inner_at + t.header_len(), TUNNEL_TZSP, depth, pkt, key);
    }
    None
}

/// An Ethernet frame at `at` inside a tunnel: its IP packet is the flow's when it has one,
/// else `None` (the outer flow keeps the packet).
pub(super) fn ethernet_in_tunnel(
    cx: &Cx<'_>,
    at: usize,
    tunnel_id: u32,
    depth: usize,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Option<Result<(), SkipReason>> {
    let mut inner_key = *key;
    let l3 = parse_l2(cx.frame, at, &mut inner_key).ok()?;
    // The inner frame's VLAN tags, if any, name the flow's VLAN (NFStream re-reads the link
    // layer the same way).
    *key = inner_key;
    key.tunnel_id = tunnel_id;
    Some(
        parse_ip(cx, l3.off, l3.version, depth + 1, pkt, key).map_err(|e| match e {
            SkipReason::NotIp | SkipReason::TruncatedIpv4 | SkipReason::TruncatedIpv6 => {
                SkipReason::BadTunnel
            }
            other => other,
        }),
    )
}

/// If `buf` starts with a GTPv1-U T-PDU header with a packet after it, the header's length;
/// `None` otherwise, and the packet is then an ordinary UDP packet of the outer flow (NFStream
/// does the same, also for a T-PDU whose extension chain is broken).
pub(super) fn gtpu_t_pdu(buf: &[u8]) -> Option<usize> {
    // NFStream looks only when more than the 8 mandatory bytes are captured.
    if buf.len() <= gtp::MIN_HEADER_LEN || buf[0] >> 5 != 1 || buf[1] != gtp::MSG_T_PDU {
        return None;
    }
    match GtpuPacket::new_checked(buf) {
        Ok(g) if g.header_len() < buf.len() => Some(g.header_len()),
        _ => None,
    }
}
