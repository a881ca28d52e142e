//! SLO targets, each SLO's result, compliance and status: pure functions.

use serde::{Deserialize, Serialize};

use super::bucket_quantile::BucketEstimate;
use super::slis::{Slis, StatusClass};
use crate::store::nearest_rank;

/// Default availability target, percent (met at or above).
pub const DEFAULT_AVAILABILITY_PERCENT: f64 = 99.5;
/// Default P95 latency target, ms (met below).
pub const DEFAULT_LATENCY_P95_MS: f64 = 200.0;
/// Default P99 latency target, ms (met below).
pub const DEFAULT_LATENCY_P99_MS: f64 = 500.0;
/// Default error-rate target, percent (met below).
pub const DEFAULT_ERROR_RATE_PERCENT: f64 = 0.1;
/// Compliance at or above which a service is WARNING rather than CRITICAL.
pub const WARNING_COMPLIANCE_PERCENT: f64 = 75.0;

/// The four objectives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloTargets {
    /// Availability at or above this percent.
    pub availability_percent: f64,
    /// P95 latency below this many ms.
    pub latency_p95_ms: f64,
    /// P99 latency below this many ms.
    pub latency_p99_ms: f64,
    /// Error rate below this percent.
    pub error_rate_percent: f64,
    /// Status classes the error rate counts.
    pub error_classes: Vec<StatusClass>,
}

impl Default for SloTargets {
    fn default() -> Self {
        Self {
            availability_percent: DEFAULT_AVAILABILITY_PERCENT,
            latency_p95_ms: DEFAULT_LATENCY_P95_MS,
            latency_p99_ms: DEFAULT_LATENCY_P99_MS,
            error_rate_percent: DEFAULT_ERROR_RATE_PERCENT,
            error_classes: vec![StatusClass::ClientError, StatusClass::ServerError],
        }
    }
}

/// Which SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloName {
    /// Share of requests without a server error.
    Availability,
    /// 95th percentile latency.
    LatencyP95,
    /// 99th percentile latency.
    LatencyP99,
    /// Share of requests with an error status.
    ErrorRate,
}

impl SloName {
    /// All four, in report order.
    pub const ALL: [Self; 4] = [
        Self::Availability,
        Self::LatencyP95,
        Self::LatencyP99,
        Self::ErrorRate,
    ];

    /// `availability`, `latency_p95`, …: the `slo_name` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Availability => "availability",
            Self::LatencyP95 => "latency_p95",
            Self::LatencyP99 => "latency_p99",
            Self::ErrorRate => "error_rate",
        }
    }

    /// How people call it in a report.
    pub fn title(self) -> &'static str {
        match self {
            Self::Availability => "Availability",
            Self::LatencyP95 => "Latency P95",
            Self::LatencyP99 => "Latency P99",
            Self::ErrorRate => "Error rate",
        }
    }

    /// `%` or `ms`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Availability | Self::ErrorRate => "%",
            Self::LatencyP95 | Self::LatencyP99 => "ms",
        }
    }

    /// `>=` for availability, `<` for the others.
    pub fn comparison(self) -> &'static str {
        match self {
            Self::Availability => ">=",
            _ => "<",
        }
    }
}

/// One SLO over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// Which SLO.
    pub name: SloName,
    /// Its target.
    pub target: f64,
    /// The measured value; `null` without requests.
    pub current: Option<f64>,
    /// `%` or `ms`.
    pub unit: String,
    /// `>=` or `<`: how current is held against target.
    pub comparison: String,
    /// Whether current meets target (false without data). For a fleet's
    /// latency SLO, judged from the exact requests under the target.
    pub met: bool,
    /// A fleet's latency quantile: `current` is an estimate inside this
    /// bucket (absent for a sidecar's exact quantiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<BucketEstimate>,
    /// A fleet's latency SLO: requests under the target over all, percent
    /// (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_target_percent: Option<f64>,
}

/// Overall verdict of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Every SLO met.
    Healthy,
    /// At least 75 % of the SLOs met.
    Warning,
    /// Less than 75 % met.
    Critical,
    /// No request in the window.
    NoData,
}

impl Status {
    /// `HEALTHY`, … as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::NoData => "NO_DATA",
        }
    }

    /// The number exported as the `slo_status` gauge and used as the check's
    /// exit code: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 NO_DATA.
    pub fn code(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::NoData => 3,
        }
    }
}

/// The SLOs of one window with compliance and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloEvaluation {
    /// Each SLO.
    pub slos: Vec<SloResult>,
    /// SLOs met ÷ SLOs evaluated × 100; `null` without data.
    pub compliance_rate: Option<f64>,
    /// The verdict.
    pub status: Status,
}

/// Relative slack for comparing a measured value with its target, so that
/// a value equal to the target on paper (99.9 % of 1000) is equal here too.
const EPSILON: f64 = 1e-9;

fn at_least(value: f64, target: f64) -> bool {
    value >= target - EPSILON * target.abs().max(1.0)
}

fn below(value: f64, target: f64) -> bool {
    value < target - EPSILON * target.abs().max(1.0)
}

/// Holds each indicator against its target.
pub fn evaluate(slis: &Slis, targets: &SloTargets) -> SloEvaluation {
    let slos: Vec<SloResult> = SloName::ALL
        .iter()
        .map(|&name| {
            let (target, current) = match name {
                SloName::Availability => (targets.availability_percent, slis.availability_percent),
                SloName::LatencyP95 => (targets.latency_p95_ms, slis.latency_p95_ms),
                SloName::LatencyP99 => (targets.latency_p99_ms, slis.latency_p99_ms),
                SloName::ErrorRate => (targets.error_rate_percent, slis.error_rate_percent),
            };
            let met = current.is_some_and(|v| match name {
                SloName::Availability => at_least(v, target),
                _ => below(v, target),
            });
            let latency = slis.buckets.and_then(|b| match name {
                SloName::LatencyP95 => Some((0.95, b.under_p95, b.total, b.p95)),
                SloName::LatencyP99 => Some((0.99, b.under_p99, b.total, b.p99)),
                SloName::Availability | SloName::ErrorRate => None,
            });
            let (met, estimate, under_target_percent) = match latency {
                // "P95 < T" holds exactly when the request of rank ⌈0.95·n⌉
                // is under T, that is when that many requests are.
                Some((q, under, total, estimate)) => (
                    total > 0 && under >= nearest_rank(q, total),
                    estimate,
                    (total > 0).then(|| under as f64 * 100.0 / total as f64),
                ),
                None => (met, None, None),
            };
            SloResult {
                name,
                target,
                current,
                unit: name.unit().to_owned(),
                comparison: name.comparison().to_owned(),
                met,
                estimate,
                under_target_percent,
            }
        })
        .collect();
    if slis.requests == 0 {
        return SloEvaluation {
            slos,
            compliance_rate: None,
            status: Status::NoData,
        };
    }
    let met = slos.iter().filter(|s| s.met).count();
    let compliance = met as f64 * 100.0 / slos.len() as f64;
    SloEvaluation {
        slos,
        compliance_rate: Some(compliance),
        status: status_of(compliance),
    }
}

/// HEALTHY at 100 %, WARNING at 75 % or more, CRITICAL below.
pub fn status_of(compliance_percent: f64) -> Status {
    if at_least(compliance_percent, 100.0) {
        Status::Healthy
    } else if at_least(compliance_percent, WARNING_COMPLIANCE_PERCENT) {
        Status::Warning
    } else {
        Status::Critical
    }
}

#[cfg(test)]
mod tests;
