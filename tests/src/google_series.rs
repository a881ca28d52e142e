//! The series Cloud Monitoring stores for OTLP it is sent, as Google's
//! Telemetry API documents it (docs.cloud.google.com/stackdriver/docs/
//! reference/telemetry/v1.metrics, otlp-metrics/overview): points are
//! written "as for Managed Service for Prometheus" on the `prometheus_target`
//! resource; names and attribute keys are kept as sent, and a name outside
//! `[a-zA-Z][a-zA-Z0-9_:./]*` or a key outside `[a-zA-Z_][a-zA-Z0-9_.]*` is
//! rejected. A gauge or non-monotonic sum is `prometheus.googleapis.com/
//! NAME/gauge`, a monotonic sum `NAME/counter`, a histogram `NAME/histogram`,
//! queried in PromQL as `NAME` or, for a histogram, `NAME_bucket` (with
//! `le`), `NAME_sum` and `NAME_count`. Every series also carries the
//! resource's labels (`project_id`, `location`, `cluster`, `namespace`,
//! `job`, `instance`).

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric;

/// The `prometheus_target` resource's labels.
pub const RESOURCE_LABELS: [&str; 6] = [
    "project_id",
    "location",
    "cluster",
    "namespace",
    "job",
    "instance",
];

/// What Cloud Monitoring holds after the requests.
#[derive(Debug, Default)]
pub struct GoogleSeries {
    /// PromQL series name → its label keys.
    pub promql: BTreeMap<String, BTreeSet<String>>,
    /// Metric type (`prometheus.googleapis.com/NAME/KIND`) → its metric label keys.
    pub types: BTreeMap<String, BTreeSet<String>>,
    /// Points rejected, with why.
    pub rejected: Vec<String>,
}

fn name_ok(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || "_:./".contains(x))
}

fn key_ok(key: &str) -> bool {
    let mut c = key.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || "_.".contains(x))
}

impl GoogleSeries {
    /// The series stored for `requests`.
    pub fn of(requests: &[ExportMetricsServiceRequest]) -> Self {
        let mut out = Self::default();
        let metrics = requests
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics);
        for m in metrics {
            let points: Vec<&[KeyValue]> = match &m.data {
                Some(metric::Data::Gauge(g)) => {
                    g.data_points.iter().map(|p| &p.attributes[..]).collect()
                }
                Some(metric::Data::Sum(s)) => {
                    s.data_points.iter().map(|p| &p.attributes[..]).collect()
                }
                Some(metric::Data::Histogram(h)) => {
                    h.data_points.iter().map(|p| &p.attributes[..]).collect()
                }
                Some(metric::Data::ExponentialHistogram(h)) => {
                    h.data_points.iter().map(|p| &p.attributes[..]).collect()
                }
                _ => Vec::new(),
            };
            if !name_ok(&m.name) {
                out.rejected.push(format!("metric name {:?}", m.name));
                continue;
            }
            let (kind, promql): (&str, Vec<(String, bool)>) = match &m.data {
                Some(metric::Data::Sum(s)) if s.is_monotonic => {
                    ("counter", vec![(m.name.clone(), false)])
                }
                Some(metric::Data::Gauge(_) | metric::Data::Sum(_)) => {
                    ("gauge", vec![(m.name.clone(), false)])
                }
                Some(metric::Data::Histogram(_) | metric::Data::ExponentialHistogram(_)) => (
                    "histogram",
                    vec![
                        (format!("{}_bucket", m.name), true),
                        (format!("{}_sum", m.name), false),
                        (format!("{}_count", m.name), false),
                    ],
                ),
                _ => continue,
            };
            for attributes in points {
                if let Some(bad) = attributes.iter().find(|kv| !key_ok(&kv.key)) {
                    out.rejected
                        .push(format!("{}: attribute key {:?}", m.name, bad.key));
                    continue;
                }
                let keys: BTreeSet<String> = attributes.iter().map(|kv| kv.key.clone()).collect();
                out.types
                    .entry(format!("prometheus.googleapis.com/{}/{kind}", m.name))
                    .or_default()
                    .extend(keys.iter().cloned());
                for (name, le) in &promql {
                    let labels = out.promql.entry(name.clone()).or_default();
                    labels.extend(keys.iter().cloned());
                    labels.extend(RESOURCE_LABELS.map(str::to_owned));
                    if *le {
                        labels.insert("le".to_owned());
                    }
                }
            }
        }
        out
    }
}
