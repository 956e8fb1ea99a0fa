//! Starting the data path on DPDK, the same way for `weir run`, `weir extract` and `weir cost`:
//! the EAL and its arguments, the worker lcores, launching each worker on its lcore (a panic
//! caught and named, see `dead_worker.rs`), and collecting and merging what the workers report
//! when they stop.
//!
//! What differs between the commands stays with them: where packets come from (live ports and
//! the software spreader in `run.rs`, the capture feeder in `extract.rs`) and each worker's
//! receive loop. Every receive and enqueue burst is a [`Burst`] of which `workers.burst` are
//! used.

use crate::config::{Config, MAX_BURST};
use crate::cost::CostTable;
use crate::dead_worker::DeadWorkers;
use crate::worker::Worker;
use crate::worker::WorkerStats;
use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use weir_dpdk::{lcore, Eal, MbufBurst, MetaField};

/// A burst of mbufs: room for the largest `workers.burst`, of which `workers.burst` are asked
/// for (receive) or gathered (enqueue to a worker's ring).
pub type Burst = MbufBurst<MAX_BURST>;

/// Where packets come from, which decides the EAL's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EalMode {
    /// `weir run`: the configured ports (PCI devices and vdevs), hugepages unless
    /// `eal.no_huge`.
    Live,
    /// `weir extract` / `weir cost`: no device at all, no hugepages, a private file prefix so
    /// runs can overlap, no telemetry socket (nothing could find a per-run one; it costs a
    /// thread and a socket at start and exit).
    Offline,
}

/// The EAL arguments from the config: one lcore per worker plus the main one (`--lcores`),
/// then `eal.args` last (so they win).
pub fn eal_args(cfg: &Config, mode: EalMode) -> Result<Vec<String>> {
    let lcores = crate::pipeline::lcore_arg(cfg.workers.count as usize, &cfg.workers.cores)?;
    let mut a = Vec::new();
    match mode {
        EalMode::Live => {
            if cfg.eal.no_huge {
                a.extend([
                    "--no-huge".to_string(),
                    "-m".into(),
                    cfg.eal.memory_mb.to_string(),
                    "--no-shconf".into(),
                    format!("--file-prefix=weir{}", std::process::id()),
                ]);
            }
            if cfg.eal.no_pci {
                a.push("--no-pci".into());
            }
            for p in &cfg.ports {
                if let Some(v) = crate::rx_frames::vdev_arg(p) {
                    a.push(format!("--vdev={v}"));
                }
                if let Some(pci) = &p.pci {
                    a.push(format!("--allow={pci}"));
                }
            }
            a.push(lcores);
            if !cfg.eal.args.iter().any(|x| x.starts_with("--log-level")) {
                a.push("--log-level=*:warning".into());
            }
        }
        EalMode::Offline => a.extend([
            "--no-huge".to_string(),
            "-m".into(),
            cfg.eal.memory_mb.min(512).to_string(),
            "--no-pci".into(),
            "--no-shconf".into(),
            format!("--file-prefix=weir{}", std::process::id()),
            "--no-telemetry".into(),
            lcores,
            "--log-level=*:error".into(),
        ]),
    }
    a.extend(cfg.eal.args.iter().cloned());
    Ok(a)
}

/// What a worker reports when it stops.
pub struct WorkerReport {
    pub id: u16,
    pub stats: WorkerStats,
    pub cost: Option<CostTable>,
    /// Why the worker could not start, if it could not.
    pub error: Option<String>,
}

impl WorkerReport {
    /// A worker's final counters and cost table (after `flush_all`).
    pub fn of(worker: &Worker) -> WorkerReport {
        WorkerReport {
            id: worker.id(),
            stats: worker.stats.clone(),
            cost: Some(worker.cost.clone()),
            error: None,
        }
    }

    /// A worker that could not start.
    pub fn failed(id: u16, error: String) -> WorkerReport {
        WorkerReport {
            id,
            stats: WorkerStats::default(),
            cost: None,
            error: Some(error),
        }
    }
}

/// Every worker's report, in worker order.
pub struct Reports(pub Vec<WorkerReport>);

impl Reports {
    /// The counters summed over the workers.
    pub fn total(&self) -> WorkerStats {
        let mut total = WorkerStats::default();
        for r in &self.0 {
            total.merge(&r.stats);
        }
        total
    }

    /// The cost tables merged over the workers.
    pub fn cost(&self) -> CostTable {
        let costs: Vec<&CostTable> = self.0.iter().filter_map(|r| r.cost.as_ref()).collect();
        CostTable::merge(&costs)
    }

    /// Packets each worker received.
    pub fn packets_per_worker(&self) -> Vec<u64> {
        self.0.iter().map(|r| r.stats.packets).collect()
    }

    /// Why a worker could not start, the first one's.
    pub fn first_error(&self) -> Option<&str> {
        self.0.iter().find_map(|r| r.error.as_deref())
    }
}

/// The EAL started, its worker lcores, and the workers launched on them.
pub struct Launch {
    _eal: Eal,
    /// weir's dynamic mbuf field (capture time and wire length).
    pub meta: MetaField,
    /// The worker lcores, one per worker (`workers.count`).
    lcores: Vec<u32>,
    /// Workers that panicked.
    pub dead: Arc<DeadWorkers>,
    report_tx: Option<Sender<WorkerReport>>,
    report_rx: Receiver<WorkerReport>,
}

impl Launch {
    /// Start the EAL for `mode` and take one worker lcore per worker; refuse when the EAL gave
    /// fewer.
    pub fn start(cfg: &Config, mode: EalMode) -> Result<Launch> {
        let args = eal_args(cfg, mode)?;
        match mode {
            EalMode::Live => tracing::info!(?args, "starting EAL"),
            EalMode::Offline => tracing::debug!(?args, "starting EAL"),
        }
        let eal = Eal::init(&args).context("cannot start DPDK's EAL")?;
        let meta = MetaField::register()?;
        let n_workers = cfg.workers.count as usize;
        let mut lcores: Vec<u32> = lcore::worker_lcores().collect();
        if lcores.len() < n_workers {
            bail!(
                "EAL gave {} worker lcores for {n_workers} workers",
                lcores.len()
            );
        }
        lcores.truncate(n_workers);
        let (report_tx, report_rx) = crossbeam_channel::unbounded();
        Ok(Launch {
            _eal: eal,
            meta,
            lcores,
            dead: Arc::new(DeadWorkers::default()),
            report_tx: Some(report_tx),
            report_rx,
        })
    }

    /// The worker lcores, one per worker.
    pub fn lcores(&self) -> &[u32] {
        &self.lcores
    }

    /// Run worker `w` on its lcore: `body` builds the worker there (plugin instances belong to
    /// its thread), runs it and returns its report, which [`Launch::wait`] collects. A panic
    /// is recorded in [`Launch::dead`] and `on_panic` runs (raise the run's stop flags).
    pub fn spawn<B, P>(&self, w: usize, body: B, on_panic: P) -> Result<()>
    where
        B: FnOnce() -> WorkerReport + Send + 'static,
        P: FnOnce() + Send + 'static,
    {
        let tx = self
            .report_tx
            .clone()
            .context("workers already collected")?;
        let dead = self.dead.clone();
        lcore::remote_launch(self.lcores[w], move || {
            let body = move || {
                let report = body();
                let rc = if report.error.is_some() { -1 } else { 0 };
                let _ = tx.send(report);
                rc
            };
            dead.run(w, body, on_panic)
        })?;
        Ok(())
    }

    /// Wait until every worker has stopped; their reports in worker order. Blocks on the
    /// reports (not spinning in `rte_eal_wait_lcore`): a report is a worker's last act, and a
    /// worker that dies drops its sender, which ends the wait too.
    pub fn wait(&mut self) -> Reports {
        drop(self.report_tx.take());
        let mut reports: Vec<WorkerReport> = self.report_rx.iter().collect();
        lcore::mp_wait_lcore();
        reports.sort_by_key(|r| r.id);
        Reports(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_and_live_arguments() {
        let mut cfg = Config::default();
        cfg.eal.memory_mb = 2048;
        cfg.eal.args = vec!["--log-level=*:debug".into()];
        let off = eal_args(&cfg, EalMode::Offline).unwrap();
        assert_eq!(&off[..4], ["--no-huge", "-m", "512", "--no-pci"]);
        assert!(off.iter().any(|a| a.starts_with("--lcores=0@")));
        assert!(off.contains(&"--no-telemetry".to_string()), "{off:?}");
        // The config's own arguments come last, so they win over weir's.
        assert_eq!(off.last().unwrap(), "--log-level=*:debug");
        let live = eal_args(&cfg, EalMode::Live).unwrap();
        assert!(
            !live.contains(&"--log-level=*:warning".to_string()),
            "{live:?}"
        );
        cfg.eal.args.clear();
        let live = eal_args(&cfg, EalMode::Live).unwrap();
        assert_eq!(live.last().unwrap(), "--log-level=*:warning");
    }
}
