//! The four threshold alert rules and the SLO status rule:
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

    /// The label matchers that pick the watched series out of the metric
    /// (besides the service).
    pub fn matchers(self) -> &'static str {
        match self {
            Self::SloCompliance => "slo_name=\"overall\"",
            _ => "",
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
    /// Display name.
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

/// the four threshold policies.
pub fn threshold_rules() -> Vec<AlertRule> {
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
                "Check the cache's connection: the app's ERROR logs around cache reads, and the cache server's own health (for Redis: `redis-cli ping`).",
                "Check the cache TTL the app sets and the evictions (for Redis: `redis-cli info stats`, `evicted_keys`).",
            ],
        },
    ]
}

/// How long a new SLO status must hold before the alerter reports it.
pub const STATUS_STABLE_FOR: Duration = Duration::from_secs(60);

/// The runbook as Markdown (CommonMark), for policy documentation.
pub fn runbook_markdown(rule: &AlertRule) -> String {
    runbook(rule, "**")
}

/// The runbook in Slack's mrkdwn (`*bold*`), for Slack messages.
pub fn runbook_mrkdwn(rule: &AlertRule) -> String {
    runbook(rule, "*")
}

fn runbook(rule: &AlertRule, bold: &str) -> String {
    let mut out = format!(
        "{bold}{}{bold}: {} below {}{} for {} min.\n\n",
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
