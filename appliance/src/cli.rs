//! The command line: `weir run`, `weir extract`, `weir cost`, `weir plugins`, `weir models`,
//! `weir check-config`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "weir: a DPDK network traffic analysis appliance"
)]
pub struct Cli {
    /// Log format: human or json (overrides the config's `log.format`).
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run on the configured ports until SIGINT/SIGTERM, then flush every open flow.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Stop after this many seconds (0 = until a signal).
        #[arg(long, default_value_t = 0)]
        duration_s: u64,
        /// Stop after this many packets per worker (0 = no limit); for benchmarks.
        #[arg(long, default_value_t = 0)]
        max_packets: u64,
        /// Stop once no packet arrived for this many ms after the first one (0 = never): ends
        /// a replay through net_pcap, which never signals the end of its capture.
        #[arg(long, default_value_t = 0)]
        stop_after_idle_ms: u64,
    },
    /// Extract flow records from captures through a DPDK virtual device.
    Extract(ExtractArgs),
    /// Print the cost table (cycles per packet per stage and plugin) for captures.
    Cost {
        #[arg(required = true)]
        captures: Vec<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Also write the table as JSON here (rows, and plugin cost by service).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only packets this libpcap filter accepts (as `weir extract --filter`); the
        /// filter's cost is its own row.
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
    },
    /// Plugins: list the loadable ones, or check given files.
    Plugins {
        #[command(subcommand)]
        cmd: PluginsCmd,
    },
    /// Models: inspect a model directory.
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Validate a config file without starting DPDK.
    CheckConfig { config: PathBuf },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell); `make install`
    /// installs them.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages (weir.1 and one per subcommand) into a directory; `make install`
    /// installs them.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Args, Debug, Clone)]
pub struct ExtractArgs {
    /// Capture files (pcap or pcapng), read in the order given; a pipe too (`tcpdump -w - |
    /// weir extract /dev/stdin ...`, or a named FIFO), read once as it comes.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
    /// Output records: a `.csv`, `.jsonl` or `.parquet` file, or a directory (an existing one
    /// or a path ending in `/`) for a `date=/hour=` partitioned Parquet dataset.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Config for everything but the ports (timeouts, tables, plugins, rates, model, sinks).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Plugin directory (overrides the config and the default).
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Run without any plugin.
    #[arg(long)]
    pub no_plugins: bool,
    /// Model directory to score flows with.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Alerts file (JSON Lines).
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// Also export the records to this IPFIX collector over UDP (overrides `sinks.ipfix`).
    #[arg(long, value_name = "HOST:PORT")]
    pub ipfix: Option<String>,
    /// Worker count (overrides the config); packets are spread by a symmetric hash.
    #[arg(long)]
    pub workers: Option<u32>,
    /// Do not show a progress bar (it is only shown on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Do not print the cost table at the end.
    #[arg(long)]
    pub quiet: bool,
    /// Write a JSON summary of the run here (packets read, accepted, skipped by reason, flows,
    /// records, evictions, scoring), for scripts and tests; written once the data path ran,
    /// also when records were lost, could not be written, or a signal cut the input short.
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Only packets this libpcap filter expression accepts (tcpdump's syntax, e.g. `tcp port
    /// 443 or udp port 53`) reach flows, plugins and rates; the others are counted
    /// (`filtered`). Overrides `[capture] filter`.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PluginsCmd {
    /// List the plugins weir would load.
    List {
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
    },
    /// Load and self-test plugin files; exit non-zero if any is refused.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// Show a model's inputs, outputs and features, and which plugin provides each feature.
    Inspect {
        dir: PathBuf,
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
    },
}
