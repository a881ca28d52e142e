//! The budgets for Cloud Monitoring: a custom Service with one request-based
//! SLO per Lumen SLO, a `goodTotalRatio` of the good and bad events the
//! sidecars count at ingest (`lumen_slo_events_total`, summed over every
//! instance by Cloud Monitoring, so the SLO is the fleet's), and
//! burn-rate alert policies (`select_slo_burn_rate`, two conditions joined
//! with AND) following the SRE workbook's table.
//!
//! Cloud Monitoring looks back at most 24 h, so the table's last row
//! (1× over 3 d and 6 h) becomes 1× over 24 h and 6 h: it still opens a
//! ticket for a slow burn, a little earlier and on a little less evidence.

use serde_json::{Value, json};

use super::scope::Scope;
use crate::eval::{ALERT_TABLE, BURN_WINDOWS, SloName, SloPeriod, alert_factor};

/// The longest lookback Cloud Monitoring accepts for a burn rate, minutes.
pub const MAX_LOOKBACK_MINUTES: u64 = 24 * 60;

/// The SLO event counter as Cloud Monitoring stores it (OTLP or Managed
/// Service for Prometheus ingestion).
pub const SLO_EVENTS_TYPE: &str = "prometheus.googleapis.com/lumen_slo_events_total/counter";

/// The Service id for `service`.
pub fn service_id(service: &str) -> String {
    let id: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("lumen-{id}")
}

/// The custom Service.
pub fn service(service: &str) -> Value {
    json!({ "displayName": format!("{service} (Lumen)"), "custom": {} })
}

/// The filter of one SLO's `result` events (`good` or `bad`) of the scope's service.
pub fn events_filter(scope: &Scope, name: SloName, result: &str) -> String {
    format!(
        "metric.type=\"{SLO_EVENTS_TYPE}\" resource.type=\"prometheus_target\" metric.labels.service_name={} metric.labels.slo_name=\"{}\" metric.labels.result=\"{result}\"",
        scope.quoted_service(),
        name.as_str()
    )
}

fn period(p: SloPeriod) -> (&'static str, Value) {
    match p {
        SloPeriod::Rolling(days) => (
            "rollingPeriod",
            json!(format!("{}s", u64::from(days) * 86_400)),
        ),
        SloPeriod::CalendarMonth => ("calendarPeriod", json!("MONTH")),
    }
}

/// The SLO id of `name`.
pub fn slo_id(name: SloName) -> String {
    name.as_str().replace('_', "-")
}

/// One request-based SLO on the scope's service's series.
pub fn slo(name: SloName, scope: &Scope, p: SloPeriod) -> Value {
    let targets = &scope.targets;
    let goal = match name {
        SloName::Availability => targets.availability_percent / 100.0,
        SloName::ErrorRate => 1.0 - targets.error_rate_percent / 100.0,
        SloName::LatencyP95 => 0.95,
        SloName::LatencyP99 => 0.99,
    };
    let sli = json!({ "requestBased": { "goodTotalRatio": {
        "goodServiceFilter": events_filter(scope, name, "good"),
        "badServiceFilter": events_filter(scope, name, "bad"),
    }}});
    let (key, value) = period(p);
    let mut slo = json!({
        "displayName": match name {
            // The latency targets are in the sidecars' counting, not in the
            // SLO: the name carries them.
            SloName::LatencyP95 => format!("Latency P95 < {} ms ({:.4}% of requests under it)", targets.latency_p95_ms, goal * 100.0),
            SloName::LatencyP99 => format!("Latency P99 < {} ms ({:.4}% of requests under it)", targets.latency_p99_ms, goal * 100.0),
            _ => format!("{} ({:.4}%)", name.title(), goal * 100.0),
        },
        "goal": goal.min(0.9999),
        "serviceLevelIndicator": sli,
    });
    slo[key] = value;
    slo
}

/// The windows of each alert row as Cloud Monitoring takes them (long
/// windows capped at 24 h).
pub fn rows(period_hours: f64) -> Vec<(&'static str, u64, u64, f64)> {
    ALERT_TABLE
        .iter()
        .map(|(severity, long, short, share)| {
            let minutes = |w: &str| BURN_WINDOWS.iter().find(|x| x.0 == w).map_or(60, |x| x.1);
            let long_minutes = minutes(long);
            (
                *severity,
                long_minutes.min(MAX_LOOKBACK_MINUTES),
                minutes(short),
                alert_factor(*share, period_hours, long_minutes),
            )
        })
        .collect()
}

/// The burn-rate policy of one SLO and one row.
pub fn burn_policy(
    scope: &Scope,
    name: SloName,
    row: (&str, u64, u64, f64),
    channels: &[String],
) -> Value {
    let (severity, long, short, factor) = row;
    let slo = format!(
        "projects/{}/services/{}/serviceLevelObjectives/{}",
        scope.project,
        service_id(&scope.service),
        slo_id(name)
    );
    let condition = |minutes: u64| {
        json!({
            "displayName": format!("burn rate over {minutes} min above {factor:.1}"),
            "conditionThreshold": {
                "filter": format!("select_slo_burn_rate(\"{slo}\", \"{}s\")", minutes * 60),
                "comparison": "COMPARISON_GT",
                "thresholdValue": factor,
                "duration": "0s",
            },
        })
    };
    json!({
        "displayName": format!("Lumen budget: {} {severity} ({} min / {} min) ({})", name.title(), long, short, scope.service),
        "combiner": "AND",
        "enabled": true,
        "severity": if severity == "page" { "CRITICAL" } else { "WARNING" },
        "documentation": {
            "mimeType": "text/markdown",
            "subject": format!("{} error budget burning at {factor:.1}x", name.title()),
            "content": format!(
                "The **{}** error budget burns at {factor:.1}× or more over both {long} min and {short} min ({severity}).\n\n- `lumen-sidecar check --verbose` shows the SLOs and burn rates.\n- `curl $SIDECAR/v1/budget` shows what is left.",
                name.title()
            ),
        },
        "conditions": [condition(long), condition(short)],
        "notificationChannels": channels,
    })
}
