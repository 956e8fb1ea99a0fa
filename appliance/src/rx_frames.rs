//! Receiving whole frames on live ports: each port's MTU (`ports[].mtu`, else the device's),
//! the mbuf size or scattered RX that receives frames of that size whole, and what a worker
//! does with a frame that arrives in several mbufs (copies it into one preallocated buffer, so
//! parsing and plugins see one contiguous frame) or arrives cut (counts it).
//!
//! net_af_packet is special: the kernel copies each frame into a ring slot of `framesz` bytes
//! and cuts what does not fit, and the PMD copies the slot into one mbuf (no scattered RX). Its
//! DPDK MTU is fixed at 1500 whatever the interface's, so its MTU is the kernel interface's, and
//! weir sizes the ring slots (`framesz`, `blocksz`, unless the vdev string gives them) and the
//! mbufs for it.

use crate::config::PortConfig;
use weir_dpdk::{FrameLimits, Mbuf, RxOptions};

/// Bytes of a frame beyond its IP packet that weir receives: an Ethernet header and two VLAN
/// tags (the CRC is stripped by the device).
pub const FRAME_OVERHEAD: u32 = 14 + 2 * 4;

/// The payload of DPDK's default mbuf (`RTE_MBUF_DEFAULT_DATAROOM`).
pub const DEFAULT_MBUF_PAYLOAD: u32 = 2048;

const HEADROOM: u32 = weir_dpdk::sys::RTE_PKTMBUF_HEADROOM;

/// net_af_packet's defaults and layout (DPDK 22.11 `rte_eth_af_packet.c`, Linux TPACKET_V2).
mod af_packet {
    /// The default ring slot (`framesz`).
    pub const DEFAULT_FRAMESZ: u32 = 2048;
    /// Where the frame starts in a slot: the 16-aligned TPACKET2 header and sockaddr_ll plus
    /// 16 bytes, less the 14-byte Ethernet header (`tp_mac`); the kernel cuts a frame at
    /// `framesz - SLOT_OFFSET` bytes.
    pub const SLOT_OFFSET: u32 = 66;
    /// The PMD requires an mbuf payload of at least `framesz - MBUF_SLACK`
    /// (`TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`).
    pub const MBUF_SLACK: u32 = 32;
    pub const PAGE: u32 = 4096;
}

/// True for a net_af_packet vdev.
fn is_af_packet(vdev: &str) -> bool {
    vdev.starts_with("net_af_packet")
}

/// The value of `key=` in a vdev string.
fn vdev_param<'a>(vdev: &'a str, key: &str) -> Option<&'a str> {
    vdev.split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The kernel MTU of a net_af_packet port's interface (in weir's network namespace).
fn kernel_mtu(vdev: &str) -> Option<u32> {
    let iface = vdev_param(vdev, "iface")?;
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The vdev string weir gives EAL for a port: as configured, except that a net_af_packet
/// port whose MTU does not fit the default ring slots gets slots (`framesz`, `blocksz`)
/// that hold a whole frame, unless the string sets them.
pub fn vdev_arg(p: &PortConfig) -> Option<String> {
    let v = p.vdev.as_ref()?;
    if !is_af_packet(v) || vdev_param(v, "framesz").is_some() {
        return Some(v.clone());
    }
    let Some(mtu) = p.mtu.or_else(|| kernel_mtu(v)) else {
        return Some(v.clone());
    };
    let slot = mtu + FRAME_OVERHEAD + af_packet::SLOT_OFFSET;
    if slot <= af_packet::DEFAULT_FRAMESZ {
        return Some(v.clone());
    }
    // One slot per block: blocks are whole pages, and a slot as large as its block wastes
    // nothing.
    let framesz = slot.div_ceil(af_packet::PAGE) * af_packet::PAGE;
    let mut s = format!("{v},framesz={framesz}");
    if vdev_param(v, "blocksz").is_none() {
        s.push_str(&format!(",blocksz={framesz}"));
    }
    Some(s)
}

/// How one port receives frames whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePlan {
    /// The MTU in force.
    pub mtu: u32,
    /// Where it came from: "config", "device" or "interface".
    pub mtu_from: &'static str,
    /// What to configure on the device.
    pub rx: RxOptions,
    /// The mbuf data room (headroom included) this port needs.
    pub data_room: u16,
    /// The longest frame the port can hand over whole; a frame this long or longer is counted
    /// as possibly cut (`u32::MAX`: the device drops, never cuts, what it cannot take).
    pub whole_limit: u32,
    /// Frames may arrive as chained mbufs.
    pub may_chain: bool,
}

impl FramePlan {
    /// The largest frame the MTU allows.
    pub fn max_frame(&self) -> u32 {
        self.mtu + FRAME_OVERHEAD
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        let how = if self.rx.scatter {
            format!(
                "scattered RX over mbufs of {} bytes",
                u32::from(self.data_room) - HEADROOM
            )
        } else {
            format!(
                "mbufs of {} bytes{}",
                u32::from(self.data_room) - HEADROOM,
                if self.may_chain {
                    " (the driver chains larger ones)"
                } else {
                    ""
                }
            )
        };
        format!(
            "mtu {} (from the {}): frames up to {} bytes received whole, {how}",
            self.mtu,
            self.mtu_from,
            self.max_frame()
        )
    }
}

/// The plan of one port: `vdev` is the string given to EAL ([`vdev_arg`]), `driver` the
/// device's driver, `device_mtu` and `limits` what it reports.
pub fn plan(
    p: &PortConfig,
    vdev: Option<&str>,
    driver: &str,
    device_mtu: u16,
    limits: &FrameLimits,
) -> Result<FramePlan, String> {
    let default_room = (DEFAULT_MBUF_PAYLOAD + HEADROOM) as u16;
    if let Some(v) = vdev.filter(|v| is_af_packet(v)) {
        let (mtu, mtu_from) = match (p.mtu, kernel_mtu(v)) {
            (Some(m), _) => (m, "config"),
            (None, Some(m)) => (m, "interface"),
            (None, None) => (u32::from(device_mtu), "device"),
        };
        let framesz = vdev_param(v, "framesz")
            .and_then(|f| f.parse::<u32>().ok())
            .unwrap_or(af_packet::DEFAULT_FRAMESZ);
        let payload = (framesz.saturating_sub(af_packet::MBUF_SLACK)).max(DEFAULT_MBUF_PAYLOAD);
        let room = u16::try_from(payload + HEADROOM)
            .map_err(|_| format!("framesz={framesz} needs mbufs above 64 KiB"))?;
        return Ok(FramePlan {
            mtu,
            mtu_from,
            rx: RxOptions::default(),
            data_room: room,
            whole_limit: framesz.saturating_sub(af_packet::SLOT_OFFSET),
            may_chain: false,
        });
    }
    let (mtu, mtu_from) = match p.mtu {
        Some(m) => (m, "config"),
        None => (u32::from(device_mtu), "device"),
    };
    let mut rx = RxOptions::default();
    if p.mtu.is_some() && mtu != u32::from(device_mtu) {
        if mtu > u32::from(limits.max_mtu) || mtu < u32::from(limits.min_mtu) {
            return Err(format!(
                "mtu {mtu} is outside what {driver} accepts ({}..={}; frames up to {} bytes)",
                limits.min_mtu, limits.max_mtu, limits.max_rx_pktlen
            ));
        }
        rx.mtu = Some(mtu as u16);
    }
    let frame = mtu + FRAME_OVERHEAD;
    // net_pcap chains mbufs for a frame larger than one, whatever it reports.
    let pcap_chains = driver == "net_pcap";
    if frame <= DEFAULT_MBUF_PAYLOAD {
        return Ok(FramePlan {
            mtu,
            mtu_from,
            rx,
            data_room: default_room,
            whole_limit: u32::MAX,
            may_chain: pcap_chains,
        });
    }
    if limits.scatter {
        rx.scatter = true;
        return Ok(FramePlan {
            mtu,
            mtu_from,
            rx,
            data_room: default_room,
            whole_limit: u32::MAX,
            may_chain: true,
        });
    }
    // No scattered RX: one mbuf must hold the largest frame.
    let payload = frame.div_ceil(64) * 64;
    let room = u16::try_from(payload + HEADROOM)
        .map_err(|_| format!("mtu {mtu} needs mbufs above 64 KiB and {driver} cannot scatter"))?;
    Ok(FramePlan {
        mtu,
        mtu_from,
        rx,
        data_room: room,
        whole_limit: u32::MAX,
        may_chain: pcap_chains,
    })
}

/// A worker's buffer for frames that arrive as chained mbufs, allocated once (when one of its
/// ports may chain) with room for a whole burst of the largest frames.
pub struct ChainScratch {
    buf: Vec<u8>,
}

impl ChainScratch {
    /// Room for `burst` frames of `max_frame` bytes (at least 16 KiB each, so a net_pcap
    /// replay of jumbo frames on a 1500-byte port fits too); empty when nothing chains.
    pub fn new(may_chain: bool, burst: usize, max_frame: u32) -> ChainScratch {
        let len = if may_chain {
            burst * (max_frame.max(16 * 1024) as usize)
        } else {
            0
        };
        ChainScratch { buf: vec![0; len] }
    }

    /// The buffer, to be split by [`contiguous`] over one burst.
    pub fn room(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

/// The frame of `m` as one slice: its only segment, or its segments copied to the front of
/// `room` (which moves past them). A chain that does not fit what is left of `room` is cut
/// there and counted in `cut`.
#[inline]
pub fn contiguous<'a>(m: &'a Mbuf, room: &mut &'a mut [u8], cut: &mut u64) -> &'a [u8] {
    if m.nb_segs() <= 1 {
        return m.data();
    }
    let want = m.pkt_len() as usize;
    let rest = std::mem::take(room);
    let n = want.min(rest.len());
    let (head, tail) = rest.split_at_mut(n);
    *room = tail;
    let got = m.copy_to(head);
    if got < want {
        *cut += 1;
    }
    &head[..got]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(vdev: &str, mtu: Option<u32>) -> PortConfig {
        PortConfig {
            pci: None,
            vdev: Some(vdev.into()),
            rx_desc: 1024,
            mtu,
            filter: None,
        }
    }

    fn limits(max_mtu: u16, scatter: bool) -> FrameLimits {
        FrameLimits {
            min_mtu: 68,
            max_mtu,
            max_rx_pktlen: u32::from(max_mtu) + 18,
            scatter,
        }
    }

    #[test]
    fn af_packet_slots_hold_a_whole_jumbo_frame() {
        let p = port("net_af_packet0,iface=nosuchif", Some(9100));
        let v = vdev_arg(&p).unwrap();
        assert_eq!(
            v,
            "net_af_packet0,iface=nosuchif,framesz=12288,blocksz=12288"
        );
        let fp = plan(&p, Some(&v), "net_af_packet", 1500, &limits(1500, false)).unwrap();
        assert!(fp.whole_limit >= 9100 + FRAME_OVERHEAD);
        // The PMD's own check: payload >= framesz - 32.
        assert!(u32::from(fp.data_room) - HEADROOM >= 12288 - 32);
        // A standard MTU keeps the vdev as given; an explicit framesz is kept.
        assert_eq!(
            vdev_arg(&port("net_af_packet0,iface=x", Some(1500))).unwrap(),
            "net_af_packet0,iface=x"
        );
        let given = port("net_af_packet0,iface=x,framesz=4096", Some(9000));
        assert_eq!(
            vdev_arg(&given).unwrap(),
            "net_af_packet0,iface=x,framesz=4096"
        );
        let p = plan(
            &given,
            given.vdev.as_deref(),
            "net_af_packet",
            1500,
            &limits(1500, false),
        )
        .unwrap();
        assert_eq!(p.whole_limit, 4096 - 66);
    }

    #[test]
    fn nic_scatters_when_it_can_else_sizes_mbufs() {
        let p = PortConfig {
            pci: Some("0000:03:00.0".into()),
            vdev: None,
            rx_desc: 1024,
            mtu: Some(9000),
            filter: None,
        };
        let s = plan(&p, None, "net_ixgbe", 1500, &limits(9702, true)).unwrap();
        assert!(s.rx.scatter && s.may_chain);
        assert_eq!(s.rx.mtu, Some(9000));
        assert_eq!(u32::from(s.data_room), 2048 + HEADROOM);
        let n = plan(&p, None, "net_x", 1500, &limits(9702, false)).unwrap();
        assert!(!n.rx.scatter);
        assert!(u32::from(n.data_room) - HEADROOM >= 9000 + FRAME_OVERHEAD);
        assert!(plan(&p, None, "net_x", 1500, &limits(1500, true))
            .unwrap_err()
            .contains("outside"));
        // Unset: the device's MTU, nothing configured.
        let d = PortConfig { mtu: None, ..p };
        let d = plan(&d, None, "net_x", 1500, &limits(9702, true)).unwrap();
        assert_eq!(
            (d.mtu, d.mtu_from, d.rx),
            (1500, "device", RxOptions::default())
        );
    }
}
