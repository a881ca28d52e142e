//! The sidecar's configuration: defaults, then a TOML file, then the
//! environment (`LUMEN_*`, the `OTEL_*` conventions, Cloud Run's `K_*`), all
//! driven by one table of settings ([`SETTINGS`]).
//!
//! ```toml
//! service = "ion-mentoring-api"      # else the name the batches carry
//!
//! [server]
//! listen = "127.0.0.1:9464"
//! auth_token = "…"                   # require `Authorization: Bearer …` on ingest
//! max_body_bytes = 4194304
//! grace_period = "8s"
//!
//! [slo]
//! window = "1h"
//! availability = 99.5                # percent, met at or above
//! latency_p95_ms = 200               # met below
//! latency_p99_ms = 500               # met below
//! error_rate = 0.1                   # percent, met below
//! error_classes = ["4xx", "5xx"]
//!
//! [store]
//! retention = "24h"
//! snapshot_path = "/tmp/lumen.snapshot.json"
//! snapshot_interval = "60s"
//!
//! [budget]
//! period = "30d"                     # 7d, 28d, 30d or month
//! min_events = 100                   # a long window needs this many requests to alert
//!
//! [roi]
//! cost_per_miss_usd = 0.002          # what one hit saves (the backend call it avoids)
//! redis_monthly_cost_usd = 50        # must be above 0
//! pass_percent = 500
//! warn_percent = 300
//!
//! [cost]                             # an estimate, never a bill
//! instance_vcpu = 1                  # every container's limit summed
//! instance_memory_gib = 0.75
//! vcpu_second_usd = 0.000018         # Cloud Run tier 1, instance-based billing
//! gib_second_usd = 0.000002
//! monthly_budget_usd = 200
//!
//! [feedback]                         # the adaptive cache TTL
//! mode = "off"                       # off | recommend | apply
//! interval = "60s"
//! target_hit_rate = 80               # percent
//! ttl_min = "60s"
//! ttl_max = "1h"
//! initial_ttl = "5m"
//! min_lookups = 100                  # per interval, before the TTL moves
//!
//! [export]                           # OTLP; OTEL_* variables win
//! mode = "otlp"                      # off | otlp | stdout (default: otlp when an endpoint is known)
//! endpoint = "http://127.0.0.1:4318/v1/metrics"   # the full metrics URL
//! protocol = "http/protobuf"         # or grpc
//! interval = "60s"                   # at least 10s
//! ```

pub mod redact;
mod settings;
pub mod values;

pub use settings::{SETTINGS, Setting, Shown, markdown_table};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::eval::{CostConfig, DEFAULT_MIN_EVENTS, RoiConfig, SloPeriod, SloTargets};

/// Where ingest and the read API listen.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Largest ingest body accepted.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Time allowed to finish after SIGTERM (Cloud Run kills after 10 s).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(8);
/// Connections each listener serves at once by default (the next are
/// closed at accept): well under a container's usual 1,024 file
/// descriptors, well over what an app and a scraper use.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's head by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Window the status, `/metrics` and `check` use by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Minute slots kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the snapshot file is rewritten (when one is configured).
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// How often the fleet store (Redis) is written.
pub const DEFAULT_FLEET_WRITE_INTERVAL: Duration = Duration::from_secs(10);
/// How often a sidecar offers to compact the fleet store's closed blocks
/// (one sidecar a time does, under a lock).
pub const DEFAULT_FLEET_COMPACT_EVERY: Duration = Duration::from_secs(300);
/// The share of the fleet store's Redis `maxmemory` past which sidecars
/// stop writing, percent (the store shares the service's cache Redis:
/// past `maxmemory` Redis would evict the cache's keys).
pub const DEFAULT_FLEET_MEMORY_SHARE_PERCENT: f64 = 50.0;
/// How often metrics are exported over OTLP by default.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest export interval allowed (Cloud Monitoring takes one point
/// per series every 10 s at most).
pub const MIN_EXPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Google's OTLP endpoint, the default on Cloud Run.
pub const GOOGLE_OTLP_ENDPOINT: &str = "https://telemetry.googleapis.com";
/// The Cloud Run Admin API.
pub const DEFAULT_CLOUD_RUN_API: &str = "https://run.googleapis.com";
/// Where the metadata server answers on Google Cloud.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// Shortest and longest evaluation window.
pub const WINDOW_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 3600));

/// Whether `window` is whole minutes within [`WINDOW_RANGE`].
pub fn window_is_valid(window: Duration) -> bool {
    let (min, max) = WINDOW_RANGE;
    window >= min && window <= max && window.as_secs().is_multiple_of(60)
}

/// A configuration that cannot be used. Each names the key and what is allowed.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape (unknown key, wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, naming the key.
        message: String,
    },
    /// The file has a key no setting has.
    #[error("config file {path}: unknown key `{key}` (`lumen-sidecar config show` lists the keys)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, with its section (`slo.availabilty`).
        key: String,
    },
    /// A key or variable holds a value outside what is allowed.
    #[error("{key} = {value}: {allowed}")]
    Invalid {
        /// Where the value came from: the file key with the file
        /// (`slo.availability in lumen.toml`) or the variable (`LUMEN_WINDOW`).
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// Where metrics go besides `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// Nowhere.
    Off,
    /// An OTLP endpoint.
    Otlp,
    /// One line per data point on standard output, for local use.
    Stdout,
}

/// Where `serve` keeps its write-ahead log when `store.state_dir` is not
/// set: `$XDG_STATE_HOME/lumen/sidecar-PORT`, else
/// `$HOME/.local/state/lumen/sidecar-PORT`, else
/// `<temp dir>/lumen/sidecar-PORT` (one directory per listen port, so two
/// sidecars on one machine never share a log; a sidecar on port 0 gets
/// none).
pub fn default_state_dir(port: u16, env: impl Fn(&str) -> Option<String>) -> PathBuf {
    let base = env("XDG_STATE_HOME")
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| h.starts_with('/'))
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("lumen").join(format!("sidecar-{port}"))
}

/// Which way the sidecar's series reach the engine that the artefacts
/// (dashboard, policies, rules) and the fleet reader query: the names and
/// label keys differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataPath {
    /// OTLP into Cloud Monitoring (the Telemetry API): names and attribute
    /// keys kept as sent (`http.server.request.duration`, `http.route`),
    /// quoted in PromQL.
    Otlp,
    /// A Prometheus (or Managed Prometheus) scraping `/metrics`: the
    /// exposition's names (`http_server_request_duration_seconds`, `http_route`).
    Prometheus,
}

/// What the feedback loop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackMode {
    /// Nothing (the default).
    Off,
    /// Computes and reports what it would set (`/v1/tuning`, the report).
    Recommend,
    /// Sets it: the ingest answers carry the new parameters to the app.
    Apply,
}

impl FeedbackMode {
    /// `off`, `recommend`, `apply`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Recommend => "recommend",
            Self::Apply => "apply",
        }
    }
}

/// How often the feedback loop decides.
pub const DEFAULT_FEEDBACK_INTERVAL: Duration = Duration::from_secs(60);

/// The feedback loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackConfig {
    /// Off, recommend or apply.
    pub mode: FeedbackMode,
    /// How often it decides (each decision on the lookups since the last).
    pub interval: Duration,
    /// The adaptive TTL's settings.
    pub ttl: crate::eval::TtlControl,
    /// Bytes one L1 entry takes, for the L1 recommendation's memory.
    pub l1_entry_bytes: u64,
}

/// How often a running experiment is looked at by default.
pub const DEFAULT_EXPERIMENT_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// The A/B experiments: how often the running one is looked at, and one
/// to start at boot (unless it ran already).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// How often the running experiment is looked at (each look may end it;
    /// the statistics stay valid however often).
    pub check_interval: Duration,
    /// The parameter of the experiment to start at boot, if any.
    pub param: Option<String>,
    /// Its arm A (the value in force).
    pub a: Option<u64>,
    /// Its arm B.
    pub b: Option<u64>,
    /// B's share of requests, percent.
    pub share_b_percent: u8,
    /// Its length.
    pub duration: Duration,
    /// Its primary metric.
    pub primary: crate::eval::Metric,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            check_interval: DEFAULT_EXPERIMENT_CHECK_INTERVAL,
            param: None,
            a: None,
            b: None,
            share_b_percent: crate::eval::DEFAULT_SHARE_B_PERCENT,
            duration: crate::eval::DEFAULT_EXPERIMENT_DURATION,
            primary: crate::eval::Metric::CacheHitRate,
        }
    }
}

impl ExperimentConfig {
    /// The experiment to start at boot, if one is configured.
    pub fn spec(&self) -> Option<crate::eval::ExperimentSpec> {
        let (param, a, b) = (self.param.as_ref()?, self.a?, self.b?);
        let mut spec = crate::eval::ExperimentSpec::new(param, a, b);
        spec.share_b_percent = self.share_b_percent;
        spec.duration = self.duration;
        spec.primary = self.primary;
        Some(spec)
    }
}

/// Bytes one L1 entry takes by default (key, answer, bookkeeping).
pub const DEFAULT_L1_ENTRY_BYTES: u64 = 2048;

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            mode: FeedbackMode::Off,
            interval: DEFAULT_FEEDBACK_INTERVAL,
            ttl: crate::eval::TtlControl::default(),
            l1_entry_bytes: DEFAULT_L1_ENTRY_BYTES,
        }
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// HTTP with protobuf bodies (`http/protobuf`), the default.
    HttpProtobuf,
    /// gRPC (`grpc`).
    Grpc,
}

/// The app's Cloud Run environment, from `K_SERVICE`, `K_REVISION` and
/// `K_CONFIGURATION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudRunEnv {
    /// The service.
    pub service: String,
    /// The revision.
    pub revision: Option<String>,
    /// The configuration.
    pub configuration: Option<String>,
}

/// The OTLP export's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// Off, OTLP or stdout.
    pub mode: ExportMode,
    /// The metrics URL (for HTTP, with `/v1/metrics`).
    pub endpoint: Option<String>,
    /// HTTP/protobuf or gRPC.
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Export period.
    pub interval: Duration,
    /// `service.name` (`OTEL_SERVICE_NAME`).
    pub service_name: Option<String>,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Vec<(String, String)>,
    /// The metadata server's host (`GCE_METADATA_HOST`).
    pub metadata_host: String,
    /// Whether to send a Google access token from the metadata server.
    pub google_auth: bool,
    /// The project to bill as `x-goog-user-project` (only when set: a
    /// service account's token bills its own project without it).
    pub quota_project: Option<String>,
    /// Set when running on Cloud Run.
    pub cloud_run: Option<CloudRunEnv>,
    /// The data path the artefacts and the fleet reader query; `None`: by
    /// destination (Cloud Monitoring and Google's query API: OTLP; a
    /// Prometheus, Grafana, rule files: `/metrics`).
    pub data_path: Option<DataPath>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            mode: ExportMode::Off,
            endpoint: None,
            protocol: OtlpProtocol::HttpProtobuf,
            headers: Vec::new(),
            interval: DEFAULT_EXPORT_INTERVAL,
            service_name: None,
            resource_attributes: Vec::new(),
            metadata_host: DEFAULT_METADATA_HOST.to_owned(),
            google_auth: false,
            quota_project: None,
            cloud_run: None,
            data_path: None,
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarConfig {
    /// Service name override.
    pub service: Option<String>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token ingest requires, if any.
    pub auth_token: Option<String>,
    /// Host names answered besides IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's head.
    pub header_read_timeout: Duration,
    /// Largest ingest body.
    pub max_body_bytes: usize,
    /// Time to drain after SIGTERM.
    pub grace_period: Duration,
    /// Default evaluation window.
    pub window: Duration,
    /// The SLO targets.
    pub slo: SloTargets,
    /// Minute slots kept.
    pub retention: Duration,
    /// Snapshot file, if any.
    pub snapshot_path: Option<PathBuf>,
    /// Directory of the write-ahead log and its checkpoint, if any (`serve`
    /// fills in [`default_state_dir`] when none is set).
    pub state_dir: Option<PathBuf>,
    /// `store.state_dir = "none"`: run without durability, on purpose.
    pub state_dir_off: bool,
    /// Whether `roi.redis_monthly_cost_usd` was set (a cache the user pays
    /// for, even before the app reports a lookup).
    pub cache_cost_set: bool,
    /// Distinct routes held before new ones fold into `other`.
    pub max_routes: usize,
    /// The window store's memory cap, bytes (else from the container's
    /// memory limit, when it has one).
    pub store_max_bytes: Option<u64>,
    /// The state volume's size, bytes, when the file system reports more
    /// than the sidecar may use.
    pub state_max_bytes: Option<u64>,
    /// Snapshot period.
    pub snapshot_interval: Duration,
    /// The OTLP export.
    pub export: ExportConfig,
    /// The ROI gate's costs and thresholds.
    pub roi: RoiConfig,
    /// What an instance costs, and the monthly budget.
    pub cost: CostConfig,
    /// The feedback loop.
    pub feedback: FeedbackConfig,
    /// The A/B experiments.
    pub experiment: ExperimentConfig,
    /// Slack incoming webhook for the sidecar's own alerts (`SLACK_WEBHOOK_URL`).
    pub slack_webhook_url: Option<String>,
    /// The error budgets' period.
    pub budget_period: SloPeriod,
    /// Events a long window needs before a budget alert may fire.
    pub budget_min_events: u64,
    /// Recurring windows kept off the error budgets (planned maintenance).
    pub budget_maintenance: Vec<crate::store::RecurringWindow>,
    /// The Cloud Run Admin API's base URL (revisions, for deployment frequency).
    pub cloud_run_api: String,
    /// The fleet store this sidecar writes its closed minutes to, if any.
    pub fleet_store: FleetStoreConfig,
}

/// The fleet store: a Redis (Memorystore) every sidecar of the service
/// writes its minutes to, so the fleet's exact histograms can be merged.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetStoreConfig {
    /// `redis://[:password@]host:port[/db]`, or `rediss://` for TLS.
    pub redis_url: Option<String>,
    /// A PEM file of the CA that signed the server's certificate
    /// (Memorystore's in-transit encryption), for `rediss://`.
    pub ca_file: Option<PathBuf>,
    /// This sidecar's name in the store (else one is made up, and kept in
    /// the state directory when there is one).
    pub instance: Option<String>,
    /// How often changed minutes are written.
    pub write_interval: Duration,
    /// A Prometheus query API holding every sidecar's metrics, for the
    /// sidecar's own fleet view when there is no fleet store.
    pub prometheus_url: Option<String>,
    /// Writes stop while Redis uses more than this share of its
    /// `maxmemory`, percent (no limit when Redis has none).
    pub memory_share_percent: f64,
    /// How often this sidecar offers to compact closed blocks (zero: never).
    pub compact_every: Duration,
}

impl Default for FleetStoreConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            ca_file: None,
            instance: None,
            write_interval: DEFAULT_FLEET_WRITE_INTERVAL,
            prometheus_url: None,
            memory_share_percent: DEFAULT_FLEET_MEMORY_SHARE_PERCENT,
            compact_every: DEFAULT_FLEET_COMPACT_EVERY,
        }
    }
}

/// The checkpoint's name in the state directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

impl Default for SidecarConfig {
    fn default() -> Self {
        Self {
            service: None,
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            auth_token: None,
            allowed_hosts: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            grace_period: DEFAULT_GRACE_PERIOD,
            window: DEFAULT_WINDOW,
            slo: SloTargets::default(),
            retention: DEFAULT_RETENTION,
            snapshot_path: None,
            state_dir: None,
            state_dir_off: false,
            cache_cost_set: false,
            max_routes: crate::store::DEFAULT_MAX_ROUTES,
            store_max_bytes: None,
            state_max_bytes: None,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            export: ExportConfig::default(),
            roi: RoiConfig::default(),
            cost: CostConfig::default(),
            feedback: FeedbackConfig::default(),
            experiment: ExperimentConfig::default(),
            slack_webhook_url: None,
            budget_period: SloPeriod::default(),
            budget_min_events: DEFAULT_MIN_EVENTS,
            budget_maintenance: Vec::new(),
            cloud_run_api: DEFAULT_CLOUD_RUN_API.to_owned(),
            fleet_store: FleetStoreConfig::default(),
        }
    }
}

/// A configuration being read: the settings' values, what the file and
/// variables said about the export, and where each value came from.
#[derive(Debug, Default)]
pub struct Draft {
    config: SidecarConfig,
    export_mode: Option<ExportMode>,
    google_auth: Option<bool>,
    origins: BTreeMap<&'static str, String>,
}

/// Where a setting's value came from, for messages.
fn origin(draft: &Draft, key: &'static str) -> String {
    draft
        .origins
        .get(key)
        .cloned()
        .unwrap_or_else(|| format!("{key} (default)"))
}

/// A TOML value as the text a setting reads (lists comma-joined).
fn value_text(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
            .join(","),
        _ => return None,
    })
}

fn setting_of_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == Some(key))
}

/// Reads the file's keys into `draft`.
fn apply_file(draft: &mut Draft, path: &Path, text: &str) -> Result<(), ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim().to_owned(),
    })?;
    let mut entries: Vec<(String, toml::Value)> = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(section) => {
                entries.extend(section.into_iter().map(|(k, v)| (format!("{key}.{k}"), v)));
            }
            value => entries.push((key, value)),
        }
    }
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    for (key, value) in entries {
        let Some(setting) = setting_of_key(&key) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
            });
        };
        let place = format!("{key} in {file}");
        let text = value_text(&value).ok_or_else(|| ConfigError::Invalid {
            key: place.clone(),
            value: value.to_string(),
            allowed: format!("a string, a number or a list of strings ({})", setting.help),
        })?;
        (setting.set)(draft, &text)
            .map_err(|allowed| invalid(setting, place.clone(), &text, allowed))?;
        draft
            .origins
            .insert(setting.key.expect("found by key"), place);
    }
    Ok(())
}

/// The error for `value` of `setting` at `key`: a value that can hold a
/// secret is shown only redacted, and so is any echo of it in the reason.
fn invalid(setting: &Setting, key: String, value: &str, allowed: String) -> ConfigError {
    if redact::holds_secret(setting) {
        let shown = redact::redact(value);
        ConfigError::Invalid {
            key,
            allowed: if value.is_empty() {
                allowed
            } else {
                allowed.replace(value, &shown)
            },
            value: shown,
        }
    } else {
        ConfigError::Invalid {
            key,
            value: value.to_owned(),
            allowed,
        }
    }
}

/// Reads every set variable into `draft`, in the table's order.
fn apply_env(draft: &mut Draft, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for setting in SETTINGS {
        let Some((var, value)) = setting.env.iter().find_map(|v| env(v).map(|x| (*v, x))) else {
            continue;
        };
        (setting.set)(draft, &value)
            .map_err(|allowed| invalid(setting, var.to_owned(), &value, allowed))?;
        draft
            .origins
            .insert(setting.key.unwrap_or(var), var.to_owned());
    }
    Ok(())
}

/// What counts as bad for the error budgets under `targets`: the latency
/// thresholds in µs and the error classes.
pub fn budget_rules_of(targets: &SloTargets) -> crate::store::BudgetRules {
    let mut error_classes = [false; 5];
    for c in &targets.error_classes {
        error_classes[c.index()] = true;
    }
    crate::store::BudgetRules {
        p95_us: (targets.latency_p95_ms * 1000.0).round() as u64,
        p99_us: (targets.latency_p99_ms * 1000.0).round() as u64,
        error_classes,
    }
}

impl SidecarConfig {
    /// Defaults, then `path` (if any), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, |k| std::env::var(k).ok())
    }

    /// Like [`load`](Self::load) with any environment lookup.
    pub fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut draft = Draft::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            apply_file(&mut draft, path, &text)?;
        }
        apply_env(&mut draft, &env)?;
        settings::derive(&mut draft);
        validate(&draft)?;
        Ok(draft.config)
    }

    /// This configuration as `serve` runs it: durable by default. Without a
    /// state directory (and not `none`), the sidecar keeps its log in
    /// [`default_state_dir`]: an acknowledged batch is never lost to a
    /// restart because a setting was left out.
    pub fn durable_by_default(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        // Port 0 (any free port) has no stable name to find the log again.
        if self.state_dir.is_none()
            && !self.state_dir_off
            && self.snapshot_path.is_none()
            && self.listen.port() != 0
        {
            self.state_dir = Some(default_state_dir(self.listen.port(), env));
        }
        self
    }

    /// The checkpoint file: `snapshot_path`, else `checkpoint.bin` in the
    /// state directory.
    pub fn snapshot_file(&self) -> Option<PathBuf> {
        self.snapshot_path
            .clone()
            .or_else(|| self.state_dir.as_ref().map(|d| d.join(CHECKPOINT_FILE)))
    }

    /// What makes an event bad for the budgets, from the SLO targets.
    pub fn budget_rules(&self) -> crate::store::BudgetRules {
        budget_rules_of(&self.slo)
    }

    /// The effective configuration as TOML (secrets masked), every file key
    /// in the table's order.
    pub fn to_toml(&self) -> String {
        let mut root = toml::Table::new();
        for setting in SETTINGS {
            let (Some(key), Some(shown)) = (setting.key, (setting.show)(self)) else {
                continue;
            };
            let value = match shown {
                Shown::Text(t) => toml::Value::String(t),
                Shown::Number(n) => toml::Value::Float(n),
                Shown::Whole(n) => toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
                Shown::List(items) => {
                    toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
                }
                Shown::Secret => toml::Value::String("********".into()),
            };
            match key.split_once('.') {
                Some((section, name)) => {
                    let table = root
                        .entry(section)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if let toml::Value::Table(t) = table {
                        t.insert(name.to_owned(), value);
                    }
                }
                None => {
                    root.insert(key.to_owned(), value);
                }
            }
        }
        toml::to_string(&root).expect("a table of plain values serializes")
    }
}

/// Checks what no single setting can: values that must agree.
fn validate(draft: &Draft) -> Result<(), ConfigError> {
    let c = &draft.config;
    let roi = &c.roi;
    if roi.pass_percent.partial_cmp(&roi.warn_percent) != Some(std::cmp::Ordering::Greater) {
        return Err(ConfigError::Invalid {
            key: origin(draft, "roi.pass_percent"),
            value: roi.pass_percent.to_string(),
            allowed: format!(
                "a percent above roi.warn_percent ({}, from {})",
                roi.warn_percent,
                origin(draft, "roi.warn_percent")
            ),
        });
    }
    if c.export.mode == ExportMode::Otlp && c.export.endpoint.is_none() {
        return Err(ConfigError::Invalid {
            key: origin(draft, "export.mode"),
            value: "otlp".into(),
            allowed: "an endpoint: set export.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        });
    }
    let ttl = &c.feedback.ttl;
    if ttl.ttl_max_s < ttl.ttl_min_s {
        return Err(ConfigError::Invalid {
            key: origin(draft, "feedback.ttl_max"),
            value: format!("{}s", ttl.ttl_max_s),
            allowed: format!(
                "at least feedback.ttl_min ({}s, from {})",
                ttl.ttl_min_s,
                origin(draft, "feedback.ttl_min")
            ),
        });
    }
    if !(ttl.ttl_min_s..=ttl.ttl_max_s).contains(&ttl.initial_ttl_s) {
        return Err(ConfigError::Invalid {
            key: origin(draft, "feedback.initial_ttl"),
            value: format!("{}s", ttl.initial_ttl_s),
            allowed: format!(
                "from feedback.ttl_min ({}s) to feedback.ttl_max ({}s)",
                ttl.ttl_min_s, ttl.ttl_max_s
            ),
        });
    }
    let x = &c.experiment;
    if x.param.is_some() || x.a.is_some() || x.b.is_some() {
        let missing = [
            ("experiment.param", x.param.is_none()),
            ("experiment.a", x.a.is_none()),
            ("experiment.b", x.b.is_none()),
        ]
        .into_iter()
        .find(|(_, missing)| *missing);
        if let Some((key, _)) = missing {
            return Err(ConfigError::Invalid {
                key: origin(draft, key),
                value: String::new(),
                allowed: "set with experiment.param, experiment.a and experiment.b: an experiment needs all three".into(),
            });
        }
        if let Some(Err(why)) = x.spec().map(|s| s.check()) {
            return Err(ConfigError::Invalid {
                key: origin(draft, "experiment.param"),
                value: x.param.clone().unwrap_or_default(),
                allowed: why,
            });
        }
    }
    if !c.listen.ip().is_loopback() && c.auth_token.is_none() {
        return Err(ConfigError::Invalid {
            key: origin(draft, "server.listen"),
            value: c.listen.to_string(),
            allowed: "a loopback address, or set server.auth_token (LUMEN_AUTH_TOKEN) to listen beyond loopback".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
