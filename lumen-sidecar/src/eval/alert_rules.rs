//! The alert rules of the seed (four policies) and the SLO status rule:
//! one definition that the Cloud Monitoring policies, the Prometheus rule
//! file and the sidecar's own Slack alerter all render.

use std::time::Duration;

/// Which figure a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Watched {
    /// `roi_percentage`.
    Roi,
    /// `slo_compliance{slo_name="overall"}`.
    SloCompliance,
    /// `maturity_score`.
    Maturity,
    /// `cache_hit_rate`.
    CacheHitRate,
}

impl Watched {
    /// The exported metric (Prometheus name).
    pub fn metric(self) -> &'static str {
        match self {
            Self::Roi => "roi_percentage",
            Self::SloCompliance => "slo_compliance",
            Self::Maturity => "maturity_score",
            Self::CacheHitRate => "cache_hit_rate",
        }
    }

    /// The PromQL selector of the series.
    pub fn selector(self) -> String {
        match self {
            Self::SloCompliance => "slo_compliance{slo_name=\"overall\"}".to_owned(),
            other => other.metric().to_owned(),
        }
    }

    /// Unit for messages.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Maturity => "",
            _ => "%",
        }
    }
}

/// One alert: fires when the watched figure stays below `threshold` for `for_`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Display name, as in the seed.
    pub name: &'static str,
    /// Identifier for rule files (`RoiGateCritical`).
    pub id: &'static str,
    /// What it watches.
    pub watched: Watched,
    /// Fires below this.
    pub threshold: f64,
    /// How long the breach must last.
    pub for_: Duration,
    /// Severity (`CRITICAL`, `WARNING`).
    pub severity: &'static str,
    /// The runbook: what to do and the commands to check with.
    pub runbook: &'static [&'static str],
}

/// The seed's four policies.
pub fn seed_rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            name: "ROI Gate Critical",
            id: "RoiGateCritical",
            watched: Watched::Roi,
            threshold: 300.0,
            for_: Duration::from_secs(300),
            severity: "CRITICAL",
            runbook: &[
                "Check caching performance: hit rate, TTL and key normalisation.",
                "Check the cost settings: roi.cost_per_miss_usd and roi.redis_monthly_cost_usd.",
                "`lumen-sidecar health --verbose` shows the ROI arithmetic.",
            ],
        },
        AlertRule {
            name: "SLO Compliance Warning",
            id: "SloComplianceWarning",
            watched: Watched::SloCompliance,
            threshold: 98.0,
            for_: Duration::from_secs(180),
            severity: "WARNING",
            runbook: &[
                "Find the failing SLO and its worst route: `lumen-sidecar check --verbose`.",
                "Availability: read the 5xx logs; latency: check the backend and the cache; error rate: 4xx vs 5xx.",
                "Compare with the latest revision (`revision_name` label).",
            ],
        },
        AlertRule {
            name: "Maturity Score Poor",
            id: "MaturityScorePoor",
            watched: Watched::Maturity,
            threshold: 50.0,
            for_: Duration::from_secs(600),
            severity: "WARNING",
            runbook: &[
                "Look at the six maturity metrics: `lumen-sidecar health`.",
                "Low metrics first: availability, P95, error rate, cache hit rate, deployments in 7 days, resource use.",
            ],
        },
        AlertRule {
            name: "Cache Hit Rate Low",
            id: "CacheHitRateLow",
            watched: Watched::CacheHitRate,
            threshold: 60.0,
            for_: Duration::from_secs(300),
            severity: "WARNING",
            runbook: &[
                "Check the Redis connection: the app's logs for `redis GET failed`, `redis-cli -u $REDIS_URL ping`.",
                "Check the TTL (CACHE_TTL) and evictions (`redis-cli info stats`).",
            ],
        },
    ]
}

/// How long a new SLO status must hold before the alerter reports it.
pub const STATUS_STABLE_FOR: Duration = Duration::from_secs(60);

/// The runbook as Markdown, for policy documentation and messages.
pub fn runbook_markdown(rule: &AlertRule) -> String {
    let mut out = format!(
        "**{}**: {} below {}{} for {} min.\n\n",
        rule.name,
        rule.watched.metric(),
        rule.threshold,
        rule.watched.unit(),
        rule.for_.as_secs() / 60
    );
    for line in rule.runbook {
        out.push_str("- ");
        out.push_str(line);
        out.push('\n');
    }
    out
}
