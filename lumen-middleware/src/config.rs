//! The middleware's settings, their defaults and the `LUMEN_*` environment.

use std::time::Duration;

use thiserror::Error;

use crate::layout::HistogramLayout;
use crate::units::parse_duration;

/// Where batches go: the sidecar's ingest endpoint on the instance's loopback.
pub const DEFAULT_SIDECAR_URL: &str = "http://127.0.0.1:9464/v1/ingest";
/// How often an interval is closed and shipped.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Most named routes; requests of further routes are counted under `other`.
pub const DEFAULT_ROUTE_CAP: usize = 64;
/// Most unacknowledged batches kept apart; beyond it new intervals merge into
/// the newest unsent batch (one hour of 10 s intervals).
pub const DEFAULT_MAX_PENDING_BATCHES: usize = 360;
/// Timeout of one POST to the sidecar.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between two attempts while the sidecar is unreachable.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Service name when neither `LUMEN_SERVICE`, `K_SERVICE` nor
/// `OTEL_SERVICE_NAME` is set and the executable's name cannot be read.
pub const DEFAULT_SERVICE: &str = "unknown_service";

/// The running executable's name (`ion-mentoring-api`): the service name
/// when none is set, so two apps never ship under one shared default.
pub fn executable_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_stem()?.to_str()?.to_owned();
    (!name.is_empty()).then_some(name)
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// An environment variable holds a value that does not parse.
    #[error("{key}={value:?}: {reason}")]
    Env {
        /// The variable.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// A setting out of its range.
    #[error("{key}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What is allowed.
        reason: String,
    },
}

/// Everything [`pair`](crate::pair) needs. Start from
/// [`LumenConfig::default`] or [`LumenConfig::from_env`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LumenConfig {
    /// The service's name, sent with every batch.
    pub service: String,
    /// The running revision, sent with every batch.
    pub revision: Option<String>,
    /// The sidecar's URL (plain HTTP; it runs beside the app): its base URL
    /// (`http://127.0.0.1:9464`) or its ingest URL (`…/v1/ingest`).
    pub sidecar_url: String,
    /// Bearer token the sidecar requires (its `LUMEN_AUTH_TOKEN`), if any.
    pub sidecar_token: Option<String>,
    /// Interval length.
    pub interval: Duration,
    /// Histogram range and precision, in µs.
    pub layout: HistogramLayout,
    /// Most named routes.
    pub route_cap: usize,
    /// Most batches kept apart while the sidecar is unreachable.
    pub max_pending_batches: usize,
    /// Timeout of one POST.
    pub request_timeout: Duration,
    /// Longest backoff between attempts.
    pub max_backoff: Duration,
    /// Recording stripes (rounded up to a power of two); default: the
    /// number of CPUs the process may use, at most [`DEFAULT_MAX_STRIPES`].
    /// The first this many recording threads alive each write a stripe of
    /// their own (plain adds); threads beyond share as many more (atomic
    /// adds). A stripe of a route is allocated (272 KiB with the default
    /// layout) when a thread of it first records on the route.
    pub stripes: usize,
    /// The share of cache keys sampled for the miss-ratio curve
    /// ([`cache::record_key`](crate::cache::record_key)), 0 to 1.
    pub key_sample_rate: f64,
}

/// The share of cache keys sampled by default: 1 %.
pub const DEFAULT_KEY_SAMPLE_RATE: f64 = 0.01;

/// The most stripes the default configuration uses, whatever the core count:
/// more contend less but cost memory on every route.
pub const DEFAULT_MAX_STRIPES: usize = 8;

impl Default for LumenConfig {
    fn default() -> Self {
        Self {
            service: executable_name().unwrap_or_else(|| DEFAULT_SERVICE.to_owned()),
            revision: None,
            sidecar_url: DEFAULT_SIDECAR_URL.to_owned(),
            sidecar_token: None,
            interval: DEFAULT_INTERVAL,
            layout: HistogramLayout::default(),
            route_cap: DEFAULT_ROUTE_CAP,
            max_pending_batches: DEFAULT_MAX_PENDING_BATCHES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_backoff: DEFAULT_MAX_BACKOFF,
            key_sample_rate: DEFAULT_KEY_SAMPLE_RATE,
            stripes: std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(DEFAULT_MAX_STRIPES),
        }
    }
}

impl LumenConfig {
    /// Defaults overridden by the environment: `LUMEN_SERVICE` (else
    /// `K_SERVICE`, else `OTEL_SERVICE_NAME`, else the executable's name),
    /// `LUMEN_REVISION` (else
    /// `K_REVISION`), `LUMEN_SIDECAR_URL`, `LUMEN_SIDECAR_TOKEN`, `LUMEN_INTERVAL` (`10s`),
    /// `LUMEN_ROUTE_CAP`, `LUMEN_MAX_PENDING_BATCHES`, `LUMEN_KEY_SAMPLE_RATE` (`0.01`), `LUMEN_HISTOGRAM_MAX`
    /// (`60s`), `LUMEN_HISTOGRAM_DIGITS` (`3`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Like [`from_env`](Self::from_env) over any lookup (tests use a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(s) = get("LUMEN_SERVICE")
            .or_else(|| get("K_SERVICE"))
            .or_else(|| get("OTEL_SERVICE_NAME"))
        {
            c.service = s;
        }
        c.revision = get("LUMEN_REVISION").or_else(|| get("K_REVISION"));
        if let Some(url) = get("LUMEN_SIDECAR_URL") {
            if !url.starts_with("http://") {
                let fix = if url.contains("://") {
                    "an http:// URL: the sidecar runs beside the app, on loopback".to_owned()
                } else {
                    format!("an http:// URL, such as http://{url}")
                };
                return Err(ConfigError::Env {
                    key: "LUMEN_SIDECAR_URL",
                    value: url,
                    reason: format!("must be {fix}"),
                });
            }
            c.sidecar_url = url;
        }
        c.sidecar_token = get("LUMEN_SIDECAR_TOKEN").filter(|t| !t.is_empty());
        let env_err = |key: &'static str, value: &str, reason: String| ConfigError::Env {
            key,
            value: value.to_owned(),
            reason,
        };
        if let Some(v) = get("LUMEN_INTERVAL") {
            c.interval = parse_duration(&v).map_err(|r| env_err("LUMEN_INTERVAL", &v, r))?;
        }
        for (key, slot) in [
            ("LUMEN_ROUTE_CAP", &mut c.route_cap),
            ("LUMEN_MAX_PENDING_BATCHES", &mut c.max_pending_batches),
        ] {
            if let Some(v) = get(key) {
                *slot = v
                    .parse()
                    .map_err(|_| env_err(key, &v, "expected a whole number".into()))?;
            }
        }
        if let Some(v) = get("LUMEN_KEY_SAMPLE_RATE") {
            c.key_sample_rate = v.parse().map_err(|_| {
                env_err(
                    "LUMEN_KEY_SAMPLE_RATE",
                    &v,
                    "expected a share from 0 to 1".into(),
                )
            })?;
        }
        let mut highest = c.layout.highest();
        let mut digits = c.layout.significant_digits();
        if let Some(v) = get("LUMEN_HISTOGRAM_MAX") {
            let d = parse_duration(&v).map_err(|r| env_err("LUMEN_HISTOGRAM_MAX", &v, r))?;
            highest = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        }
        if let Some(v) = get("LUMEN_HISTOGRAM_DIGITS") {
            digits = v
                .parse()
                .map_err(|_| env_err("LUMEN_HISTOGRAM_DIGITS", &v, "expected 1, 2 or 3".into()))?;
        }
        c.layout = HistogramLayout::new(c.layout.lowest(), highest, digits).map_err(|e| {
            ConfigError::Invalid {
                key: "LUMEN_HISTOGRAM_MAX/LUMEN_HISTOGRAM_DIGITS",
                reason: e.to_string(),
            }
        })?;
        c.validate()?;
        Ok(c)
    }

    /// The URL batches are posted to: `sidecar_url` as given when it names a
    /// path, else the sidecar's base URL with `/v1/ingest` (so
    /// `http://127.0.0.1:9464` and `http://127.0.0.1:9464/v1/ingest` both work).
    pub fn ingest_url(&self) -> String {
        let url = self.sidecar_url.trim_end_matches('/');
        let path_start = url
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/'))
            .map(|i| i + "http://".len());
        match path_start {
            Some(_) => url.to_owned(),
            None => format!("{url}/v1/ingest"),
        }
    }

    /// Checks ranges: an interval of at least 100 ms, a pending cap of at
    /// least 2, a histogram the sidecar accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.interval < Duration::from_millis(100) {
            return invalid("interval", "must be at least 100ms");
        }
        if self.max_pending_batches < 2 {
            return invalid("max_pending_batches", "must be at least 2");
        }
        if !(0.0..=1.0).contains(&self.key_sample_rate) {
            return invalid("key_sample_rate", "must be a share from 0 to 1");
        }
        if self.route_cap == 0 {
            return invalid("route_cap", "must be at least 1");
        }
        if !self.sidecar_url.starts_with("http://") {
            return invalid(
                "sidecar_url",
                "must be an http:// URL (the sidecar runs beside the app)",
            );
        }
        if self.layout.highest() > crate::wire::MAX_HIGHEST_TRACKABLE_US
            || u32::from(self.layout.significant_digits()) > crate::wire::MAX_SIGNIFICANT_DIGITS
        {
            return invalid(
                "layout",
                "at most 1h and 3 significant digits (the sidecar's limits)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<LumenConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LumenConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn environment_overrides_defaults() {
        let c = from(&[
            ("K_SERVICE", "api"),
            ("K_REVISION", "api-00001"),
            ("LUMEN_INTERVAL", "2s"),
            ("LUMEN_ROUTE_CAP", "8"),
            ("LUMEN_HISTOGRAM_MAX", "120s"),
        ])
        .expect("valid");
        assert_eq!(c.service, "api");
        assert_eq!(c.revision.as_deref(), Some("api-00001"));
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.route_cap, 8);
        assert_eq!(c.layout.highest(), 120_000_000);
        assert_eq!(
            from(&[]).expect("defaults").sidecar_url,
            DEFAULT_SIDECAR_URL
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = from(&[("LUMEN_INTERVAL", "ten")]).expect_err("bad");
        assert!(e.to_string().starts_with("LUMEN_INTERVAL=\"ten\""), "{e}");
        let e = from(&[("LUMEN_ROUTE_CAP", "-1")]).expect_err("bad");
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = from(&[("LUMEN_HISTOGRAM_DIGITS", "4")]).expect_err("bad");
        assert!(e.to_string().contains("significant digits"), "{e}");
        let e = from(&[("LUMEN_SIDECAR_URL", "https://x")]).expect_err("bad");
        assert!(
            e.to_string().starts_with("LUMEN_SIDECAR_URL=\"https://x\""),
            "{e}"
        );
        let e = from(&[("LUMEN_SIDECAR_URL", "127.0.0.1:9464")]).expect_err("bad");
        assert!(
            e.to_string().starts_with("LUMEN_SIDECAR_URL=")
                && e.to_string().contains("such as http://127.0.0.1:9464"),
            "{e}"
        );
    }

    #[test]
    fn without_a_name_the_service_is_the_executable() {
        let c = from(&[]).expect("defaults");
        let exe = executable_name().expect("a test binary has a name");
        assert_eq!(c.service, exe);
        assert_ne!(c.service, DEFAULT_SERVICE);
    }
}

#[cfg(test)]
mod ingest_url_tests {
    use super::LumenConfig;

    #[test]
    fn the_base_url_and_the_ingest_url_both_work() {
        let url = |u: &str| {
            LumenConfig {
                sidecar_url: u.to_owned(),
                ..LumenConfig::default()
            }
            .ingest_url()
        };
        assert_eq!(
            url("http://127.0.0.1:9464"),
            "http://127.0.0.1:9464/v1/ingest"
        );
        assert_eq!(
            url("http://127.0.0.1:9464/"),
            "http://127.0.0.1:9464/v1/ingest"
        );
        assert_eq!(
            url("http://127.0.0.1:9464/v1/ingest"),
            "http://127.0.0.1:9464/v1/ingest"
        );
        assert_eq!(
            url("http://sidecar:9464/custom"),
            "http://sidecar:9464/custom"
        );
    }
}
