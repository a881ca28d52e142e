//! Integrated health: maturity, ROI and SLO compliance weighted into one
//! score and band, with the actions that would raise it.

use serde::{Deserialize, Serialize};

use super::maturity::{MIN_MEASURED_METRICS, Maturity, MetricScore};
use super::roi::{Gate, RoiResult};
use super::slo::{SloName, Status};
use super::slo_report::SloReport;

/// Weights of maturity, ROI and SLO compliance.
pub const WEIGHTS: (f64, f64, f64) = (0.3, 0.3, 0.4);
/// A maturity metric scoring below this gets an action.
pub const MATURITY_ACTION_BELOW: f64 = 50.0;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Band {
    /// 90 or more.
    Excellent,
    /// 70 to 90.
    Good,
    /// 50 to 70.
    Fair,
    /// Below 50.
    Poor,
    /// No component had data.
    NoData,
}

impl Band {
    /// `EXCELLENT`, … as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Excellent => "EXCELLENT",
            Self::Good => "GOOD",
            Self::Fair => "FAIR",
            Self::Poor => "POOR",
            Self::NoData => "NO_DATA",
        }
    }

    /// The health check's exit code: 0 EXCELLENT or GOOD, 1 FAIR, 2 POOR, 3 no data.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Excellent | Self::Good => 0,
            Self::Fair => 1,
            Self::Poor => 2,
            Self::NoData => 3,
        }
    }
}

/// EXCELLENT ≥ 90, GOOD ≥ 70, FAIR ≥ 50, POOR below.
pub fn band_of(score: f64) -> Band {
    match score {
        s if s >= 90.0 => Band::Excellent,
        s if s >= 70.0 => Band::Good,
        s if s >= 50.0 => Band::Fair,
        _ => Band::Poor,
    }
}

/// How urgent an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    /// Act now.
    Critical,
    /// Act soon.
    High,
    /// Plan it.
    Medium,
}

impl Priority {
    /// `CRITICAL`, `HIGH`, `MEDIUM`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "CRITICAL",
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
        }
    }
}

/// Where an action belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A maturity metric.
    Maturity,
    /// The ROI gate.
    Roi,
    /// An SLO.
    Slo,
}

impl Category {
    /// `maturity`, `roi`, `slo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Maturity => "maturity",
            Self::Roi => "roi",
            Self::Slo => "slo",
        }
    }
}

/// One recommended action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// How urgent.
    pub priority: Priority,
    /// Which view.
    pub category: Category,
    /// The metric at fault.
    pub metric: String,
    /// Its value, as read (`null` without data).
    pub value: Option<f64>,
    /// The value's unit (`%`, `ms`, `deploys`, …).
    pub unit: String,
    /// For a maturity metric, its score 0–100.
    pub score: Option<f64>,
    /// The threshold it misses.
    pub threshold: Threshold,
    /// The first thing to check.
    pub check: String,
}

/// A line a metric must be on the right side of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// `>=`, `<`, `<=` or `>`: how the value must compare.
    pub comparison: String,
    /// The line.
    pub value: f64,
    /// Its unit: the metric's, or `score` for a maturity score.
    pub unit: String,
}

/// The SLO view inside the health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloSummary {
    /// The four SLOs: target, current value, met.
    pub slos: Vec<super::slo::SloResult>,
    /// The SLO status.
    pub status: Status,
    /// SLOs met ÷ evaluated × 100.
    pub compliance_rate: Option<f64>,
    /// Finished requests in the window.
    pub requests: u64,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Service name.
    pub service: String,
    /// Latest revision.
    pub revision: Option<String>,
    /// Window length, s.
    pub window_s: u64,
    /// When evaluated, Unix ms.
    pub evaluated_at_ms: u64,
    /// The maturity view.
    pub maturity: Maturity,
    /// The ROI view.
    pub roi: RoiResult,
    /// The SLO view.
    pub slo: SloSummary,
    /// The three components: measured or not, and why not.
    pub components: Vec<Component>,
    /// 0.3 × maturity + 0.3 × ROI score + 0.4 × compliance; ROI may be
    /// missing (reweighted over the other two), maturity and compliance may
    /// not: without them there is no score (NO_DATA).
    pub health_score: Option<f64>,
    /// The verdict.
    pub band: Band,
    /// What to do, most urgent first; empty when nothing is needed.
    pub actions: Vec<Action>,
    /// The month's cost and forecast against the budget (`scope` says
    /// whether it is one instance's or the fleet's); absent where the
    /// source cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<super::CostReport>,
}

/// One of the three parts of the health score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// `maturity`, `roi` or `slo_compliance`.
    pub name: String,
    /// Its weight in the health score.
    pub weight: f64,
    /// Its score, 0–100, when measured.
    pub score: Option<f64>,
    /// Whether the health score needs it.
    pub required: bool,
    /// Why it is not measured (`null` when it is).
    pub missing: Option<String>,
}

/// The sentence a report without actions shows.
pub const NO_ACTIONS: &str = "No immediate actions required. System is healthy!";

fn slo_check(name: SloName) -> &'static str {
    match name {
        SloName::Availability => {
            "the app's ERROR logs and the 5xx responses of the worst route; compare with the latest deploy"
        }
        SloName::LatencyP95 | SloName::LatencyP99 => {
            "the backend behind cache misses, the cache hit rate and CPU throttling"
        }
        SloName::ErrorRate => {
            "which routes answer 4xx or 5xx: 4xx points at clients or validation, 5xx at the service"
        }
    }
}

fn maturity_check(metric: &str) -> &'static str {
    match metric {
        "availability" => {
            "5xx responses and inner failures per route (lumen-sidecar check --verbose)"
        }
        "latency_p95" => "the slowest routes' P95 and the backend they call",
        "error_rate" => "the routes with the most 4xx/5xx",
        "cache_hit_rate" => {
            "the cache TTL the app sets, its key normalisation and the cache connection"
        }
        "deployment_frequency" => "the release pipeline: revisions seen in the last 7 days",
        _ => "CPU and memory limits against the instances' use (over- or under-provisioned)",
    }
}

fn maturity_actions(metrics: &[MetricScore]) -> impl Iterator<Item = Action> + '_ {
    metrics.iter().filter_map(|m| {
        let score = m.score?;
        (score < MATURITY_ACTION_BELOW).then(|| Action {
            priority: Priority::Medium,
            category: Category::Maturity,
            metric: m.metric.clone(),
            value: m.value,
            unit: m.unit.clone(),
            score: Some(score),
            threshold: Threshold {
                comparison: ">=".to_owned(),
                value: MATURITY_ACTION_BELOW,
                unit: "score".to_owned(),
            },
            check: maturity_check(&m.metric).to_owned(),
        })
    })
}

/// Folds the three views into the health report.
pub fn health(slo: &SloReport, maturity: Maturity, roi: RoiResult) -> HealthReport {
    let (wm, wr, wc) = WEIGHTS;
    let component =
        |name: &str, weight: f64, score: Option<f64>, required: bool, why: String| Component {
            name: name.to_owned(),
            weight,
            score,
            required,
            missing: score.is_none().then_some(why),
        };
    let measured = maturity
        .metrics
        .iter()
        .filter(|m| m.score.is_some())
        .count();
    let components = vec![
        component(
            "maturity",
            wm,
            maturity.score,
            true,
            format!(
                "needs traffic in the window and {MIN_MEASURED_METRICS} of the six metrics measured ({measured} are)"
            ),
        ),
        component(
            "roi",
            wr,
            roi.score,
            false,
            roi.missing
                .clone()
                .unwrap_or_else(|| "no cache lookups reported in the window".to_owned()),
        ),
        component(
            "slo_compliance",
            wc,
            slo.compliance_rate,
            true,
            "no request in the window".to_owned(),
        ),
    ];
    let complete = components.iter().all(|c| !c.required || c.score.is_some());
    let weight: f64 = components
        .iter()
        .filter(|c| c.score.is_some())
        .map(|c| c.weight)
        .sum();
    let health_score = (complete && weight > 0.0).then(|| {
        components
            .iter()
            .filter_map(|c| c.score.map(|v| v * c.weight))
            .sum::<f64>()
            / weight
    });
    let band = health_score.map_or(Band::NoData, band_of);

    let mut actions: Vec<Action> = slo
        .failing()
        .map(|s| Action {
            priority: if slo.status == Status::Critical {
                Priority::Critical
            } else {
                Priority::High
            },
            category: Category::Slo,
            metric: s.name.as_str().to_owned(),
            value: s.current,
            unit: s.unit.clone(),
            score: None,
            threshold: Threshold {
                comparison: s.comparison.clone(),
                value: s.target,
                unit: s.unit.clone(),
            },
            check: slo_check(s.name).to_owned(),
        })
        .collect();
    if matches!(roi.gate, Gate::Fail | Gate::Warn) {
        actions.push(Action {
            priority: if roi.gate == Gate::Fail { Priority::Critical } else { Priority::High },
            category: Category::Roi,
            metric: "roi_percentage".to_owned(),
            value: roi.roi_percent,
            unit: "%".to_owned(),
            score: None,
            // The next gate up: WARN's line for a FAIL, PASS's for a WARN.
            threshold: Threshold {
                comparison: ">=".to_owned(),
                value: if roi.gate == Gate::Fail { roi.warn_percent } else { roi.pass_percent },
                unit: "%".to_owned(),
            },
            check: "the cache hit rate and TTL, then the configured costs (roi.cost_per_miss_usd, roi.redis_monthly_cost_usd)".to_owned(),
        });
    }
    actions.extend(maturity_actions(&maturity.metrics));
    actions.sort_by_key(|a| a.priority);
    HealthReport {
        service: slo.service.clone(),
        revision: slo.revision.clone(),
        window_s: slo.window_s,
        evaluated_at_ms: slo.evaluated_at_ms,
        maturity,
        roi,
        slo: SloSummary {
            slos: slo.slos.clone(),
            status: slo.status,
            compliance_rate: slo.compliance_rate,
            requests: slo.requests,
        },
        components,
        health_score,
        band,
        actions,
        budget: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_boundaries() {
        for (s, b) in [
            (100.0, Band::Excellent),
            (90.0, Band::Excellent),
            (89.99, Band::Good),
            (70.0, Band::Good),
            (69.99, Band::Fair),
            (50.0, Band::Fair),
            (49.99, Band::Poor),
            (0.0, Band::Poor),
        ] {
            assert_eq!(band_of(s), b, "{s}");
        }
        assert_eq!(Band::Good.exit_code(), 0);
        assert_eq!(Band::Fair.exit_code(), 1);
        assert_eq!(Band::Poor.exit_code(), 2);
        assert_eq!(Band::NoData.exit_code(), 3);
    }
}
