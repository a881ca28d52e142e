//! [`SloReport`]: the evaluation of a window, as `GET /v1/slo` returns it and
//! as `check --json` prints it.

use serde::{Deserialize, Serialize};

use super::slis::Slis;
use super::slo::{SloResult, SloTargets, Status, evaluate};
use crate::store::{Counts, RouteWindow, WindowData};

/// Request counts as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsReport {
    /// Informational responses.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// Successful responses.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// Redirects.
    #[serde(rename = "3xx")]
    pub redirect: u64,
    /// Client errors.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// Server errors.
    #[serde(rename = "5xx")]
    pub server_error: u64,
    /// Inner-service failures: requests the app's service failed without
    /// a response (JSON `inner_failures`; not the error rate's count, which
    /// also holds the error classes). Read as `errors` too (older reports).
    #[serde(rename = "inner_failures", alias = "errors")]
    pub errors: u64,
    /// Client-abandoned requests (not in `requests`).
    pub cancelled: u64,
    /// gRPC calls by status code (JSON `grpc_codes`: names such as
    /// `DEADLINE_EXCEEDED` to counts, only codes seen; absent for plain
    /// HTTP). Each is also in its status class above.
    #[serde(
        rename = "grpc_codes",
        default,
        skip_serializing_if = "no_grpc",
        serialize_with = "grpc_by_name",
        deserialize_with = "grpc_from_names"
    )]
    pub grpc: [u64; crate::store::GRPC_CODES],
}

fn no_grpc(codes: &[u64; crate::store::GRPC_CODES]) -> bool {
    codes.iter().all(|n| *n == 0)
}

fn grpc_by_name<S: serde::Serializer>(
    codes: &[u64; crate::store::GRPC_CODES],
    to: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let seen = codes.iter().filter(|n| **n > 0).count();
    let mut map = to.serialize_map(Some(seen))?;
    for (name, n) in lumen_middleware::wire::GRPC_CODE_NAMES.iter().zip(codes) {
        if *n > 0 {
            map.serialize_entry(name, n)?;
        }
    }
    map.end()
}

fn grpc_from_names<'de, D: serde::Deserializer<'de>>(
    from: D,
) -> Result<[u64; crate::store::GRPC_CODES], D::Error> {
    let names = std::collections::BTreeMap::<String, u64>::deserialize(from)?;
    let mut codes = [0; crate::store::GRPC_CODES];
    for (name, n) in names {
        let code = lumen_middleware::wire::GRPC_CODE_NAMES
            .iter()
            .position(|known| *known == name)
            .ok_or_else(|| serde::de::Error::custom(format!("{name}: not a gRPC code name")))?;
        codes[code] = n;
    }
    Ok(codes)
}

impl From<&Counts> for CountsReport {
    fn from(c: &Counts) -> Self {
        let [informational, success, redirect, client_error, server_error] = c.status;
        Self {
            informational,
            success,
            redirect,
            client_error,
            server_error,
            errors: c.errors,
            cancelled: c.cancelled,
            grpc: c.grpc,
        }
    }
}

/// Cache lookups as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Hits over lookups, percent; `null` without lookups.
    pub hit_rate: Option<f64>,
}

/// Exact latency percentiles of a window (nearest rank over the merged HDR
/// histograms, ms, each the top of its 0.1 % bucket).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyPercentiles {
    /// The median.
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 95th percentile.
    pub p95_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p99_9_ms: f64,
}

impl LatencyPercentiles {
    /// The percentiles of `window`'s latency; `None` without requests.
    pub fn of(window: &RouteWindow) -> Option<Self> {
        let q = |q: f64| window.latency.quantile_us(q).map(|us| us as f64 / 1000.0);
        Some(Self {
            p50_ms: q(0.5)?,
            p90_ms: q(0.9)?,
            p95_ms: q(0.95)?,
            p99_ms: q(0.99)?,
            p99_9_ms: q(0.999)?,
        })
    }
}

/// One route's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    /// Route label; `null` for requests without one.
    pub route: Option<String>,
    /// Finished requests.
    pub requests: u64,
    /// Verdict for this route.
    pub status: Status,
    /// SLOs met ÷ evaluated × 100.
    pub compliance_rate: Option<f64>,
    /// Each SLO.
    pub slos: Vec<SloResult>,
    /// Counts.
    pub counts: CountsReport,
    /// Cache lookups.
    pub cache: CacheReport,
    /// Exact latency percentiles, where whole histograms were merged (a
    /// sidecar's own window, the fleet store); absent for bucket estimates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyPercentiles>,
}

/// Whose traffic a report describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportScope {
    /// One sidecar's own instance (on Cloud Run: one instance of the fleet).
    #[default]
    Instance,
    /// Every instance of the service, summed by a Prometheus query API.
    Fleet {
        /// Sidecars whose series reported in the window.
        instances: u64,
    },
    /// Every instance of the service, their exact histograms merged from
    /// the fleet store (Redis), ended instances included.
    FleetStore {
        /// Instances with data in the window.
        instances: u64,
        /// Instances whose stored data in the window could not be read
        /// (left out of every figure; the log says why).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unreadable: Vec<String>,
    },
}

impl ReportScope {
    /// `this instance` or `the fleet (N instances)`, for reports and messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Instance => "this instance only".to_owned(),
            Self::Fleet { instances } => format!(
                "the whole fleet ({instances} instance{})",
                if *instances == 1 { "" } else { "s" }
            ),
            Self::FleetStore {
                instances,
                unreadable,
            } if unreadable.is_empty() => format!(
                "the whole fleet ({instances} instance{}, exact histograms from the fleet store)",
                if *instances == 1 { "" } else { "s" }
            ),
            Self::FleetStore {
                instances,
                unreadable,
            } => format!(
                "the fleet without {} unreadable instance{} ({}; {instances} read, exact histograms from the fleet store)",
                unreadable.len(),
                if unreadable.len() == 1 { "" } else { "s" },
                unreadable.join(", ")
            ),
        }
    }
}

/// The service's evaluation over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloReport {
    /// Service name (config, else the batches').
    pub service: String,
    /// Latest revision seen.
    pub revision: Option<String>,
    /// Window length, s.
    pub window_s: u64,
    /// When it was evaluated (sidecar clock, Unix ms).
    pub evaluated_at_ms: u64,
    /// Finished requests in the window.
    pub requests: u64,
    /// Verdict.
    pub status: Status,
    /// SLOs met ÷ evaluated × 100; `null` without data.
    pub compliance_rate: Option<f64>,
    /// Each SLO.
    pub slos: Vec<SloResult>,
    /// Counts.
    pub counts: CountsReport,
    /// Cache lookups.
    pub cache: CacheReport,
    /// Exact latency percentiles of the whole window (absent for a
    /// fleet's bucket estimates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyPercentiles>,
    /// Each route, by label.
    pub routes: Vec<RouteReport>,
    /// Whose traffic: this instance, or the fleet.
    #[serde(default)]
    pub scope: ReportScope,
}

impl RouteReport {
    /// Holds a route's indicators against `targets`.
    pub fn from_slis(
        route: Option<String>,
        slis: &Slis,
        counts: &Counts,
        targets: &SloTargets,
    ) -> Self {
        let eval = evaluate(slis, targets);
        Self {
            route,
            requests: slis.requests,
            status: eval.status,
            compliance_rate: eval.compliance_rate,
            slos: eval.slos,
            counts: CountsReport::from(counts),
            cache: CacheReport {
                hits: counts.cache_hits,
                misses: counts.cache_misses,
                hit_rate: slis.cache_hit_rate_percent,
            },
            latency: None,
        }
    }
}

fn route_report(route: Option<String>, window: &RouteWindow, targets: &SloTargets) -> RouteReport {
    RouteReport {
        latency: LatencyPercentiles::of(window),
        ..RouteReport::from_slis(
            route,
            &Slis::of(window, &targets.error_classes),
            &window.counts,
            targets,
        )
    }
}

impl SloReport {
    /// Evaluates a window's data against `targets`. `service` overrides the
    /// name the batches carry.
    pub fn evaluate(
        data: &WindowData,
        targets: &SloTargets,
        service: Option<&str>,
        evaluated_at_ms: u64,
    ) -> Self {
        Self::evaluate_as(
            data,
            targets,
            service,
            evaluated_at_ms,
            ReportScope::Instance,
        )
    }

    /// [`evaluate`](Self::evaluate) for a window whose scope is `scope`.
    pub fn evaluate_as(
        data: &WindowData,
        targets: &SloTargets,
        service: Option<&str>,
        evaluated_at_ms: u64,
        scope: ReportScope,
    ) -> Self {
        Self::from_routes(
            service
                .map(str::to_owned)
                .or_else(|| data.service.clone())
                .unwrap_or_else(|| "unknown_service".to_owned()),
            data.revision.clone(),
            data.window.as_secs(),
            evaluated_at_ms,
            route_report(None, &data.total, targets),
            data.routes
                .iter()
                .map(|(route, w)| route_report(route.clone(), w, targets))
                .collect(),
            scope,
        )
    }

    /// The report of a service's total and its routes.
    pub fn from_routes(
        service: String,
        revision: Option<String>,
        window_s: u64,
        evaluated_at_ms: u64,
        total: RouteReport,
        routes: Vec<RouteReport>,
        scope: ReportScope,
    ) -> Self {
        Self {
            service,
            revision,
            window_s,
            evaluated_at_ms,
            requests: total.requests,
            status: total.status,
            compliance_rate: total.compliance_rate,
            slos: total.slos,
            counts: total.counts,
            cache: total.cache,
            latency: total.latency,
            routes,
            scope,
        }
    }

    /// The SLOs not met (empty without data).
    pub fn failing(&self) -> impl Iterator<Item = &SloResult> {
        self.slos
            .iter()
            .filter(|s| !s.met && self.status != Status::NoData)
    }
}
