//! Every exported metric, defined once.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Destinations, MetricDef, MetricKind, Sample, SampleValue, Sources};
use crate::app::RejectReason;
use crate::eval::{SloName, Status};

/// The OTLP latency histogram's name (seconds), after the semantic conventions.
pub const DURATION_HISTOGRAM: &str = "http.server.request.duration";
/// The `/metrics` latency histogram's name (seconds).
pub const DURATION_HISTOGRAM_PROMETHEUS: &str = "http_server_request_duration_seconds";
/// Its cumulative buckets' series name.
pub const DURATION_BUCKETS: &str = "http_server_request_duration_seconds_bucket";
/// Finished requests by route, method and status class.
pub const REQUESTS_TOTAL: &str = "http_server_requests_total";
/// Requests the client abandoned, by route.
pub const CANCELLED_TOTAL: &str = "lumen_requests_cancelled_total";
/// gRPC calls by route and status code.
pub const GRPC_CALLS_TOTAL: &str = "lumen_grpc_calls_total";
/// Cache lookups by route and result.
pub const CACHE_LOOKUPS_TOTAL: &str = "lumen_cache_lookups_total";
/// Each SLO's good and bad events by route.
pub const SLO_EVENTS_TOTAL: &str = "lumen_slo_events_total";
/// The instance's accrued compute cost, USD.
pub const INSTANCE_COST_TOTAL: &str = "lumen_instance_cost_usd_total";
/// Each one-off window kept off the error budgets (an info gauge, 1).
pub const BUDGET_EXCLUSION_INFO: &str = "lumen_budget_exclusion_info";
/// The unit of money; a counter in it is a float counter over OTLP.
pub const USD: &str = "USD";

const SERVICE: &[&str] = &["service_name", "revision_name"];
const PER_SLO: &[&str] = &["service_name", "revision_name", "slo_name"];
const PER_WINDOW: &[&str] = &["service_name", "revision_name", "slo_name", "window"];
const PER_EXCLUSION: &[&str] = &[
    "service_name",
    "revision_name",
    "from_unix_s",
    "to_unix_s",
    "reason",
];

fn service_labels(s: &Sources<'_>) -> Vec<String> {
    let r = &s.evaluation.slo;
    vec![
        r.service.clone(),
        r.revision.clone().unwrap_or_else(|| "unknown".to_owned()),
    ]
}

/// The counters' `revision_name`: the revision their counts are of.
fn counted_revision(totals: &crate::app::CumulativeTotals) -> String {
    totals
        .revision
        .clone()
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A boundary as Prometheus writes it (`0.2`, `1`, `+Inf`).
fn prometheus_float(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".to_owned()
    } else {
        v.to_string()
    }
}

fn with(mut labels: Vec<String>, more: &[&str]) -> Vec<String> {
    labels.extend(more.iter().map(|m| (*m).to_owned()));
    labels
}

/// One service-labelled sample, or none without a value.
fn one(s: &Sources<'_>, value: Option<f64>) -> Vec<Sample> {
    value
        .map(|v| Sample {
            labels: service_labels(s),
            value: SampleValue::Float(v),
            suffix: "",
        })
        .into_iter()
        .collect()
}

fn current(s: &Sources<'_>, name: SloName) -> Option<f64> {
    s.evaluation
        .slo
        .slos
        .iter()
        .find(|x| x.name == name)
        .and_then(|x| x.current)
}

fn count(n: &AtomicU64) -> Vec<Sample> {
    vec![Sample {
        labels: Vec::new(),
        value: SampleValue::Count(n.load(Ordering::Relaxed)),
        suffix: "",
    }]
}

fn results(pairs: &[(&str, &AtomicU64)]) -> Vec<Sample> {
    pairs
        .iter()
        .map(|(label, n)| Sample {
            labels: vec![(*label).to_owned()],
            value: SampleValue::Count(n.load(Ordering::Relaxed)),
            suffix: "",
        })
        .collect()
}

const fn gauge(
    name: &'static str,
    unit: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    samples: fn(&Sources<'_>) -> Vec<Sample>,
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Gauge,
        unit,
        labels,
        help,
        destinations: Destinations::Both,
        samples,
    }
}

const fn own_counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    samples: fn(&Sources<'_>) -> Vec<Sample>,
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Counter,
        unit: "1",
        labels,
        help,
        destinations: Destinations::PrometheusOnly,
        samples,
    }
}

/// Every metric the sidecar exports, in the order `/metrics` lists them.
pub static CATALOGUE: &[MetricDef] = &[
    // The four threshold policies' metrics.
    gauge(
        "slo_compliance",
        "%",
        PER_SLO,
        "100 when the SLO named by slo_name is met, 0 when not; slo_name=\"overall\" is the compliance rate (SLOs met over SLOs evaluated, percent); absent without data",
        |s| {
            let r = &s.evaluation.slo;
            if r.status == Status::NoData {
                return Vec::new();
            }
            let base = service_labels(s);
            let mut out: Vec<Sample> = r
                .slos
                .iter()
                .map(|x| Sample {
                    labels: with(base.clone(), &[x.name.as_str()]),
                    value: SampleValue::Float(if x.met { 100.0 } else { 0.0 }),
                    suffix: "",
                })
                .collect();
            out.extend(r.compliance_rate.map(|v| Sample {
                labels: with(base.clone(), &["overall"]),
                value: SampleValue::Float(v),
                suffix: "",
            }));
            out
        },
    ),
    gauge(
        "cache_hit_rate",
        "%",
        SERVICE,
        "Cache hits over cache lookups in the window, percent",
        |s| one(s, s.evaluation.slo.cache.hit_rate),
    ),
    gauge(
        "maturity_score",
        "1",
        SERVICE,
        "Maturity score, 0 to 100, from the six maturity metrics",
        |s| one(s, s.evaluation.health.maturity.score),
    ),
    gauge(
        "roi_percentage",
        "%",
        SERVICE,
        "Cache return on investment: savings over the cache's cost, percent",
        |s| one(s, s.evaluation.health.roi.roi_percent),
    ),
    // The SLIs and SLO states.
    gauge(
        "slo_target",
        "1",
        PER_SLO,
        "The SLO's target in the SLO's unit: percent for availability and error_rate, seconds for latency_p95 and latency_p99",
        |s| {
            let base = service_labels(s);
            s.evaluation
                .slo
                .slos
                .iter()
                .map(|x| Sample {
                    labels: with(base.clone(), &[x.name.as_str()]),
                    value: SampleValue::Float(match x.name {
                        SloName::LatencyP95 | SloName::LatencyP99 => x.target / 1000.0,
                        SloName::Availability | SloName::ErrorRate => x.target,
                    }),
                    suffix: "",
                })
                .collect()
        },
    ),
    gauge(
        "slo_status",
        "1",
        SERVICE,
        "Overall SLO status: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 NO_DATA",
        |s| one(s, Some(f64::from(s.evaluation.slo.status.code()))),
    ),
    gauge(
        "sli_requests",
        "{request}",
        SERVICE,
        "Finished requests in the evaluation window",
        |s| one(s, Some(s.evaluation.slo.requests as f64)),
    ),
    gauge(
        "sli_availability_percent",
        "%",
        SERVICE,
        "Requests without a 5xx or inner failure over all requests in the window, percent",
        |s| one(s, current(s, SloName::Availability)),
    ),
    gauge(
        "sli_error_rate_percent",
        "%",
        SERVICE,
        "Requests of the configured error classes over all requests in the window, percent",
        |s| one(s, current(s, SloName::ErrorRate)),
    ),
    gauge(
        "sli_latency_p95_seconds",
        "s",
        SERVICE,
        "95th percentile request latency over the window (exact to 0.1 %), seconds",
        |s| one(s, current(s, SloName::LatencyP95).map(|ms| ms / 1000.0)),
    ),
    gauge(
        "sli_latency_p99_seconds",
        "s",
        SERVICE,
        "99th percentile request latency over the window (exact to 0.1 %), seconds",
        |s| one(s, current(s, SloName::LatencyP99).map(|ms| ms / 1000.0)),
    ),
    gauge(
        "lumen_window_seconds",
        "s",
        SERVICE,
        "Length of the evaluation window the gauges describe, seconds",
        |s| one(s, Some(s.evaluation.slo.window_s as f64)),
    ),
    // Budgets.
    gauge(
        "error_budget_remaining",
        "%",
        PER_SLO,
        "Error budget left in the SLO period, percent of the budget (negative when overspent)",
        |s| {
            let base = service_labels(s);
            s.evaluation
                .budget
                .slos
                .iter()
                .filter_map(|b| {
                    b.remaining_percent.map(|v| Sample {
                        labels: with(base.clone(), &[b.name.as_str()]),
                        value: SampleValue::Float(v),
                        suffix: "",
                    })
                })
                .collect()
        },
    ),
    gauge(
        "burn_rate",
        "1",
        PER_WINDOW,
        "Error-budget burn rate over the window: bad share over allowed share",
        |s| {
            let base = service_labels(s);
            s.evaluation
                .budget
                .slos
                .iter()
                .flat_map(|b| {
                    let base = base.clone();
                    b.burn_rates.iter().filter_map(move |w| {
                        w.rate.map(|v| Sample {
                            labels: with(base.clone(), &[b.name.as_str(), &w.window]),
                            value: SampleValue::Float(v),
                            suffix: "",
                        })
                    })
                })
                .collect()
        },
    ),
    gauge(
        BUDGET_EXCLUSION_INFO,
        "1",
        PER_EXCLUSION,
        "1 for each one-off window kept off the error budgets (slo exclude) this sidecar knows, marked here or shared through the fleet store: from_unix_s and to_unix_s its span (Unix seconds, the end exclusive), reason why; fleet reads over Prometheus leave these minutes out",
        |s| {
            let base = service_labels(s);
            let marks = s.app.store().exclusions().one_off.clone();
            marks
                .iter()
                .map(|e| Sample {
                    labels: with(
                        base.clone(),
                        &[
                            &(e.from_ms / 1000).to_string(),
                            &(e.to_ms / 1000).to_string(),
                            &e.reason,
                        ],
                    ),
                    value: SampleValue::Float(1.0),
                    suffix: "",
                })
                .collect()
        },
    ),
    // Health.
    gauge(
        "health_score",
        "1",
        SERVICE,
        "Weighted health score, 0 to 100: 0.3 maturity + 0.3 ROI score + 0.4 SLO compliance",
        |s| one(s, s.evaluation.health.health_score),
    ),
    gauge(
        "deployment_frequency",
        "{deploy}",
        SERVICE,
        "Distinct revisions seen in the last 7 days",
        |s| one(s, s.evaluation.inputs.deployments_7d.map(f64::from)),
    ),
    gauge(
        "active_instances",
        "{instance}",
        SERVICE,
        "App instances that sent a batch in the window",
        |s| one(s, Some(s.evaluation.active_instances as f64)),
    ),
    gauge(
        "cpu_utilization_percent",
        "%",
        SERVICE,
        "App CPU time over its CPU limit in the window, percent (averaged over instances)",
        |s| one(s, s.evaluation.inputs.cpu_utilisation.map(|u| u * 100.0)),
    ),
    gauge(
        "memory_utilization_percent",
        "%",
        SERVICE,
        "App resident memory over its memory limit, percent (averaged over instances)",
        |s| one(s, s.evaluation.inputs.memory_utilisation.map(|u| u * 100.0)),
    ),
    // Cumulative request counts and latency.
    MetricDef {
        name: REQUESTS_TOTAL,
        kind: MetricKind::Counter,
        unit: "{request}",
        labels: &[
            "service_name",
            "revision_name",
            "http_route",
            "http_request_method",
            "status_class",
        ],
        help: "Finished requests since the sidecar started, by route, request method (_OTHER: any other, or not said) and status class (error: the inner service failed without a response)",
        destinations: Destinations::Both,
        samples: |s| {
            let totals = s.app.totals();
            let service = s.evaluation.slo.service.clone();
            let revision = counted_revision(&totals);
            totals
                .requests
                .iter()
                .map(|((route, method, class), n)| Sample {
                    labels: vec![
                        service.clone(),
                        revision.clone(),
                        route.clone().unwrap_or_default(),
                        (*method).to_owned(),
                        (*class).to_owned(),
                    ],
                    value: SampleValue::Count(*n),
                    suffix: "",
                })
                .collect()
        },
    },
    MetricDef {
        name: GRPC_CALLS_TOTAL,
        kind: MetricKind::Counter,
        unit: "{call}",
        labels: &[
            "service_name",
            "revision_name",
            "http_route",
            "rpc_grpc_status_code",
        ],
        help: "gRPC calls since the sidecar started, by route and status code (rpc_grpc_status_code, 0 OK to 16 UNAUTHENTICATED; each call is also in http_server_requests_total under the class its code maps to: DEADLINE_EXCEEDED and UNAVAILABLE are 5xx, NOT_FOUND 4xx); absent for plain HTTP",
        destinations: Destinations::Both,
        samples: |s| {
            let totals = s.app.totals();
            let service = s.evaluation.slo.service.clone();
            let revision = counted_revision(&totals);
            totals
                .grpc
                .iter()
                .map(|((route, code), n)| Sample {
                    labels: vec![
                        service.clone(),
                        revision.clone(),
                        route.clone().unwrap_or_default(),
                        code.to_string(),
                    ],
                    value: SampleValue::Count(*n),
                    suffix: "",
                })
                .collect()
        },
    },
    MetricDef {
        name: CANCELLED_TOTAL,
        kind: MetricKind::Counter,
        unit: "{request}",
        labels: &["service_name", "revision_name", "http_route"],
        help: "Requests the client abandoned before a response, since the sidecar started, by route (in no other count)",
        destinations: Destinations::Both,
        samples: |s| {
            let totals = s.app.totals();
            let service = s.evaluation.slo.service.clone();
            let revision = counted_revision(&totals);
            totals
                .cancelled
                .iter()
                .map(|(route, n)| Sample {
                    labels: vec![
                        service.clone(),
                        revision.clone(),
                        route.clone().unwrap_or_default(),
                    ],
                    value: SampleValue::Count(*n),
                    suffix: "",
                })
                .collect()
        },
    },
    MetricDef {
        name: CACHE_LOOKUPS_TOTAL,
        kind: MetricKind::Counter,
        unit: "{lookup}",
        labels: &["service_name", "revision_name", "http_route", "result"],
        help: "Cache lookups the app reported since the sidecar started, by route and result (hit or miss); summed over instances they give the fleet's hit rate and ROI exactly",
        destinations: Destinations::Both,
        samples: |s| {
            let totals = s.app.totals();
            let service = s.evaluation.slo.service.clone();
            let revision = counted_revision(&totals);
            totals
                .cache
                .iter()
                .flat_map(|(route, [hits, misses])| {
                    let route = route.clone().unwrap_or_default();
                    [("hit", *hits), ("miss", *misses)].map(|(result, n)| Sample {
                        labels: vec![
                            service.clone(),
                            revision.clone(),
                            route.clone(),
                            result.to_owned(),
                        ],
                        value: SampleValue::Count(n),
                        suffix: "",
                    })
                })
                .collect()
        },
    },
    MetricDef {
        name: SLO_EVENTS_TOTAL,
        kind: MetricKind::Counter,
        unit: "{event}",
        labels: &[
            "service_name",
            "revision_name",
            "http_route",
            "slo_name",
            "result",
        ],
        help: "Each SLO's good and bad events since the sidecar started, by route, counted at ingest as the error budgets count them (availability: bad = 5xx or inner failure; error_rate: bad = an error class or inner failure; latency_p95/p99: good = recorded latency below the target), none in a minute already kept off the error budgets when it arrived; summed over instances, good over good+bad is the fleet's SLI exactly",
        destinations: Destinations::Both,
        samples: |s| {
            let totals = s.app.totals();
            let service = s.evaluation.slo.service.clone();
            let revision = counted_revision(&totals);
            totals
                .slo_events
                .iter()
                .flat_map(|((route, name), e)| {
                    let route = route.clone().unwrap_or_default();
                    [("good", e.good), ("bad", e.bad)].map(|(result, n)| Sample {
                        labels: vec![
                            service.clone(),
                            revision.clone(),
                            route.clone(),
                            name.as_str().to_owned(),
                            result.to_owned(),
                        ],
                        value: SampleValue::Count(n),
                        suffix: "",
                    })
                })
                .collect()
        },
    },
    MetricDef {
        name: INSTANCE_COST_TOTAL,
        kind: MetricKind::Counter,
        unit: USD,
        labels: SERVICE,
        help: "What this sidecar's instance has cost since it started, USD: its billed vCPUs and GiB (cost.instance_vcpu, cost.instance_memory_gib) times the configured prices times its lifetime; an estimate, not a bill. Summed over instances it is the fleet's compute cost; the cache's monthly cost is not in it (charge it once)",
        destinations: Destinations::Both,
        samples: |s| {
            let totals = s.app.totals();
            vec![Sample {
                labels: vec![s.evaluation.slo.service.clone(), counted_revision(&totals)],
                value: SampleValue::Float(s.app.accrued_cost_usd(crate::app::now_ms())),
                suffix: "",
            }]
        },
    },
    MetricDef {
        name: DURATION_HISTOGRAM_PROMETHEUS,
        kind: MetricKind::Histogram,
        unit: "s",
        labels: &["service_name", "revision_name", "http_route", "le"],
        help: "Request latency since the sidecar started, by route, seconds: a request is in the bucket le=B when its recorded latency (the top of its 0.1 % HDR bucket) is below B. The boundaries are the semantic conventions' advice plus the P95 and P99 targets, so the bucket at a target counts exactly the requests under it",
        destinations: Destinations::PrometheusOnly,
        samples: |s| {
            let service = s.evaluation.slo.service.clone();
            let bounds = s.app.latency_boundaries();
            let totals = s.app.totals();
            let revision = counted_revision(&totals);
            let mut out = Vec::new();
            for (route, h) in &totals.latency {
                let route = route.clone().unwrap_or_default();
                for (le, n) in h.cumulative(bounds) {
                    out.push(Sample {
                        labels: vec![
                            service.clone(),
                            revision.clone(),
                            route.clone(),
                            prometheus_float(le),
                        ],
                        value: SampleValue::Count(n),
                        suffix: "_bucket",
                    });
                }
                for (suffix, value) in [
                    ("_sum", SampleValue::Float(h.sum_us as f64 / 1e6)),
                    ("_count", SampleValue::Count(h.count)),
                ] {
                    out.push(Sample {
                        labels: vec![service.clone(), revision.clone(), route.clone()],
                        value,
                        suffix,
                    });
                }
            }
            out
        },
    },
    MetricDef {
        name: DURATION_HISTOGRAM,
        kind: MetricKind::Histogram,
        unit: "s",
        labels: &["service_name", "revision_name", "http.route"],
        help: "Request latency as the app's LumenLayer measured it, seconds, with the same boundaries as http_server_request_duration_seconds",
        destinations: Destinations::OtlpOnly,
        samples: |_| Vec::new(),
    },
    // The sidecar's own operation.
    own_counter("lumen_batches_applied_total", &[], "Batches stored", |s| {
        count(&s.app.stats.applied)
    }),
    own_counter(
        "lumen_batches_duplicate_total",
        &[],
        "Batches already applied, acknowledged again",
        |s| count(&s.app.stats.duplicates),
    ),
    own_counter(
        "lumen_batches_expired_total",
        &[],
        "Batches older than the retention, acknowledged and dropped",
        |s| count(&s.app.stats.expired),
    ),
    own_counter(
        "lumen_batches_rejected_total",
        &["reason"],
        "Batches refused, by reason",
        |s| {
            RejectReason::ALL
                .iter()
                .zip(&s.app.stats.rejected)
                .map(|(r, n)| Sample {
                    labels: vec![r.as_str().to_owned()],
                    value: SampleValue::Count(n.load(Ordering::Relaxed)),
                    suffix: "",
                })
                .collect()
        },
    ),
    own_counter(
        "lumen_requests_ingested_total",
        &[],
        "Finished requests in stored batches",
        |s| count(&s.app.stats.requests),
    ),
    own_counter(
        "lumen_snapshots_written_total",
        &[],
        "Snapshots written",
        |s| count(&s.app.stats.snapshots_written),
    ),
    own_counter(
        "lumen_snapshot_failures_total",
        &[],
        "Snapshot writes that failed",
        |s| count(&s.app.stats.snapshot_failures),
    ),
    own_counter(
        "lumen_fleet_store_unreadable_total",
        &[],
        "Fleet-store values (one instance's block or information) that did not read and were left out of the fleet's figures",
        |_| count(&crate::app::FLEET_STORE_UNREADABLE),
    ),
    own_counter(
        "lumen_fleet_store_late_fields_total",
        &[],
        "Late batches' fields this sidecar wrote to the fleet store: one per closed block of a batch that came after its blocks closed",
        |s| count(&s.app.stats.fleet_late_fields),
    ),
    own_counter(
        "lumen_fleet_store_compacted_blocks_total",
        &[],
        "Fleet-store blocks this sidecar compacted (their fields merged into one)",
        |s| count(&s.app.stats.fleet_compacted_blocks),
    ),
    own_counter(
        "lumen_fleet_store_compacted_fields_total",
        &[],
        "Fleet-store fields this sidecar's compactions merged",
        |s| count(&s.app.stats.fleet_compacted_fields),
    ),
    own_counter(
        "lumen_connections_refused_total",
        &[],
        "Connections closed at accept because server.max_connections were open",
        |_| count(&crate::app::CONNECTIONS_REFUSED),
    ),
    own_counter(
        "lumen_routes_folded_total",
        &[],
        "Series counted under the route \"other\" because the sidecar held store.max_routes distinct routes already",
        |s| count(&s.app.stats.routes_folded),
    ),
    own_counter(
        "lumen_store_merged_slots_total",
        &[],
        "Minute slots merged into 10-minute or hour blocks to keep the store within store.max_bytes",
        |s| count(&s.app.stats.store_merged_slots),
    ),
    own_counter(
        "lumen_store_dropped_slots_total",
        &[],
        "Minute slots dropped, oldest first, because merging could not keep the store within store.max_bytes",
        |s| count(&s.app.stats.store_dropped_minutes),
    ),
    own_counter(
        "lumen_wal_appended_total",
        &[],
        "Batches written to the write-ahead log and synced before their answer",
        |s| count(&s.app.stats.wal_appended),
    ),
    own_counter(
        "lumen_wal_failures_total",
        &[],
        "Write-ahead log writes that failed (their batches answered 503, nothing applied)",
        |s| count(&s.app.stats.wal_failures),
    ),
    own_counter(
        "lumen_wal_no_room_total",
        &[],
        "Write-ahead log writes refused because the next checkpoint would not have fit in the state volume beside them (503, a checkpoint taken at once)",
        |s| count(&s.app.stats.wal_no_room),
    ),
    own_counter(
        "lumen_wal_replayed_total",
        &[],
        "Write-ahead log records replayed at start",
        |s| count(&s.app.stats.wal_replayed),
    ),
    own_counter(
        "lumen_slack_messages_total",
        &["result"],
        "Slack messages sent, and given up",
        |s| {
            let k = &s.app.slack_stats;
            results(&[("sent", &k.sent), ("dropped", &k.dropped)])
        },
    ),
    own_counter(
        "lumen_slack_throttled_total",
        &[],
        "429 answers from Slack",
        |s| count(&s.app.slack_stats.throttled),
    ),
    own_counter(
        "lumen_otlp_exports_total",
        &["result"],
        "OTLP exports the endpoint accepted whole (sent), with points rejected (partial), and that failed",
        |s| {
            let x = &s.app.export_stats;
            results(&[
                ("sent", &x.sent),
                ("partial", &x.partial),
                ("failed", &x.failed),
            ])
        },
    ),
    own_counter(
        "lumen_otlp_points_dropped_total",
        &[],
        "Data points in failed OTLP exports",
        |s| count(&s.app.export_stats.points_dropped),
    ),
    own_counter(
        "lumen_otlp_points_rejected_total",
        &[],
        "Data points the OTLP endpoint refused (partial success, or a 4xx answer)",
        |s| count(&s.app.export_stats.points_rejected),
    ),
    own_counter(
        "lumen_otlp_latency_feed_dropped_total",
        &[],
        "Ingested series whose latency could not be queued for the OTLP histogram",
        |s| count(&s.app.export_stats.histogram_feed_dropped),
    ),
];
