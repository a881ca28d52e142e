//! The one table of settings: for each, its file key, its variables, its
//! default as documented, what it means, how a value is read (and checked)
//! and how it is shown. File parsing, the environment, validation messages,
//! `config show` and docs/configuration.md's table are all driven by [`SETTINGS`].

use std::path::PathBuf;
use std::time::Duration;

use lumen_middleware::units::format_duration;

use super::values::{
    addr, classes, duration, mode, mode_name, non_negative, number, pairs, percent_range, protocol,
    protocol_name, whole,
};
use super::{
    CloudRunEnv, DataPath, Draft, FeedbackMode, GOOGLE_OTLP_ENDPOINT, MIN_EXPORT_INTERVAL,
    OtlpProtocol, SidecarConfig, window_is_valid,
};
use crate::eval::SloPeriod;

/// How a shown value is written in TOML.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// A whole number.
    Whole(u64),
    /// A list of strings.
    List(Vec<String>),
    /// A secret that is set (shown masked).
    Secret,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The file key (`slo.availability`; `service` at the top); `None` for
    /// settings that only the environment sets (secrets, the platform's and
    /// OpenTelemetry's variables).
    pub key: Option<&'static str>,
    /// The variables that set it, the first present winning.
    pub env: &'static [&'static str],
    /// The default, as documented.
    pub default: &'static str,
    /// What it means and what is allowed.
    pub help: &'static str,
    /// Reads a value given as text into the draft; `Err` says what is allowed.
    pub set: fn(&mut Draft, &str) -> Result<(), String>,
    /// The effective value, for `config show` (`None`: not set).
    pub show: fn(&SidecarConfig) -> Option<Shown>,
}

fn none(_: &SidecarConfig) -> Option<Shown> {
    None
}

fn text(v: impl Into<String>) -> Option<Shown> {
    Some(Shown::Text(v.into()))
}

/// A duration of whole seconds, at least 1 s, as a TTL.
fn whole_seconds(v: &str) -> Result<u32, String> {
    let d = duration(v)?;
    if d < Duration::from_secs(1) || d.subsec_nanos() != 0 || d.as_secs() > u64::from(u32::MAX) {
        return Err("whole seconds, at least 1s".into());
    }
    Ok(d.as_secs() as u32)
}

/// A duration of at least one second.
fn positive_duration(v: &str) -> Result<Duration, String> {
    let d = duration(v)?;
    if d < Duration::from_secs(1) {
        return Err("a duration of at least 1s, such as 30s, 1h or 7d".into());
    }
    Ok(d)
}

fn dur(d: Duration) -> Option<Shown> {
    text(format_duration(d))
}

/// Every setting, in the order the environment applies them (a later
/// variable wins over an earlier one that sets the same thing).
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: Some("service"),
        env: &["LUMEN_SERVICE"],
        default: "the name the batches carry",
        help: "the service's name in reports and metrics",
        set: |d, v| {
            d.config.service = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
        show: |c| c.service.clone().map(Shown::Text),
    },
    Setting {
        key: Some("server.listen"),
        env: &["LUMEN_LISTEN"],
        default: "127.0.0.1:9464",
        help: "where ingest and the read API listen (beyond loopback only with a token)",
        set: |d, v| {
            d.config.listen = addr(v)?;
            Ok(())
        },
        show: |c| text(c.listen.to_string()),
    },
    Setting {
        key: Some("server.auth_token"),
        env: &["LUMEN_AUTH_TOKEN"],
        default: "none",
        help: "ingest then requires `Authorization: Bearer <token>`",
        set: |d, v| {
            d.config.auth_token = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
        show: |c| c.auth_token.as_ref().map(|_| Shown::Secret),
    },
    Setting {
        key: Some("server.allowed_hosts"),
        env: &["LUMEN_ALLOWED_HOSTS"],
        default: "none",
        help: "host names the sidecar answers besides IP addresses and localhost, comma-separated (any other Host header is refused, so a page whose DNS name points at the sidecar cannot read it)",
        set: |d, v| {
            d.config.allowed_hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect();
            if d.config
                .allowed_hosts
                .iter()
                .any(|h| h.contains(['/', ':', ' ']))
            {
                return Err("host names, comma-separated (no scheme, port or path)".into());
            }
            Ok(())
        },
        show: |c| (!c.allowed_hosts.is_empty()).then(|| Shown::Text(c.allowed_hosts.join(","))),
    },
    Setting {
        key: Some("server.max_connections"),
        env: &["LUMEN_MAX_CONNECTIONS"],
        default: "256",
        help: "connections served at once (8 to 65536); the next are closed at accept until others end, and counted in lumen_connections_refused_total",
        set: |d, v| {
            let n = whole(v, "a whole number of connections")?;
            if !(8..=65_536).contains(&n) {
                return Err("from 8 to 65536".into());
            }
            d.config.max_connections = n as usize;
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.max_connections as u64)),
    },
    Setting {
        key: Some("server.header_read_timeout"),
        env: &["LUMEN_HEADER_READ_TIMEOUT"],
        default: "10s",
        help: "time a client has to send a request's head (the first on a connection or the next on a kept-alive one), 1s to 5m; slower clients are disconnected",
        set: |d, v| {
            let t = duration(v)?;
            if t < Duration::from_secs(1) || t > Duration::from_secs(300) {
                return Err("from 1s to 5m".into());
            }
            d.config.header_read_timeout = t;
            Ok(())
        },
        show: |c| dur(c.header_read_timeout),
    },
    Setting {
        key: Some("server.max_body_bytes"),
        env: &["LUMEN_MAX_BODY_BYTES"],
        default: "4194304",
        help: "largest ingest body, bytes (1024 to 67108864)",
        set: |d, v| {
            let n = whole(v, "a whole number of bytes, 1024 to 67108864")?;
            if !(1024..=64 * 1024 * 1024).contains(&n) {
                return Err("a whole number of bytes, 1024 to 67108864".into());
            }
            d.config.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.max_body_bytes as u64)),
    },
    Setting {
        key: Some("server.grace_period"),
        env: &["LUMEN_GRACE_PERIOD"],
        default: "8s",
        help: "time to drain after SIGTERM, at most 60s (Cloud Run kills after 10 s)",
        set: |d, v| {
            let g = duration(v)?;
            if g > Duration::from_secs(60) {
                return Err("at most 60s".into());
            }
            d.config.grace_period = g;
            Ok(())
        },
        show: |c| dur(c.grace_period),
    },
    Setting {
        key: Some("slo.window"),
        env: &["LUMEN_WINDOW"],
        default: "1h",
        help: "the window of the status, `/metrics` and `check` (whole minutes, 1m to 24h)",
        set: |d, v| {
            let w = duration(v)?;
            if !window_is_valid(w) {
                return Err("whole minutes from 1m to 24h".into());
            }
            d.config.window = w;
            Ok(())
        },
        show: |c| dur(c.window),
    },
    Setting {
        key: Some("slo.availability"),
        env: &["LUMEN_SLO_AVAILABILITY"],
        default: "99.5",
        help: "availability target, percent, met at or above",
        set: |d, v| {
            d.config.slo.availability_percent = percent_range(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.slo.availability_percent)),
    },
    Setting {
        key: Some("slo.latency_p95_ms"),
        env: &["LUMEN_SLO_LATENCY_P95_MS"],
        default: "200",
        help: "P95 latency target, ms, met below",
        set: |d, v| {
            d.config.slo.latency_p95_ms = latency_ms(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.slo.latency_p95_ms)),
    },
    Setting {
        key: Some("slo.latency_p99_ms"),
        env: &["LUMEN_SLO_LATENCY_P99_MS"],
        default: "500",
        help: "P99 latency target, ms, met below",
        set: |d, v| {
            d.config.slo.latency_p99_ms = latency_ms(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.slo.latency_p99_ms)),
    },
    Setting {
        key: Some("slo.error_rate"),
        env: &["LUMEN_SLO_ERROR_RATE"],
        default: "0.1",
        help: "error-rate target, percent, met below",
        set: |d, v| {
            d.config.slo.error_rate_percent = percent_range(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.slo.error_rate_percent)),
    },
    Setting {
        key: Some("slo.error_classes"),
        env: &["LUMEN_SLO_ERROR_CLASSES"],
        default: "4xx, 5xx",
        help: "the status classes the error rate counts (a list; comma-separated in the variable)",
        set: |d, v| {
            d.config.slo.error_classes = classes(v)?;
            Ok(())
        },
        show: |c| {
            Some(Shown::List(
                c.slo
                    .error_classes
                    .iter()
                    .map(|x| x.as_str().to_owned())
                    .collect(),
            ))
        },
    },
    Setting {
        key: Some("store.retention"),
        env: &["LUMEN_RETENTION"],
        default: "24h",
        help: "minute slots kept, 24h to 7d",
        set: |d, v| {
            let r = duration(v)?;
            if r < Duration::from_secs(24 * 3600) || r > Duration::from_secs(7 * 24 * 3600) {
                return Err("from 24h to 7d".into());
            }
            d.config.retention = r;
            Ok(())
        },
        show: |c| dur(c.retention),
    },
    Setting {
        key: Some("store.snapshot_path"),
        env: &["LUMEN_SNAPSHOT_PATH"],
        default: "none",
        help: "file the state is written to every interval and on SIGTERM, and read at start",
        set: |d, v| {
            d.config.snapshot_path = (!v.is_empty()).then(|| PathBuf::from(v));
            Ok(())
        },
        show: |c| {
            c.snapshot_path
                .as_ref()
                .map(|p| Shown::Text(p.display().to_string()))
        },
    },
    Setting {
        key: Some("store.max_routes"),
        env: &["LUMEN_MAX_ROUTES"],
        default: "256",
        help: "distinct routes held (1 to 10000); routes beyond are counted under the route \"other\", with their latencies, and counted in lumen_routes_folded_total",
        set: |d, v| {
            let n: usize = v.trim().parse().map_err(|_| "a whole number".to_owned())?;
            if !(1..=10_000).contains(&n) {
                return Err("from 1 to 10000".into());
            }
            d.config.max_routes = n;
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.max_routes as u64)),
    },
    Setting {
        key: Some("store.max_bytes"),
        env: &["LUMEN_STORE_MAX_BYTES"],
        default: "the least of 20 % of the container's memory limit and 60 % of the state volume, else none",
        help: "the window store's memory cap (bytes, or with KiB, MiB, GiB): beyond it minutes older than 1 h are merged into 10-minute blocks, older than 6 h into hours, and only then the oldest hours dropped",
        set: |d, v| {
            d.config.store_max_bytes = Some(size_at_least_1mib(v)?);
            Ok(())
        },
        show: |c| c.store_max_bytes.map(Shown::Whole),
    },
    Setting {
        key: Some("store.state_max_bytes"),
        env: &["LUMEN_STATE_MAX_BYTES"],
        default: "the state directory's file system size",
        help: "the state volume's size (bytes, or with KiB, MiB, GiB), for a volume whose file system reports more than the sidecar may use (an in-memory volume's size limit): the log stops (503) while the next checkpoint would not fit, and without store.max_bytes the store's memory cap is at most 60 % of it",
        set: |d, v| {
            d.config.state_max_bytes = Some(size_at_least_1mib(v)?);
            Ok(())
        },
        show: |c| c.state_max_bytes.map(Shown::Whole),
    },
    Setting {
        key: Some("store.state_dir"),
        env: &["LUMEN_STATE_DIR"],
        default: "serve: $XDG_STATE_HOME (else ~/.local/state)/lumen/sidecar-PORT",
        help: "directory of the write-ahead log: every batch is written and synced there before it is acknowledged, and replayed at start after the checkpoint (checkpoint.bin there, unless store.snapshot_path names another file); none: no log, an acknowledged batch is lost on restart",
        set: |d, v| {
            d.config.state_dir_off = v == "none";
            d.config.state_dir = (!v.is_empty() && v != "none").then(|| PathBuf::from(v));
            Ok(())
        },
        show: |c| {
            c.state_dir
                .as_ref()
                .map(|p| Shown::Text(p.display().to_string()))
        },
    },
    Setting {
        key: Some("store.snapshot_interval"),
        env: &["LUMEN_SNAPSHOT_INTERVAL"],
        default: "60s",
        help: "how often the snapshot (the log's checkpoint) is written, at least 1s",
        set: |d, v| {
            let i = duration(v)?;
            if i < Duration::from_secs(1) {
                return Err("at least 1s".into());
            }
            d.config.snapshot_interval = i;
            Ok(())
        },
        show: |c| dur(c.snapshot_interval),
    },
    Setting {
        key: Some("budget.period"),
        env: &["LUMEN_BUDGET_PERIOD"],
        default: "30d",
        help: "the error budgets' period: 7d, 28d, 30d or month",
        set: |d, v| {
            d.config.budget_period = SloPeriod::parse(v).ok_or("7d, 28d, 30d or month")?;
            Ok(())
        },
        show: |c| text(c.budget_period.name()),
    },
    Setting {
        key: Some("budget.min_events"),
        env: &["LUMEN_BUDGET_MIN_EVENTS"],
        default: "100",
        help: "requests a long burn-rate window needs before it may alert",
        set: |d, v| {
            d.config.budget_min_events = whole(v, "a whole number of events")?;
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.budget_min_events)),
    },
    Setting {
        key: Some("budget.maintenance"),
        env: &["LUMEN_BUDGET_MAINTENANCE"],
        default: "none",
        help: "recurring windows kept off the error budgets, UTC: `Sun 02:00-03:00`, `daily 04:00-04:10` (a list)",
        set: |d, v| {
            d.config.budget_maintenance = if v.trim() == "none" {
                Vec::new()
            } else {
                crate::store::parse_recurring(v)?
            };
            Ok(())
        },
        show: |c| {
            Some(Shown::List(
                c.budget_maintenance.iter().map(|w| w.to_string()).collect(),
            ))
        },
    },
    Setting {
        key: Some("fleet.redis_url"),
        env: &["LUMEN_FLEET_REDIS_URL"],
        default: "none",
        help: "the fleet store: a Redis (such as Memorystore) every sidecar of the service writes its minutes to (counts and histograms, idempotently), so `check --fleet-redis` reports the fleet's exact percentiles; `redis://[:password@]host:port[/db]`, `rediss://` for TLS",
        set: |d, v| {
            if v.is_empty() {
                d.config.fleet_store.redis_url = None;
                return Ok(());
            }
            if !(v.starts_with("redis://") || v.starts_with("rediss://")) {
                return Err("a redis:// or rediss:// URL".into());
            }
            d.config.fleet_store.redis_url = Some(v.to_owned());
            Ok(())
        },
        show: |c| c.fleet_store.redis_url.as_ref().map(|_| Shown::Secret),
    },
    Setting {
        key: Some("fleet.redis_ca_file"),
        env: &["LUMEN_FLEET_REDIS_CA_FILE"],
        default: "the system's roots",
        help: "PEM file of the CA that signed the fleet store's certificate (Memorystore's server CA), for rediss://",
        set: |d, v| {
            d.config.fleet_store.ca_file = (!v.is_empty()).then(|| PathBuf::from(v));
            Ok(())
        },
        show: |c| {
            c.fleet_store
                .ca_file
                .as_ref()
                .map(|p| Shown::Text(p.display().to_string()))
        },
    },
    Setting {
        key: Some("fleet.instance"),
        env: &["LUMEN_FLEET_INSTANCE"],
        default: "made up at start (kept in the state directory)",
        help: "this sidecar's name in the fleet store: 1 to 128 of A-Z a-z 0-9 . _ -",
        set: |d, v| {
            let ok = (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err("1 to 128 of A-Z a-z 0-9 . _ -".into());
            }
            d.config.fleet_store.instance = Some(v.to_owned());
            Ok(())
        },
        show: |c| c.fleet_store.instance.clone().map(Shown::Text),
    },
    Setting {
        key: Some("fleet.write_interval"),
        env: &["LUMEN_FLEET_WRITE_INTERVAL"],
        default: "10s",
        help: "how often changed minutes are written to the fleet store, 1s to 60s",
        set: |d, v| {
            let i = duration(v)?;
            if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&i) {
                return Err("1s to 60s".into());
            }
            d.config.fleet_store.write_interval = i;
            Ok(())
        },
        show: |c| dur(c.fleet_store.write_interval),
    },
    Setting {
        key: Some("fleet.memory_share"),
        env: &["LUMEN_FLEET_MEMORY_SHARE"],
        default: "50",
        help: "the share of the Redis `maxmemory` (percent, above 0, at most 100) past which sidecars stop writing to the fleet store (what is due is kept and written once there is room): the store shares the cache's Redis, which would otherwise evict the cache's keys; no limit when Redis has no maxmemory",
        set: |d, v| {
            d.config.fleet_store.memory_share_percent = percent_range(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.fleet_store.memory_share_percent)),
    },
    Setting {
        key: Some("fleet.compact_every"),
        env: &["LUMEN_FLEET_COMPACT_EVERY"],
        default: "5m",
        help: "how often a sidecar offers to compact the fleet store's closed blocks (each merged into one field once every sidecar is done with it; one sidecar at a time, under a lock), 1s to 1h, or 0 for never",
        set: |d, v| {
            let every = if v.trim() == "0" {
                Duration::ZERO
            } else {
                duration(v)?
            };
            if !every.is_zero()
                && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&every)
            {
                return Err("1s to 1h, or 0".into());
            }
            d.config.fleet_store.compact_every = every;
            Ok(())
        },
        show: |c| dur(c.fleet_store.compact_every),
    },
    Setting {
        key: Some("fleet.prometheus_url"),
        env: &["LUMEN_FLEET_PROMETHEUS_URL"],
        default: "none",
        help: "a Prometheus query API (Prometheus, Thanos, Mimir) holding every sidecar's metrics: the sidecar then serves the fleet at /v1/fleet/slo and on its status page (exact counts, bucket-estimated percentiles); a fleet store, when set, is read instead",
        set: |d, v| {
            if v.is_empty() {
                d.config.fleet_store.prometheus_url = None;
                return Ok(());
            }
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err("an http:// or https:// URL".into());
            }
            d.config.fleet_store.prometheus_url = Some(v.to_owned());
            Ok(())
        },
        show: |c| c.fleet_store.prometheus_url.clone().map(Shown::Text),
    },
    Setting {
        key: Some("roi.cost_per_miss_usd"),
        env: &["LUMEN_ROI_COST_PER_MISS_USD"],
        default: "0.002",
        help: "what one cache hit saves, USD (the backend call it avoids), at least 0",
        set: |d, v| {
            let n = number(v)?;
            if !(n >= 0.0 && n.is_finite()) {
                return Err("USD, at least 0".into());
            }
            d.config.roi.cost_per_miss_usd = n;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.roi.cost_per_miss_usd)),
    },
    Setting {
        key: Some("roi.redis_monthly_cost_usd"),
        env: &["LUMEN_ROI_REDIS_MONTHLY_COST_USD"],
        default: "50",
        help: "the cache's monthly cost, USD, above 0 (ROI is savings over this cost); the cost report charges it once this is set or the app reports cache lookups",
        set: |d, v| {
            let n = number(v)?;
            if !(n > 0.0 && n.is_finite()) {
                return Err(
                    "the cache's monthly cost in USD, above 0 (ROI is savings over this cost)"
                        .into(),
                );
            }
            d.config.roi.redis_monthly_cost_usd = n;
            d.config.cache_cost_set = true;
            Ok(())
        },
        // Shown only when set: setting it says there is a cache to charge.
        show: |c| {
            c.cache_cost_set
                .then_some(Shown::Number(c.roi.redis_monthly_cost_usd))
        },
    },
    Setting {
        key: Some("roi.pass_percent"),
        env: &["LUMEN_ROI_PASS_PERCENT"],
        default: "500",
        help: "ROI gate PASS at or above, percent (above roi.warn_percent)",
        set: |d, v| {
            d.config.roi.pass_percent = number(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.roi.pass_percent)),
    },
    Setting {
        key: Some("roi.warn_percent"),
        env: &["LUMEN_ROI_WARN_PERCENT"],
        default: "300",
        help: "ROI gate WARN at or above, percent; FAIL below",
        set: |d, v| {
            d.config.roi.warn_percent = number(v)?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.roi.warn_percent)),
    },
    Setting {
        key: Some("roi.instances"),
        env: &["LUMEN_ROI_INSTANCES"],
        default: "1 off Cloud Run; on Cloud Run none (no per-instance ROI)",
        help: "instances the cache's cost is shared over: this sidecar's own ROI charges its instance 1/N of it (the fleet ROI on dashboards and policies needs no N)",
        set: |d, v| {
            let n = whole(v, "a whole number of instances, at least 1")?;
            if n == 0 || n > 10_000 {
                return Err("a whole number of instances, at least 1".into());
            }
            d.config.roi.instances = Some(u32::try_from(n).unwrap_or(u32::MAX));
            Ok(())
        },
        show: |c| c.roi.instances.map(|n| Shown::Whole(u64::from(n))),
    },
    Setting {
        key: Some("cost.instance_vcpu"),
        env: &["LUMEN_COST_INSTANCE_VCPU"],
        default: "1",
        help: "vCPUs one instance is billed for: every container's CPU limit summed (the deploy kit's 0.75 + 0.25)",
        set: |d, v| {
            d.config.cost.instance_vcpu = non_negative(v, "vCPUs, 0 or more")?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.cost.instance_vcpu)),
    },
    Setting {
        key: Some("cost.instance_memory_gib"),
        env: &["LUMEN_COST_INSTANCE_MEMORY_GIB"],
        default: "0.75",
        help: "GiB one instance is billed for: every container's memory limit summed (the deploy kit's 512 MiB + 256 MiB)",
        set: |d, v| {
            d.config.cost.instance_memory_gib = non_negative(v, "GiB, 0 or more")?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.cost.instance_memory_gib)),
    },
    Setting {
        key: Some("cost.vcpu_second_usd"),
        env: &["LUMEN_COST_VCPU_SECOND_USD"],
        default: "0.000018",
        help: "price of a vCPU-second, USD (Cloud Run tier 1, instance-based billing, as of 2025-06)",
        set: |d, v| {
            d.config.cost.vcpu_second_usd = non_negative(v, "USD, 0 or more")?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.cost.vcpu_second_usd)),
    },
    Setting {
        key: Some("cost.gib_second_usd"),
        env: &["LUMEN_COST_GIB_SECOND_USD"],
        default: "0.000002",
        help: "price of a GiB-second, USD (Cloud Run tier 1, instance-based billing, as of 2025-06)",
        set: |d, v| {
            d.config.cost.gib_second_usd = non_negative(v, "USD, 0 or more")?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.cost.gib_second_usd)),
    },
    Setting {
        key: Some("cost.monthly_budget_usd"),
        env: &["LUMEN_COST_MONTHLY_BUDGET_USD"],
        default: "200",
        help: "the service's monthly budget, USD: the cost forecast is held against it",
        set: |d, v| {
            d.config.cost.monthly_budget_usd = non_negative(v, "USD, 0 or more")?;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.cost.monthly_budget_usd)),
    },
    Setting {
        key: Some("feedback.mode"),
        env: &["LUMEN_FEEDBACK_MODE"],
        default: "off",
        help: "the feedback loop: off, recommend (reports what it would set) or apply (the ingest answers carry it to the app)",
        set: |d, v| {
            d.config.feedback.mode = match v.trim() {
                "off" => FeedbackMode::Off,
                "recommend" => FeedbackMode::Recommend,
                "apply" => FeedbackMode::Apply,
                _ => return Err("off, recommend or apply".into()),
            };
            Ok(())
        },
        show: |c| text(c.feedback.mode.as_str()),
    },
    Setting {
        key: Some("feedback.interval"),
        env: &["LUMEN_FEEDBACK_INTERVAL"],
        default: "60s",
        help: "how often the feedback loop decides, on the lookups since its last decision (1s to 1h)",
        set: |d, v| {
            let i = duration(v)?;
            if i < Duration::from_secs(1) || i > Duration::from_secs(3600) {
                return Err("from 1s to 1h".into());
            }
            d.config.feedback.interval = i;
            Ok(())
        },
        show: |c| dur(c.feedback.interval),
    },
    Setting {
        key: Some("feedback.target_hit_rate"),
        env: &["LUMEN_FEEDBACK_TARGET_HIT_RATE"],
        default: "80",
        help: "the hit rate the adaptive TTL aims at, percent (above 0, below 100)",
        set: |d, v| {
            let n = number(v)?;
            if !(n > 0.0 && n < 100.0) {
                return Err("a percent above 0 and below 100".into());
            }
            d.config.feedback.ttl.target_hit_rate = n;
            Ok(())
        },
        show: |c| Some(Shown::Number(c.feedback.ttl.target_hit_rate)),
    },
    Setting {
        key: Some("feedback.ttl_min"),
        env: &["LUMEN_FEEDBACK_TTL_MIN"],
        default: "60s",
        help: "the shortest TTL the loop sets (whole seconds, at least 1s)",
        set: |d, v| {
            d.config.feedback.ttl.ttl_min_s = whole_seconds(v)?;
            Ok(())
        },
        show: |c| dur(Duration::from_secs(c.feedback.ttl.ttl_min_s.into())),
    },
    Setting {
        key: Some("feedback.ttl_max"),
        env: &["LUMEN_FEEDBACK_TTL_MAX"],
        default: "1h",
        help: "the longest TTL the loop sets (whole seconds, at least feedback.ttl_min)",
        set: |d, v| {
            d.config.feedback.ttl.ttl_max_s = whole_seconds(v)?;
            Ok(())
        },
        show: |c| dur(Duration::from_secs(c.feedback.ttl.ttl_max_s.into())),
    },
    Setting {
        key: Some("feedback.initial_ttl"),
        env: &["LUMEN_FEEDBACK_INITIAL_TTL"],
        default: "5m",
        help: "the TTL a cache starts from before the loop moves it (within ttl_min and ttl_max)",
        set: |d, v| {
            d.config.feedback.ttl.initial_ttl_s = whole_seconds(v)?;
            Ok(())
        },
        show: |c| dur(Duration::from_secs(c.feedback.ttl.initial_ttl_s.into())),
    },
    Setting {
        key: Some("feedback.min_lookups"),
        env: &["LUMEN_FEEDBACK_MIN_LOOKUPS"],
        default: "100",
        help: "cache lookups an interval needs before the TTL moves (fewer: too little data), at least 1",
        set: |d, v| {
            let n = whole(v, "a whole number of lookups")?;
            if n == 0 {
                return Err(
                    "at least 1: an interval without lookups says nothing about the hit rate"
                        .into(),
                );
            }
            d.config.feedback.ttl.min_lookups = n;
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.feedback.ttl.min_lookups)),
    },
    Setting {
        key: Some("feedback.l1_entry_bytes"),
        env: &["LUMEN_FEEDBACK_L1_ENTRY_BYTES"],
        default: "2048",
        help: "bytes one in-process (L1) cache entry takes, for the memory of the recommended L1 size",
        set: |d, v| {
            d.config.feedback.l1_entry_bytes = whole(v, "a whole number of bytes")?;
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.feedback.l1_entry_bytes)),
    },
    Setting {
        key: Some("experiment.check_interval"),
        env: &["LUMEN_EXPERIMENT_CHECK_INTERVAL"],
        default: "1h",
        help: "how often the running A/B experiment is looked at (each look may end it; its statistics stay valid at any rate)",
        set: |d, v| {
            d.config.experiment.check_interval = positive_duration(v)?;
            Ok(())
        },
        show: |c| dur(c.experiment.check_interval),
    },
    Setting {
        key: Some("experiment.param"),
        env: &["LUMEN_EXPERIMENT_PARAM"],
        default: "none (no experiment at boot)",
        help: "an experiment to start at boot unless it ran already: the parameter the app reads (tuning().param), with experiment.a and experiment.b",
        set: |d, v| {
            d.config.experiment.param = (!v.trim().is_empty()).then(|| v.trim().to_owned());
            Ok(())
        },
        show: |c| c.experiment.param.clone().map(Shown::Text),
    },
    Setting {
        key: Some("experiment.a"),
        env: &["LUMEN_EXPERIMENT_A"],
        default: "none",
        help: "the boot experiment's arm A: the value in force (a whole number)",
        set: |d, v| {
            d.config.experiment.a = Some(whole(v, "a whole number")?);
            Ok(())
        },
        show: |c| c.experiment.a.map(Shown::Whole),
    },
    Setting {
        key: Some("experiment.b"),
        env: &["LUMEN_EXPERIMENT_B"],
        default: "none",
        help: "the boot experiment's arm B: the value tried (a whole number)",
        set: |d, v| {
            d.config.experiment.b = Some(whole(v, "a whole number")?);
            Ok(())
        },
        show: |c| c.experiment.b.map(Shown::Whole),
    },
    Setting {
        key: Some("experiment.share"),
        env: &["LUMEN_EXPERIMENT_SHARE"],
        default: "50",
        help: "the boot experiment's share of requests for B, percent (1 to 99)",
        set: |d, v| {
            let n = whole(v, "a whole percent from 1 to 99")?;
            if !(1..=99).contains(&n) {
                return Err("a whole percent from 1 to 99".into());
            }
            d.config.experiment.share_b_percent = n as u8;
            Ok(())
        },
        show: |c| Some(Shown::Whole(c.experiment.share_b_percent.into())),
    },
    Setting {
        key: Some("experiment.duration"),
        env: &["LUMEN_EXPERIMENT_DURATION"],
        default: "7d",
        help: "the boot experiment's length: at its end without a winner, A stays",
        set: |d, v| {
            d.config.experiment.duration = positive_duration(v)?;
            Ok(())
        },
        show: |c| dur(c.experiment.duration),
    },
    Setting {
        key: Some("experiment.primary"),
        env: &["LUMEN_EXPERIMENT_PRIMARY"],
        default: "cache_hit_rate",
        help: "the boot experiment's primary metric: cache_hit_rate, error_rate, under_p95_target or under_p99_target",
        set: |d, v| {
            d.config.experiment.primary = crate::eval::Metric::parse(v.trim())
                .ok_or("cache_hit_rate, error_rate, under_p95_target or under_p99_target")?;
            Ok(())
        },
        show: |c| text(c.experiment.primary.as_str()),
    },
    Setting {
        key: None,
        env: &["SLACK_WEBHOOK_URL"],
        default: "none (the sidecar's own Slack alerts off)",
        help: "a Slack incoming-webhook URL for the sidecar's alerts (a secret: never in the file)",
        set: |d, v| {
            if v.is_empty() {
                d.config.slack_webhook_url = None;
                return Ok(());
            }
            if v.parse::<http::Uri>().is_err()
                || !(v.starts_with("https://") || v.starts_with("http://"))
            {
                return Err("an https:// incoming-webhook URL".into());
            }
            d.config.slack_webhook_url = Some(v.to_owned());
            Ok(())
        },
        show: none,
    },
    Setting {
        key: Some("export.mode"),
        env: &["LUMEN_EXPORT"],
        default: "otlp when an endpoint is known, else off",
        help: "where metrics go besides /metrics: off, otlp or stdout",
        set: |d, v| {
            d.export_mode = Some(mode(v)?);
            Ok(())
        },
        show: |c| text(mode_name(c.export.mode)),
    },
    Setting {
        key: Some("export.protocol"),
        env: &[
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ],
        default: "http/protobuf",
        help: "the OTLP transport: http/protobuf or grpc",
        set: |d, v| {
            d.config.export.protocol = protocol(v)?;
            Ok(())
        },
        show: |c| text(protocol_name(c.export.protocol)),
    },
    Setting {
        key: None,
        env: &["K_SERVICE"],
        default: "set by Cloud Run",
        help: "the Cloud Run service: turns on the Cloud Run resource, Google's endpoint and token",
        set: |d, v| {
            d.config.export.cloud_run = Some(CloudRunEnv {
                service: v.to_owned(),
                revision: None,
                configuration: None,
            });
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["K_REVISION"],
        default: "set by Cloud Run",
        help: "the Cloud Run revision (with K_SERVICE)",
        set: |d, v| {
            if let Some(run) = &mut d.config.export.cloud_run {
                run.revision = Some(v.to_owned());
            }
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["K_CONFIGURATION"],
        default: "set by Cloud Run",
        help: "the Cloud Run configuration (with K_SERVICE)",
        set: |d, v| {
            if let Some(run) = &mut d.config.export.cloud_run {
                run.configuration = Some(v.to_owned());
            }
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["OTEL_EXPORTER_OTLP_ENDPOINT"],
        default: "none",
        help: "the OTLP base URL; HTTP gets /v1/metrics appended",
        set: |d, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err("an http:// or https:// URL".into());
            }
            let base = v.trim_end_matches('/');
            d.config.export.endpoint = Some(match d.config.export.protocol {
                OtlpProtocol::HttpProtobuf => format!("{base}/v1/metrics"),
                OtlpProtocol::Grpc => v.to_owned(),
            });
            Ok(())
        },
        show: none,
    },
    Setting {
        key: Some("export.endpoint"),
        env: &["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"],
        default: "Google's on Cloud Run, else none",
        help: "the full metrics URL, used as given (HTTP: with /v1/metrics)",
        set: |d, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err("an http:// or https:// URL".into());
            }
            d.config.export.endpoint = Some(v.to_owned());
            Ok(())
        },
        show: |c| c.export.endpoint.clone().map(Shown::Text),
    },
    Setting {
        key: None,
        env: &[
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ],
        default: "none",
        help: "headers sent with every export: comma-separated key=value pairs",
        set: |d, v| {
            d.config.export.headers = pairs(v)?;
            Ok(())
        },
        show: none,
    },
    Setting {
        key: Some("export.interval"),
        env: &["LUMEN_EXPORT_INTERVAL"],
        default: "60s",
        help: "the export period, at least 10s",
        set: |d, v| {
            d.config.export.interval = export_interval(duration(v)?)?;
            Ok(())
        },
        show: |c| dur(c.export.interval),
    },
    Setting {
        key: None,
        env: &["OTEL_METRIC_EXPORT_INTERVAL"],
        default: "60000",
        help: "the export period in milliseconds, at least 10000",
        set: |d, v| {
            let ms = whole(v, "milliseconds, at least 10000 (10s)")?;
            d.config.export.interval = export_interval(Duration::from_millis(ms))?;
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["OTEL_SERVICE_NAME"],
        default: "the service",
        help: "the exported resource's service.name",
        set: |d, v| {
            d.config.export.service_name = Some(v.to_owned());
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["OTEL_RESOURCE_ATTRIBUTES"],
        default: "none",
        help: "extra resource attributes: comma-separated key=value pairs",
        set: |d, v| {
            d.config.export.resource_attributes = pairs(v)?;
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["GCE_METADATA_HOST"],
        default: "metadata.google.internal",
        help: "the metadata server's host (a stand-in's host:port in tests)",
        set: |d, v| {
            d.config.export.metadata_host = v.to_owned();
            Ok(())
        },
        show: none,
    },
    Setting {
        key: Some("export.data_path"),
        env: &["LUMEN_DATA_PATH"],
        default: "by destination (Cloud Monitoring: otlp; Prometheus, Grafana: prometheus)",
        help: "how the series reach what the dashboard, policies, rules and fleet reader query: otlp (Telemetry API names: http.server.request.duration, http.route) or prometheus (/metrics names)",
        set: |d, v| {
            d.config.export.data_path = Some(match v {
                "otlp" => DataPath::Otlp,
                "prometheus" => DataPath::Prometheus,
                other => {
                    return Err(format!("{other:?}: otlp or prometheus"));
                }
            });
            Ok(())
        },
        show: |c| {
            c.export.data_path.map(|p| {
                Shown::Text(
                    match p {
                        DataPath::Otlp => "otlp",
                        DataPath::Prometheus => "prometheus",
                    }
                    .to_owned(),
                )
            })
        },
    },
    Setting {
        key: Some("export.quota_project"),
        env: &["GOOGLE_CLOUD_QUOTA_PROJECT"],
        default: "none (the token's own project pays)",
        help: "a project to bill the export to (x-goog-user-project); needs roles/serviceusage.serviceUsageConsumer on it",
        set: |d, v| {
            d.config.export.quota_project = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
        show: |c| c.export.quota_project.clone().map(Shown::Text),
    },
    Setting {
        key: None,
        env: &["LUMEN_CLOUD_RUN_API"],
        default: "https://run.googleapis.com",
        help: "the Cloud Run Admin API the service's revisions are listed from, on Cloud Run (a stand-in's URL in tests)",
        set: |d, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err("an http:// or https:// URL".into());
            }
            d.config.cloud_run_api = v.to_owned();
            Ok(())
        },
        show: none,
    },
    Setting {
        key: None,
        env: &["LUMEN_GOOGLE_AUTH"],
        default: "on for *.googleapis.com endpoints",
        help: "send a Google access token from the metadata server: 1 or 0",
        set: |d, v| {
            d.google_auth = Some(match v {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err("1 or 0".into()),
            });
            Ok(())
        },
        show: none,
    },
];

fn latency_ms(v: &str) -> Result<f64, String> {
    let n = number(v)?;
    if !(n > 0.0 && n <= 3_600_000.0) {
        return Err("milliseconds above 0, at most 3600000 (1h)".into());
    }
    Ok(n)
}

fn export_interval(interval: Duration) -> Result<Duration, String> {
    if interval < MIN_EXPORT_INTERVAL {
        return Err("at least 10s (10000 ms)".into());
    }
    Ok(interval)
}

/// Fills in what follows from the settings together: Google's endpoint on
/// Cloud Run, the token for Google endpoints, the export mode.
pub(super) fn derive(d: &mut Draft) {
    let e = &mut d.config.export;
    if e.endpoint.is_none() && e.cloud_run.is_some() {
        let base = GOOGLE_OTLP_ENDPOINT;
        e.endpoint = Some(match e.protocol {
            OtlpProtocol::HttpProtobuf => format!("{base}/v1/metrics"),
            OtlpProtocol::Grpc => base.to_owned(),
        });
    }
    let google_endpoint = e
        .endpoint
        .as_deref()
        .is_some_and(|u| u.contains("googleapis.com"));
    e.google_auth = d.google_auth.unwrap_or(google_endpoint);
    e.mode = match d.export_mode {
        Some(m) => m,
        None if e.endpoint.is_some() => super::ExportMode::Otlp,
        None => super::ExportMode::Off,
    };
}

/// The configuration table of docs/configuration.md.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| key | variables | default | meaning |\n| --- | --- | --- | --- |\n");
    for s in SETTINGS {
        let key = s.key.map_or_else(String::new, |k| format!("`{k}`"));
        let env = s
            .env
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("| {key} | {env} | {} | {} |\n", s.default, s.help));
    }
    out
}

/// A size in bytes, KiB, MiB or GiB, at least 1 MiB.
fn size_at_least_1mib(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => (&v[..at], v[at..].trim()),
        None => (v, ""),
    };
    let scale: u64 = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err("a size in bytes, KiB, MiB or GiB".into()),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| "a size in bytes, KiB, MiB or GiB".to_owned())?;
    let bytes = n.saturating_mul(scale);
    if bytes < 1 << 20 {
        return Err("at least 1MiB".into());
    }
    Ok(bytes)
}
