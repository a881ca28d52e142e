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
    /// Inner-service failures.
    pub errors: u64,
    /// Client-abandoned requests (not in `requests`).
    pub cancelled: u64,
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
    /// Each route, by label.
    pub routes: Vec<RouteReport>,
}

fn route_report(route: Option<String>, window: &RouteWindow, targets: &SloTargets) -> RouteReport {
    let slis = Slis::of(window, &targets.error_classes);
    let eval = evaluate(&slis, targets);
    RouteReport {
        route,
        requests: slis.requests,
        status: eval.status,
        compliance_rate: eval.compliance_rate,
        slos: eval.slos,
        counts: CountsReport::from(&window.counts),
        cache: CacheReport {
            hits: window.counts.cache_hits,
            misses: window.counts.cache_misses,
            hit_rate: slis.cache_hit_rate_percent,
        },
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
        let total = route_report(None, &data.total, targets);
        Self {
            service: service
                .map(str::to_owned)
                .or_else(|| data.service.clone())
                .unwrap_or_else(|| "unknown_service".to_owned()),
            revision: data.revision.clone(),
            window_s: data.window.as_secs(),
            evaluated_at_ms,
            requests: total.requests,
            status: total.status,
            compliance_rate: total.compliance_rate,
            slos: total.slos,
            counts: total.counts,
            cache: total.cache,
            routes: data
                .routes
                .iter()
                .map(|(route, w)| route_report(route.clone(), w, targets))
                .collect(),
        }
    }

    /// The SLOs not met (empty without data).
    pub fn failing(&self) -> impl Iterator<Item = &SloResult> {
        self.slos
            .iter()
            .filter(|s| !s.met && self.status != Status::NoData)
    }
}
