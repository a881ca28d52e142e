//! Evaluating the store: the pure functions of [`crate::eval`] applied to a
//! window of the store, now.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::clock::now_ms;
use super::state::AppState;
use super::what_if_answer::WhatIfAnswer;
use crate::eval::{
    BudgetReport, HealthReport, MaturityInputs, SeriesReport, SloReport, budget_report,
    distribution, health, maturity, maturity_inputs, roi, roi_share_unknown, series_point,
};
use crate::eval::{SloPeriod, SloTargets, what_if};
use crate::store::{BudgetLedger, MINUTE_MS, RouteWindow, WindowData};

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

/// The configured window's last evaluation, kept by whoever reads it
/// often (the export's gauges share one per collection).
#[derive(Debug, Default)]
pub struct EvaluationCache(Mutex<Option<(Instant, Arc<Evaluation>)>>);

impl EvaluationCache {
    /// The configured window's evaluation of `state`, recomputed when
    /// older than `max_age`.
    pub fn get(&self, state: &AppState, max_age: Duration) -> Arc<Evaluation> {
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, evaluation)) = cache.as_ref()
            && at.elapsed() < max_age
        {
            return Arc::clone(evaluation);
        }
        let evaluation = Arc::new(state.evaluate(state.config.window));
        *cache = Some((Instant::now(), Arc::clone(&evaluation)));
        evaluation
    }
}

impl AppState {
    /// Evaluates `window` ending now: SLOs, then maturity, ROI and health.
    pub fn evaluate(&self, window: Duration) -> Evaluation {
        let now = now_ms();
        let (slo, inputs, active_instances, budget) = {
            let store = self.store();
            // Minutes kept off the budget are kept off the SLOs and health.
            let data = store.slo_window(now, window);
            let slo =
                SloReport::evaluate(&data, &self.config.slo, self.config.service.as_deref(), now);
            let inputs = maturity_inputs(&slo, &store, now, window, self.deployments());
            let since = now.saturating_sub(window.as_millis() as u64);
            let active = store.ledger().active_since(since).count() as u64;
            let mut budget = budget_report(
                store.budget(),
                &self.config.slo,
                self.config.budget_period,
                self.config.budget_min_events,
                now,
            );
            budget.excluded = store.exclusions().spans(budget.period_start_ms, now);
            (slo, inputs, active, budget)
        };
        // This instance's compute over the window (or its life, if shorter).
        let lived_s = now.saturating_sub(self.started_ms()) as f64 / 1000.0;
        let compute = self
            .config
            .cost
            .accrued_usd(window.as_secs_f64().min(lived_s));
        let roi = roi(
            slo.cache.hits,
            slo.cache.misses,
            slo.requests,
            window.as_secs_f64(),
            compute,
            &self.config.roi,
        );
        // On Cloud Run this sidecar sees one instance of a fleet: without
        // its share of the cache's cost it reports no ROI of its own.
        let roi = if self.config.roi.instances.is_none() && self.config.export.cloud_run.is_some() {
            roi_share_unknown(roi)
        } else {
            roi
        };
        let mut health = health(&slo, maturity(&inputs), roi);
        health.budget = Some(self.instance_cost(now));
        let mut budget = budget;
        budget.cost = health.budget.clone();
        Evaluation {
            slo,
            health,
            inputs,
            active_instances,
            budget,
        }
    }

    /// This instance's cost this month and its forecast, as if it ran to
    /// the month's end: its compute since it started (or since the month
    /// began), and its share of the cache's cost from when it started, only
    /// when there is a cache (its price configured, or lookups reported).
    pub fn instance_cost(&self, now: u64) -> crate::eval::CostReport {
        let (month_start, _) = crate::eval::month_bounds(now);
        let since = self.started_ms().max(month_start);
        let c = &self.config.cost;
        let share = 1.0 / f64::from(self.config.roi.instances.unwrap_or(1).max(1));
        let has_cache = self.config.cache_cost_set || !self.totals().cache.is_empty();
        crate::eval::cost_report(
            "instance",
            c.accrued_usd(now.saturating_sub(since) as f64 / 1000.0),
            c.instance_usd_per_s(),
            has_cache.then(|| crate::eval::CacheCharge {
                monthly_usd: self.config.roi.redis_monthly_cost_usd * share,
                since_ms: self.started_ms(),
            }),
            c.monthly_budget_usd * share,
            now,
        )
    }

    /// `window` ending now in steps of `step` (whole minutes; `window` a
    /// multiple of `step`), for the whole service or one `route`: each
    /// step's indicators and the window's latency distribution. The store
    /// is locked one step at a time.
    pub fn series(&self, window: Duration, step: Duration, route: Option<&str>) -> SeriesReport {
        let now = now_ms();
        let last = now / MINUTE_MS;
        let step_minutes = (step.as_secs() / 60).max(1);
        let steps = (window.as_secs() / 60 / step_minutes).max(1);
        let classes = &self.config.slo.error_classes;
        let pick = |data: WindowData| -> Option<RouteWindow> {
            match route {
                None => Some(data.total),
                Some(r) => data
                    .routes
                    .into_iter()
                    .find(|(name, _)| name.as_deref() == Some(r))
                    .map(|(_, w)| w),
            }
        };
        let mut points = Vec::with_capacity(steps as usize);
        for k in 0..steps {
            let end = last.saturating_sub((steps - 1 - k) * step_minutes);
            let start_ms = (end + 1).saturating_sub(step_minutes) * MINUTE_MS;
            let data = self.store().window(end * MINUTE_MS, step);
            let point = match pick(data) {
                Some(w) => series_point(start_ms, &w, classes),
                None => series_point(start_ms, &empty_window(), classes),
            };
            points.push(point);
        }
        let (whole, excluded, deploys) = {
            let store = self.store();
            let from = now.saturating_sub(window.as_millis() as u64);
            let deploys: Vec<crate::eval::Deploy> = store
                .revisions_first_seen()
                .iter()
                .filter(|(_, at)| **at >= from)
                .map(|(revision, at)| crate::eval::Deploy {
                    revision: revision.clone(),
                    at_ms: *at,
                })
                .collect();
            (
                store.window(now, window),
                store.exclusions().spans(from, now),
                deploys,
            )
        };
        SeriesReport {
            route: route.map(str::to_owned),
            window_s: window.as_secs(),
            step_s: step_minutes * 60,
            points,
            distribution: pick(whole).map(|w| distribution(&w)).unwrap_or_default(),
            excluded,
            deploys,
        }
    }

    /// The SLO report of `window` ending now.
    pub fn report(&self, window: Duration) -> SloReport {
        let now = now_ms();
        let data = self.store().slo_window(now, window);
        SloReport::evaluate(&data, &self.config.slo, self.config.service.as_deref(), now)
    }
}

fn empty_window() -> RouteWindow {
    RouteWindow {
        counts: crate::store::Counts::default(),
        latency: crate::store::WindowHistogram::new(crate::store::store_layout()),
    }
}

impl AppState {
    /// `targets` over this sidecar's history for `period`, at `now_ms`:
    /// the ledger as it is when the targets count the same events as the
    /// configured ones (their shares differ only), else the events counted
    /// again from the minutes the store holds.
    pub fn what_if(&self, targets: &SloTargets, period: SloPeriod, now_ms: u64) -> WhatIfAnswer {
        let rules = crate::config::budget_rules_of(targets);
        let same_events = rules == self.config.budget_rules();
        // Under the store's lock only what is cheap: the ledger, or the
        // minutes shared; their counting waits for the lock's release, so
        // ingest never waits on a what-if.
        let (ledger, held, exclusions) = {
            let store = self.store();
            let exclusions = store.exclusions().clone();
            if same_events {
                (Some(store.budget().clone()), Vec::new(), exclusions)
            } else {
                (None, store.held_by_minute(), exclusions)
            }
        };
        let (ledger, recounted_from_ms) = match ledger {
            Some(ledger) => (ledger, None),
            None => {
                let minutes: std::collections::BTreeMap<u64, crate::store::BudgetCounts> = held
                    .iter()
                    // Minutes kept off the budget stay off it here too.
                    .filter(|(minute, _)| !exclusions.covers(*minute))
                    .map(|(minute, h)| (*minute, h.budget_counts(&rules)))
                    .collect();
                let first = minutes.keys().next().copied().unwrap_or(now_ms / MINUTE_MS);
                // From the whole hour: a ledger counts the minutes before
                // its first whole hour in its (here empty) hour tier.
                let fine_since = first / 60 * 60;
                (
                    BudgetLedger::from_parts(
                        minutes,
                        std::collections::BTreeMap::new(),
                        fine_since,
                    ),
                    Some(first * MINUTE_MS),
                )
            }
        };
        WhatIfAnswer {
            targets: targets.clone(),
            period: period.name(),
            what_if: what_if(
                &ledger,
                targets,
                period,
                self.config.budget_min_events,
                now_ms,
            ),
            recounted_from_ms,
            scope: "this instance".to_owned(),
        }
    }
}
