//! Cloud Monitoring and Grafana artefacts: the dashboard, the alert
//! policies, the Prometheus rule file, the SLOs as OpenSLO documents, and the
//! REST calls that deploy them.

pub mod api;
pub mod dashboard;
mod fleet_queries;
pub mod openslo;
pub mod policies;
pub mod scope;
pub mod slos;

pub use crate::metrics::service_metric_names as exported_metric_names;
