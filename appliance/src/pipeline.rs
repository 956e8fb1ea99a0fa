//! What `weir run` and `weir extract` set up alike before any packet: the plugins, the record
//! schema (every column, fixed at start), and a worker factory.

use crate::config::Config;
use crate::cost::CostTable;
use crate::flow::record::RecordSchema;
use crate::plugin_host::{default_plugin_dir, FeatureKind, PluginOptions, PluginRegistry};
use crate::rates::{DecayTables, HeavyHitters, FLOW_RATE_FEATURES};
use crate::worker::{Worker, WorkerSettings};
use anyhow::{Context, Result};
use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

pub struct Pipeline {
    pub cfg: Config,
    pub registry: Arc<PluginRegistry>,
    pub schema: RecordSchema,
    /// The decay model's tables, shared read-only by every worker.
    pub tables: Arc<DecayTables>,
    /// Heavy-hitter tables not yet handed to a worker: `[worker][config]`.
    heavy_hitters: Mutex<Vec<Vec<HeavyHitters>>>,
    /// `[[services]]` compiled, and the plugins skipped per service id; `None` without services.
    services: Option<(Arc<crate::services::ServiceRules>, Vec<u64>)>,
    /// The capture filters by packet source, compiled once; each worker gets a copy.
    filters: crate::filter::Filters,
}

/// Plugin options from the config, with the command line's directory override.
pub fn plugin_options(cfg: &Config, dir_override: Option<PathBuf>) -> Result<PluginOptions> {
    let dir = match dir_override.or_else(|| cfg.plugins.dir.clone()) {
        Some(d) => d,
        None => default_plugin_dir().0,
    };
    let mut o = PluginOptions::new(dir);
    o.reserved_columns
        .extend(FLOW_RATE_FEATURES.iter().map(|s| s.to_string()));
    o.required = cfg.plugins.required.clone();
    if !cfg.plugins.enabled.is_empty() {
        o.enabled = Some(cfg.plugins.enabled.clone());
    }
    o.disabled = cfg.plugins.disabled.clone();
    o.intervals = cfg.intervals.every_ms > 0
        || cfg
            .services
            .iter()
            .any(|s| s.every_ms.unwrap_or(cfg.intervals.every_ms) > 0);
    if let Some(m) = cfg.plugins.max_state_bytes {
        o.max_state_bytes = m;
    }
    for (name, table) in &cfg.plugins.config {
        let json = serde_json::to_string(table)
            .with_context(|| format!("plugins.config.{name}: cannot convert to JSON"))?;
        o.config.insert(name.clone(), json);
    }
    Ok(o)
}

impl Pipeline {
    /// Load the plugins (unless `no_plugins`) and fix the record schema.
    pub fn new(cfg: Config, plugin_dir: Option<PathBuf>, no_plugins: bool) -> Result<Pipeline> {
        // Before any worker (or the feeder's spreading) parses a packet.
        crate::parse::set_decode_tunnels(cfg.flows.decode_tunnels);
        let registry = if no_plugins {
            PluginRegistry::empty()
        } else {
            let opts = plugin_options(&cfg, plugin_dir)?;
            let (reg, _refusals) = PluginRegistry::load(&opts)
                .with_context(|| format!("cannot load plugins from {}", opts.dir.display()))?;
            reg
        };
        let mut schema = RecordSchema::default();
        for p in registry.plugins() {
            for f in &p.desc.features {
                schema.extra.push(f.name.clone());
                schema.provider.push(p.desc.name.clone());
                schema.kinds.push(match f.kind {
                    FeatureKind::F64 => weir_plugin_api::WEIR_FEATURE_F64,
                    FeatureKind::U64 => weir_plugin_api::WEIR_FEATURE_U64,
                    FeatureKind::Bool => weir_plugin_api::WEIR_FEATURE_BOOL,
                    FeatureKind::Text => weir_plugin_api::WEIR_FEATURE_TEXT,
                });
            }
        }
        for name in FLOW_RATE_FEATURES {
            schema.extra.push(name.to_string());
            schema.provider.push("rates".into());
            schema.kinds.push(weir_plugin_api::WEIR_FEATURE_F64);
        }
        let services = if cfg.services.is_empty() {
            None
        } else {
            let rules = crate::services::ServiceRules::new(&cfg.services, &cfg.service_default)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.reason))?;
            let loaded: Vec<String> = registry
                .plugins()
                .iter()
                .map(|p| p.desc.name.clone())
                .collect();
            let skip = rules
                .skip_masks(&loaded)
                .map_err(|e| anyhow::anyhow!("invalid config: key `{}`: {}", e.key, e.reason))?;
            schema.services = rules.names.clone();
            Some((Arc::new(rules), skip))
        };
        let tables = Arc::new(
            DecayTables::new(&cfg.rates)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.path, e.reason))?,
        );
        let workers = cfg.workers.count as usize;
        let mut per_worker: Vec<Vec<HeavyHitters>> = (0..workers).map(|_| Vec::new()).collect();
        for h in &cfg.heavy_hitters {
            let h = &crate::rates::HeavyHitterConfig {
                community_id_seed: cfg.flows.community_id_seed,
                ..h.clone()
            };
            for (w, hh) in HeavyHitters::for_workers(tables.clone(), h, workers as u16)
                .into_iter()
                .enumerate()
            {
                per_worker[w].push(hh);
            }
        }
        let filters = crate::filter::Filters::new(
            cfg.capture.filter.as_deref(),
            cfg.ports.iter().map(|p| p.filter.as_deref()),
        )
        .map_err(anyhow::Error::msg)?;
        Ok(Pipeline {
            filters,
            cfg,
            registry: Arc::new(registry),
            schema,
            tables,
            heavy_hitters: Mutex::new(per_worker),
            services,
        })
    }

    /// The capture filters by packet source (empty without any).
    pub fn filters(&self) -> &crate::filter::Filters {
        &self.filters
    }

    /// For each heavy-hitter table of each worker (before the workers take them): its key
    /// type, worker, capacity and occupancy handle, for the metrics endpoint.
    pub fn heavy_hitter_occupancy(
        &self,
    ) -> Vec<(String, u16, u64, Arc<std::sync::atomic::AtomicU64>)> {
        let tables = self.heavy_hitters.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = Vec::new();
        for (w, hhs) in tables.iter().enumerate() {
            for hh in hhs {
                v.push((
                    hh.config().key.as_str().to_string(),
                    w as u16,
                    hh.capacity() as u64,
                    hh.occupancy(),
                ));
            }
        }
        v
    }

    /// Build worker `id`. Call it on the worker's own thread (plugin instances belong to it).
    pub fn worker(
        &self,
        id: u16,
        sink: Sender<Vec<crate::flow::record::FlowRecord>>,
        alerts: Sender<String>,
    ) -> Result<Worker> {
        let plugins = if self.registry.plugins().is_empty() {
            None
        } else {
            Some(self.registry.instantiate(id as u32)?)
        };
        let layout = self.registry.layout();
        let (size, align) = if plugins.is_some() {
            (layout.stride(), layout.slab_align().max(64))
        } else {
            (0, 8)
        };
        let settings =
            WorkerSettings::from_config(&self.cfg, id, self.schema.extra.len(), (size, align));
        let mut cost = CostTable::new(&self.registry.cost_rows(), self.cfg.cost.enabled);
        if let Some((rules, _)) = &self.services {
            let plugins: Vec<String> = self
                .registry
                .cost_rows()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            if !plugins.is_empty() {
                cost.by_service = Some(Box::new(crate::cost::by_service::ServiceCost::new(
                    &rules.names,
                    &plugins,
                )));
            }
        }
        let hh = std::mem::take(
            self.heavy_hitters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(id as usize)
                .context("worker id beyond workers.count")?,
        );
        let mut w = Worker::new(
            settings,
            plugins,
            cost,
            self.tables.clone(),
            hh,
            sink,
            alerts,
        );
        if let Some((rules, skip)) = &self.services {
            w.attach_services(crate::services::Services::new(rules.clone(), skip.clone()));
        }
        w.attach_filters(self.filters.clone());
        Ok(w)
    }
}

/// The EAL `--lcores` argument: lcore 0 (main: feeder, control) and lcores 1..=workers, mapped
/// onto `cores` when given (one per worker), else onto the CPUs this process may use, in order
/// (several lcores share a CPU when there are fewer CPUs than lcores).
pub fn lcore_arg(workers: usize, cores: &[u32]) -> Result<String> {
    let cpus = allowed_cpus();
    if cpus.is_empty() {
        anyhow::bail!("no CPU is available to this process");
    }
    let map: Vec<String> = (0..=workers)
        .map(|l| {
            let cpu = match (l, cores.get(l.wrapping_sub(1))) {
                (0, _) => cpus[0],
                (_, Some(&c)) => c as usize,
                (_, None) => cpus[l % cpus.len()],
            };
            format!("{l}@{cpu}")
        })
        .collect();
    Ok(format!("--lcores={}", map.join(",")))
}

/// The CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}
