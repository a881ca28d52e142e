//! Where a fleet is read from: a Prometheus query API (exact counts,
//! bucket-estimated percentiles) or the fleet store (exact histograms).

use std::time::Duration;

use thiserror::Error;

use super::query_api::QueryError;
use super::query_reader::FleetReader;
use super::store::{FleetStoreError, FleetStoreReader};
use crate::config::SidecarConfig;
use crate::eval::{BudgetReport, HealthReport, SloReport};

/// A fleet that could not be read.
#[derive(Debug, Error)]
pub enum FleetError {
    /// The query API failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The fleet store failed.
    #[error(transparent)]
    Store(#[from] FleetStoreError),
}

/// A fleet's source.
#[derive(Debug, Clone)]
pub enum FleetSource {
    /// A Prometheus query API gathering every sidecar's counters.
    Prometheus(Box<FleetReader>),
    /// The fleet store every sidecar writes its minutes to.
    Store(Box<FleetStoreReader>),
}

impl FleetSource {
    /// The service read.
    pub fn service(&self) -> &str {
        match self {
            Self::Prometheus(r) => &r.service,
            Self::Store(r) => &r.service,
        }
    }

    /// The configuration the fleet is held against.
    pub fn config(&self) -> &SidecarConfig {
        match self {
            Self::Prometheus(r) => &r.config,
            Self::Store(r) => &r.config,
        }
    }

    /// The fleet's SLO report over `window` ending at `at_ms`.
    pub async fn slo_report(&self, window: Duration, at_ms: u64) -> Result<SloReport, FleetError> {
        Ok(match self {
            Self::Prometheus(r) => r.slo_report(window, at_ms).await?,
            Self::Store(r) => r.slo_report(window, at_ms).await?,
        })
    }

    /// The fleet's health from its SLO report.
    pub async fn health_of(
        &self,
        slo: &SloReport,
        window: Duration,
        at_ms: u64,
    ) -> Result<HealthReport, FleetError> {
        Ok(match self {
            Self::Prometheus(r) => r.health_of(slo, window, at_ms).await?,
            Self::Store(r) => r.health_of(slo, window, at_ms).await?,
        })
    }

    /// The fleet's health over `window` ending at `at_ms`.
    pub async fn health(&self, window: Duration, at_ms: u64) -> Result<HealthReport, FleetError> {
        let slo = self.slo_report(window, at_ms).await?;
        self.health_of(&slo, window, at_ms).await
    }

    /// The fleet's error budgets and burn rates at `at_ms`.
    pub async fn budget(&self, at_ms: u64) -> Result<BudgetReport, FleetError> {
        Ok(match self {
            Self::Prometheus(r) => r.budget(at_ms).await?,
            Self::Store(r) => r.budget(at_ms).await?,
        })
    }
}
