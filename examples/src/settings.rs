//! The mentoring API's settings from its environment.

use std::net::SocketAddr;
use std::time::Duration;

use lumen_middleware::units::parse_duration;
use thiserror::Error;

/// Port when `PORT` is unset (Cloud Run sets it).
pub const DEFAULT_PORT: u16 = 8080;
/// How long an answer stays cached.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Entries the in-process L1 holds by default.
pub const DEFAULT_L1_CAPACITY: u64 = 1000;
/// Median latency of the simulated backend (a model call), ms.
pub const DEFAULT_BACKEND_MEDIAN_MS: f64 = 60.0;
/// Spread (σ of the log) of the backend's lognormal latency.
pub const DEFAULT_BACKEND_SIGMA: f64 = 0.5;
/// Share of backend calls that fail.
pub const DEFAULT_BACKEND_ERROR_RATE: f64 = 0.0005;
/// Latency of a call marked slow (`x-simulate: slow`), ms.
pub const DEFAULT_BACKEND_SLOW_MS: u64 = 400;

/// A setting that cannot be used.
#[derive(Debug, Error)]
#[error("{key}={value:?}: {allowed}")]
pub struct SettingsError {
    /// The variable.
    pub key: &'static str,
    /// Its value.
    pub value: String,
    /// What is allowed.
    pub allowed: &'static str,
}

/// How the simulated backend behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendSettings {
    /// Median latency, ms.
    pub median_ms: f64,
    /// σ of the log of the latency.
    pub sigma: f64,
    /// Share of calls that fail, 0 to 1.
    pub error_rate: f64,
    /// Latency of calls marked slow, ms.
    pub slow_ms: u64,
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            median_ms: DEFAULT_BACKEND_MEDIAN_MS,
            sigma: DEFAULT_BACKEND_SIGMA,
            error_rate: DEFAULT_BACKEND_ERROR_RATE,
            slow_ms: DEFAULT_BACKEND_SLOW_MS,
        }
    }
}

/// Everything the API reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// Listen address (`127.0.0.1:$PORT`, or `0.0.0.0:$PORT` with `LISTEN_ALL=1`).
    pub listen: SocketAddr,
    /// Redis URL; without it answers are cached in process.
    pub redis_url: Option<String>,
    /// Answer TTL (until Lumen's feedback loop sets one).
    pub cache_ttl: Duration,
    /// Entries the in-process L1 holds in front of the store (0: no L1),
    /// until Lumen's feedback loop sets a capacity.
    pub l1_capacity: u64,
    /// The simulated backend.
    pub backend: BackendSettings,
}

impl ApiSettings {
    /// Reads `PORT`, `LISTEN_ALL`, `REDIS_URL`, `CACHE_TTL`, `L1_CAPACITY`,
    /// `BACKEND_MEDIAN_MS`, `BACKEND_SIGMA`, `BACKEND_ERROR_RATE`, `BACKEND_SLOW_MS`.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) over any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        fn parse<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            key: &'static str,
            allowed: &'static str,
            default: T,
        ) -> Result<T, SettingsError> {
            match get(key) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| SettingsError {
                    key,
                    value: v,
                    allowed,
                }),
            }
        }
        let port = parse(&get, "PORT", "a port number", DEFAULT_PORT)?;
        let all = get("LISTEN_ALL").is_some_and(|v| v == "1");
        let ip = if all { [0, 0, 0, 0] } else { [127, 0, 0, 1] };
        let cache_ttl = match get("CACHE_TTL") {
            None => DEFAULT_CACHE_TTL,
            Some(v) => parse_duration(&v).map_err(|_| SettingsError {
                key: "CACHE_TTL",
                value: v,
                allowed: "a duration such as 60s or 1h",
            })?,
        };
        let backend = BackendSettings {
            median_ms: parse(
                &get,
                "BACKEND_MEDIAN_MS",
                "milliseconds",
                DEFAULT_BACKEND_MEDIAN_MS,
            )?,
            sigma: parse(&get, "BACKEND_SIGMA", "a number", DEFAULT_BACKEND_SIGMA)?,
            error_rate: parse(
                &get,
                "BACKEND_ERROR_RATE",
                "a share from 0 to 1",
                DEFAULT_BACKEND_ERROR_RATE,
            )?,
            slow_ms: parse(
                &get,
                "BACKEND_SLOW_MS",
                "milliseconds",
                DEFAULT_BACKEND_SLOW_MS,
            )?,
        };
        if !(0.0..=1.0).contains(&backend.error_rate) {
            return Err(SettingsError {
                key: "BACKEND_ERROR_RATE",
                value: backend.error_rate.to_string(),
                allowed: "a share from 0 to 1",
            });
        }
        let l1_capacity = parse(
            &get,
            "L1_CAPACITY",
            "a number of entries",
            DEFAULT_L1_CAPACITY,
        )?;
        Ok(Self {
            listen: SocketAddr::from((ip, port)),
            redis_url: get("REDIS_URL").filter(|u| !u.is_empty()),
            cache_ttl,
            l1_capacity,
            backend,
        })
    }
}
