//! What the maturity metrics are measured from: the window's SLIs, the
//! revisions seen in 7 days, the instances' CPU and memory against their
//! limits.

use std::time::Duration;

use super::maturity::{DeploymentSource, Deployments, MaturityInputs};
use super::slo::SloName;
use super::slo_report::SloReport;
use crate::store::WindowStore;

/// How far back deployments are counted.
pub const DEPLOYMENT_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// The mean of `values`, `None` without any.
pub fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0_u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// The inputs of [`maturity`](super::maturity()) for `slo`'s window ending at `now_ms`.
/// `deployments` is the service's count from its source of truth, when known;
/// else the revisions this sidecar saw count, labelled as such.
pub fn maturity_inputs(
    slo: &SloReport,
    store: &WindowStore,
    now_ms: u64,
    window: Duration,
    deployments: Option<Deployments>,
) -> MaturityInputs {
    let pair = |name: SloName| {
        slo.slos
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.current.map(|c| (c, s.target)))
    };
    let since = now_ms.saturating_sub(DEPLOYMENT_WINDOW.as_millis() as u64);
    let seen = store
        .revisions()
        .values()
        .filter(|seen| **seen >= since)
        .count() as u32;
    let deployments = deployments.unwrap_or(Deployments {
        count_7d: seen,
        source: DeploymentSource::SidecarSeen,
    });
    let active_since = now_ms.saturating_sub(window.as_millis() as u64);
    let instances: Vec<_> = store
        .ledger()
        .active_since(active_since)
        .map(|(_, e)| e)
        .collect();
    MaturityInputs {
        availability: pair(SloName::Availability),
        latency_p95: pair(SloName::LatencyP95),
        error_rate: pair(SloName::ErrorRate),
        cache_hit_rate: slo.cache.hit_rate,
        deployments_7d: (deployments.source == DeploymentSource::CloudRunApi
            || deployments.count_7d > 0)
            .then_some(deployments.count_7d),
        deployments_source: Some(deployments.source),
        cpu_utilisation: mean(instances.iter().filter_map(|e| e.cpu_utilisation())),
        memory_utilisation: mean(instances.iter().filter_map(|e| e.memory_utilisation())),
    }
}
