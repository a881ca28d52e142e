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
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lumen_middleware::units::{format_duration, parse_duration};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::eval::{SloTargets, StatusClass};

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
        Ok(())
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
        };
        toml::to_string(&file).expect("the config's own shape serializes")
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
