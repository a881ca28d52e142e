//! The command line's arguments: one `clap` tree, each command's
//! options documented for `--help`.

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
        /// Where to read and how to print.
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Integrated health, in six sections: maturity, ROI gate, SLO
    /// compliance, summary, overall, actions; of one instance through its
    /// sidecar, or of the whole fleet through a Prometheus query API.
    /// Exit code: 0 EXCELLENT or GOOD, 1 FAIR, 2 POOR, 3 no data,
    /// unreachable or bad answer.
    Health {
        /// Where to read and how to print.
        #[command(flatten)]
        read: ReadArgs,
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
    /// The rollback gate: watch the revision serving a Cloud Run service,
    /// open a five-minute approval window when ROI, SLO compliance or the
    /// cost forecast goes bad on enough traffic, then roll back (unless
    /// vetoed) to the previous good revision. `approve` / `veto` act on the
    /// open window.
    Gate {
        /// `watch`, `approve`, `veto` or `status`.
        #[command(subcommand)]
        action: GateAction,
    },
    /// The monthly cost budget as a Cloud Billing budget (`budget` is
    /// the same command).
    #[command(name = "cost-budget", alias = "budget")]
    CostBudget {
        /// `apply`.
        #[command(subcommand)]
        action: BudgetAction,
    },
    /// A/B experiments on a parameter the app reads from the tuning channel
    /// (`tuning().param(NAME)`), analysed with always-valid statistics:
    /// `start`, `status`, `stop`. Exit code: 0 done, 3 unreachable, refused
    /// or bad answer.
    Experiment {
        /// `start`, `status` or `stop`.
        #[command(subcommand)]
        action: ExperimentAction,
    },
    /// The feedback loop's recommendations applied to Cloud Run.
    Tune {
        /// `apply`.
        #[command(subcommand)]
        action: TuneAction,
    },
    /// SLOs as code: the service's SLOs as OpenSLO v1 documents (`export`),
    /// and OpenSLO documents as Lumen's settings (`import`).
    Slo {
        /// `export` or `import`.
        #[command(subcommand)]
        action: SloAction,
    },
    /// Merge the fleet store's closed blocks now (sidecars do it every
    /// `fleet.compact_every` on their own): each block's fields of sidecars
    /// done with it into one, exactly. Safe beside running sidecars and
    /// another compaction; stopping it at any point leaves every block
    /// merged or as it was.
    Compact(CompactArgs),
    /// Validate or print the configuration.
    Config {
        /// `check` or `show`.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// What `compact` works on.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The fleet store the sidecars write to (their LUMEN_FLEET_REDIS_URL).
    #[arg(long, value_name = "URL")]
    pub fleet_redis: String,
    /// PEM file of the CA that signed the fleet store's certificate.
    #[arg(long, value_name = "FILE")]
    pub fleet_redis_ca_file: Option<PathBuf>,
    /// The service (else the config's `service`, LUMEN_SERVICE or K_SERVICE).
    #[arg(long)]
    pub service: Option<String>,
    /// The sidecar's TOML config file (for the retention).
    #[arg(long, env = "LUMEN_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What `check` and `health` read (one sidecar, or the fleet) and how
/// they print it.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The sidecar's URL: its base URL, or the `/v1/ingest` URL the app's
    /// LUMEN_SIDECAR_URL names (the same variable).
    #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = super::sources::DEFAULT_URL)]
    pub url: String,
    /// Evaluation window, whole minutes from 1m to 24h (default: the sidecar's).
    #[arg(long)]
    pub window: Option<String>,
    /// Print the JSON document (the sidecar's /v1/slo or /v1/health) instead
    /// of the text.
    #[arg(long)]
    pub json: bool,
    /// More detail: for `check` the request counts, cache figures, the
    /// per-route table and the error budgets; for `health` the weights and
    /// the ROI arithmetic.
    #[arg(long)]
    pub verbose: bool,
    /// The fleet instead of one sidecar.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// Reading the whole fleet: through a Prometheus query API that scrapes
/// (or receives) every instance's sidecar metrics, or from the fleet store
/// (the Redis every sidecar writes its minutes to).
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// A Prometheus query API holding every sidecar's metrics: a Prometheus,
    /// Thanos or Mimir base URL, or Managed Service for Prometheus at
    /// `https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus`.
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
    pub async fn open(&self) -> Result<crate::fleet::FleetSource, super::CliError> {
        use super::sources::{fleet_reader, fleet_store_reader};
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
            (None, None) => Err(super::CliError::Usage(
                "no fleet source: give --prometheus URL or --fleet-redis URL".into(),
            )),
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

fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    lumen_middleware::units::parse_duration(text.trim())
}

/// What the rollback gate does.
#[derive(Debug, Subcommand)]
pub enum GateAction {
    /// Watch the service. Exit codes with --once: 0 healthy, 1 a trigger
    /// holding or the window closed without a rollback (veto, approval
    /// required and missing, dry run), 2 rolled back, 3 no data, too little
    /// data, or an error.
    Watch(Box<GateWatchArgs>),
    /// Roll a new revision out in steps (5, 25, 50, 100 % by default),
    /// comparing it at every reading with the revisions it replaces over the
    /// same minutes (always-valid tests: the shares of server errors, error
    /// statuses and requests over each latency target, and the latency
    /// distribution). A step is promoted when its time is up and every test
    /// reads "no worse"; a regression opens the approval window, and the
    /// rollback returns the traffic to what it was. The absolute triggers
    /// keep working beside it. Deploy the revision with `--no-traffic`
    /// first. Exit codes: 0 promoted to 100 %, 1 stopped with the traffic
    /// where it is (inconclusive past --max-hold, a veto, approval required
    /// and missing, SIGTERM), 2 rolled back (traffic returned), 3 a failed
    /// read or traffic change.
    Rollout(Box<GateRolloutArgs>),
    /// Ask a running gate (the gate service, `gate watch`) to carry out a
    /// rollout as `gate rollout` would; `gate status` follows it. Refused
    /// while another rollout runs or an approval window is open.
    Start(Box<GateStartArgs>),
    /// Approve the open approval window: the rollback proceeds now.
    Approve(GateCommandArgs),
    /// Veto the open approval window: no rollback; the gate leaves the revision alone.
    Veto(GateCommandArgs),
    /// Print the watcher's status.
    Status(GateCommandArgs),
}

/// `gate watch`.
#[derive(Debug, Args)]
pub struct GateWatchArgs {
    /// The Cloud Run service.
    #[arg(long)]
    pub service: String,
    /// Its region.
    #[arg(long)]
    pub region: String,
    /// Its project.
    #[arg(long)]
    pub project: String,
    /// A Prometheus query API holding every sidecar's metrics (as `check --prometheus`).
    #[arg(long, value_name = "URL")]
    pub prometheus: String,
    /// The `service_name` the sidecars' metrics carry (default: --service).
    #[arg(long)]
    pub metrics_service: Option<String>,
    /// The sidecar's TOML config file, for its SLO targets, ROI and cost settings.
    #[arg(long, env = "LUMEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// A file holding the bearer token for Google's APIs and the query API
    /// (else GOOGLE_OAUTH_ACCESS_TOKEN, else the metadata server's).
    #[arg(long)]
    pub access_token_file: Option<PathBuf>,
    /// The Cloud Run Admin API.
    #[arg(long, value_name = "URL", default_value = crate::gate::DEFAULT_RUN_API_BASE)]
    pub run_api_base: String,
    /// The window each reading covers.
    #[arg(long, default_value = "10m", value_parser = duration_arg)]
    pub window: std::time::Duration,
    /// How often the evidence is read.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub interval: std::time::Duration,
    /// How long a trigger must hold on every reading before the window opens.
    #[arg(long, default_value = "2m", value_parser = duration_arg)]
    pub hold_for: std::time::Duration,
    /// How long the approval window stays open.
    #[arg(long, default_value = "5m", value_parser = duration_arg)]
    pub approval_window: std::time::Duration,
    /// Roll back only when approved (a window that ends unanswered escalates).
    #[arg(long)]
    pub require_approval: bool,
    /// Decide and report, never change traffic.
    #[arg(long)]
    pub dry_run: bool,
    /// Run until the first answer (a post-deploy check); see the exit codes.
    #[arg(long)]
    pub once: bool,
    /// With --once, print the status as JSON.
    #[arg(long)]
    pub json: bool,
    /// ROI trigger: below this, percent.
    #[arg(long, default_value_t = crate::gate::triggers::DEFAULT_ROI_BELOW_PERCENT)]
    pub roi_below: f64,
    /// SLO compliance trigger: below this, percent.
    #[arg(long, default_value_t = crate::gate::triggers::DEFAULT_COMPLIANCE_BELOW_PERCENT)]
    pub compliance_below: f64,
    /// Cost trigger: the month's forecast above this, USD (default: the config's cost.monthly_budget_usd).
    #[arg(long)]
    pub budget: Option<f64>,
    /// Fewer requests in the window than this holds the gate (no SLO judgement).
    #[arg(long, default_value_t = crate::gate::triggers::DEFAULT_MIN_REQUESTS)]
    pub min_requests: u64,
    /// Fewer cache lookups in the window than this holds the ROI trigger.
    #[arg(long, default_value_t = crate::gate::triggers::DEFAULT_MIN_LOOKUPS)]
    pub min_lookups: u64,
    /// A rollback target must have served traffic within this.
    #[arg(long, default_value = "7d", value_parser = duration_arg)]
    pub target_lookback: std::time::Duration,
    /// Where the approve/veto API listens.
    #[arg(long, default_value = crate::gate::DEFAULT_GATE_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// The approve/veto API's URL as the messages' commands give it (default: http://LISTEN).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on the approve/veto API.
    #[arg(long, env = "LUMEN_GATE_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Approvers and their tokens, `NAME=TOKEN,NAME=TOKEN`: a decision is
    /// then recorded under the name whose token it carried (a `--by` that
    /// names someone else is refused); without them a decision is recorded
    /// as claimed.
    #[arg(
        long,
        env = "LUMEN_GATE_APPROVERS",
        hide_env_values = true,
        value_name = "NAME=TOKEN,…"
    )]
    pub approvers: Option<String>,
    /// A Slack bot token (chat:write): the window's message and its outcome in one thread.
    #[arg(
        long,
        env = "SLACK_BOT_TOKEN",
        hide_env_values = true,
        requires = "slack_channel"
    )]
    pub slack_token: Option<String>,
    /// The Slack channel (id or name) for --slack-token.
    #[arg(long)]
    pub slack_channel: Option<String>,
    /// Slack's Web API.
    #[arg(long, value_name = "URL", default_value = crate::gate::DEFAULT_SLACK_API_BASE)]
    pub slack_api_base: String,
    /// The Slack app's signing secret: with it the window's message has
    /// Approve and Veto buttons, and the gate takes their clicks at
    /// `/slack/interactions` (the app's Interactivity Request URL), verified
    /// with this secret. Needs --slack-approvers or --slack-approver-group.
    #[arg(
        long,
        env = "SLACK_SIGNING_SECRET",
        hide_env_values = true,
        requires = "slack_token"
    )]
    pub slack_signing_secret: Option<String>,
    /// Slack user ids (`U…`, comma-separated) who may approve or veto with
    /// the buttons.
    #[arg(long, env = "LUMEN_GATE_SLACK_APPROVERS", value_name = "U…,U…")]
    pub slack_approvers: Option<String>,
    /// A Slack user group id (`S…`) whose members may approve or veto with
    /// the buttons (asked of the Web API: the bot needs `usergroups:read`).
    #[arg(long, value_name = "S…")]
    pub slack_approver_group: Option<String>,
    /// A Slack incoming webhook instead of a bot token (no threads).
    #[arg(
        long,
        env = "SLACK_WEBHOOK_URL",
        hide_env_values = true,
        conflicts_with = "slack_token"
    )]
    pub slack_webhook: Option<String>,
    /// Read the data as of this time (Unix ms) and move on from it with the
    /// gate's clock: a replay of a past deploy, for post-mortems (default: now).
    #[arg(long, value_name = "UNIX_MS")]
    pub replay_from: Option<u64>,
}

/// What a rollout does: `gate rollout` and `gate start` share these.
#[derive(Debug, Args)]
pub struct RolloutFlags {
    /// The new revision (deployed with `--no-traffic`).
    #[arg(long, value_name = "REVISION")]
    pub to: String,
    /// The new revision's percent of requests at each step, rising to 100.
    #[arg(long, default_value = "5,25,50,100")]
    pub steps: String,
    /// How long each step lasts at least.
    #[arg(long, default_value = "10m", value_parser = duration_arg)]
    pub step_for: std::time::Duration,
    /// How long a step may stay inconclusive past --step-for before the
    /// rollout stops with the traffic where it is.
    #[arg(long, default_value = "1h", value_parser = duration_arg)]
    pub max_hold: std::time::Duration,
    /// The false-alarm rate over every test and every reading.
    #[arg(long, default_value_t = crate::eval::DEFAULT_ROLLOUT_ALPHA)]
    pub alpha: f64,
    /// A step is promoted only when each share of bad requests is surely
    /// at most this much worse, percentage points.
    #[arg(long, default_value_t = crate::eval::DEFAULT_SHARE_TOLERANCE * 100.0)]
    pub share_tolerance: f64,
    /// A step is promoted only when the share of requests made slower than
    /// any latency is surely at most this, percentage points.
    #[arg(long, default_value_t = crate::eval::DEFAULT_SHIFT_TOLERANCE * 100.0)]
    pub shift_tolerance: f64,
    /// Fewer requests than this on either side settles no test.
    #[arg(long, default_value_t = crate::eval::DEFAULT_ROLLOUT_MIN_REQUESTS)]
    pub rollout_min_requests: u64,
}

/// `gate rollout`.
#[derive(Debug, Args)]
pub struct GateRolloutArgs {
    /// The rollout.
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// The gate's settings (service, sources, triggers, approvals, Slack).
    #[command(flatten)]
    pub gate: GateWatchArgs,
}

/// `gate start`.
#[derive(Debug, Args)]
pub struct GateStartArgs {
    /// The rollout.
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// The gate service.
    #[command(flatten)]
    pub api: GateApiArgs,
}

/// `experiment start|status|stop`.
#[derive(Debug, Subcommand)]
pub enum ExperimentAction {
    /// Start an experiment: the tuning channel carries both arms, the app
    /// puts each request in one (by the key it gives, else at random) and
    /// the sidecar compares them at every look; it stops early only when
    /// the primary's always-valid interval excludes no effect and no
    /// guardrail regresses, else at the end keeps A.
    Start(Box<ExperimentStartArgs>),
    /// The running experiment and the decided ones (the decision reports).
    Status(ExperimentTarget),
    /// Stop the running experiment now; A (the value in force) stays.
    Stop(ExperimentTarget),
}

/// Which sidecar an experiment command talks to.
#[derive(Debug, Args)]
pub struct ExperimentTarget {
    /// The sidecar's URL: its base URL, or the `/v1/ingest` URL the app's
    /// LUMEN_SIDECAR_URL names.
    #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = super::sources::DEFAULT_URL)]
    pub url: String,
    /// The sidecar's bearer token, when it has one.
    #[arg(long, env = "LUMEN_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `experiment start`.
#[derive(Debug, Args)]
pub struct ExperimentStartArgs {
    /// The sidecar.
    #[command(flatten)]
    pub target: ExperimentTarget,
    /// The parameter the app reads (`tuning().param(NAME)`).
    #[arg(long)]
    pub param: String,
    /// Arm A's value: the value in force (a whole number).
    #[arg(long)]
    pub a: u64,
    /// Arm B's value: the value tried.
    #[arg(long)]
    pub b: u64,
    /// B's share of requests, percent (1 to 99).
    #[arg(long, default_value_t = crate::eval::DEFAULT_SHARE_B_PERCENT)]
    pub share: u8,
    /// How long it runs at most (then, without a winner, A stays).
    #[arg(long, default_value = "7d")]
    pub duration: String,
    /// The metric that picks the winner: cache_hit_rate, error_rate,
    /// under_p95_target or under_p99_target (the others are guardrails).
    #[arg(long, default_value = "cache_hit_rate")]
    pub primary: String,
    /// The level of every test.
    #[arg(long, default_value_t = crate::eval::DEFAULT_ALPHA)]
    pub alpha: f64,
    /// The primary test's mixing standard deviation, a proportion: the
    /// size of effect it is most sensitive to.
    #[arg(long, default_value_t = crate::eval::DEFAULT_TAU)]
    pub tau: f64,
}

/// The running gate's API, as its commands reach it.
#[derive(Debug, Args)]
pub struct GateApiArgs {
    /// The gate's API (`gate watch --listen`, or the gate service's URL).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9465")]
    pub url: String,
    /// Who asks, for the record (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// The API's bearer token (an approver's, when it knows approvers).
    #[arg(long, env = "LUMEN_GATE_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `gate approve`, `gate veto`, `gate status`.
#[derive(Debug, Args)]
pub struct GateCommandArgs {
    /// The window's id, as the Slack message gives it (required to approve or veto).
    #[arg(long)]
    pub window: Option<String>,
    /// The gate.
    #[command(flatten)]
    pub api: GateApiArgs,
}

/// What to do with the budget.
#[derive(Debug, Subcommand)]
pub enum BudgetAction {
    /// Create or update (by display name, with its etag) the Cloud Billing
    /// budget: the amount for the project, thresholds at 50 %, 90 %, 100 %
    /// of current spend and 100 % of forecast. Google's spend figures lag by
    /// hours; the rollback gate uses Lumen's own estimate instead.
    Apply {
        /// The billing account id (012345-6789AB-CDEF01).
        #[arg(long)]
        billing_account: String,
        /// The project NUMBER whose spend counts (Google stores a budget's
        /// projects by number: `gcloud projects describe ID
        /// --format='value(projectNumber)'`).
        #[arg(long)]
        project: String,
        /// The service the budget is for (its name; default: the config's service).
        #[arg(long, env = "LUMEN_SERVICE")]
        service: Option<String>,
        /// The monthly amount in the billing account's currency (default: the
        /// config's cost.monthly_budget_usd, when the account bills in USD).
        #[arg(long)]
        amount: Option<f64>,
        /// The billing account's currency (ISO 4217; default: asked of the
        /// Cloud Billing API, which needs billing.accounts.get).
        #[arg(long)]
        currency: Option<String>,
        /// The budget's display name (default: "Lumen: SERVICE (project NUMBER)");
        /// found again only together with a filter naming this project.
        #[arg(long)]
        display_name: Option<String>,
        /// A Pub/Sub topic to notify (projects/P/topics/T).
        #[arg(long)]
        pubsub_topic: Option<String>,
        /// A Cloud Monitoring email channel to notify (projects/P/notificationChannels/N); up to 5.
        #[arg(long)]
        email_channel: Vec<String>,
        /// The sidecar's TOML config file (for cost.monthly_budget_usd).
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// A file holding the bearer token (else GOOGLE_OAUTH_ACCESS_TOKEN, else the metadata server's).
        #[arg(long)]
        access_token_file: Option<PathBuf>,
        /// The Billing Budget API.
        #[arg(long, value_name = "URL", default_value = crate::google::cost_budget::DEFAULT_BUDGET_API_BASE)]
        api_base: String,
        /// The Cloud Billing API (the account's currency).
        #[arg(long, value_name = "URL", default_value = crate::google::cost_budget::DEFAULT_BILLING_API_BASE)]
        billing_api_base: String,
        /// The project the calls' quota is billed to (`x-goog-user-project`):
        /// what a person's credentials need for the Budget API; the caller
        /// needs serviceusage.services.use there (default: the config's
        /// export.quota_project).
        #[arg(long, env = "GOOGLE_CLOUD_QUOTA_PROJECT")]
        quota_project: Option<String>,
        /// Print the request instead of sending it (the list is still read).
        #[arg(long)]
        dry_run: bool,
    },
}

/// What to tune.
#[derive(Debug, Subcommand)]
pub enum TuneAction {
    /// Recommend (and with --confirm, set) the service's min instances from
    /// its cold starts in the fleet store: every instance start is one; the
    /// smallest count at or above --floor that would have avoided --avoid
    /// percent of them, with what it adds a month. A dry run unless --confirm.
    Apply(Box<TuneApplyArgs>),
}

/// `tune apply`.
#[derive(Debug, Args)]
pub struct TuneApplyArgs {
    /// Tune the service-level minimum instances (`scaling.minInstanceCount`).
    #[arg(long)]
    pub min_instances: bool,
    /// The fleet store the sidecars write to (their LUMEN_FLEET_REDIS_URL).
    #[arg(long, value_name = "URL")]
    pub fleet_redis: String,
    /// PEM file of the CA that signed the fleet store's certificate.
    #[arg(long, value_name = "FILE")]
    pub fleet_redis_ca_file: Option<PathBuf>,
    /// The Cloud Run service (and its metrics' service_name).
    #[arg(long)]
    pub service: String,
    /// Its region.
    #[arg(long)]
    pub region: String,
    /// Its project.
    #[arg(long)]
    pub project: String,
    /// Never fewer than this many (your own floor).
    #[arg(long, default_value_t = 0)]
    pub floor: u32,
    /// The share of cold starts to avoid, percent.
    #[arg(long, default_value_t = 90.0)]
    pub avoid: f64,
    /// How far back the evidence goes.
    #[arg(long, default_value = "7d", value_parser = duration_arg)]
    pub window: std::time::Duration,
    /// The sidecar's TOML config file (for the cost model).
    #[arg(long, env = "LUMEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// A file holding the bearer token (else GOOGLE_OAUTH_ACCESS_TOKEN, else the metadata server's).
    #[arg(long)]
    pub access_token_file: Option<PathBuf>,
    /// The Cloud Run Admin API.
    #[arg(long, value_name = "URL", default_value = crate::gate::DEFAULT_RUN_API_BASE)]
    pub run_api_base: String,
    /// Set it (without: a dry run that prints what it would set).
    #[arg(long)]
    pub confirm: bool,
    /// Print the advice as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// Evaluate the alert rules (the four threshold rules, SLO status changes,
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
    /// four threshold policies and the 16 burn-rate policies; running it twice
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
        /// Apply only these (repeat or comma-separate): `thresholds` (the four
        /// policies), `slos` (the Service and its four SLOs), `burn-rate`
        /// (the 16 burn-rate policies). Default: all three.
        #[arg(long, value_delimiter = ',', value_parser = ["thresholds", "slos", "burn-rate"])]
        only: Vec<String>,
        /// A file holding an OAuth access token.
        #[arg(long)]
        access_token_file: Option<PathBuf>,
        /// The Monitoring API's base URL.
        #[arg(long, env = "LUMEN_MONITORING_API", hide = true)]
        api_base: Option<String>,
    },
}

/// SLOs as code.
#[derive(Debug, Subcommand)]
pub enum SloAction {
    /// Writes the service's SLOs, their error-budget period and the
    /// burn-rate alerts as OpenSLO v1 documents (one YAML stream) on stdout.
    Export {
        /// The format.
        #[arg(long, default_value = "openslo", value_parser = ["openslo"])]
        format: String,
        /// The sidecar's TOML config file: its targets, period and data path.
        #[arg(long, env = "LUMEN_CONFIG")]
        config: Option<PathBuf>,
        /// The service (else the config's `service`, LUMEN_SERVICE or K_SERVICE).
        #[arg(long)]
        service: Option<String>,
    },
    /// Replays this sidecar's stored history under other targets: per SLO
    /// the share of good requests, the budget left, and every burn-rate
    /// page and ticket that would have fired, with its times.
    WhatIf {
        /// A target to try, `SLO=VALUE`: `availability=99.9`,
        /// `error_rate=0.5` (percent), `latency_p95=150ms`,
        /// `latency_p99=900ms`, `error_classes=5xx`; repeat for several
        /// (the configured ones for the rest).
        #[arg(long = "target", value_name = "SLO=VALUE")]
        targets: Vec<String>,
        /// The error budget's period: 7d, 28d, 30d or month (default: the
        /// sidecar's).
        #[arg(long)]
        period: Option<String>,
        /// The sidecar's URL (its base URL, or the app's `/v1/ingest` URL).
        #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = super::sources::DEFAULT_URL)]
        url: String,
        /// Print the JSON answer instead of the text.
        #[arg(long)]
        json: bool,
    },
    /// Keeps a window off the error budgets (a maintenance, a known
    /// incident): its minutes leave the budgets and burn rates, from the
    /// past as far as the sidecar holds them one by one (3 days) and ahead
    /// for up to 7 days. Recurring windows go in the config
    /// (`budget.maintenance`).
    Exclude {
        /// Its start: RFC 3339 (`2026-12-06T02:00:00Z`) or Unix ms, a whole minute.
        #[arg(long)]
        from: String,
        /// Its end (exclusive), as --from; at most 7 days after it.
        #[arg(long)]
        to: String,
        /// Why, for the budget's report and the status page.
        #[arg(long)]
        reason: String,
        /// Who marks it (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// The sidecar's URL (its base URL, or the app's `/v1/ingest` URL).
        #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = super::sources::DEFAULT_URL)]
        url: String,
        /// The sidecar's bearer token, when it has one.
        #[arg(long, env = "LUMEN_AUTH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Lists the windows kept off the error budgets: the one-off ones, the
    /// recurring ones and every excluded span of the budget's period.
    Exclusions {
        /// The sidecar's URL (its base URL, or the app's `/v1/ingest` URL).
        #[arg(long, env = "LUMEN_SIDECAR_URL", default_value = super::sources::DEFAULT_URL)]
        url: String,
    },
    /// Reads OpenSLO v1 `SLO` documents and prints the settings they make,
    /// as `lumen.toml` lines; refuses, naming the document and the field,
    /// what Lumen cannot evaluate (exit 3, nothing printed).
    Import {
        /// The OpenSLO YAML file (one or more documents).
        file: PathBuf,
    },
}
