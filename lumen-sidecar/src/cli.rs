//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Lumen sidecar: ingests the Lumen middleware's batches, evaluates SLOs,
/// serves reports and metrics, and checks a service from the command line.
#[derive(Debug, Parser)]
#[command(name = "lumen-sidecar", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar: ingest on /v1/ingest, read API on /v1/slo, /v1/report,
    /// /metrics, /healthz. Stops on SIGTERM or SIGINT after draining.
    Serve {
        /// TOML config file (defaults, then this file, then LUMEN_* variables).
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// Where metrics go besides /metrics: `otlp` (to OTEL_EXPORTER_OTLP_ENDPOINT,
        /// or Google's endpoint on Cloud Run), `stdout` (one line per data point)
        /// or `off`. Default: otlp when an endpoint is known, else off.
        #[arg(long, value_parser = ["otlp", "stdout", "off"])]
        export: Option<String>,
    },
    /// Check the service's SLOs through a running sidecar, in seven phases.
    /// Exit code: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 no data, unreachable
    /// or bad answer.
    Check {
        /// The sidecar's base URL.
        #[arg(long, env = "LUMEN_URL", default_value = crate::check::DEFAULT_URL)]
        url: String,
        /// Evaluation window, whole minutes from 1m to 24h (default: the sidecar's).
        #[arg(long)]
        window: Option<String>,
        /// Print the /v1/slo JSON document instead of the phases.
        #[arg(long)]
        json: bool,
        /// Add request counts, cache figures and the per-route table.
        #[arg(long)]
        verbose: bool,
    },
    /// Integrated health through a running sidecar, in six sections:
    /// maturity, ROI gate, SLO compliance, summary, overall, actions.
    /// Exit code: 0 EXCELLENT or GOOD, 1 FAIR, 2 POOR, 3 no data,
    /// unreachable or bad answer.
    Health {
        /// The sidecar's base URL.
        #[arg(long, env = "LUMEN_URL", default_value = crate::check::DEFAULT_URL)]
        url: String,
        /// Evaluation window, whole minutes from 1m to 24h (default: the sidecar's).
        #[arg(long)]
        window: Option<String>,
        /// Print the /v1/health JSON document instead of the sections.
        #[arg(long)]
        json: bool,
        /// Add the weights and the ROI arithmetic.
        #[arg(long)]
        verbose: bool,
    },
    /// Validate or print the configuration.
    Config {
        /// `check` or `show`.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// What to do with the configuration.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate a config file (and the LUMEN_* environment); exit 0 if valid, 3 if not.
    Check {
        /// TOML config file.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML (tokens masked).
    Show {
        /// TOML config file.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
    },
}
