use clap::Parser;
use std::process::ExitCode;
use weir::cli::{Cli, Command, ModelsCmd, PluginsCmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `weir run` is a service and logs what it does; the one-shot commands print their
    // results and log only warnings unless RUST_LOG asks for more.
    let level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    weir::logging::init(cli.log_format.as_deref(), Some(level));
    let result = match cli.command {
        Command::CheckConfig { config } => weir::admin::check_config(&config).map(|_| ()),
        Command::Extract(args) => {
            weir::scoring::runtime::allow_project_venv();
            weir::extract::run(&args)
        }
        Command::Cost {
            captures,
            config,
            plugin_dir,
            json,
        } => weir::extract::cost(captures, config, plugin_dir, json),
        Command::Run {
            config,
            duration_s,
            max_packets,
            stop_after_idle_ms,
        } => weir::run::run(
            &config,
            &weir::run::RunOptions {
                duration_s,
                max_packets,
                stop_after_idle_ms,
            },
        ),
        Command::Plugins {
            cmd: PluginsCmd::List { plugin_dir },
        } => weir::admin::plugins_list(plugin_dir),
        Command::Plugins {
            cmd: PluginsCmd::Check { files },
        } => weir::admin::plugins_check(&files),
        Command::Models {
            cmd: ModelsCmd::Inspect { dir, plugin_dir },
        } => {
            weir::scoring::runtime::allow_project_venv();
            weir::admin::models_inspect(&dir, plugin_dir)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
