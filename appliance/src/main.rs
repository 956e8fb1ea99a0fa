use clap::{CommandFactory, Parser};
use std::process::ExitCode;
use weir::cli::{Cli, Command, ModelsCmd, PluginsCmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `weir run` is a service and logs what it does; the one-shot commands print their
    // results and log only warnings unless the config or RUST_LOG asks for more.
    let (level, config) = match &cli.command {
        Command::Run { config, .. } => ("info", Some(config)),
        Command::Extract(a) => ("warn", a.config.as_ref()),
        Command::Cost { config, .. } => ("warn", config.as_ref()),
        _ => ("warn", None),
    };
    // The config's [log] section applies from the first line; a config that does not load is
    // reported by the command itself.
    let log_cfg = config.and_then(|p| weir::config::Config::load(p).ok().map(|c| c.log));
    match weir::logging::setup(cli.log_format.as_deref(), log_cfg.as_ref(), level) {
        Ok(s) => weir::logging::init(&s),
        Err(e) => {
            eprintln!("weir: error: {e}");
            return ExitCode::FAILURE;
        }
    }
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
            filter,
        } => weir::extract::cost(captures, config, plugin_dir, json, filter),
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
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "weir", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
            .map_err(|e| anyhow::anyhow!("cannot write man pages to {}: {e}", dir.display())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
