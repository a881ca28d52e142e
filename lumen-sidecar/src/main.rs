//! `lumen-sidecar`: parse the command line, start logging and the async
//! runtime, hand off to [`lumen_sidecar::cli::run`], exit with its code.

use std::process::ExitCode;

use clap::Parser;
use lumen_sidecar::cli::{Cli, EXIT_ERROR, run};
use lumen_sidecar::sidecar::shutdown_signal;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUMEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(run(cli, shutdown_signal())))
}
