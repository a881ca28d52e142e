//! The fleet: a service's figures over every instance, read from a
//! Prometheus-compatible query API (a self-hosted Prometheus, Thanos,
//! Mimir, or Google Cloud Managed Service for Prometheus) that already
//! gathers every sidecar's counters.
//!
//! Counts are exact (sums of each sidecar's exact counters over the
//! window); the latency SLOs are judged from the exact requests under each
//! target; the P95/P99 values are estimates from summed histogram buckets,
//! and say so with their bucket's bounds. Evaluation is the sidecar's own
//! pure functions: same JSON, same exit codes.
//!
//! Or from the fleet store ([`store`]): every sidecar's exact histograms
//! in the service's Redis, merged into exact fleet percentiles.

mod health;
pub mod promql;
pub mod query_api;
mod query_reader;
mod source;
pub mod store;
mod window;

pub use health::{InstanceFigures, fleet_health};
pub use query_api::{QueryApi, QueryError, QuerySample};
pub use query_reader::{FleetReader, PrometheusView};
pub use source::{FleetError, FleetSource};
pub use window::{FleetRoute, FleetSamples, FleetWindow, budget_counts, fleet_report, fleet_slis};

/// Whether a query API needs a Google access token (it is Google's).
pub fn needs_google_token(url: &str) -> bool {
    url.starts_with("https://monitoring.googleapis.com/")
}
