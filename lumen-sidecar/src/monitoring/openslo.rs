//! The service's SLOs as OpenSLO v1 documents, and back.
//!
//! [`export`] writes one `Service`, one `SLO` per Lumen SLO (a ratio
//! indicator over the fleet-addable `lumen_slo_events_total`, budgeted by
//! occurrences over the error budget's period) and one `AlertPolicy` per
//! burn-rate row of the SRE workbook (its `AlertCondition` inline), as a
//! YAML stream. [`import`] reads such a stream back into Lumen's settings:
//! the `SLO` documents it can evaluate (marked with the `lumen.dev/slo`
//! annotation, or a latency threshold over Lumen's request-duration
//! histogram), refusing anything else with the document and field that
//! Lumen cannot evaluate. Export, import and export again gives the same
//! documents.
//!
//! What OpenSLO has no field for travels in annotations under
//! `lumen.dev/`: which Lumen SLO a document is, a latency SLO's threshold,
//! the status classes the error rate counts, a burn-rate alert's short
//! window. The spec: github.com/OpenSLO/OpenSLO, README "Specification".

use serde_json::{Value, json};
use thiserror::Error;

use super::scope::Scope;
use crate::eval::{ALERT_TABLE, BURN_WINDOWS, SloName, SloPeriod, SloTargets, alert_factor};
use crate::metrics::{DURATION_HISTOGRAM, DURATION_HISTOGRAM_PROMETHEUS, SLO_EVENTS_TOTAL};
use lumen_middleware::wire::StatusClass;

/// The OpenSLO version written and read.
pub const API_VERSION: &str = "openslo/v1";
/// The annotation naming the Lumen SLO a document is.
pub const SLO_ANNOTATION: &str = "lumen.dev/slo";
/// The annotation holding a latency SLO's threshold, ms.
pub const THRESHOLD_ANNOTATION: &str = "lumen.dev/threshold-ms";
/// The annotation holding the status classes the error rate counts.
pub const ERROR_CLASSES_ANNOTATION: &str = "lumen.dev/error-classes";
/// The annotation holding a burn-rate alert's short window.
pub const SHORT_WINDOW_ANNOTATION: &str = "lumen.dev/short-window";

/// Why an OpenSLO stream cannot become Lumen's settings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenSloError {
    /// The stream is not YAML documents.
    #[error("document {document}: not YAML: {reason}")]
    NotYaml {
        /// Which document (1-based).
        document: usize,
        /// What the parser said.
        reason: String,
    },
    /// A document Lumen cannot take, and the field that says why.
    #[error("document {document} ({name}): {field}: {reason}")]
    Refused {
        /// Which document (1-based).
        document: usize,
        /// Its `metadata.name`, if it has one.
        name: String,
        /// The field, as a path (`spec.timeWindow[0].duration`).
        field: String,
        /// Why.
        reason: String,
    },
    /// No `SLO` document in the stream.
    #[error("no SLO document (kind: SLO) in the stream")]
    NoSlo,
}

/// What an OpenSLO stream sets in Lumen's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSlos {
    /// The service the SLOs are of.
    pub service: String,
    /// The targets; those the stream does not name keep their defaults.
    pub targets: SloTargets,
    /// Which of the four the stream named.
    pub named: Vec<SloName>,
    /// The error budget's period.
    pub period: SloPeriod,
}

impl ImportedSlos {
    /// The settings as `lumen.toml` lines (`service`, `[slo]`, `[budget]`).
    pub fn to_toml(&self) -> String {
        let t = &self.targets;
        let mut out = format!(
            "# From OpenSLO: {}\nservice = {}\n\n[slo]\n",
            self.named
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            toml_string(&self.service)
        );
        for name in &self.named {
            match name {
                SloName::Availability => {
                    out.push_str(&format!("availability = {}\n", t.availability_percent));
                }
                SloName::LatencyP95 => {
                    out.push_str(&format!("latency_p95_ms = {}\n", t.latency_p95_ms));
                }
                SloName::LatencyP99 => {
                    out.push_str(&format!("latency_p99_ms = {}\n", t.latency_p99_ms));
                }
                SloName::ErrorRate => {
                    out.push_str(&format!("error_rate = {}\n", t.error_rate_percent));
                    out.push_str(&format!(
                        "error_classes = [{}]\n",
                        t.error_classes
                            .iter()
                            .map(|c| format!("\"{}\"", c.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        out.push_str(&format!(
            "\n[budget]\nperiod = \"{}\"\n",
            self.period.name()
        ));
        out
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// An RFC 1123 label from `text` (lowercase alphanumerics and `-`, at
/// most 63 characters), as OpenSLO names must be.
pub fn object_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name: String = name.trim_matches('-').chars().take(63).collect();
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        "service".to_owned()
    } else {
        name
    }
}

/// A period as OpenSLO's `timeWindow`: rolling days, or the calendar month
/// (UTC, from any month's first day).
fn time_window(period: SloPeriod) -> Value {
    match period {
        SloPeriod::Rolling(days) => json!([{ "duration": format!("{days}d"), "isRolling": true }]),
        SloPeriod::CalendarMonth => json!([{
            "duration": "1M",
            "calendar": { "startTime": "2024-01-01 00:00:00", "timeZone": "UTC" },
            "isRolling": false,
        }]),
    }
}

/// The period's nominal hours, for the burn-rate factors (a calendar month
/// counts as 30 days, as the SRE workbook's table does).
fn nominal_hours(period: SloPeriod) -> f64 {
    match period {
        SloPeriod::Rolling(days) => f64::from(days) * 24.0,
        SloPeriod::CalendarMonth => 30.0 * 24.0,
    }
}

fn display_name(name: SloName, t: &SloTargets) -> String {
    match name {
        SloName::Availability => format!("Availability ≥ {} %", t.availability_percent),
        SloName::LatencyP95 => format!("P95 latency < {} ms", t.latency_p95_ms),
        SloName::LatencyP99 => format!("P99 latency < {} ms", t.latency_p99_ms),
        SloName::ErrorRate => format!("Error rate < {} %", t.error_rate_percent),
    }
}

/// The share of good events an SLO must keep, 0–1.
fn target(name: SloName, t: &SloTargets) -> f64 {
    let share = match name {
        SloName::Availability => t.availability_percent / 100.0,
        SloName::LatencyP95 => 0.95,
        SloName::LatencyP99 => 0.99,
        SloName::ErrorRate => 1.0 - t.error_rate_percent / 100.0,
    };
    (share * 1e9).round() / 1e9
}

fn alert_policy_name(service: &str, severity: &str, long: &str) -> String {
    object_name(&format!("{service}-burn-{severity}-{long}"))
}

/// The service's SLOs in `scope` (its service, its targets, the series
/// names of its data path) over `period`, as an OpenSLO v1 YAML stream.
pub fn export(scope: &Scope, period: SloPeriod) -> String {
    let service = object_name(&scope.service);
    let t = &scope.targets;
    let mut docs = vec![json!({
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": { "name": service, "displayName": scope.service },
        "spec": { "description": format!("{}, as Lumen measures it", scope.service) },
    })];
    let mut policies = Vec::new();
    for (severity, long, short, share) in ALERT_TABLE {
        let long_minutes = BURN_WINDOWS
            .iter()
            .find(|w| w.0 == long)
            .map_or(60, |w| w.1);
        let factor = alert_factor(share, nominal_hours(period), long_minutes);
        let name = alert_policy_name(&scope.service, severity, long);
        policies.push(name.clone());
        docs.push(json!({
            "apiVersion": API_VERSION,
            "kind": "AlertPolicy",
            "metadata": {
                "name": name,
                "annotations": { SHORT_WINDOW_ANNOTATION: short },
            },
            "spec": {
                "description": format!(
                    "{severity}: the budget burns {factor:.1}× too fast over {long} and over {short} (both must burn)"
                ),
                "alertWhenBreaching": true,
                "alertWhenResolved": true,
                "alertWhenNoData": false,
                "conditions": [{
                    "kind": "AlertCondition",
                    "metadata": { "name": format!("{name}-condition") },
                    "spec": {
                        "severity": severity,
                        "condition": {
                            "kind": "burnrate",
                            "op": "gte",
                            "threshold": (factor * 1e6).round() / 1e6,
                            "lookbackWindow": long,
                            "alertAfter": "0m",
                        },
                    },
                }],
                "notificationTargets": [{
                    "kind": "AlertNotificationTarget",
                    "metadata": { "name": "lumen-slack" },
                    "spec": {
                        "target": "slack",
                        "description": "Lumen's Slack alerts (SLACK_WEBHOOK_URL, alerts watch or Cloud Monitoring's channel)",
                    },
                }],
            },
        }));
    }
    for name in SloName::ALL {
        let query = |result: Option<&str>| {
            let matchers = match result {
                Some(r) => format!("slo_name=\"{}\",result=\"{r}\"", name.as_str()),
                None => format!("slo_name=\"{}\"", name.as_str()),
            };
            json!({
                "metricSource": {
                    "type": "Prometheus",
                    "spec": { "query": format!("sum({})", scope.selector(SLO_EVENTS_TOTAL, &matchers)) },
                },
            })
        };
        let mut annotations = json!({ SLO_ANNOTATION: name.as_str() });
        match name {
            SloName::LatencyP95 => {
                annotations[THRESHOLD_ANNOTATION] = json!(t.latency_p95_ms.to_string());
            }
            SloName::LatencyP99 => {
                annotations[THRESHOLD_ANNOTATION] = json!(t.latency_p99_ms.to_string());
            }
            SloName::ErrorRate => {
                annotations[ERROR_CLASSES_ANNOTATION] = json!(
                    t.error_classes
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            SloName::Availability => {}
        }
        docs.push(json!({
            "apiVersion": API_VERSION,
            "kind": "SLO",
            "metadata": {
                "name": object_name(&format!("{}-{}", scope.service, name.as_str())),
                "displayName": display_name(name, t),
                "annotations": annotations,
            },
            "spec": {
                "description": format!(
                    "Good and bad requests as every Lumen sidecar counts them at ingest, summed over the fleet ({}).",
                    display_name(name, t)
                ),
                "service": service,
                "indicator": {
                    "metadata": { "name": object_name(&format!("{}-{}-events", scope.service, name.as_str())) },
                    "spec": {
                        "ratioMetric": {
                            "counter": true,
                            "good": query(Some("good")),
                            "total": query(None),
                        },
                    },
                },
                "timeWindow": time_window(period),
                "budgetingMethod": "Occurrences",
                "objectives": [{ "displayName": display_name(name, t), "target": target(name, t) }],
                "alertPolicies": policies.iter().map(|p| json!({ "alertPolicyRef": p })).collect::<Vec<_>>(),
            },
        }));
    }
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("a JSON value is YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Reads an OpenSLO v1 stream's `SLO` documents into Lumen's targets and
/// period; the other kinds are read past. Refuses what Lumen cannot
/// evaluate, naming the document and the field.
pub fn import(text: &str) -> Result<ImportedSlos, OpenSloError> {
    let mut targets = SloTargets::default();
    let mut named = Vec::new();
    let mut service: Option<String> = None;
    let mut period: Option<(SloPeriod, usize)> = None;
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| OpenSloError::NotYaml {
            document: i + 1,
            reason: e.to_string(),
        })?;
        docs.push(v);
    }
    // A Service's display name is the service's own name (the object name
    // is its RFC 1123 form).
    let display_names: std::collections::BTreeMap<String, String> = docs
        .iter()
        .filter(|v| v["kind"] == "Service")
        .filter_map(|v| {
            Some((
                v["metadata"]["name"].as_str()?.to_owned(),
                v["metadata"]["displayName"].as_str()?.to_owned(),
            ))
        })
        .collect();
    for (i, v) in docs.iter().enumerate() {
        let document = i + 1;
        if v.is_null() {
            continue;
        }
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let refuse = |field: &str, reason: String| OpenSloError::Refused {
            document,
            name: name.clone(),
            field: field.to_owned(),
            reason,
        };
        if v["apiVersion"] != API_VERSION {
            return Err(refuse(
                "apiVersion",
                format!("{} is not {API_VERSION}", v["apiVersion"]),
            ));
        }
        if v["kind"] != "SLO" {
            continue;
        }
        let spec = &v["spec"];
        match spec["budgetingMethod"].as_str() {
            Some("Occurrences") => {}
            Some(other) => {
                return Err(refuse(
                    "spec.budgetingMethod",
                    format!("{other}: Lumen budgets by occurrences (good and bad requests) only"),
                ));
            }
            None => return Err(refuse("spec.budgetingMethod", "required".into())),
        }
        let this_period = read_period(spec, &refuse)?;
        match period {
            None => period = Some((this_period, document)),
            Some((p, first)) if p != this_period => {
                return Err(refuse(
                    "spec.timeWindow",
                    format!(
                        "{} differs from document {first}'s {}: Lumen keeps one error-budget period for every SLO",
                        this_period.name(),
                        p.name()
                    ),
                ));
            }
            Some(_) => {}
        }
        let objectives = spec["objectives"]
            .as_array()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| {
                refuse(
                    "spec.objectives",
                    "exactly one objective (Lumen SLOs are not composite)".into(),
                )
            })?;
        let objective = &objectives[0];
        let share = match (
            objective["target"].as_f64(),
            objective["targetPercent"].as_f64(),
        ) {
            (Some(t), None) if (0.0..1.0).contains(&t) => t,
            (None, Some(p)) if (0.0..100.0).contains(&p) => p / 100.0,
            _ => {
                return Err(refuse(
                    "spec.objectives[0].target",
                    "one of target [0, 1) or targetPercent [0, 100)".into(),
                ));
            }
        };
        let (slo, threshold_ms) = which_slo(v, objective, &refuse)?;
        if named.contains(&slo) {
            return Err(refuse(
                "metadata.annotations",
                format!("a second {} SLO", slo.as_str()),
            ));
        }
        match slo {
            SloName::Availability => targets.availability_percent = round_percent(share * 100.0),
            SloName::ErrorRate => {
                targets.error_rate_percent = round_percent(100.0 - share * 100.0);
                if let Some(classes) =
                    v["metadata"]["annotations"][ERROR_CLASSES_ANNOTATION].as_str()
                {
                    targets.error_classes = classes
                        .split(',')
                        .map(|c| {
                            StatusClass::parse(c.trim()).ok_or_else(|| {
                                refuse(
                                    &format!("metadata.annotations.{ERROR_CLASSES_ANNOTATION}"),
                                    format!("{c:?} is not a status class (1xx … 5xx)"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
            }
            SloName::LatencyP95 | SloName::LatencyP99 => {
                let quantile = if slo == SloName::LatencyP95 {
                    0.95
                } else {
                    0.99
                };
                if (share - quantile).abs() > 1e-9 {
                    return Err(refuse(
                        "spec.objectives[0].target",
                        format!(
                            "{share}: a {} SLO keeps {quantile} of requests under its threshold",
                            slo.as_str()
                        ),
                    ));
                }
                let ms = threshold_ms.expect("a latency SLO has its threshold");
                if slo == SloName::LatencyP95 {
                    targets.latency_p95_ms = ms;
                } else {
                    targets.latency_p99_ms = ms;
                }
            }
        }
        let slo_service = spec["service"]
            .as_str()
            .ok_or_else(|| refuse("spec.service", "required".into()))?;
        let slo_service = display_names
            .get(slo_service)
            .cloned()
            .unwrap_or_else(|| slo_service.to_owned());
        match &service {
            None => service = Some(slo_service),
            Some(s) if *s != slo_service => {
                return Err(refuse(
                    "spec.service",
                    format!("{slo_service} is not {s}: one sidecar configuration is one service's"),
                ));
            }
            Some(_) => {}
        }
        named.push(slo);
    }
    let (Some(service), Some((period, _))) = (service, period) else {
        return Err(OpenSloError::NoSlo);
    };
    named.sort_by_key(|n| SloName::ALL.iter().position(|x| x == n));
    Ok(ImportedSlos {
        service,
        targets,
        named,
        period,
    })
}

fn round_percent(p: f64) -> f64 {
    (p * 1e9).round() / 1e9
}

fn read_period(
    spec: &Value,
    refuse: &dyn Fn(&str, String) -> OpenSloError,
) -> Result<SloPeriod, OpenSloError> {
    let windows = spec["timeWindow"]
        .as_array()
        .filter(|w| w.len() == 1)
        .ok_or_else(|| refuse("spec.timeWindow", "exactly one time window".into()))?;
    let w = &windows[0];
    let duration = w["duration"]
        .as_str()
        .ok_or_else(|| refuse("spec.timeWindow[0].duration", "required".into()))?;
    let rolling = w["isRolling"]
        .as_bool()
        .unwrap_or(w.get("calendar").is_none());
    match (rolling, duration) {
        (true, "7d" | "28d" | "30d" | "1w" | "4w") => {
            let days = match duration {
                "1w" => 7,
                "4w" => 28,
                d => d.trim_end_matches('d').parse().expect("one of the listed"),
            };
            Ok(SloPeriod::Rolling(days))
        }
        (false, "1M") => {
            let tz = w["calendar"]["timeZone"].as_str().unwrap_or("UTC");
            if tz != "UTC" && tz != "Etc/UTC" {
                return Err(refuse(
                    "spec.timeWindow[0].calendar.timeZone",
                    format!("{tz}: Lumen's calendar months are UTC's"),
                ));
            }
            Ok(SloPeriod::CalendarMonth)
        }
        (true, d) => Err(refuse(
            "spec.timeWindow[0].duration",
            format!("{d}: Lumen's rolling periods are 7d, 28d and 30d"),
        )),
        (false, d) => Err(refuse(
            "spec.timeWindow[0].duration",
            format!("{d}: Lumen's calendar period is the month (1M)"),
        )),
    }
}

/// Which of Lumen's SLOs a document is, and a latency SLO's threshold (ms):
/// from the `lumen.dev/slo` annotation, or from a latency threshold over
/// Lumen's request-duration histogram (`thresholdMetric`, `op: lt|lte`,
/// `value` in seconds, target 0.95 or 0.99).
fn which_slo(
    v: &Value,
    objective: &Value,
    refuse: &dyn Fn(&str, String) -> OpenSloError,
) -> Result<(SloName, Option<f64>), OpenSloError> {
    let annotations = &v["metadata"]["annotations"];
    if let Some(slo) = annotations[SLO_ANNOTATION].as_str() {
        let name = SloName::ALL
            .into_iter()
            .find(|n| n.as_str() == slo)
            .ok_or_else(|| {
                refuse(
                    &format!("metadata.annotations.{SLO_ANNOTATION}"),
                    format!("{slo}: one of availability, latency_p95, latency_p99, error_rate"),
                )
            })?;
        let threshold = match name {
            SloName::LatencyP95 | SloName::LatencyP99 => {
                let field = format!("metadata.annotations.{THRESHOLD_ANNOTATION}");
                let ms = annotations[THRESHOLD_ANNOTATION]
                    .as_str()
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|ms| ms.is_finite() && *ms > 0.0)
                    .ok_or_else(|| {
                        refuse(&field, "a latency SLO's threshold, ms above 0".into())
                    })?;
                Some(ms)
            }
            _ => None,
        };
        return Ok((name, threshold));
    }
    let indicator = &v["spec"]["indicator"]["spec"];
    let threshold = &indicator["thresholdMetric"];
    if threshold.is_null() {
        return Err(refuse(
            "spec.indicator",
            format!(
                "Lumen evaluates its own indicators: mark the SLO with the annotation {SLO_ANNOTATION} (availability, latency_p95, latency_p99 or error_rate), or give a thresholdMetric over {DURATION_HISTOGRAM_PROMETHEUS}"
            ),
        ));
    }
    let query = threshold["metricSource"]["spec"]["query"]
        .as_str()
        .unwrap_or_default();
    if !query.contains(DURATION_HISTOGRAM_PROMETHEUS) && !query.contains(DURATION_HISTOGRAM) {
        return Err(refuse(
            "spec.indicator.spec.thresholdMetric.metricSource.spec.query",
            format!(
                "not over Lumen's request-duration histogram ({DURATION_HISTOGRAM_PROMETHEUS} or {DURATION_HISTOGRAM})"
            ),
        ));
    }
    match objective["op"].as_str() {
        Some("lt" | "lte") => {}
        other => {
            return Err(refuse(
                "spec.objectives[0].op",
                format!("{other:?}: a latency threshold is lt or lte"),
            ));
        }
    }
    let seconds = objective["value"]
        .as_f64()
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| {
            refuse(
                "spec.objectives[0].value",
                "the latency threshold, seconds above 0".into(),
            )
        })?;
    let share = objective["target"]
        .as_f64()
        .or_else(|| objective["targetPercent"].as_f64().map(|p| p / 100.0))
        .unwrap_or(0.0);
    let name = if (share - 0.95).abs() < 1e-9 {
        SloName::LatencyP95
    } else if (share - 0.99).abs() < 1e-9 {
        SloName::LatencyP99
    } else {
        return Err(refuse(
            "spec.objectives[0].target",
            format!(
                "{share}: Lumen keeps latency SLOs at the 95th or 99th percentile (0.95, 0.99)"
            ),
        ));
    };
    Ok((name, Some((seconds * 1e6).round() / 1e3)))
}
