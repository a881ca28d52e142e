//! Reading the SDK's collected metrics: one line per data point (for the
//! stdout exporter) and data-point counts (for the export counters).

use std::fmt::Write;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

fn attributes<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> String {
    // Sorted by key, so a line reads the same from one export to the next.
    let mut parts: Vec<String> = kvs
        .map(|kv| format!("{}=\"{}\"", kv.key, kv.value))
        .collect();
    parts.sort();
    parts.join(",")
}

fn lines_of<T: std::fmt::Display + Copy>(
    name: &str,
    unit: &str,
    data: &MetricData<T>,
    out: &mut Vec<String>,
) {
    match data {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                out.push(format!(
                    "{name}{{{}}} {} {unit} gauge",
                    attributes(p.attributes()),
                    p.value()
                ));
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                out.push(format!(
                    "{name}{{{}}} {} {unit} sum {:?}",
                    attributes(p.attributes()),
                    p.value(),
                    s.temporality()
                ));
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let mut line = format!(
                    "{name}{{{}}} count={} sum={} {unit} histogram {:?} buckets=",
                    attributes(p.attributes()),
                    p.count(),
                    p.sum(),
                    h.temporality()
                );
                for (bound, count) in p.bounds().zip(p.bucket_counts()) {
                    let _ = write!(line, "le{bound}:{count} ");
                }
                out.push(line.trim_end().to_owned());
            }
        }
        MetricData::ExponentialHistogram(h) => {
            for p in h.data_points() {
                out.push(format!(
                    "{name}{{{}}} count={} {unit} exponential histogram",
                    attributes(p.attributes()),
                    p.count()
                ));
            }
        }
    }
}

/// One line per data point: `name{attr="v"} value unit kind`.
pub fn lines(metrics: &ResourceMetrics) -> Vec<String> {
    let mut out = Vec::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let (name, unit) = (metric.name(), metric.unit());
            match metric.data() {
                AggregatedMetrics::F64(d) => lines_of(name, unit, d, &mut out),
                AggregatedMetrics::U64(d) => lines_of(name, unit, d, &mut out),
                AggregatedMetrics::I64(d) => lines_of(name, unit, d, &mut out),
            }
        }
    }
    out
}

fn points_of<T>(data: &MetricData<T>) -> usize {
    match data {
        MetricData::Gauge(g) => g.data_points().count(),
        MetricData::Sum(s) => s.data_points().count(),
        MetricData::Histogram(h) => h.data_points().count(),
        MetricData::ExponentialHistogram(h) => h.data_points().count(),
    }
}

/// Data points in one metric.
pub fn points(metric: &Metric) -> usize {
    match metric.data() {
        AggregatedMetrics::F64(d) => points_of(d),
        AggregatedMetrics::U64(d) => points_of(d),
        AggregatedMetrics::I64(d) => points_of(d),
    }
}

/// Data points in a whole collection.
pub fn total_points(metrics: &ResourceMetrics) -> usize {
    metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(points)
        .sum()
}
