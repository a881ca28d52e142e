//! Cloud Monitoring and Grafana artefacts: the dashboard, the alert
//! policies and the Prometheus rule file, and the REST calls that deploy them.

pub mod api;
pub mod commands;
pub mod dashboard;
pub mod policies;
pub mod slos;

/// Every metric name the sidecar exports (gauges, counters, histogram):
/// what dashboards and rules may query.
pub fn exported_metric_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = crate::export::GAUGES.iter().map(|(n, _)| *n).collect();
    names.extend(crate::server::prometheus::SERVICE_GAUGES);
    names.push(crate::export::REQUEST_COUNTER);
    names.push(crate::export::DURATION_HISTOGRAM);
    names.sort_unstable();
    names.dedup();
    names
}
