//! Ethernet ports (`rte_ethdev`): finding a port, asking what it supports, configuring RX
//! queues with symmetric RSS, starting, polling, and reading its counters.
//!
//! A [`Port`] owns its device in this process (one handle per port id); it is stopped and
//! closed on drop. Each set-up RX queue is a separate [`RxQueue`] (one owner, `Send`), so a
//! worker lcore can own its queue while the main thread keeps the `Port` to read statistics.

use std::ffi::{c_char, CStr};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::eal::Eal;
use crate::error::{cstring, errno_text, rte_errno, Error, Result};
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;
use crate::ring::{Ring, RingInner};
use crate::rss;

/// Port ids with a live [`Port`] handle in this process.
static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

const NAME_MAX: usize = 64; // RTE_ETH_NAME_MAX_LEN

/// What a device says it supports (`rte_eth_dev_info_get`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevInfo {
    /// Driver name, e.g. `net_pcap`, `net_ixgbe`.
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash key size in bytes (0: the device takes no key).
    pub hash_key_size: u8,
    /// Redirection table entries.
    pub reta_size: u16,
    /// RSS hash types the device can compute (`RTE_ETH_RSS_*` bits; 0: no RSS).
    pub flow_type_rss_offloads: u64,
    /// RX offloads (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// NUMA socket of the device, or [`crate::SOCKET_ANY`] when unknown.
    pub socket_id: i32,
}

/// How to spread flows over RX queues in hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// Wanted hash types (`RTE_ETH_RSS_*` bits); intersected with what the device offers.
    pub hash_types: u64,
}

impl Default for RssConfig {
    /// IPv4/IPv6 with TCP, UDP and other protocols: `RTE_ETH_RSS_IP | _TCP | _UDP`.
    fn default() -> Self {
        RssConfig {
            hash_types: rss::HASH_IP | rss::HASH_TCP | rss::HASH_UDP,
        }
    }
}

/// Port configuration for [`Port::configure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// `None`: no RSS (one queue, or a device without RSS).
    pub rss: Option<RssConfig>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 0,
            rss: None,
        }
    }
}

/// Receive options for [`Port::configure_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOptions {
    /// The MTU to configure (`rxmode.mtu`); `None` keeps the device's.
    pub mtu: Option<u16>,
    /// Scattered RX (`RTE_ETH_RX_OFFLOAD_SCATTER`): frames larger than an mbuf's data room
    /// arrive as chained mbufs. Refused when the device does not offer it.
    pub scatter: bool,
}

/// The frame sizes a device accepts (`rte_eth_dev_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    pub min_mtu: u16,
    pub max_mtu: u16,
    /// The largest frame the device can receive, Ethernet header and CRC included.
    pub max_rx_pktlen: u32,
    /// Whether the device offers scattered RX.
    pub scatter: bool,
}

/// A port's link as the device reports it (`rte_eth_link_get_nowait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    /// Mb/s (0 or `u32::MAX` when unknown).
    pub speed_mbps: u32,
    pub full_duplex: bool,
    pub autoneg: bool,
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.up {
            return write!(f, "down");
        }
        match self.speed_mbps {
            0 | u32::MAX => write!(f, "up, speed unknown")?,
            s => write!(f, "up, {s} Mb/s")?,
        }
        write!(
            f,
            ", {}-duplex{}",
            if self.full_duplex { "full" } else { "half" },
            if self.autoneg { ", autoneg" } else { "" }
        )
    }
}

/// What [`Port::configure`] actually set up (log it: `Display` is one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSetup {
    pub port: u16,
    pub name: String,
    pub driver: String,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rss: Option<RssSetup>,
}

/// The RSS part of a [`PortSetup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssSetup {
    /// Key length given to the device (the device's `hash_key_size`); 0: device default key.
    pub key_len: usize,
    /// True when the 0x6d5a-repeated key was installed, which makes Toeplitz symmetric.
    pub symmetric: bool,
    /// Hash types asked for.
    pub requested: u64,
    /// Hash types configured: requested ∩ device's `flow_type_rss_offloads`.
    pub hash_types: u64,
    /// Redirection table size reported by the device.
    pub reta_size: u16,
    /// Whether the RSS hash is delivered in each mbuf (`RTE_ETH_RX_OFFLOAD_RSS_HASH`).
    pub hash_in_mbuf: bool,
}

impl fmt::Display for PortSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port {} ({}, driver {}): {} rx queue(s), {} tx queue(s), ",
            self.port, self.name, self.driver, self.rx_queues, self.tx_queues
        )?;
        match &self.rss {
            None => write!(f, "no RSS"),
            Some(r) => {
                write!(
                f,
                "RSS {} key {} bytes, hash types {:#x} [{}] (asked {:#x}), reta {} entries, hash \
                 in mbuf: {}",
                if r.symmetric { "symmetric (0x6d5a)" } else { "device-default" },
                r.key_len,
                r.hash_types,
                rss::hash_type_names(r.hash_types).join(","),
                r.requested,
                r.reta_size,
                r.hash_in_mbuf
            )
            }
        }
    }
}

/// Port counters (`rte_eth_stats_get`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub ibytes: u64,
    /// Dropped by the device because no RX descriptor was free (the application was slow).
    pub imissed: u64,
    pub ierrors: u64,
    /// RX failed for lack of mbufs in the pool.
    pub rx_nombuf: u64,
    pub opackets: u64,
    pub obytes: u64,
    pub oerrors: u64,
    /// Packets per RX queue, for the configured queues (up to 16); zeros where the PMD does
    /// not count per queue.
    pub q_ipackets: Vec<u64>,
}

struct PortInner {
    id: u16,
    name: String,
    driver: String,
    pools: Mutex<Vec<Mempool>>,
    rss_key: Mutex<Option<Box<[u8]>>>,
    rx_taken: Mutex<Vec<u16>>,
    nb_rx: Mutex<u16>,
    started: AtomicBool,
    _rings: Vec<Arc<RingInner>>,
    _eal: Eal,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: no queue handle is left (they hold this inner); the device is ours.
        unsafe {
            if self.started.load(Ordering::SeqCst) {
                weir_dpdk_sys::rte_eth_dev_stop(self.id);
            }
            weir_dpdk_sys::rte_eth_dev_close(self.id);
        }
        if let Ok(mut c) = CLAIMED.lock() {
            c.retain(|&p| p != self.id);
        }
        // Pools and rings are released after the device no longer references them.
    }
}

/// An Ethernet device owned by this handle.
pub struct Port {
    inner: Arc<PortInner>,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Port({} {:?} {})",
            self.inner.id, self.inner.name, self.inner.driver
        )
    }
}

/// Name of port `id`, if valid.
fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as c_char; NAME_MAX];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes.
    let ret = unsafe { weir_dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    (ret == 0).then(|| {
        // SAFETY: DPDK wrote a NUL-terminated name on success.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    })
}

impl Port {
    /// Ids and names of every port EAL probed (PCI devices and `--vdev`s), claimed or not.
    pub fn available() -> Vec<(u16, String)> {
        let mut out = Vec::new();
        if Eal::current().is_none() {
            return out;
        }
        // SAFETY: iterates over valid port ids.
        let mut id = unsafe { weir_dpdk_sys::rte_eth_find_next(0) };
        while (id as u32) < weir_dpdk_sys::RTE_MAX_ETHPORTS {
            out.push((id, port_name(id).unwrap_or_default()));
            // SAFETY: as above.
            id = unsafe { weir_dpdk_sys::rte_eth_find_next(id + 1) };
        }
        out
    }

    fn not_found(what: String) -> Error {
        let names = Port::available()
            .into_iter()
            .map(|(i, n)| format!("{i}:{n}"))
            .collect();
        Error::NoSuchPort(what, names)
    }

    /// The port named `name` (a vdev name such as `net_pcap0`, or a PCI address).
    pub fn by_name(name: &str) -> Result<Port> {
        let _eal = Eal::require("Port::by_name")?;
        let c = cstring("port name", name)?;
        let mut id = 0u16;
        // SAFETY: valid name and out-pointer.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(Port::not_found(format!("{name:?}")));
        }
        Port::claim(id, Vec::new())
    }

    /// The port with id `id`.
    pub fn by_id(id: u16) -> Result<Port> {
        let _eal = Eal::require("Port::by_id")?;
        // SAFETY: validity check only.
        if unsafe { weir_dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Port::not_found(format!("id {id}")));
        }
        Port::claim(id, Vec::new())
    }

    /// Makes an ethdev whose RX queue `i` dequeues from `rx[i]` and TX queue `i` enqueues to
    /// `tx[i]` (`rte_eth_from_rings`, the net_ring PMD). The port keeps the rings alive; the
    /// `Ring` handles stay usable for the other direction (a feeder enqueues into `rx`).
    /// Configure and set up its queues like any port (it has no RSS).
    ///
    /// The device is named `net_ring_<name>` by DPDK (at most 22 bytes of `name`). With no TX
    /// rings, the RX rings are also given as TX rings, as `rte_eth_from_ring` does (the PMD
    /// cannot be created without TX rings); configure 0 TX queues and nothing is sent there.
    pub fn from_rings(name: &str, rx: &[&Ring], tx: &[&Ring], socket_id: i32) -> Result<Port> {
        let _eal = Eal::require("Port::from_rings")?;
        if name.len() > 22 || rx.is_empty() || rx.len() > 16 || tx.len() > 16 {
            return Err(Error::Object {
                what: "ring port",
                name: name.to_owned(),
                errno: 0,
                reason: format!(
                    "needs a name of at most 22 bytes and 1..=16 RX rings, 0..=16 TX rings \
                     (got {} bytes, {} RX, {} TX)",
                    name.len(),
                    rx.len(),
                    tx.len()
                ),
            });
        }
        let c = cstring("port name", name)?;
        let mut bound: Vec<&Ring> = Vec::new();
        let unbind = |bound: &[&Ring]| bound.iter().for_each(|r| r.unbind());
        for (r, is_rx) in rx
            .iter()
            .map(|r| (r, true))
            .chain(tx.iter().map(|r| (r, false)))
        {
            if let Err(e) = r.bind(is_rx, name) {
                unbind(&bound);
                return Err(e);
            }
            bound.push(r);
        }
        let rx_ptrs: Vec<*mut weir_dpdk_sys::rte_ring> =
            rx.iter().map(|r| r.inner.ptr.as_ptr()).collect();
        let tx_ptrs: Vec<*mut weir_dpdk_sys::rte_ring> = if tx.is_empty() {
            rx_ptrs.clone()
        } else {
            tx.iter().map(|r| r.inner.ptr.as_ptr()).collect()
        };
        // SAFETY: arrays of valid rings of the given lengths; the port keeps them alive.
        let ret = unsafe {
            weir_dpdk_sys::rte_eth_from_rings(
                c.as_ptr(),
                rx_ptrs.as_ptr(),
                rx_ptrs.len() as u32,
                tx_ptrs.as_ptr(),
                tx_ptrs.len() as u32,
                socket_id as u32,
            )
        };
        if ret < 0 || ret as u32 >= weir_dpdk_sys::RTE_MAX_ETHPORTS {
            let errno = rte_errno();
            unbind(&bound);
            return Err(Error::Object {
                what: "ring port",
                name: name.to_owned(),
                errno,
                reason: format!(
                    "rte_eth_from_rings with {} rx and {} tx ring(s): {}",
                    rx.len(),
                    tx.len(),
                    errno_text(errno)
                ),
            });
        }
        let rings = rx.iter().chain(tx).map(|r| Arc::clone(&r.inner)).collect();
        Port::claim(ret as u16, rings)
    }

    fn claim(id: u16, rings: Vec<Arc<RingInner>>) -> Result<Port> {
        let eal = Eal::require("Port")?;
        let name = port_name(id).unwrap_or_else(|| format!("port{id}"));
        {
            let mut c = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
            if c.contains(&id) {
                return Err(Error::InUse(format!("port {id} ({name})")));
            }
            c.push(id);
        }
        let mut port = Port {
            inner: Arc::new(PortInner {
                id,
                name,
                driver: String::new(),
                pools: Mutex::new(Vec::new()),
                rss_key: Mutex::new(None),
                rx_taken: Mutex::new(Vec::new()),
                nb_rx: Mutex::new(0),
                started: AtomicBool::new(false),
                _rings: rings,
                _eal: eal,
            }),
        };
        let driver = port.dev_info()?.driver;
        if let Some(inner) = Arc::get_mut(&mut port.inner) {
            inner.driver = driver;
        }
        Ok(port)
    }

    /// Port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// Device name (`net_pcap0`, `0000:01:00.0`, ...).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn err(&self, op: &'static str, code: i32) -> Error {
        self.inner.err(op, code)
    }

    /// What the device supports.
    pub fn dev_info(&self) -> Result<DevInfo> {
        let mut info = weir_dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port and out-struct.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_info_get(self.inner.id, &mut info) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_info_get", ret));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: the driver name is a static NUL-terminated string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DevInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            // SAFETY: valid port.
            socket_id: unsafe { weir_dpdk_sys::rte_eth_dev_socket_id(self.inner.id) },
        })
    }

    /// The device's MTU now (`rte_eth_dev_get_mtu`).
    pub fn mtu(&self) -> Result<u16> {
        let mut mtu = 0u16;
        // SAFETY: valid port and out-pointer.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_get_mtu(self.inner.id, &mut mtu) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_get_mtu", ret));
        }
        Ok(mtu)
    }

    /// The frame sizes the device accepts and whether it can scatter frames over mbufs.
    pub fn frame_limits(&self) -> Result<FrameLimits> {
        let mut info = weir_dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port and out-struct.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_info_get(self.inner.id, &mut info) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_info_get", ret));
        }
        Ok(FrameLimits {
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            max_rx_pktlen: info.max_rx_pktlen,
            scatter: info.rx_offload_capa & weir_dpdk_sys::WEIR_RTE_ETH_RX_OFFLOAD_SCATTER != 0,
        })
    }

    /// The link now, without waiting for autonegotiation.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut l = weir_dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port and out-struct.
        let ret = unsafe { weir_dpdk_sys::rte_eth_link_get_nowait(self.inner.id, &mut l) };
        if ret != 0 {
            return Err(self.err("rte_eth_link_get_nowait", ret));
        }
        Ok(LinkStatus {
            up: u32::from(l.link_status()) == weir_dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: u32::from(l.link_duplex()) == weir_dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
            autoneg: u32::from(l.link_autoneg()) == weir_dpdk_sys::RTE_ETH_LINK_AUTONEG,
        })
    }

    /// Configures queue counts and RSS (`rte_eth_dev_configure`). Refuses more queues than
    /// the device has, and RSS on a device that can hash none of the requested types. With
    /// RSS, the key is 0x6d5a repeated to the device's key size (symmetric Toeplitz: both
    /// directions of a flow get one queue) and the hash types are requested ∩ supported.
    pub fn configure(&mut self, cfg: &PortConfig) -> Result<PortSetup> {
        self.configure_with(cfg, &RxOptions::default())
    }

    /// [`Port::configure`] with receive options: the MTU and scattered RX.
    pub fn configure_with(&mut self, cfg: &PortConfig, rx: &RxOptions) -> Result<PortSetup> {
        let info = self.dev_info()?;
        let too_many = |dir, requested, max| Error::TooManyQueues {
            port: self.inner.id,
            name: self.inner.name.clone(),
            driver: info.driver.clone(),
            dir,
            requested,
            max,
        };
        if cfg.rx_queues > info.max_rx_queues {
            return Err(too_many("RX", cfg.rx_queues, info.max_rx_queues));
        }
        if cfg.tx_queues > info.max_tx_queues {
            return Err(too_many("TX", cfg.tx_queues, info.max_tx_queues));
        }
        let mut conf = weir_dpdk_sys::rte_eth_conf::default();
        let mut rss_setup = None;
        if let Some(rss_cfg) = cfg.rss {
            let chosen = rss_cfg.hash_types & info.flow_type_rss_offloads;
            if chosen == 0 {
                return Err(Error::RssUnsupported {
                    port: self.inner.id,
                    name: self.inner.name.clone(),
                    driver: info.driver.clone(),
                    requested: rss_cfg.hash_types,
                    offered: info.flow_type_rss_offloads,
                });
            }
            conf.rxmode.mq_mode = weir_dpdk_sys::WEIR_RTE_ETH_MQ_RX_RSS as _;
            conf.rx_adv_conf.rss_conf.rss_hf = chosen;
            let key_len = info.hash_key_size as usize;
            if key_len > 0 {
                // The device reads the key at start on some PMDs: keep it as long as the port.
                let mut key = rss::symmetric_key(key_len).into_boxed_slice();
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
                *self.inner.rss_key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
            }
            let hash_in_mbuf =
                info.rx_offload_capa & weir_dpdk_sys::WEIR_RTE_ETH_RX_OFFLOAD_RSS_HASH != 0;
            if hash_in_mbuf {
                conf.rxmode.offloads |= weir_dpdk_sys::WEIR_RTE_ETH_RX_OFFLOAD_RSS_HASH;
            }
            rss_setup = Some(RssSetup {
                key_len,
                symmetric: key_len > 0,
                requested: rss_cfg.hash_types,
                hash_types: chosen,
                reta_size: info.reta_size,
                hash_in_mbuf,
            });
        }
        if let Some(mtu) = rx.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        if rx.scatter {
            if info.rx_offload_capa & weir_dpdk_sys::WEIR_RTE_ETH_RX_OFFLOAD_SCATTER == 0 {
                return Err(self.err("scattered RX", -95)); // ENOTSUP
            }
            conf.rxmode.offloads |= weir_dpdk_sys::WEIR_RTE_ETH_RX_OFFLOAD_SCATTER;
        }
        // SAFETY: valid port and configuration; the key buffer outlives the port.
        let ret = unsafe {
            weir_dpdk_sys::rte_eth_dev_configure(self.inner.id, cfg.rx_queues, cfg.tx_queues, &conf)
        };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_configure", ret));
        }
        *self.inner.nb_rx.lock().unwrap_or_else(|e| e.into_inner()) = cfg.rx_queues;
        Ok(PortSetup {
            port: self.inner.id,
            name: self.inner.name.clone(),
            driver: info.driver,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            rss: rss_setup,
        })
    }

    /// The RSS key and hash types the device has now (`rte_eth_dev_rss_hash_conf_get`):
    /// what `configure` installed, read back from the driver. The key is empty when the
    /// device reports no key size.
    pub fn rss_hash_conf(&self) -> Result<(Vec<u8>, u64)> {
        let info = self.dev_info()?;
        let mut key = vec![0u8; info.hash_key_size as usize];
        let mut conf = weir_dpdk_sys::rte_eth_rss_conf {
            rss_key: if key.is_empty() {
                std::ptr::null_mut()
            } else {
                key.as_mut_ptr()
            },
            rss_key_len: info.hash_key_size,
            ..Default::default()
        };
        // SAFETY: valid port; the key buffer has rss_key_len bytes.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.inner.id, &mut conf) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_rss_hash_conf_get", ret));
        }
        Ok((key, conf.rss_hf))
    }

    /// Sets up RX queue `queue` with `nb_desc` descriptors (0: the driver's default, adjusted
    /// to its limits) on `socket_id`, filled from `pool`; returns the queue's only handle.
    pub fn rx_queue_setup(
        &mut self,
        queue: u16,
        nb_desc: u16,
        socket_id: i32,
        pool: &Mempool,
    ) -> Result<RxQueue> {
        {
            let taken = self
                .inner
                .rx_taken
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if taken.contains(&queue) {
                return Err(Error::InUse(format!(
                    "RX queue {queue} of port {} ({})",
                    self.inner.id, self.inner.name
                )));
            }
        }
        let mut nb = nb_desc;
        // SAFETY: valid port; NULL for the TX count is allowed.
        let ret = unsafe {
            weir_dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(
                self.inner.id,
                &mut nb,
                std::ptr::null_mut(),
            )
        };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: valid port, queue index checked by DPDK, default rxconf, valid pool.
        let ret = unsafe {
            weir_dpdk_sys::rte_eth_rx_queue_setup(
                self.inner.id,
                queue,
                nb,
                socket_id as u32,
                std::ptr::null(),
                pool.as_ptr(),
            )
        };
        if ret != 0 {
            return Err(self.err("rte_eth_rx_queue_setup", ret));
        }
        self.inner
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pool.clone());
        self.inner
            .rx_taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(queue);
        Ok(RxQueue {
            port: Arc::clone(&self.inner),
            queue,
        })
    }

    /// Sets up TX queue `queue` with `nb_desc` descriptors (0: driver default) on `socket_id`.
    pub fn tx_queue_setup(&mut self, queue: u16, nb_desc: u16, socket_id: i32) -> Result<()> {
        let mut nb = nb_desc;
        // SAFETY: valid port; NULL for the RX count is allowed.
        let ret = unsafe {
            weir_dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(
                self.inner.id,
                std::ptr::null_mut(),
                &mut nb,
            )
        };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: valid port, default txconf.
        let ret = unsafe {
            weir_dpdk_sys::rte_eth_tx_queue_setup(
                self.inner.id,
                queue,
                nb,
                socket_id as u32,
                std::ptr::null(),
            )
        };
        if ret != 0 {
            return Err(self.err("rte_eth_tx_queue_setup", ret));
        }
        Ok(())
    }

    /// Starts the device.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: valid, configured port.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_start(self.inner.id) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_start", ret));
        }
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the device (queues then return no packets).
    pub fn stop(&mut self) -> Result<()> {
        // SAFETY: valid port.
        let ret = unsafe { weir_dpdk_sys::rte_eth_dev_stop(self.inner.id) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_stop", ret));
        }
        self.inner.started.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Turns promiscuous mode on or off (some PMDs do not support it: an error says so).
    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                weir_dpdk_sys::rte_eth_promiscuous_enable(self.inner.id)
            } else {
                weir_dpdk_sys::rte_eth_promiscuous_disable(self.inner.id)
            }
        };
        if ret != 0 {
            return Err(self.err("promiscuous mode", ret));
        }
        Ok(())
    }

    /// The port's counters. Safe to call from a reporting thread while workers poll; see
    /// also [`Port::stats_handle`].
    pub fn stats(&self) -> Result<PortStats> {
        self.inner.stats()
    }

    /// The driver's extended counters as (name, value) pairs.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        self.inner.xstats()
    }

    /// A cloneable, `Send` handle that reads this port's counters from another thread
    /// (a reporting thread), while the `Port` itself stays with its owner.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Reads one port's counters from any thread; keeps the port open while it exists.
#[derive(Clone)]
pub struct StatsHandle {
    inner: Arc<PortInner>,
}

impl fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StatsHandle(port {} {:?})",
            self.inner.id, self.inner.name
        )
    }
}

impl StatsHandle {
    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.inner.id
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// See [`Port::stats`].
    pub fn stats(&self) -> Result<PortStats> {
        self.inner.stats()
    }

    /// See [`Port::xstats`].
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        self.inner.xstats()
    }
}

impl PortInner {
    fn err(&self, op: &'static str, code: i32) -> Error {
        Error::Port {
            port: self.id,
            name: self.name.clone(),
            op,
            code,
            reason: errno_text(code),
        }
    }

    fn stats(&self) -> Result<PortStats> {
        let mut s = weir_dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port and out-struct.
        let ret = unsafe { weir_dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        if ret != 0 {
            return Err(self.err("rte_eth_stats_get", ret));
        }
        let nq = (*self.nb_rx.lock().unwrap_or_else(|e| e.into_inner()) as usize)
            .min(s.q_ipackets.len());
        Ok(PortStats {
            ipackets: s.ipackets,
            ibytes: s.ibytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            rx_nombuf: s.rx_nombuf,
            opackets: s.opackets,
            obytes: s.obytes,
            oerrors: s.oerrors,
            q_ipackets: s.q_ipackets[..nq].to_vec(),
        })
    }

    fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let id = self.id;
        // SAFETY: a NULL array asks for the count.
        let n = unsafe { weir_dpdk_sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(self.err("rte_eth_xstats_get_names", n));
        }
        let mut names = vec![weir_dpdk_sys::rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![weir_dpdk_sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: arrays of n entries.
        let got_names =
            unsafe { weir_dpdk_sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_vals =
            unsafe { weir_dpdk_sys::rte_eth_xstats_get(id, vals.as_mut_ptr(), n as u32) };
        if got_names < 0 || got_vals < 0 {
            return Err(self.err("rte_eth_xstats_get", got_names.min(got_vals)));
        }
        let valid = (got_names.min(n) as usize, got_vals.min(n) as usize);
        Ok(vals[..valid.1]
            .iter()
            .filter_map(|v| {
                let name = names[..valid.0].get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within the 64-byte array.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }
}

/// The only handle on one RX queue of a port. `Send`: give it to the worker that polls it.
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RxQueue(port {} {:?}, queue {})",
            self.port.id, self.port.name, self.queue
        )
    }
}

// SAFETY: DPDK allows any single thread to poll a queue; this is the queue's only handle.
unsafe impl Send for RxQueue {}
// SAFETY: PortInner is only touched through locks/atomics or read-only fields.
unsafe impl Send for PortInner {}
// SAFETY: as above.
unsafe impl Sync for PortInner {}

impl RxQueue {
    /// Frees what `burst` still holds, then receives up to `N` packets into it
    /// (`rte_eth_rx_burst`); returns how many. 0 when idle, before `start`, after `stop`, or
    /// (net_pcap) at the end of the capture.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        self.rx_burst_up_to(burst, N)
    }

    /// Like [`RxQueue::rx_burst`], but receives at most `max` packets (the configured burst
    /// size, when the burst's capacity is the largest one allowed).
    #[inline]
    pub fn rx_burst_up_to<const N: usize>(
        &mut self,
        burst: &mut MbufBurst<N>,
        max: usize,
    ) -> usize {
        burst.clear();
        // A stopped port's burst function is DPDK's dummy, which logs and dumps the stack on
        // every call: return 0 instead (one relaxed load per burst).
        if !self.port.started.load(Ordering::Relaxed) {
            return 0;
        }
        let (dst, room) = burst.spare_ptr();
        let room = room.min(max).min(u16::MAX as usize);
        // SAFETY: this handle is the queue's only poller; dst has room for `room` pointers
        // and the received mbufs become owned by `burst`.
        let n =
            unsafe { weir_dpdk_sys::rte_eth_rx_burst(self.port.id, self.queue, dst, room as u16) };
        burst.filled(n as usize);
        n as usize
    }

    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    /// Queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}
