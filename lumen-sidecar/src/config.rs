//! The sidecar's configuration: defaults, a TOML file, `LUMEN_*` overrides.
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
//! [export]                           # OTLP; OTEL_* variables win
//! mode = "otlp"                      # off | otlp | stdout (default: otlp when an endpoint is known)
//! endpoint = "http://127.0.0.1:4318/v1/metrics"   # the full metrics URL
//! protocol = "http/protobuf"         # or grpc
//! interval = "60s"                   # at least 10s
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lumen_middleware::units::{format_duration, parse_duration};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::eval::{DEFAULT_MIN_EVENTS, RoiConfig, SloPeriod, SloTargets, StatusClass};

/// Where ingest and the read API listen.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Largest ingest body accepted.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Time allowed to finish after SIGTERM (Cloud Run kills after 10 s).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(8);
/// Window the status, `/metrics` and `check` use by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Minute slots kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the snapshot file is rewritten (when one is configured).
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// How often metrics are exported over OTLP by default.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest export interval allowed (Cloud Monitoring takes one point
/// per series every 10 s at most).
pub const MIN_EXPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Google's OTLP endpoint, the default on Cloud Run.
pub const GOOGLE_OTLP_ENDPOINT: &str = "https://telemetry.googleapis.com";
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
    /// A key holds a value outside what is allowed.
    #[error("{key} = {value}: {allowed}")]
    Invalid {
        /// The key (`slo.availability`) or variable (`LUMEN_WINDOW`).
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

fn invalid(key: &str, value: impl ToString, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_string(),
        allowed: allowed.to_owned(),
    }
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
    /// Set when running on Cloud Run.
    pub cloud_run: Option<CloudRunEnv>,
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
            cloud_run: None,
        }
    }
}

/// `k=v,k2=v2` (values percent-decoded), as the OTEL_* variables write pairs.
pub fn parse_pairs(key: &str, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| invalid(key, pair, "comma-separated key=value pairs"))?;
            Ok((k.trim().to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    /// Snapshot period.
    pub snapshot_interval: Duration,
    /// The OTLP export.
    pub export: ExportConfig,
    /// The ROI gate's costs and thresholds.
    pub roi: RoiConfig,
    /// Slack incoming webhook for the sidecar's own alerts (`SLACK_WEBHOOK_URL`).
    pub slack_webhook_url: Option<String>,
    /// The error budgets' period.
    pub budget_period: SloPeriod,
    /// Events a long window needs before a budget alert may fire.
    pub budget_min_events: u64,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        Self {
            service: None,
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            auth_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            grace_period: DEFAULT_GRACE_PERIOD,
            window: DEFAULT_WINDOW,
            slo: SloTargets::default(),
            retention: DEFAULT_RETENTION,
            snapshot_path: None,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            export: ExportConfig::default(),
            roi: RoiConfig::default(),
            slack_webhook_url: None,
            budget_period: SloPeriod::default(),
            budget_min_events: DEFAULT_MIN_EVENTS,
        }
    }
}

/// The file's shape; every key optional.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    slo: SloSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    export: ExportSection,
    #[serde(default)]
    roi: RoiSection,
    #[serde(default)]
    budget: BudgetSection,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetSection {
    period: Option<String>,
    min_events: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoiSection {
    cost_per_miss_usd: Option<f64>,
    redis_monthly_cost_usd: Option<f64>,
    pass_percent: Option<f64>,
    warn_percent: Option<f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportSection {
    mode: Option<String>,
    endpoint: Option<String>,
    protocol: Option<String>,
    interval: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    auth_token: Option<String>,
    max_body_bytes: Option<u64>,
    grace_period: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SloSection {
    window: Option<String>,
    availability: Option<f64>,
    latency_p95_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    error_rate: Option<f64>,
    error_classes: Option<Vec<String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    retention: Option<String>,
    snapshot_path: Option<PathBuf>,
    snapshot_interval: Option<String>,
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
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string().trim().to_owned(),
                })?
            }
            None => FileConfig::default(),
        };
        let mut c = Self::default();
        c.apply_file(file)?;
        c.apply_env(env)?;
        c.validate()?;
        Ok(c)
    }

    fn apply_file(&mut self, f: FileConfig) -> Result<(), ConfigError> {
        if let Some(s) = f.service {
            self.service = Some(s);
        }
        let s = f.server;
        if let Some(v) = s.listen {
            self.listen = parse_addr("server.listen", &v)?;
        }
        self.auth_token = s.auth_token.or(self.auth_token.take());
        if let Some(v) = s.max_body_bytes {
            self.max_body_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = s.grace_period {
            self.grace_period = parse_dur("server.grace_period", &v)?;
        }
        let slo = f.slo;
        if let Some(v) = slo.window {
            self.window = parse_dur("slo.window", &v)?;
        }
        set_f64(&mut self.slo.availability_percent, slo.availability);
        set_f64(&mut self.slo.latency_p95_ms, slo.latency_p95_ms);
        set_f64(&mut self.slo.latency_p99_ms, slo.latency_p99_ms);
        set_f64(&mut self.slo.error_rate_percent, slo.error_rate);
        if let Some(classes) = slo.error_classes {
            self.slo.error_classes = parse_classes("slo.error_classes", &classes)?;
        }
        let st = f.store;
        if let Some(v) = st.retention {
            self.retention = parse_dur("store.retention", &v)?;
        }
        if let Some(p) = st.snapshot_path {
            self.snapshot_path = Some(p);
        }
        if let Some(v) = st.snapshot_interval {
            self.snapshot_interval = parse_dur("store.snapshot_interval", &v)?;
        }
        let ex = f.export;
        if let Some(v) = ex.mode {
            self.export.mode = parse_mode("export.mode", &v)?;
        }
        if let Some(v) = ex.endpoint {
            self.export.endpoint = Some(v);
        }
        if let Some(v) = ex.protocol {
            self.export.protocol = parse_protocol("export.protocol", &v)?;
        }
        if let Some(v) = ex.interval {
            self.export.interval = parse_dur("export.interval", &v)?;
        }
        if let Some(v) = f.budget.period {
            self.budget_period = SloPeriod::parse(&v)
                .ok_or_else(|| invalid("budget.period", &v, "7d, 28d, 30d or month"))?;
        }
        if let Some(v) = f.budget.min_events {
            self.budget_min_events = v;
        }
        let roi = f.roi;
        set_f64(&mut self.roi.cost_per_miss_usd, roi.cost_per_miss_usd);
        set_f64(
            &mut self.roi.redis_monthly_cost_usd,
            roi.redis_monthly_cost_usd,
        );
        set_f64(&mut self.roi.pass_percent, roi.pass_percent);
        set_f64(&mut self.roi.warn_percent, roi.warn_percent);
        Ok(())
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("LUMEN_SERVICE") {
            self.service = Some(v);
        }
        if let Some(v) = env("LUMEN_LISTEN") {
            self.listen = parse_addr("LUMEN_LISTEN", &v)?;
        }
        if let Some(v) = env("LUMEN_AUTH_TOKEN") {
            self.auth_token = Some(v);
        }
        if let Some(v) = env("LUMEN_MAX_BODY_BYTES") {
            self.max_body_bytes = v
                .parse()
                .map_err(|_| invalid("LUMEN_MAX_BODY_BYTES", &v, "a whole number of bytes"))?;
        }
        if let Some(v) = env("LUMEN_GRACE_PERIOD") {
            self.grace_period = parse_dur("LUMEN_GRACE_PERIOD", &v)?;
        }
        if let Some(v) = env("LUMEN_WINDOW") {
            self.window = parse_dur("LUMEN_WINDOW", &v)?;
        }
        for (key, slot) in [
            ("LUMEN_SLO_AVAILABILITY", &mut self.slo.availability_percent),
            ("LUMEN_SLO_LATENCY_P95_MS", &mut self.slo.latency_p95_ms),
            ("LUMEN_SLO_LATENCY_P99_MS", &mut self.slo.latency_p99_ms),
            ("LUMEN_SLO_ERROR_RATE", &mut self.slo.error_rate_percent),
        ] {
            if let Some(v) = env(key) {
                *slot = v.parse().map_err(|_| invalid(key, &v, "a number"))?;
            }
        }
        for (key, slot) in [
            (
                "LUMEN_ROI_COST_PER_MISS_USD",
                &mut self.roi.cost_per_miss_usd,
            ),
            (
                "LUMEN_ROI_REDIS_MONTHLY_COST_USD",
                &mut self.roi.redis_monthly_cost_usd,
            ),
            ("LUMEN_ROI_PASS_PERCENT", &mut self.roi.pass_percent),
            ("LUMEN_ROI_WARN_PERCENT", &mut self.roi.warn_percent),
        ] {
            if let Some(v) = env(key) {
                *slot = v.parse().map_err(|_| invalid(key, &v, "a number"))?;
            }
        }
        if let Some(v) = env("LUMEN_BUDGET_PERIOD") {
            self.budget_period = SloPeriod::parse(&v)
                .ok_or_else(|| invalid("LUMEN_BUDGET_PERIOD", &v, "7d, 28d, 30d or month"))?;
        }
        if let Some(v) = env("LUMEN_BUDGET_MIN_EVENTS") {
            self.budget_min_events = v
                .parse()
                .map_err(|_| invalid("LUMEN_BUDGET_MIN_EVENTS", &v, "a whole number of events"))?;
        }
        if let Some(v) = env("SLACK_WEBHOOK_URL") {
            self.slack_webhook_url = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = env("LUMEN_SLO_ERROR_CLASSES") {
            let list: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
            self.slo.error_classes = parse_classes("LUMEN_SLO_ERROR_CLASSES", &list)?;
        }
        if let Some(v) = env("LUMEN_RETENTION") {
            self.retention = parse_dur("LUMEN_RETENTION", &v)?;
        }
        if let Some(v) = env("LUMEN_SNAPSHOT_PATH") {
            self.snapshot_path = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = env("LUMEN_SNAPSHOT_INTERVAL") {
            self.snapshot_interval = parse_dur("LUMEN_SNAPSHOT_INTERVAL", &v)?;
        }
        self.apply_export_env(&env)
    }

    /// The OTEL_* conventions, Cloud Run's `K_*` variables, `LUMEN_EXPORT`.
    fn apply_export_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let e = &mut self.export;
        let mut explicit_mode = None;
        if let Some(v) = env("LUMEN_EXPORT") {
            explicit_mode = Some(parse_mode("LUMEN_EXPORT", &v)?);
        }
        if let Some(v) = env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            e.protocol = parse_protocol("OTEL_EXPORTER_OTLP_PROTOCOL", &v)?;
        }
        if let Some(service) = env("K_SERVICE") {
            e.cloud_run = Some(CloudRunEnv {
                service,
                revision: env("K_REVISION"),
                configuration: env("K_CONFIGURATION"),
            });
        }
        // The metrics URL: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as given; else
        // OTEL_EXPORTER_OTLP_ENDPOINT (HTTP gets /v1/metrics appended); else
        // export.endpoint from the file, as given; else Google's on Cloud Run.
        let with_path = |base: String, protocol: OtlpProtocol| match protocol {
            OtlpProtocol::HttpProtobuf => format!("{}/v1/metrics", base.trim_end_matches('/')),
            OtlpProtocol::Grpc => base,
        };
        e.endpoint = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|b| with_path(b, e.protocol)))
            .or_else(|| e.endpoint.take())
            .or_else(|| {
                e.cloud_run
                    .as_ref()
                    .map(|_| with_path(GOOGLE_OTLP_ENDPOINT.to_owned(), e.protocol))
            });
        if let Some(v) =
            env("OTEL_EXPORTER_OTLP_METRICS_HEADERS").or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            e.headers = parse_pairs("OTEL_EXPORTER_OTLP_HEADERS", &v)?;
        }
        if let Some(v) = env("OTEL_METRIC_EXPORT_INTERVAL") {
            let ms: u64 = v.parse().map_err(|_| {
                invalid(
                    "OTEL_METRIC_EXPORT_INTERVAL",
                    &v,
                    "milliseconds, at least 10000",
                )
            })?;
            e.interval = Duration::from_millis(ms);
        }
        e.service_name = env("OTEL_SERVICE_NAME").or_else(|| e.service_name.take());
        if let Some(v) = env("OTEL_RESOURCE_ATTRIBUTES") {
            e.resource_attributes = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", &v)?;
        }
        if let Some(v) = env("GCE_METADATA_HOST") {
            e.metadata_host = v;
        }
        let google_endpoint = e
            .endpoint
            .as_deref()
            .is_some_and(|u| u.contains("googleapis.com"));
        e.google_auth = match env("LUMEN_GOOGLE_AUTH").as_deref() {
            Some("1" | "true") => true,
            Some("0" | "false") => false,
            Some(v) => return Err(invalid("LUMEN_GOOGLE_AUTH", v, "1 or 0")),
            None => google_endpoint,
        };
        e.mode = match explicit_mode {
            Some(m) => m,
            None if e.mode != ExportMode::Off => e.mode,
            None if e.endpoint.is_some() => ExportMode::Otlp,
            None => ExportMode::Off,
        };
        Ok(())
    }

    /// What makes an event bad for the budgets, from the SLO targets.
    pub fn budget_rules(&self) -> crate::store::BudgetRules {
        let mut error_classes = [false; 5];
        for c in &self.slo.error_classes {
            error_classes[c.index()] = true;
        }
        crate::store::BudgetRules {
            p95_us: (self.slo.latency_p95_ms * 1000.0).round() as u64,
            p99_us: (self.slo.latency_p99_ms * 1000.0).round() as u64,
            error_classes,
        }
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.slo;
        if !(t.availability_percent > 0.0 && t.availability_percent <= 100.0) {
            return Err(invalid(
                "slo.availability",
                t.availability_percent,
                "a percent above 0, at most 100",
            ));
        }
        if !(t.error_rate_percent > 0.0 && t.error_rate_percent <= 100.0) {
            return Err(invalid(
                "slo.error_rate",
                t.error_rate_percent,
                "a percent above 0, at most 100",
            ));
        }
        for (key, v) in [
            ("slo.latency_p95_ms", t.latency_p95_ms),
            ("slo.latency_p99_ms", t.latency_p99_ms),
        ] {
            if !(v > 0.0 && v <= 3_600_000.0) {
                return Err(invalid(
                    key,
                    v,
                    "milliseconds above 0, at most 3600000 (1h)",
                ));
            }
        }
        if t.error_classes.is_empty() {
            return Err(invalid(
                "slo.error_classes",
                "[]",
                "at least one of 1xx, 2xx, 3xx, 4xx, 5xx",
            ));
        }
        if !window_is_valid(self.window) {
            return Err(invalid(
                "slo.window",
                format_duration(self.window),
                "whole minutes from 1m to 24h",
            ));
        }
        if self.retention < WINDOW_RANGE.1 || self.retention > Duration::from_secs(7 * 24 * 3600) {
            return Err(invalid(
                "store.retention",
                format_duration(self.retention),
                "from 24h to 7d",
            ));
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                self.max_body_bytes,
                "1024 to 67108864",
            ));
        }
        if self.snapshot_interval < Duration::from_secs(1) {
            return Err(invalid(
                "store.snapshot_interval",
                format_duration(self.snapshot_interval),
                "at least 1s",
            ));
        }
        if self.grace_period > Duration::from_secs(60) {
            return Err(invalid(
                "server.grace_period",
                format_duration(self.grace_period),
                "at most 60s",
            ));
        }
        let roi = &self.roi;
        if !(roi.redis_monthly_cost_usd > 0.0 && roi.redis_monthly_cost_usd.is_finite()) {
            return Err(invalid(
                "roi.redis_monthly_cost_usd",
                roi.redis_monthly_cost_usd,
                "the cache's monthly cost in USD, above 0 (ROI is savings over this cost)",
            ));
        }
        if !(roi.cost_per_miss_usd >= 0.0 && roi.cost_per_miss_usd.is_finite()) {
            return Err(invalid(
                "roi.cost_per_miss_usd",
                roi.cost_per_miss_usd,
                "USD, at least 0",
            ));
        }
        if roi.pass_percent.partial_cmp(&roi.warn_percent) != Some(std::cmp::Ordering::Greater) {
            return Err(invalid(
                "roi.pass_percent",
                roi.pass_percent,
                "a percent above roi.warn_percent",
            ));
        }
        if let Some(url) = &self.slack_webhook_url
            && (url.parse::<http::Uri>().is_err()
                || !(url.starts_with("https://") || url.starts_with("http://")))
        {
            return Err(invalid(
                "SLACK_WEBHOOK_URL",
                "(hidden)",
                "an https:// incoming-webhook URL",
            ));
        }
        if self.export.interval < MIN_EXPORT_INTERVAL {
            return Err(invalid(
                "export.interval (OTEL_METRIC_EXPORT_INTERVAL)",
                format_duration(self.export.interval),
                "at least 10s (10000 ms)",
            ));
        }
        if self.export.mode == ExportMode::Otlp && self.export.endpoint.is_none() {
            return Err(invalid(
                "export.mode",
                "otlp",
                "an endpoint: set export.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT",
            ));
        }
        if let Some(url) = &self.export.endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "export.endpoint",
                url,
                "an http:// or https:// URL",
            ));
        }
        if !self.listen.ip().is_loopback() && self.auth_token.is_none() {
            return Err(invalid(
                "server.listen",
                self.listen,
                "a loopback address, or set server.auth_token (LUMEN_AUTH_TOKEN) to listen beyond loopback",
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML (the token masked).
    pub fn to_toml(&self) -> String {
        let file = FileConfig {
            service: self.service.clone(),
            server: ServerSection {
                listen: Some(self.listen.to_string()),
                auth_token: self.auth_token.as_ref().map(|_| "********".to_owned()),
                max_body_bytes: Some(self.max_body_bytes as u64),
                grace_period: Some(format_duration(self.grace_period)),
            },
            slo: SloSection {
                window: Some(format_duration(self.window)),
                availability: Some(self.slo.availability_percent),
                latency_p95_ms: Some(self.slo.latency_p95_ms),
                latency_p99_ms: Some(self.slo.latency_p99_ms),
                error_rate: Some(self.slo.error_rate_percent),
                error_classes: Some(
                    self.slo
                        .error_classes
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect(),
                ),
            },
            store: StoreSection {
                retention: Some(format_duration(self.retention)),
                snapshot_path: self.snapshot_path.clone(),
                snapshot_interval: Some(format_duration(self.snapshot_interval)),
            },
            export: ExportSection {
                mode: Some(mode_name(self.export.mode).to_owned()),
                endpoint: self.export.endpoint.clone(),
                protocol: Some(
                    match self.export.protocol {
                        OtlpProtocol::HttpProtobuf => "http/protobuf",
                        OtlpProtocol::Grpc => "grpc",
                    }
                    .to_owned(),
                ),
                interval: Some(format_duration(self.export.interval)),
            },
            budget: BudgetSection {
                period: Some(self.budget_period.name()),
                min_events: Some(self.budget_min_events),
            },
            roi: RoiSection {
                cost_per_miss_usd: Some(self.roi.cost_per_miss_usd),
                redis_monthly_cost_usd: Some(self.roi.redis_monthly_cost_usd),
                pass_percent: Some(self.roi.pass_percent),
                warn_percent: Some(self.roi.warn_percent),
            },
        };
        toml::to_string(&file).expect("the config's own shape serializes")
    }
}

fn parse_mode(key: &str, v: &str) -> Result<ExportMode, ConfigError> {
    match v {
        "off" => Ok(ExportMode::Off),
        "otlp" => Ok(ExportMode::Otlp),
        "stdout" => Ok(ExportMode::Stdout),
        _ => Err(invalid(key, v, "off, otlp or stdout")),
    }
}

fn mode_name(mode: ExportMode) -> &'static str {
    match mode {
        ExportMode::Off => "off",
        ExportMode::Otlp => "otlp",
        ExportMode::Stdout => "stdout",
    }
}

fn parse_protocol(key: &str, v: &str) -> Result<OtlpProtocol, ConfigError> {
    match v {
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "grpc" => Ok(OtlpProtocol::Grpc),
        _ => Err(invalid(key, v, "http/protobuf or grpc")),
    }
}

fn set_f64(slot: &mut f64, value: Option<f64>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse()
        .map_err(|_| invalid(key, v, "an IP address and port, such as 127.0.0.1:9464"))
}

fn parse_dur(key: &str, v: &str) -> Result<Duration, ConfigError> {
    parse_duration(v).map_err(|reason| invalid(key, v, &reason))
}

fn parse_classes(key: &str, list: &[String]) -> Result<Vec<StatusClass>, ConfigError> {
    list.iter()
        .map(|c| StatusClass::parse(c).ok_or_else(|| invalid(key, c, "1xx, 2xx, 3xx, 4xx or 5xx")))
        .collect()
}

#[cfg(test)]
mod tests;
