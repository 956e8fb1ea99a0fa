use clap::Parser;
use std::process::ExitCode;
use weir::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    weir::logging::init(cli.log_format.as_deref(), None);
    let result = match cli.command {
        Command::CheckConfig { config } => weir::config::Config::load(&config)
            .map(|_| println!("{}: OK", config.display()))
            .map_err(anyhow::Error::from),
        Command::Extract(args) => weir::extract::run(&args),
        other => Err(anyhow::anyhow!("not implemented yet: {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
