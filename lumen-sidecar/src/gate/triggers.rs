//! The rollback triggers and how one reading of the evidence is judged:
//! holding, clear, or too thin to say (which never rolls back). Three are
//! absolute (ROI, SLO compliance, the cost forecast); the fourth,
//! regression, holds during a progressive rollout when the new revision is
//! surely worse than the revisions it replaces, over the same minutes.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::eval::{Finding, RevisionComparison};

/// ROI below this (percent) triggers the gate.
pub const DEFAULT_ROI_BELOW_PERCENT: f64 = 300.0;
/// SLO compliance below this (percent) triggers.
pub const DEFAULT_COMPLIANCE_BELOW_PERCENT: f64 = 95.0;
/// How long a trigger must hold before the approval window opens.
pub const DEFAULT_HOLD_FOR: Duration = Duration::from_secs(120);
/// Fewer requests in the window than this is too little data to judge SLOs.
pub const DEFAULT_MIN_REQUESTS: u64 = 100;
/// Fewer cache lookups in the window than this is too little data to judge ROI.
pub const DEFAULT_MIN_LOOKUPS: u64 = 100;

/// Which trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The service's ROI (cache savings over the service's cost) is low.
    Roi,
    /// SLO compliance (SLOs met over SLOs evaluated) is low.
    SloCompliance,
    /// The month's cost forecast is over the budget.
    CostForecast,
    /// In a rollout: the new revision is worse than the old one (an
    /// always-valid test's interval lies wholly above no difference).
    Regression,
}

impl TriggerKind {
    /// All four, in the order reports list them.
    pub const ALL: [Self; 4] = [
        Self::SloCompliance,
        Self::Roi,
        Self::CostForecast,
        Self::Regression,
    ];

    /// `roi`, `slo_compliance`, `cost_forecast`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Roi => "roi",
            Self::SloCompliance => "slo_compliance",
            Self::CostForecast => "cost_forecast",
            Self::Regression => "regression",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate's thresholds, durations and minimum-traffic guards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateRules {
    /// ROI below this, percent.
    pub roi_below_percent: f64,
    /// SLO compliance below this, percent.
    pub compliance_below_percent: f64,
    /// The month's cost forecast above this, USD.
    pub budget_usd: f64,
    /// How long each trigger must hold (on every reading) before it counts.
    pub hold_for: Duration,
    /// Requests in the window below which SLOs are not judged.
    pub min_requests: u64,
    /// Cache lookups in the window below which ROI is not judged.
    pub min_lookups: u64,
}

impl Default for GateRules {
    fn default() -> Self {
        Self {
            roi_below_percent: DEFAULT_ROI_BELOW_PERCENT,
            compliance_below_percent: DEFAULT_COMPLIANCE_BELOW_PERCENT,
            budget_usd: crate::eval::DEFAULT_MONTHLY_BUDGET_USD,
            hold_for: DEFAULT_HOLD_FOR,
            min_requests: DEFAULT_MIN_REQUESTS,
            min_lookups: DEFAULT_MIN_LOOKUPS,
        }
    }
}

/// What one reading of a revision's fleet data showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The revision read.
    pub revision: String,
    /// The window read, seconds, ending at `at_ms`.
    pub window_s: u64,
    /// When, Unix ms.
    pub at_ms: u64,
    /// Finished requests of the revision in the window, every instance.
    pub requests: u64,
    /// Cache lookups in the window.
    pub lookups: u64,
    /// Cache hit rate, percent.
    pub hit_rate: Option<f64>,
    /// SLO compliance, percent (SLOs met over SLOs evaluated).
    pub compliance_percent: Option<f64>,
    /// The SLOs not met, by name.
    pub slos_failing: Vec<String>,
    /// ROI in the window, percent: savings over the service's cost.
    pub roi_percent: Option<f64>,
    /// The service's cost in the window, USD (compute and cache).
    pub cost_usd: Option<f64>,
    /// The month's cost forecast at the revision's rate, USD.
    pub forecast_usd: Option<f64>,
    /// The month's cost so far, USD.
    pub month_to_date_usd: Option<f64>,
    /// In a rollout: the revision against the revisions it replaces, over
    /// the minutes since the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<RevisionComparison>,
    /// Set, to the window's reason, when the reading's minute is kept off
    /// the error budgets (the config's `budget.maintenance`, or a one-off
    /// mark a sidecar exports): no trigger is judged on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

/// A trigger's judgement of one reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reading {
    /// The condition holds: `value` is past the threshold.
    Holding {
        /// The value read.
        value: f64,
    },
    /// The condition does not hold.
    Clear {
        /// The value read.
        value: f64,
    },
    /// Too little data to judge: the gate holds and never rolls back on it.
    Thin {
        /// Why.
        why: String,
    },
}

impl Reading {
    /// Whether the condition holds.
    pub fn holds(&self) -> bool {
        matches!(self, Self::Holding { .. })
    }
}

/// How `kind` reads `e` under `rules`.
pub fn read(kind: TriggerKind, e: &Evidence, rules: &GateRules) -> Reading {
    let judge = |value: f64, holding: bool| {
        if holding {
            Reading::Holding { value }
        } else {
            Reading::Clear { value }
        }
    };
    if let Some(window) = &e.excluded {
        return Reading::Thin {
            why: format!("in a window kept off the error budgets ({window})"),
        };
    }
    match kind {
        TriggerKind::SloCompliance => match e.compliance_percent {
            _ if e.requests < rules.min_requests => Reading::Thin {
                why: format!(
                    "{} requests in {}s, fewer than {}",
                    e.requests, e.window_s, rules.min_requests
                ),
            },
            None => Reading::Thin {
                why: "no SLO evaluated".into(),
            },
            Some(v) => judge(v, v < rules.compliance_below_percent),
        },
        TriggerKind::Roi => match e.roi_percent {
            _ if e.lookups < rules.min_lookups => Reading::Thin {
                why: format!(
                    "{} cache lookups in {}s, fewer than {}",
                    e.lookups, e.window_s, rules.min_lookups
                ),
            },
            None => Reading::Thin {
                why: "no ROI (no cost known)".into(),
            },
            Some(v) => judge(v, v < rules.roi_below_percent),
        },
        TriggerKind::CostForecast => match e.forecast_usd {
            None => Reading::Thin {
                why: "no instance of the revision exports its cost".into(),
            },
            Some(v) => judge(v, v > rules.budget_usd),
        },
        TriggerKind::Regression => match &e.comparison {
            None => Reading::Thin {
                why: "no rollout: nothing to compare".into(),
            },
            Some(c) if c.metrics.is_empty() => Reading::Thin {
                why: "no requests on one side yet".into(),
            },
            // The value: how far past no difference the worst test surely
            // is, percentage points.
            Some(c) => judge(c.worst_low_points(), c.finding == Finding::Worse),
        },
    }
}

/// The threshold of `kind` as a phrase (`below 95%`).
pub fn threshold_phrase(kind: TriggerKind, rules: &GateRules) -> String {
    match kind {
        TriggerKind::SloCompliance => format!("below {}%", rules.compliance_below_percent),
        TriggerKind::Roi => format!("below {}%", rules.roi_below_percent),
        TriggerKind::CostForecast => format!("above ${:.2}", rules.budget_usd),
        TriggerKind::Regression => "above 0 points, surely (always-valid tests)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence() -> Evidence {
        Evidence {
            revision: "api-00002".into(),
            window_s: 600,
            at_ms: 0,
            requests: 1000,
            lookups: 500,
            hit_rate: Some(80.0),
            compliance_percent: Some(75.0),
            slos_failing: vec!["availability".into()],
            roi_percent: Some(299.9),
            cost_usd: Some(1.0),
            forecast_usd: Some(200.0),
            month_to_date_usd: Some(10.0),
            comparison: None,
            excluded: None,
        }
    }

    #[test]
    fn each_threshold_is_strict() {
        let rules = GateRules::default();
        let e = evidence();
        assert!(read(TriggerKind::SloCompliance, &e, &rules).holds());
        assert!(read(TriggerKind::Roi, &e, &rules).holds());
        // Exactly the budget is not over it.
        assert_eq!(
            read(TriggerKind::CostForecast, &e, &rules),
            Reading::Clear { value: 200.0 }
        );
        let e = Evidence {
            compliance_percent: Some(95.0),
            roi_percent: Some(300.0),
            forecast_usd: Some(200.01),
            ..evidence()
        };
        assert!(!read(TriggerKind::SloCompliance, &e, &rules).holds());
        assert!(!read(TriggerKind::Roi, &e, &rules).holds());
        assert!(read(TriggerKind::CostForecast, &e, &rules).holds());
    }

    #[test]
    fn a_maintenance_window_judges_nothing() {
        let e = Evidence {
            excluded: Some("maintenance Sun 02:00-03:00".into()),
            ..evidence()
        };
        for kind in TriggerKind::ALL {
            assert!(
                matches!(read(kind, &e, &GateRules::default()), Reading::Thin { why } if why.contains("Sun 02:00-03:00")),
                "{kind}"
            );
        }
    }

    #[test]
    fn thin_traffic_is_never_holding() {
        let rules = GateRules::default();
        let e = Evidence {
            requests: 99,
            lookups: 99,
            forecast_usd: None,
            ..evidence()
        };
        for kind in TriggerKind::ALL {
            assert!(
                matches!(read(kind, &e, &rules), Reading::Thin { .. }),
                "{kind}"
            );
        }
    }
}
