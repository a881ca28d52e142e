//! `GET /metrics`: the SLO gauges and the sidecar's own counters in
//! Prometheus text, through the `metrics` facade into a recorder made for
//! this scrape (so a series without data disappears instead of going stale).

use std::sync::atomic::Ordering;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use super::state::Evaluation;
use super::state::{AppState, RejectReason};
use crate::eval::Status;

/// Every gauge name the sidecar exports about the service.
pub const SERVICE_GAUGES: [&str; 19] = [
    "error_budget_remaining",
    "burn_rate",
    "deployment_frequency",
    "active_instances",
    "cpu_utilization_percent",
    "memory_utilization_percent",
    "maturity_score",
    "roi_percentage",
    "health_score",
    "slo_compliance",
    "slo_target",
    "slo_status",
    "sli_requests",
    "sli_availability_percent",
    "sli_error_rate_percent",
    "sli_latency_p95_ms",
    "sli_latency_p99_ms",
    "cache_hit_rate",
    "lumen_window_seconds",
];

fn describe() {
    describe_gauge!(
        "slo_compliance",
        Unit::Percent,
        "100 when the SLO (slo_name) is met, 0 when not; slo_name=\"overall\" is the compliance rate"
    );
    describe_gauge!(
        "slo_target",
        "The SLO's target, in the SLO's unit (percent or ms)"
    );
    describe_gauge!("slo_status", "0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 NO_DATA");
    describe_gauge!("sli_requests", "Finished requests in the evaluation window");
    describe_gauge!(
        "sli_availability_percent",
        Unit::Percent,
        "Requests without a 5xx or inner failure, percent"
    );
    describe_gauge!(
        "sli_error_rate_percent",
        Unit::Percent,
        "Requests of the error classes, percent"
    );
    describe_gauge!(
        "sli_latency_p95_ms",
        Unit::Milliseconds,
        "95th percentile latency over the window"
    );
    describe_gauge!(
        "sli_latency_p99_ms",
        Unit::Milliseconds,
        "99th percentile latency over the window"
    );
    describe_gauge!(
        "cache_hit_rate",
        Unit::Percent,
        "Cache hits over lookups, percent"
    );
    describe_gauge!(
        "lumen_window_seconds",
        Unit::Seconds,
        "Length of the evaluation window"
    );
    describe_counter!("lumen_batches_applied_total", "Batches stored");
    describe_counter!(
        "lumen_batches_duplicate_total",
        "Batches already applied, acknowledged again"
    );
    describe_counter!(
        "lumen_batches_expired_total",
        "Batches older than the retention, dropped"
    );
    describe_counter!("lumen_batches_rejected_total", "Batches refused, by reason");
    describe_counter!(
        "lumen_requests_ingested_total",
        "Finished requests in stored batches"
    );
    describe_counter!("lumen_snapshots_written_total", "Snapshots written");
    describe_counter!(
        "lumen_snapshot_failures_total",
        "Snapshot writes that failed"
    );
}

/// Renders the scrape for `report` and the counters in `app`.
pub fn render(app: &AppState, evaluation: &Evaluation) -> String {
    let report = &evaluation.slo;
    let health = &evaluation.health;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe();
        let service = report.service.clone();
        let revision = report
            .revision
            .clone()
            .unwrap_or_else(|| "unknown".to_owned());
        let labels = [
            ("service_name", service.clone()),
            ("revision_name", revision.clone()),
        ];
        gauge!("slo_status", &labels).set(f64::from(report.status.code()));
        gauge!("sli_requests", &labels).set(report.requests as f64);
        gauge!("lumen_window_seconds", &labels).set(report.window_s as f64);
        for slo in &report.slos {
            let slo_labels = [
                ("service_name", service.clone()),
                ("revision_name", revision.clone()),
                ("slo_name", slo.name.as_str().to_owned()),
            ];
            gauge!("slo_target", &slo_labels).set(slo.target);
            if report.status != Status::NoData {
                gauge!("slo_compliance", &slo_labels).set(if slo.met { 100.0 } else { 0.0 });
            }
            if let Some(v) = slo.current {
                let name = match slo.name {
                    crate::eval::SloName::Availability => "sli_availability_percent",
                    crate::eval::SloName::LatencyP95 => "sli_latency_p95_ms",
                    crate::eval::SloName::LatencyP99 => "sli_latency_p99_ms",
                    crate::eval::SloName::ErrorRate => "sli_error_rate_percent",
                };
                gauge!(name, &labels).set(v);
            }
        }
        if let Some(rate) = report.compliance_rate {
            let overall = [
                ("service_name", service.clone()),
                ("revision_name", revision.clone()),
                ("slo_name", "overall".to_owned()),
            ];
            gauge!("slo_compliance", &overall).set(rate);
        }
        if let Some(rate) = report.cache.hit_rate {
            gauge!("cache_hit_rate", &labels).set(rate);
        }
        let inputs = &evaluation.inputs;
        for (name, value) in [
            ("maturity_score", health.maturity.score),
            ("roi_percentage", health.roi.roi_percent),
            ("health_score", health.health_score),
            ("deployment_frequency", inputs.deployments_7d.map(f64::from)),
            ("active_instances", Some(evaluation.active_instances as f64)),
            (
                "cpu_utilization_percent",
                inputs.cpu_utilisation.map(|u| u * 100.0),
            ),
            (
                "memory_utilization_percent",
                inputs.memory_utilisation.map(|u| u * 100.0),
            ),
        ] {
            if let Some(v) = value {
                gauge!(name, &labels).set(v);
            }
        }
        let s = &app.stats;
        counter!("lumen_batches_applied_total").absolute(s.applied.load(Ordering::Relaxed));
        counter!("lumen_batches_duplicate_total").absolute(s.duplicates.load(Ordering::Relaxed));
        counter!("lumen_batches_expired_total").absolute(s.expired.load(Ordering::Relaxed));
        counter!("lumen_requests_ingested_total").absolute(s.requests.load(Ordering::Relaxed));
        counter!("lumen_snapshots_written_total")
            .absolute(s.snapshots_written.load(Ordering::Relaxed));
        counter!("lumen_snapshot_failures_total")
            .absolute(s.snapshot_failures.load(Ordering::Relaxed));
        for ((route, class), total) in app.request_totals() {
            counter!(
                "http_server_requests",
                "http_route" => route.unwrap_or_default(),
                "status_class" => class
            )
            .absolute(total);
        }
        for s in &evaluation.budget.slos {
            let slo = s.name.as_str();
            if let Some(r) = s.remaining_percent {
                gauge!("error_budget_remaining", "service_name" => service.clone(), "revision_name" => revision.clone(), "slo_name" => slo).set(r);
            }
            for b in &s.burn_rates {
                if let Some(rate) = b.rate {
                    gauge!("burn_rate", "service_name" => service.clone(), "revision_name" => revision.clone(), "slo_name" => slo, "window" => b.window.clone()).set(rate);
                }
            }
        }
        let k = &app.slack_stats;
        counter!("lumen_slack_messages_total", "result" => "sent")
            .absolute(k.sent.load(Ordering::Relaxed));
        counter!("lumen_slack_messages_total", "result" => "dropped")
            .absolute(k.dropped.load(Ordering::Relaxed));
        counter!("lumen_slack_throttled_total").absolute(k.throttled.load(Ordering::Relaxed));
        let x = &app.export_stats;
        counter!("lumen_otlp_exports_total", "result" => "sent")
            .absolute(x.sent.load(Ordering::Relaxed));
        counter!("lumen_otlp_exports_total", "result" => "failed")
            .absolute(x.failed.load(Ordering::Relaxed));
        counter!("lumen_otlp_points_dropped_total")
            .absolute(x.points_dropped.load(Ordering::Relaxed));
        counter!("lumen_otlp_histogram_feed_dropped_total")
            .absolute(x.histogram_feed_dropped.load(Ordering::Relaxed));
        for (reason, n) in RejectReason::ALL.iter().zip(&s.rejected) {
            counter!("lumen_batches_rejected_total", "reason" => reason.as_str())
                .absolute(n.load(Ordering::Relaxed));
        }
    });
    handle.render()
}
