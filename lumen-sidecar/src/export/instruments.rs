//! The instruments the sidecar exports, fed from its state: gauges of the
//! latest evaluation, cumulative request counters, the latency histogram.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tokio::sync::mpsc;

use crate::eval::{SloName, SloReport, Status};
use crate::server::{AppState, Evaluation};

/// Name of the latency histogram (seconds), after the semantic conventions.
pub const DURATION_HISTOGRAM: &str = "http.server.request.duration";
/// Name of the cumulative request counter.
pub const REQUEST_COUNTER: &str = "http_server_requests";
/// Every gauge exported, with its unit.
pub const GAUGES: [(&str, &str); 18] = [
    ("error_budget_remaining", "%"),
    ("burn_rate", "1"),
    ("deployment_frequency", "{deploy}"),
    ("active_instances", "{instance}"),
    ("cpu_utilization_percent", "%"),
    ("memory_utilization_percent", "%"),
    ("maturity_score", "1"),
    ("roi_percentage", "%"),
    ("health_score", "1"),
    ("slo_compliance", "%"),
    ("slo_status", "1"),
    ("sli_requests", "{request}"),
    ("sli_availability_percent", "%"),
    ("sli_error_rate_percent", "%"),
    ("sli_latency_p95_ms", "ms"),
    ("sli_latency_p99_ms", "ms"),
    ("cache_hit_rate", "%"),
    ("slo_target", "1"),
];
/// Histogram bucket boundaries, seconds (the semantic conventions' advice).
pub const DURATION_BOUNDARIES_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// How long one evaluation serves the gauges' callbacks of one collection.
const REPORT_MAX_AGE: Duration = Duration::from_secs(2);

/// One ingested series' latency, for the histogram.
#[derive(Debug, Clone)]
pub struct LatencyFeed {
    /// Its route.
    pub route: Option<String>,
    /// `(seconds, count)` per latency bucket.
    pub buckets: Vec<(f64, u64)>,
}

fn labels(report: &SloReport) -> Vec<KeyValue> {
    vec![
        KeyValue::new("service_name", report.service.clone()),
        KeyValue::new(
            "revision_name",
            report.revision.clone().unwrap_or_else(|| "unknown".into()),
        ),
    ]
}

/// The value of one gauge in `evaluation`, per attribute set.
pub fn gauge_points(name: &str, evaluation: &Evaluation) -> Vec<(f64, Vec<KeyValue>)> {
    let report = &evaluation.slo;
    let health = &evaluation.health;
    let base = labels(report);
    let with_slo = |slo: &str| {
        let mut l = base.clone();
        l.push(KeyValue::new("slo_name", slo.to_owned()));
        l
    };
    let current = |n: SloName| {
        report
            .slos
            .iter()
            .find(|s| s.name == n)
            .and_then(|s| s.current)
    };
    let one = |v: Option<f64>| v.map(|v| vec![(v, base.clone())]).unwrap_or_default();
    match name {
        "slo_compliance" if report.status != Status::NoData => {
            let mut points: Vec<(f64, Vec<KeyValue>)> = report
                .slos
                .iter()
                .map(|s| (if s.met { 100.0 } else { 0.0 }, with_slo(s.name.as_str())))
                .collect();
            points.extend(report.compliance_rate.map(|r| (r, with_slo("overall"))));
            points
        }
        "slo_target" => report
            .slos
            .iter()
            .map(|s| (s.target, with_slo(s.name.as_str())))
            .collect(),
        "slo_status" => vec![(f64::from(report.status.code()), base)],
        "sli_requests" => vec![(report.requests as f64, base)],
        "sli_availability_percent" => one(current(SloName::Availability)),
        "sli_error_rate_percent" => one(current(SloName::ErrorRate)),
        "sli_latency_p95_ms" => one(current(SloName::LatencyP95)),
        "sli_latency_p99_ms" => one(current(SloName::LatencyP99)),
        "cache_hit_rate" => one(report.cache.hit_rate),
        "maturity_score" => one(health.maturity.score),
        "roi_percentage" => one(health.roi.roi_percent),
        "health_score" => one(health.health_score),
        "error_budget_remaining" => evaluation
            .budget
            .slos
            .iter()
            .filter_map(|s| s.remaining_percent.map(|r| (r, with_slo(s.name.as_str()))))
            .collect(),
        "burn_rate" => evaluation
            .budget
            .slos
            .iter()
            .flat_map(|s| {
                let labels = with_slo(s.name.as_str());
                s.burn_rates.iter().filter_map(move |b| {
                    b.rate.map(|r| {
                        let mut l = labels.clone();
                        l.push(KeyValue::new("window", b.window.clone()));
                        (r, l)
                    })
                })
            })
            .collect(),
        "deployment_frequency" => one(evaluation.inputs.deployments_7d.map(f64::from)),
        "active_instances" => vec![(evaluation.active_instances as f64, base)],
        "cpu_utilization_percent" => one(evaluation.inputs.cpu_utilisation.map(|u| u * 100.0)),
        "memory_utilization_percent" => {
            one(evaluation.inputs.memory_utilisation.map(|u| u * 100.0))
        }
        _ => Vec::new(),
    }
}

/// Registers every instrument on `meter`; returns the histogram for the feed.
pub fn register(meter: &Meter, state: &Arc<AppState>) -> Histogram<f64> {
    for (name, unit) in GAUGES {
        let state = Arc::clone(state);
        meter
            .f64_observable_gauge(name)
            .with_unit(unit)
            .with_callback(move |observer| {
                let evaluation = state.cached_evaluation(REPORT_MAX_AGE);
                for (value, attributes) in gauge_points(name, &evaluation) {
                    observer.observe(value, &attributes);
                }
            })
            .build();
    }
    let counter_state = Arc::clone(state);
    meter
        .u64_observable_counter(REQUEST_COUNTER)
        .with_unit("{request}")
        .with_description("Finished requests since the sidecar started, by route and status class")
        .with_callback(move |observer| {
            for ((route, class), total) in counter_state.request_totals() {
                observer.observe(
                    total,
                    &[
                        KeyValue::new("http_route", route.unwrap_or_default()),
                        KeyValue::new("status_class", class),
                    ],
                );
            }
        })
        .build();
    meter
        .f64_histogram(DURATION_HISTOGRAM)
        .with_unit("s")
        .with_description("Request latency as the app's LumenLayer measured it")
        .with_boundaries(DURATION_BOUNDARIES_S.to_vec())
        .build()
}

/// Records each queued series' latency into `histogram`, one value per
/// request (the SDK has no weighted record), off the ingest path.
pub async fn feed(histogram: Histogram<f64>, mut queue: mpsc::Receiver<LatencyFeed>) {
    while let Some(series) = queue.recv().await {
        let attributes = [KeyValue::new(
            "http.route",
            series.route.unwrap_or_default(),
        )];
        for (seconds, count) in series.buckets {
            for _ in 0..count {
                histogram.record(seconds, &attributes);
            }
        }
    }
}
