//! Setting up `weir run`'s ports: ask each what it supports, choose its path (direct, RSS or
//! the software spreader, `spread::choose`), make the mempools, configure and start each port,
//! and set up the spreader's rings; refuse, naming the port, what cannot work.

use crate::config::Config;
use crate::rx_frames::FramePlan;
use crate::spread::{self, PortPath, Spreader};
use anyhow::{anyhow, Context, Result};
use weir_dpdk::{
    lcore, rss, DevInfo, Mempool, Port, PortConfig, Ring, RssConfig, RxQueue, DEFAULT_DATA_ROOM,
};

/// One RX queue a worker polls. `finite` queues (the software spreader's rings) are drained
/// to empty at shutdown: the spreader stops first, so everything it handed over is processed.
pub(super) struct WorkerQueue {
    pub q: RxQueue,
    pub finite: bool,
    /// Frames this long or longer may have been cut (`FramePlan::whole_limit`).
    pub whole_limit: u32,
    /// Whose capture filter applies (`crate::filter::Filters`): `ports[i]` is source `i + 1`.
    pub source: u16,
    /// The software spreader's rings carry several ports' packets: the source of each by the
    /// DPDK port id it was received on (the ring PMD leaves `mbuf.port` as the NIC set it).
    pub source_by_port: Option<Vec<u16>>,
}

/// Every port set up, and who polls what.
pub(super) struct PortPlan {
    pub ports: Vec<Port>,
    /// `[worker]` -> the queues it polls.
    pub queues: Vec<Vec<WorkerQueue>>,
    /// The software spreader, when a port needs it (run by the main lcore).
    pub spreader: Option<Spreader>,
    /// The net_ring port behind the spreader's rings.
    pub spread_port: Option<Port>,
    /// The workers' mempools (for the metrics endpoint).
    pub pools: Vec<Mempool>,
    /// Some port may deliver a frame as chained mbufs; and the largest frame of any port.
    pub may_chain: bool,
    pub max_frame: u32,
}

/// A configured port opened and asked: what it supports, its path to the workers, and how
/// its frames are received.
struct Probed<'a> {
    pc: &'a crate::config::PortConfig,
    name: String,
    port: Port,
    info: DevInfo,
    path: PortPath,
    frames: FramePlan,
}

/// The ethdev name of a configured port: a vdev's name (before its first comma) or the PCI
/// address.
fn port_name(p: &crate::config::PortConfig) -> String {
    match (&p.vdev, &p.pci) {
        (Some(v), _) => v.split(',').next().unwrap_or(v).to_string(),
        (None, Some(pci)) => pci.clone(),
        (None, None) => String::new(),
    }
}

/// Ask each port what it supports, choose its path (`spread::choose`), configure it and set
/// up its queues; refuse, naming the port, what cannot work.
pub(super) fn setup_ports(cfg: &Config, lcores: &[u32]) -> Result<PortPlan> {
    let n_workers = cfg.workers.count as usize;
    let mut plan = PortPlan {
        ports: Vec::new(),
        queues: (0..n_workers).map(|_| Vec::new()).collect(),
        spreader: None,
        spread_port: None,
        pools: Vec::new(),
        may_chain: false,
        max_frame: 0,
    };
    let probed = cfg
        .ports
        .iter()
        .map(|pc| probe(cfg, pc))
        .collect::<Result<Vec<_>>>()?;
    for p in &probed {
        plan.may_chain |= p.frames.may_chain;
        plan.max_frame = plan.max_frame.max(p.frames.max_frame());
    }
    // One mbuf size for every pool: the largest any port needs.
    let data_room = probed
        .iter()
        .map(|p| p.frames.data_room)
        .max()
        .unwrap_or(DEFAULT_DATA_ROOM)
        .max(DEFAULT_DATA_ROOM);
    let is_software = |p: &&Probed| matches!(p.path, PortPath::Software { .. });
    let pools = if probed.iter().any(|p| !is_software(&p)) {
        worker_pools(cfg, lcores, data_room)?
    } else {
        Vec::new()
    };
    let software: Vec<u16> = probed
        .iter()
        .filter(is_software)
        .map(|p| p.pc.rx_desc)
        .collect();
    let spread_pool = if software.is_empty() {
        None
    } else {
        Some(spread_pool(cfg, &software, data_room)?)
    };
    let mut spread_queues = Vec::new();
    let mut spread_limit = u32::MAX;
    // Filter source (`ports[i]` -> i + 1) of each software-spread port, by DPDK port id.
    let mut spread_sources: Vec<u16> = Vec::new();
    for (i, p) in probed.into_iter().enumerate() {
        let source = i as u16 + 1;
        let (port, spread_queue) = start_port(
            cfg,
            p,
            source,
            lcores,
            &pools,
            spread_pool.as_ref(),
            &mut plan,
        )?;
        if let Some((q, limit)) = spread_queue {
            spread_queues.push(q);
            spread_limit = spread_limit.min(limit);
            let id = usize::from(port.id());
            if spread_sources.len() <= id {
                spread_sources.resize(id + 1, 0);
            }
            spread_sources[id] = source;
        }
        plan.ports.push(port);
    }
    if let Some(pool) = &spread_pool {
        let spread = (spread_queues, spread_limit, spread_sources);
        start_spreader(cfg, lcores, pool, spread, &mut plan)?;
    }
    plan.pools = pools;
    if let Some(p) = &spread_pool {
        plan.pools.push(p.clone());
    }
    Ok(plan)
}

/// Open one configured port, choose its path and plan how its frames are received.
fn probe<'a>(cfg: &Config, pc: &'a crate::config::PortConfig) -> Result<Probed<'a>> {
    let n_workers = cfg.workers.count as usize;
    let name = port_name(pc);
    let port = Port::by_name(&name).with_context(|| format!("port {name}"))?;
    let info = port.dev_info().with_context(|| format!("port {name}"))?;
    let path =
        spread::choose(cfg.workers.spread, n_workers, &name, &info).map_err(|e| anyhow!("{e}"))?;
    match &path {
        PortPath::Direct => tracing::info!(port = name.as_str(), "one worker: no spreading"),
        PortPath::Rss { why } | PortPath::Software { why } => tracing::info!(
            port = name.as_str(),
            driver = info.driver.as_str(),
            path = path.name(),
            "spreading flows over {n_workers} workers: {}; {why}",
            path.name()
        ),
    }
    let vdev = crate::rx_frames::vdev_arg(pc);
    let frames = port
        .mtu()
        .and_then(|m| Ok((m, port.frame_limits()?)))
        .map_err(|e| anyhow!("port {name}: {e}"))
        .and_then(|(mtu, limits)| {
            crate::rx_frames::plan(pc, vdev.as_deref(), &info.driver, mtu, &limits)
                .map_err(|e| anyhow!("port {name}: ports[].mtu: {e}"))
        })?;
    tracing::info!(port = name.as_str(), "{}", frames.describe());
    Ok(Probed {
        pc,
        name,
        port,
        info,
        path,
        frames,
    })
}

/// One mempool per worker on its socket, for the queues it polls itself.
fn worker_pools(cfg: &Config, lcores: &[u32], data_room: u16) -> Result<Vec<Mempool>> {
    let n_workers = cfg.workers.count as usize;
    let mut pools = Vec::new();
    for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
        let socket = lcore::lcore_socket(lc) as i32;
        pools.push(Mempool::new_pktmbuf(
            &format!("weir_rx{w}"),
            cfg.workers.mbufs,
            256,
            data_room,
            socket,
        )?);
    }
    Ok(pools)
}

/// The mempool of the software-spread ports' queues, on the main lcore's socket: every ring's
/// worth (`software`: each such port's RX descriptors).
fn spread_pool(cfg: &Config, software: &[u16], data_room: u16) -> Result<Mempool> {
    let n_workers = cfg.workers.count;
    let main_socket = lcore::lcore_socket(lcore::main_lcore()) as i32;
    // In flight at once: every ring full, every port's descriptors, a burst per worker and
    // the spreader, and what per-lcore caches may hold.
    let want = n_workers * cfg.workers.spread_ring
        + software.iter().map(|&d| u32::from(d)).sum::<u32>()
        + (n_workers + 2) * (u32::from(cfg.workers.burst) + 384);
    let size = (want.max(cfg.workers.mbufs) + 1).next_power_of_two() - 1;
    Ok(Mempool::new_pktmbuf(
        "weir_spread_rx",
        size,
        256,
        data_room,
        main_socket,
    )?)
}

/// Configure and start one port: its RX queues go to the workers (direct, RSS) or, for a
/// software-spread port, its one queue is returned with its whole-frame limit for the
/// spreader.
fn start_port(
    cfg: &Config,
    p: Probed,
    source: u16,
    lcores: &[u32],
    pools: &[Mempool],
    spread_pool: Option<&Mempool>,
    plan: &mut PortPlan,
) -> Result<(Port, Option<(RxQueue, u32)>)> {
    let n_workers = cfg.workers.count as usize;
    let Probed {
        pc,
        name,
        mut port,
        info,
        path,
        frames,
    } = p;
    let rss = match &path {
        // A device that spreads by itself (af_packet's fanout) takes no RSS request.
        PortPath::Rss { .. } if info.flow_type_rss_offloads != 0 => Some(RssConfig {
            hash_types: rss::HASH_IP | rss::HASH_TCP | rss::HASH_UDP,
        }),
        _ => None,
    };
    let rx_queues = path.rx_queues(n_workers);
    let setup = port
        .configure_with(
            &PortConfig {
                rx_queues,
                tx_queues: 0,
                rss,
            },
            &frames.rx,
        )
        .with_context(|| format!("port {name}"))?;
    tracing::info!("{setup}");
    if let Some(own) = spread::self_spreading(&info.driver) {
        if info.max_rx_queues > rx_queues {
            tracing::warn!(
                port = name.as_str(),
                "{} spreads over all its {} queues ({own}) but {rx_queues} are polled: \
                 packets hashed to the others are never read; give the vdev as many queues \
                 as workers (qpairs={n_workers})",
                info.driver,
                info.max_rx_queues
            );
        }
    }
    let mut spread_queue = None;
    match &path {
        PortPath::Direct | PortPath::Rss { .. } => {
            for w in 0..rx_queues as usize {
                let socket = lcore::lcore_socket(lcores[w]) as i32;
                let q = port.rx_queue_setup(w as u16, pc.rx_desc, socket, &pools[w])?;
                plan.queues[w].push(WorkerQueue {
                    q,
                    finite: false,
                    whole_limit: frames.whole_limit,
                    source,
                    source_by_port: None,
                });
            }
        }
        PortPath::Software { .. } => {
            let pool = spread_pool.expect("made for software ports");
            let main_socket = lcore::lcore_socket(lcore::main_lcore()) as i32;
            let q = port.rx_queue_setup(0, pc.rx_desc, main_socket, pool)?;
            spread_queue = Some((q, frames.whole_limit));
        }
    }
    if let Err(e) = port.set_promiscuous(true) {
        // A port that is not promiscuous sees only traffic addressed to it: on a SPAN or
        // TAP port that is almost nothing.
        tracing::warn!(
            port = name.as_str(),
            driver = info.driver.as_str(),
            error = %e,
            "promiscuous mode not set: the port receives only frames addressed to its MAC \
             (and broadcast/multicast); on a SPAN or TAP port most traffic is lost (a VF \
             needs `trust on` on its PF)"
        );
    }
    port.start().with_context(|| format!("port {name}"))?;
    match port.link() {
        Ok(l) if l.up => tracing::info!(port = name.as_str(), link = %l, "link up"),
        Ok(l) => tracing::warn!(
            port = name.as_str(),
            link = %l,
            "link down at start: no traffic until it comes up (cable, SFP, switch port)"
        ),
        Err(e) => tracing::warn!(port = name.as_str(), error = %e, "cannot read link state"),
    }
    Ok((port, spread_queue))
}

/// The software spreader: one ring per worker behind a net_ring port whose RX queue `w`
/// worker `w` polls, fed from the software-spread ports' queues.
fn start_spreader(
    cfg: &Config,
    lcores: &[u32],
    pool: &Mempool,
    (spread_queues, spread_limit, spread_sources): (Vec<RxQueue>, u32, Vec<u16>),
    plan: &mut PortPlan,
) -> Result<()> {
    let n_workers = cfg.workers.count as usize;
    let main_socket = lcore::lcore_socket(lcore::main_lcore()) as i32;
    let mut rings = Vec::with_capacity(n_workers);
    for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
        let socket = lcore::lcore_socket(lc) as i32;
        rings.push(Ring::new(
            &format!("weir_spread{w}"),
            cfg.workers.spread_ring,
            socket,
        )?);
    }
    let mut ring_port = Port::from_rings(
        "weir_spread",
        &rings.iter().collect::<Vec<_>>(),
        &[],
        main_socket,
    )?;
    ring_port.configure(&PortConfig {
        rx_queues: n_workers as u16,
        tx_queues: 0,
        rss: None,
    })?;
    for (w, &lc) in lcores.iter().take(n_workers).enumerate() {
        let socket = lcore::lcore_socket(lc) as i32;
        let q = ring_port.rx_queue_setup(w as u16, 0, socket, pool)?;
        plan.queues[w].push(WorkerQueue {
            q,
            finite: true,
            whole_limit: spread_limit,
            source: 0,
            source_by_port: Some(spread_sources.clone()),
        });
    }
    ring_port.start()?;
    tracing::info!(
        ports = spread_queues.len(),
        workers = n_workers,
        ring = cfg.workers.spread_ring,
        when_full = ?cfg.workers.spread_full,
        "software spreading on the main lcore: weir's symmetric flow hash -> one ring per \
         worker -> {}",
        ring_port.name()
    );
    plan.spreader = Some(Spreader::new(
        spread_queues,
        rings,
        cfg.workers.spread_full,
        usize::from(cfg.workers.burst),
    ));
    plan.spread_port = Some(ring_port);
    Ok(())
}
