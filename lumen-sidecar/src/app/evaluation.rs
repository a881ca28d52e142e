//! Evaluating the store: the pure functions of [`crate::eval`] applied to a
//! window of the store, now.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::clock::now_ms;
use super::state::AppState;
use crate::eval::{
    BudgetReport, HealthReport, MaturityInputs, SloReport, budget_report, health, maturity,
    maturity_inputs, roi, roi_share_unknown,
};

/// One evaluation of a window: the SLO report and the health report.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The SLOs.
    pub slo: SloReport,
    /// Maturity, ROI and health.
    pub health: HealthReport,
    /// What the maturity metrics were measured from.
    pub inputs: MaturityInputs,
    /// App instances that sent a batch in the window.
    pub active_instances: u64,
    /// Error budgets and burn rates.
    pub budget: BudgetReport,
}

impl AppState {
    /// The configured window's evaluation, recomputed when older than
    /// `max_age` (the export's gauges share one evaluation per collection).
    pub fn cached_evaluation(&self, max_age: Duration) -> Arc<Evaluation> {
        let mut cache = self
            .evaluation_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, evaluation)) = cache.as_ref()
            && at.elapsed() < max_age
        {
            return Arc::clone(evaluation);
        }
        let evaluation = Arc::new(self.evaluate(self.config.window));
        *cache = Some((Instant::now(), Arc::clone(&evaluation)));
        evaluation
    }

    /// Evaluates `window` ending now: SLOs, then maturity, ROI and health.
    pub fn evaluate(&self, window: Duration) -> Evaluation {
        let now = now_ms();
        let (slo, inputs, active_instances, budget) = {
            let store = self.store();
            let data = store.window(now, window);
            let slo =
                SloReport::evaluate(&data, &self.config.slo, self.config.service.as_deref(), now);
            let inputs = maturity_inputs(&slo, &store, now, window, self.deployments());
            let since = now.saturating_sub(window.as_millis() as u64);
            let active = store.ledger().active_since(since).count() as u64;
            let budget = budget_report(
                store.budget(),
                &self.config.slo,
                self.config.budget_period,
                self.config.budget_min_events,
                now,
            );
            (slo, inputs, active, budget)
        };
        let roi = roi(
            slo.cache.hits,
            slo.cache.misses,
            slo.requests,
            window.as_secs_f64(),
            &self.config.roi,
        );
        // On Cloud Run this sidecar sees one instance of a fleet: without
        // its share of the cache's cost it reports no ROI of its own.
        let roi = if self.config.roi.instances.is_none() && self.config.export.cloud_run.is_some() {
            roi_share_unknown(roi)
        } else {
            roi
        };
        let health = health(&slo, maturity(&inputs), roi);
        Evaluation {
            slo,
            health,
            inputs,
            active_instances,
            budget,
        }
    }

    /// The SLO report of `window` ending now.
    pub fn report(&self, window: Duration) -> SloReport {
        let now = now_ms();
        let data = self.store().window(now, window);
        SloReport::evaluate(&data, &self.config.slo, self.config.service.as_deref(), now)
    }
}
