//! `lumen-demo`: the example API and the sidecar on loopback, traffic, and
//! the live SLO check.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lumen_examples::demo::{DEFAULT_RATE, DemoOptions, run_demo};
use lumen_middleware::units::parse_duration;

/// Run the mentoring API with the Lumen layer and a Lumen sidecar on
/// loopback, drive traffic, then print the seven-phase SLO check.
#[derive(Debug, Parser)]
#[command(name = "lumen-demo", version, about)]
struct Args {
    /// How long to drive traffic (such as 30s or 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Requests per second.
    #[arg(long, default_value_t = DEFAULT_RATE)]
    rate: u32,
    /// Keep the API and the sidecar serving after the report, until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUMEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = DemoOptions {
        duration: args.duration,
        rate: args.rate,
        keep_running: args.keep_running,
    };
    match run_demo(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
