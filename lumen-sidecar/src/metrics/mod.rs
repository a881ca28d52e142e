//! The one catalogue of exported metrics and its renderers.
//!
//! Every metric the sidecar exports is defined once, in [`CATALOGUE`]:
//! name, kind, unit, labels, help, and how its samples are computed from an
//! evaluation and the sidecar's counters. `/metrics` ([`prometheus_text`]),
//! the OTLP instruments ([`crate::export`]), the metric names the dashboard
//! and the alert policies may query, and the metric table of docs/metrics.md
//! ([`markdown_table`]) are all derived from it.
//!
//! Why no `metrics` facade: a scrape renders one consistent evaluation, and
//! series without data must disappear rather than go stale. A facade
//! recorder keeps the last value of every handle forever, so it would either
//! need a new recorder per scrape (what this replaced) or stale series. A
//! direct renderer over the catalogue is shorter, exact for `u64` counters
//! and allocates only the output.
//!
//! Names: the four score gauges (`maturity_score`, `roi_percentage`,
//! `slo_compliance`, `cache_hit_rate`) keep the names dashboards know; every
//! other name carries its base unit (`_seconds`, `_percent`) and counters
//! end in `_total`. OTLP sends the same names; Cloud Monitoring stores them
//! as `prometheus.googleapis.com/NAME/gauge` (gauges) and
//! `prometheus.googleapis.com/NAME/counter` (counters), and PromQL (Managed
//! Service for Prometheus) queries them by `NAME` alone.

mod catalogue;
mod prometheus;
mod series_names;

pub use catalogue::{
    BUDGET_EXCLUSION_INFO, CACHE_LOOKUPS_TOTAL, CANCELLED_TOTAL, CATALOGUE, DURATION_BUCKETS,
    DURATION_HISTOGRAM, DURATION_HISTOGRAM_PROMETHEUS, INSTANCE_COST_TOTAL, REQUESTS_TOTAL,
    SLO_EVENTS_TOTAL, USD,
};
pub use prometheus::prometheus_text;
pub use series_names::{OTLP_DURATION_BUCKETS, is_plain_name, promql_name, promql_selector, quote};

use crate::app::{AppState, Evaluation};

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that goes up and down (the latest evaluation's).
    Gauge,
    /// A cumulative count since the sidecar started.
    Counter,
    /// A cumulative distribution.
    Histogram,
}

impl MetricKind {
    /// `gauge`, `counter`, `histogram` (Prometheus's `# TYPE` words).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Counter => "counter",
            Self::Histogram => "histogram",
        }
    }
}

/// Where a metric goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destinations {
    /// `/metrics` and OTLP.
    Both,
    /// `/metrics` only (the sidecar's own operation counters).
    PrometheusOnly,
    /// OTLP only (the latency histogram, fed per ingested batch).
    OtlpOnly,
}

/// One sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue {
    /// An exact count.
    Count(u64),
    /// A measurement.
    Float(f64),
}

impl SampleValue {
    /// As `f64` (counts above 2^53 round).
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Count(n) => n as f64,
            Self::Float(v) => v,
        }
    }

    /// As `u64` (floats truncate, negatives become 0).
    pub fn as_u64(self) -> u64 {
        match self {
            Self::Count(n) => n,
            Self::Float(v) => v as u64,
        }
    }
}

/// One sample: label values in the order of [`MetricDef::labels`], and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label values, one per label name of the metric.
    pub labels: Vec<String>,
    /// The value.
    pub value: SampleValue,
    /// Appended to the metric's name on `/metrics`: empty, or `_bucket`,
    /// `_sum`, `_count` for a histogram's series.
    pub suffix: &'static str,
}

/// What a metric's samples are computed from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The sidecar (counters, cumulative totals).
    pub app: &'a AppState,
    /// The latest evaluation of the configured window.
    pub evaluation: &'a Evaluation,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The name, on `/metrics` and over OTLP.
    pub name: &'static str,
    /// Gauge, counter or histogram.
    pub kind: MetricKind,
    /// The UCUM unit sent over OTLP (`%`, `s`, `1`, `{request}`).
    pub unit: &'static str,
    /// The label names every sample carries.
    pub labels: &'static [&'static str],
    /// What it means (HELP text and OTLP description).
    pub help: &'static str,
    /// Where it goes.
    pub destinations: Destinations,
    /// Its samples now (empty when there is nothing to say: no data gives
    /// no sample rather than a misleading number).
    pub samples: fn(&Sources<'_>) -> Vec<Sample>,
}

impl MetricDef {
    /// Whether `/metrics` carries it.
    pub fn on_prometheus(&self) -> bool {
        self.destinations != Destinations::OtlpOnly
    }

    /// Whether OTLP carries it.
    pub fn on_otlp(&self) -> bool {
        self.destinations != Destinations::PrometheusOnly
    }
}

/// A label's name over OTLP: the OpenTelemetry HTTP semantic conventions'
/// names (`http.route`, `http.request.method`) where the Prometheus
/// exposition uses their translated forms (`http_route`, `http_request_method`).
pub fn otlp_label(label: &'static str) -> &'static str {
    match label {
        "http_route" => "http.route",
        "http_request_method" => "http.request.method",
        "rpc_grpc_status_code" => "rpc.grpc.status_code",
        other => other,
    }
}

/// The catalogue entry named `name`.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// Every metric name the sidecar exports about the service (gauges,
/// counters, histogram): what dashboards and rules may query.
pub fn service_metric_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = CATALOGUE.iter().map(|m| m.name).collect();
    // A histogram's series: on /metrics, and as Cloud Monitoring stores
    // the OTLP one.
    names.extend([
        DURATION_BUCKETS,
        "http_server_request_duration_seconds_sum",
        "http_server_request_duration_seconds_count",
        OTLP_DURATION_BUCKETS,
        "http.server.request.duration_sum",
        "http.server.request.duration_count",
    ]);
    names.sort_unstable();
    names
}

/// The metric table of docs/metrics.md, generated from the catalogue.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| metric | kind | unit | labels | on | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for m in CATALOGUE {
        let on = match m.destinations {
            Destinations::Both => "/metrics, OTLP",
            Destinations::PrometheusOnly => "/metrics",
            Destinations::OtlpOnly => "OTLP",
        };
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} |\n",
            m.name,
            m.kind.as_str(),
            m.unit,
            if m.labels.is_empty() {
                "—".to_owned()
            } else {
                m.labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            on,
            m.help
        ));
    }
    out
}

#[cfg(test)]
mod tests;
