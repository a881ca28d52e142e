//! A fleet's health from its SLO report and its instances' figures: the
//! same for every fleet source.

use std::time::Duration;

use crate::eval::{
    DeploymentSource, HealthReport, MaturityInputs, RoiConfig, SloName, SloReport, health,
    maturity, roi,
};

/// What a fleet source knows of its instances besides the SLO report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstanceFigures {
    /// Deployments in 7 days, the most any instance knows.
    pub deployments_7d: Option<u32>,
    /// The instances' mean CPU use against their limits, 0 to 1.
    pub cpu_utilisation: Option<f64>,
    /// The instances' mean memory use against their limits, 0 to 1.
    pub memory_utilisation: Option<f64>,
    /// What the instances cost in the window, USD (0 when not known).
    pub compute_cost_usd: f64,
}

/// The fleet's health: maturity from the fleet's SLIs and `figures`, ROI
/// from every instance's hits against the whole cache's cost, charged once.
pub fn fleet_health(
    slo: &SloReport,
    figures: InstanceFigures,
    window: Duration,
    roi_config: &RoiConfig,
) -> HealthReport {
    let pair = |name: SloName| {
        slo.slos
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.current.map(|c| (c, s.target)))
    };
    let inputs = MaturityInputs {
        availability: pair(SloName::Availability),
        latency_p95: pair(SloName::LatencyP95),
        error_rate: pair(SloName::ErrorRate),
        cache_hit_rate: slo.cache.hit_rate,
        deployments_7d: figures.deployments_7d,
        deployments_source: figures
            .deployments_7d
            .map(|_| DeploymentSource::SidecarSeen),
        cpu_utilisation: figures.cpu_utilisation,
        memory_utilisation: figures.memory_utilisation,
    };
    let fleet_roi = RoiConfig {
        instances: Some(1),
        ..*roi_config
    };
    let roi = roi(
        slo.cache.hits,
        slo.cache.misses,
        slo.requests,
        window.as_secs_f64(),
        figures.compute_cost_usd,
        &fleet_roi,
    );
    health(slo, maturity(&inputs), roi)
}
