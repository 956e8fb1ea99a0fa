//! Why a frame is skipped ([`SkipReason`], each with a stable name) and a worker's counts
//! of them ([`SkipCounters`]).

use super::ipv4_truncated;
use weir_plugin_api::PacketV1;

macro_rules! skip_reasons {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// Why a frame was not turned into a packet of a flow. Each reason has a stable
        /// snake_case name ([`SkipReason::name`]) used in metrics and logs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum SkipReason {
            $( $(#[$doc])* $variant, )*
        }

        impl SkipReason {
            /// Every reason, in index order.
            pub const ALL: &'static [SkipReason] = &[$(SkipReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The stable snake_case name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( SkipReason::$variant => $name, )*
                }
            }

            /// Index into [`SkipCounters`].
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

skip_reasons! {
    /// The frame is not IP: ARP, LLDP, STP, 802.3 without SNAP, an MPLS or PPPoE payload that
    /// is not IP, a GTP-U T-PDU that is not IP. (NFStream also decides by the IP version
    /// nibble alone, whatever the EtherType; weir trusts the EtherType.)
    NotIp = "not_ip",
    /// Fewer than 14 bytes: no Ethernet header.
    TruncatedEthernet = "truncated_ethernet",
    /// A VLAN tag, LLC/SNAP header, MPLS entry or PPPoE header cut by the end of the capture.
    TruncatedL2 = "truncated_l2",
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    VlanTooDeep = "vlan_too_deep",
    /// More than [`MAX_MPLS_LABELS`] MPLS labels without a bottom of stack.
    MplsTooDeep = "mpls_too_deep",
    /// The IP version nibble does not match the EtherType / next header that announced it.
    BadIpVersion = "bad_ip_version",
    /// The IPv4 header (20 bytes or IHL * 4) is cut by the end of the capture.
    TruncatedIpv4 = "truncated_ipv4",
    /// IPv4 IHL < 5 (RFC 791). NFStream accepts these and reads ports from inside the IP
    /// header; weir skips them.
    BadIpv4Ihl = "bad_ipv4_ihl",
    /// IPv4 Total Length smaller than the header. (A Total Length larger than the frame on the
    /// wire is a packet cut on the wire: it counts for its flow, and in
    /// [`SkipCounters::ipv4_truncated`].)
    Ipv4TotalLength = "ipv4_total_length",
    /// A non-first IPv4 fragment (offset != 0): its ports are unknown.
    Ipv4Fragment = "ipv4_fragment",
    /// The 40-byte IPv6 header, or an extension header before the upper layer, is cut by the
    /// end of the capture.
    TruncatedIpv6 = "truncated_ipv6",
    /// IPv6 Payload Length larger than the frame carried on the wire.
    Ipv6PayloadLength = "ipv6_payload_length",
    /// An IPv6 extension header runs past the Payload Length.
    Ipv6ExtChain = "ipv6_ext_chain",
    /// A non-first IPv6 fragment (Fragment header offset != 0).
    Ipv6Fragment = "ipv6_fragment",
    /// More than [`MAX_IP_DEPTH`] nested IP headers.
    TunnelTooDeep = "tunnel_too_deep",
    /// The IP header says the TCP/UDP segment is shorter than its fixed header.
    BadL4Length = "bad_l4_length",
    /// The fixed TCP (20) or UDP (8) header is cut by the end of the capture. NFStream reads
    /// these fields past the captured bytes; weir skips.
    TruncatedL4 = "truncated_l4",
    /// A GTP-U T-PDU (or a CAPWAP or TZSP frame) whose inner IP header is malformed or
    /// truncated.
    BadTunnel = "bad_tunnel",
    /// The frame is longer than 65535 bytes: offsets in the packet view are 16-bit.
    FrameTooLong = "frame_too_long",
}

impl core::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-worker counts of skipped frames, one per [`SkipReason`]. Plain integers: a worker owns
/// its counters and the metrics side reads snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipCounters {
    pub counts: [u64; SkipReason::COUNT],
    /// Not a skip: IPv4 packets longer (by their Total Length) than the frame on the wire,
    /// counted for their flow with the bytes that were on the wire.
    pub ipv4_truncated: u64,
}

impl SkipCounters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one skipped frame.
    #[inline]
    pub fn count(&mut self, reason: SkipReason) {
        self.counts[reason.index()] += 1;
    }

    /// Note what a parsed packet shows that is worth a counter (a packet cut on the wire).
    #[inline]
    pub fn note(&mut self, pkt: &PacketV1) {
        self.ipv4_truncated += u64::from(ipv4_truncated(pkt));
    }

    /// The count for one reason.
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Reason names, in the same order as `counts`.
    pub fn names() -> impl Iterator<Item = &'static str> {
        SkipReason::ALL.iter().map(|r| r.name())
    }

    /// (name, count) pairs in index order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(move |r| (r.name(), self.counts[r.index()]))
    }

    /// Add another worker's counts.
    pub fn merge(&mut self, other: &SkipCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.ipv4_truncated += other.ipv4_truncated;
    }
}
