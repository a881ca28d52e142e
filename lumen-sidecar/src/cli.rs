//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Check the service's SLOs, in seven phases: one instance through its
    /// sidecar, or the whole fleet through a Prometheus query API
    /// (--prometheus). Exit code: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 no
    /// data, unreachable or bad answer.
    Check {
        /// The sidecar's URL: its base URL, or the `/v1/ingest` URL the app's
        /// LUMEN_SIDECAR_URL names (the same variable).
        #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = crate::check::DEFAULT_URL)]
        url: String,
        /// Evaluation window, whole minutes from 1m to 24h (default: the sidecar's).
        #[arg(long)]
        window: Option<String>,
        /// Print the /v1/slo JSON document instead of the phases.
        #[arg(long)]
        json: bool,
        /// Add request counts, cache figures, the per-route table and the error budgets.
        #[arg(long)]
        verbose: bool,
        /// The fleet instead of one sidecar.
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Integrated health, in six sections: maturity, ROI gate, SLO
    /// compliance, summary, overall, actions; of one instance through its
    /// sidecar, or of the whole fleet through a Prometheus query API.
    /// Exit code: 0 EXCELLENT or GOOD, 1 FAIR, 2 POOR, 3 no data,
    /// unreachable or bad answer.
    Health {
        /// The sidecar's URL: its base URL, or the `/v1/ingest` URL the app's
        /// LUMEN_SIDECAR_URL names (the same variable).
        #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = crate::check::DEFAULT_URL)]
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
        /// The fleet instead of one sidecar.
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Render or deploy the 12-widget dashboard (lumen-sidecar/assets/dashboard.yaml).
    Dashboard {
        /// `render` or `deploy`.
        #[command(subcommand)]
        action: DashboardAction,
    },
    /// Render or apply the alert policies: the "Lumen System Alerts" channel
    /// and the four policies (Cloud Monitoring), or a Prometheus rule file.
    Alerts {
        /// `render` or `apply`.
        #[command(subcommand)]
        action: AlertsAction,
    },
    /// Validate or print the configuration.
    Config {
        /// `check` or `show`.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// Reading the whole fleet: through a Prometheus query API that scrapes
/// (or receives) every instance's sidecar metrics, or from the fleet store
/// (the Redis every sidecar writes its minutes to).
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// A Prometheus query API holding every sidecar's metrics: a Prometheus,
    /// Thanos or Mimir base URL, or Managed Service for Prometheus at
    /// https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus.
    /// Counts and SLO verdicts are exact sums over the instances; P95/P99
    /// are estimates from the histogram buckets, with their bounds.
    #[arg(long, value_name = "URL", conflicts_with = "fleet_redis")]
    pub prometheus: Option<String>,
    /// The fleet store the sidecars write to (their LUMEN_FLEET_REDIS_URL):
    /// `redis://[:password@]host:port`, `rediss://` for TLS. Every
    /// instance's histograms are merged: counts and P50 to P99.9 exact,
    /// ended instances included.
    #[arg(long, value_name = "URL")]
    pub fleet_redis: Option<String>,
    /// PEM file of the CA that signed the fleet store's certificate (with
    /// a rediss:// --fleet-redis).
    #[arg(long, value_name = "FILE", requires = "fleet_redis")]
    pub fleet_redis_ca_file: Option<PathBuf>,
    /// The service (with --prometheus or --fleet-redis; else the config's
    /// `service`, LUMEN_SERVICE or K_SERVICE).
    #[arg(long)]
    pub service: Option<String>,
    /// The sidecar's TOML config file, for its SLO targets, budget period
    /// and ROI costs (with --prometheus or --fleet-redis).
    #[arg(long, env = "LUMEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// A file holding a bearer token for the query API (else
    /// GOOGLE_OAUTH_ACCESS_TOKEN; Google's API also takes the metadata
    /// server's token).
    #[arg(long, requires = "prometheus")]
    pub access_token_file: Option<PathBuf>,
}

impl FleetArgs {
    /// Whether a fleet source was named.
    pub fn is_fleet(&self) -> bool {
        self.prometheus.is_some() || self.fleet_redis.is_some()
    }

    /// Why the arguments do not make sense without a fleet source, if so.
    pub fn misuse(&self) -> Option<&'static str> {
        (!self.is_fleet() && self.service.is_some())
            .then_some("--service names the fleet's service: give --prometheus URL or --fleet-redis URL with it")
    }

    /// The fleet source the arguments name: the fleet store when
    /// `--fleet-redis` is given, else the query API at `--prometheus`.
    pub async fn open(&self) -> Result<crate::fleet::FleetSource, String> {
        use crate::check::{fleet_reader, fleet_store_reader};
        use crate::fleet::FleetSource;
        match (&self.fleet_redis, &self.prometheus) {
            (Some(url), _) => Ok(FleetSource::Store(Box::new(fleet_store_reader(
                url,
                self.fleet_redis_ca_file.as_deref(),
                self.service.as_deref(),
                self.config.as_deref(),
            )?))),
            (None, Some(url)) => Ok(FleetSource::Prometheus(Box::new(
                fleet_reader(
                    url,
                    self.service.as_deref(),
                    self.config.as_deref(),
                    self.access_token_file.as_deref(),
                )
                .await?,
            ))),
            (None, None) => {
                Err("no fleet source: give --prometheus URL or --fleet-redis URL".into())
            }
        }
    }

    /// The source named, for messages.
    pub fn source(&self) -> Option<String> {
        self.prometheus.clone().or_else(|| {
            self.fleet_redis
                .as_deref()
                .map(crate::fleet::store::masked_url)
        })
    }
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

/// Dashboard actions.
#[derive(Debug, Subcommand)]
pub enum DashboardAction {
    /// Print the dashboard as Cloud Monitoring or Grafana JSON.
    Render {
        /// `cloud-monitoring` or `grafana`.
        #[arg(long, default_value = "cloud-monitoring")]
        format: String,
        /// Another definition than the built-in one.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The project (for the logs panel).
        #[arg(long, default_value = "PROJECT_ID")]
        project: String,
        /// The sidecar's TOML config file: its service and SLO targets reach the output.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// The service (else the config's `service`, `LUMEN_SERVICE` or `K_SERVICE`).
        #[arg(long)]
        service: Option<String>,
    },
    /// Create the dashboard, or update the one with the same display name (with its etag).
    Deploy {
        /// The project.
        #[arg(long)]
        project: String,
        /// Say what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Another definition than the built-in one.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The sidecar's TOML config file: its service and SLO targets reach the output.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// The service (else the config's `service`, `LUMEN_SERVICE` or `K_SERVICE`).
        #[arg(long)]
        service: Option<String>,
        /// A file holding an OAuth access token (else GOOGLE_OAUTH_ACCESS_TOKEN, else the metadata server).
        #[arg(long)]
        access_token_file: Option<PathBuf>,
        /// The Monitoring API's base URL.
        #[arg(long, env = "LUMEN_MONITORING_API", hide = true)]
        api_base: Option<String>,
    },
}

/// Alert actions.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Evaluate the alert rules (the seed's four, SLO status changes,
    /// burn-rate pages and tickets) on the whole fleet through a
    /// Prometheus query API, in one process, and post each state change to
    /// Slack once. Run one of these per service (a one-instance Cloud Run
    /// service, or beside Prometheus) instead of every sidecar's own
    /// alerter, which sees one instance. Stops on SIGTERM/SIGINT, or after
    /// --ticks evaluations; exit 3 if an evaluation failed or a message
    /// was given up.
    Watch {
        /// The fleet to watch (--prometheus or --fleet-redis is required).
        #[command(flatten)]
        fleet: FleetArgs,
        /// The Slack incoming webhook to post to.
        #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true)]
        slack_webhook_url: String,
        /// Evaluation window, whole minutes from 1m to 24h (default: the config's).
        #[arg(long)]
        window: Option<String>,
        /// Time between evaluations.
        #[arg(long, default_value = "30s")]
        every: String,
        /// Stop after this many evaluations (for cron-style runs).
        #[arg(long)]
        ticks: Option<u64>,
    },
    /// Print the policies (`cloud-monitoring`) or a Prometheus rule file (`prometheus`).
    Render {
        /// `cloud-monitoring` or `prometheus`.
        #[arg(long, default_value = "cloud-monitoring")]
        format: String,
        /// The project.
        #[arg(long, default_value = "PROJECT_ID")]
        project: String,
        /// The sidecar's TOML config file: its service and SLO targets reach the output.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// The service (else the config's `service`, `LUMEN_SERVICE` or `K_SERVICE`).
        #[arg(long)]
        service: Option<String>,
    },
    /// Create or update the channel, the Service and its four SLOs, the
    /// seed's four policies and the 16 burn-rate policies; running it twice
    /// duplicates nothing. Every object is tried; exit 3 if any failed.
    Apply {
        /// The project.
        #[arg(long)]
        project: String,
        /// The sidecar's TOML config file: its service and SLO targets reach the output.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// The service (else the config's `service`, `LUMEN_SERVICE` or `K_SERVICE`).
        #[arg(long)]
        service: Option<String>,

        /// Slack channel (such as #lumen-alerts) for a channel created from SLACK_BOT_TOKEN.
        #[arg(long)]
        slack_channel: Option<String>,
        /// Apply only these (repeat or comma-separate): `seed` (the four
        /// policies), `slos` (the Service and its four SLOs), `burn-rate`
        /// (the 16 burn-rate policies). Default: all three.
        #[arg(long, value_delimiter = ',', value_parser = ["seed", "slos", "burn-rate"])]
        only: Vec<String>,
        /// A file holding an OAuth access token.
        #[arg(long)]
        access_token_file: Option<PathBuf>,
        /// The Monitoring API's base URL.
        #[arg(long, env = "LUMEN_MONITORING_API", hide = true)]
        api_base: Option<String>,
    },
}
