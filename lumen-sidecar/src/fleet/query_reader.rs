//! Reading a fleet: the queries behind `check`, `health` and the budget
//! view with `--prometheus`, and their evaluation by the sidecar's own pure
//! functions.

use std::time::Duration;

use super::health::{InstanceFigures, fleet_health};
use super::promql::{
    CACHE_LOOKUPS, CANCELLED, EXCLUSIONS, INSTANCE_COST, REQUESTS, SLO_EVENTS, selector,
    summed_gain,
};
use super::query_api::{QueryApi, QueryError, QuerySample};
use super::window::{FleetSamples, FleetWindow, budget_counts, fleet_report};
use crate::config::{DataPath, SidecarConfig};
use crate::eval::{BURN_WINDOWS, BudgetReport, HealthReport, SloReport, budget_report_of_sums};
use crate::store::exclusions::merge_spans;
use crate::store::{BudgetCounts, ExcludedSpan, Exclusion, Exclusions, MINUTE_MS};

/// How far back a fleet read looks for the sidecars' one-off marks, at
/// most: the 32 days a budget reaches.
const MARK_LOOKBACK_S: u64 = 32 * 24 * 3600;

/// What a fleet read needs: the query API, the service, the configuration
/// (SLO targets, budget period, ROI costs).
#[derive(Debug, Clone)]
pub struct FleetReader {
    /// The query API.
    pub api: QueryApi,
    /// The service, as its metrics' `service_name` label carries it.
    pub service: String,
    /// One revision's instances only (its metrics' `revision_name`), or
    /// every instance of the service.
    pub revision: Option<String>,
    /// The configuration whose targets the fleet is held against.
    pub config: SidecarConfig,
}

async fn both<A, B>(
    a: impl Future<Output = Result<A, QueryError>>,
    b: impl Future<Output = Result<B, QueryError>>,
) -> Result<(A, B), QueryError> {
    let (a, b) = tokio::join!(a, b);
    Ok((a?, b?))
}

impl FleetReader {
    /// The data path whose names the queries use: the configuration's
    /// `export.data_path`, else OTLP's names on Google's query API and the
    /// `/metrics` names on any other.
    pub fn data_path(&self) -> DataPath {
        self.config
            .export
            .data_path
            .unwrap_or(if super::needs_google_token(self.api.base()) {
                DataPath::Otlp
            } else {
                DataPath::Prometheus
            })
    }

    /// The windows kept off the error budgets overlapping `from_ms..to_ms`,
    /// as of `at_ms`, disjoint and clipped to that span: the
    /// configuration's recurring windows and the one-off marks any sidecar
    /// of the service exported in the `from_ms..at_ms` before (at most 32
    /// days), as `lumen_budget_exclusion_info` carries them. A mark whose
    /// labels are not a valid window is left aside.
    pub async fn excluded_spans(
        &self,
        from_ms: u64,
        to_ms: u64,
        at_ms: u64,
    ) -> Result<Vec<ExcludedSpan>, QueryError> {
        let lookback_s = (at_ms.saturating_sub(from_ms) / 1000).clamp(3600, MARK_LOOKBACK_S);
        let query = format!(
            "max by (from_unix_s, to_unix_s, reason) (last_over_time({}[{lookback_s}s]))",
            selector(EXCLUSIONS, &self.service, None)
        );
        let mut spans = Exclusions {
            one_off: Vec::new(),
            recurring: self.config.budget_maintenance.clone(),
        }
        .spans(from_ms, to_ms);
        for sample in self.api.instant(&query, at_ms).await? {
            let seconds = |label: &str| sample.label(label).parse::<u64>().ok();
            let (Some(from_s), Some(to_s)) = (seconds("from_unix_s"), seconds("to_unix_s")) else {
                continue;
            };
            let Ok(mark) = Exclusion::new(
                from_s.saturating_mul(1000),
                to_s.saturating_mul(1000),
                sample.label("reason"),
                "",
                0,
            ) else {
                continue;
            };
            if mark.to_ms > from_ms && mark.from_ms < to_ms {
                spans.push(ExcludedSpan {
                    from_ms: mark.from_ms,
                    to_ms: mark.to_ms,
                    reason: mark.reason,
                });
            }
        }
        Ok(merge_spans(spans)
            .into_iter()
            .map(|s| ExcludedSpan {
                from_ms: s.from_ms.max(from_ms),
                to_ms: s.to_ms.min(to_ms),
                reason: s.reason,
            })
            .filter(|s| s.to_ms > s.from_ms)
            .collect())
    }

    /// The fleet's counts over `window_s` seconds ending at `at_ms` (Unix
    /// ms), the minutes kept off the error budgets left out.
    pub async fn window(&self, window_s: u64, at_ms: u64) -> Result<FleetWindow, QueryError> {
        let from_ms = at_ms.saturating_sub(window_s * 1000);
        let spans = self.excluded_spans(from_ms, at_ms, at_ms).await?;
        let mut samples = self.samples(window_s, at_ms).await?;
        for span in &spans {
            let part = self
                .samples((span.to_ms - span.from_ms).div_ceil(1000), span.to_ms)
                .await?;
            samples.subtract(&part);
        }
        Ok(FleetWindow::from_samples(&samples))
    }

    /// The query results of the `window_s` seconds before `at_ms`, every minute counted.
    async fn samples(&self, window_s: u64, at_ms: u64) -> Result<FleetSamples, QueryError> {
        let (s, r) = (&self.service, self.revision.as_deref());
        let path = self.data_path();
        let q = |metric: &str, by: &[&'static str]| {
            summed_gain(metric, s, r, &path.by_clause(by), window_s)
        };
        let instances = format!(
            "count(count by (instance) (last_over_time({}[{window_s}s])))",
            selector(REQUESTS, s, r)
        );
        let queries = [
            q(REQUESTS, &["http_route", "status_class"]),
            q(CANCELLED, &["http_route"]),
            q(CACHE_LOOKUPS, &["http_route", "result"]),
            q(SLO_EVENTS, &["http_route", "slo_name", "result"]),
            q(path.latency_buckets(), &["http_route", "le"]),
            q(path.latency_buckets(), &["le"]),
            instances,
        ];
        let api = &self.api;
        let run = |i: usize| api.instant(&queries[i], at_ms);
        let ((requests, cancelled), (cache, slo_events)) =
            both(both(run(0), run(1)), both(run(2), run(3))).await?;
        let ((route_buckets, total_buckets), instances) =
            both(both(run(4), run(5)), run(6)).await?;
        Ok(FleetSamples {
            requests,
            cancelled,
            cache,
            slo_events,
            route_buckets,
            total_buckets,
            instances,
        })
    }

    /// The fleet's SLO report over `window` ending at `at_ms`.
    pub async fn slo_report(&self, window: Duration, at_ms: u64) -> Result<SloReport, QueryError> {
        let w = self.window(window.as_secs(), at_ms).await?;
        Ok(fleet_report(
            &w,
            &self.config.slo,
            &self.service,
            window.as_secs(),
            at_ms,
        ))
    }

    async fn slo_events(&self, window_s: u64, at_ms: u64) -> Result<Vec<QuerySample>, QueryError> {
        self.api
            .instant(
                &summed_gain(
                    SLO_EVENTS,
                    &self.service,
                    self.revision.as_deref(),
                    "slo_name, result",
                    window_s,
                ),
                at_ms,
            )
            .await
    }

    /// The summed SLO events of the `window_s` seconds before `at_ms`
    /// without those in `spans` (the period's, disjoint). (A sidecar that
    /// knew a window beforehand counted no SLO event in it; one marked
    /// afterwards is taken out here.)
    async fn budget_counts_without(
        &self,
        window_s: u64,
        at_ms: u64,
        spans: &[ExcludedSpan],
    ) -> Result<BudgetCounts, QueryError> {
        let counts = |samples: Vec<QuerySample>| {
            let w = FleetWindow::from_samples(&FleetSamples {
                slo_events: samples,
                ..FleetSamples::default()
            });
            budget_counts(&w.total.slo_events)
        };
        let from_ms = at_ms.saturating_sub(window_s * 1000);
        let mut whole = counts(self.slo_events(window_s, at_ms).await?);
        for span in spans {
            let (from, to) = (span.from_ms.max(from_ms), span.to_ms.min(at_ms));
            if to <= from {
                continue;
            }
            let part = counts(self.slo_events((to - from).div_ceil(1000), to).await?);
            whole = whole.minus(&part);
        }
        Ok(whole)
    }

    /// The requests the instances finished inside `spans`.
    async fn requests_in(&self, spans: &[ExcludedSpan]) -> Result<u64, QueryError> {
        let mut n = 0.0;
        for span in spans {
            let q = summed_gain(
                REQUESTS,
                &self.service,
                self.revision.as_deref(),
                "",
                (span.to_ms - span.from_ms).div_ceil(1000),
            );
            n += self.scalar(q, span.to_ms).await?.unwrap_or(0.0);
        }
        Ok(n.round() as u64)
    }

    /// The fleet's error budgets and burn rates at `at_ms`, from the summed
    /// SLO event counters over the period and each burn-rate window, the
    /// minutes kept off the budgets (the configuration's maintenance, the
    /// sidecars' marks) left out.
    pub async fn budget(&self, at_ms: u64) -> Result<BudgetReport, QueryError> {
        let (start_minute, _) = self.config.budget_period.bounds(at_ms);
        let period_start_ms = start_minute * MINUTE_MS;
        let period_s = (at_ms.saturating_sub(period_start_ms) / 1000).max(60);
        let spans = self
            .excluded_spans(at_ms.saturating_sub(period_s * 1000), at_ms, at_ms)
            .await?;
        let in_period = self.budget_counts_without(period_s, at_ms, &spans).await?;
        let mut windows = Vec::with_capacity(BURN_WINDOWS.len());
        for (_, minutes) in BURN_WINDOWS {
            windows.push(
                self.budget_counts_without(minutes * 60, at_ms, &spans)
                    .await?,
            );
        }
        let mut report = budget_report_of_sums(
            &in_period,
            &windows,
            &self.config.slo,
            self.config.budget_period,
            self.config.budget_min_events,
            at_ms,
        );
        report.excluded_requests = self.requests_in(&spans).await?;
        report.excluded = spans;
        report.cost = self.cost(self.config.window, at_ms).await?;
        Ok(report)
    }

    async fn scalar(&self, query: String, at_ms: u64) -> Result<Option<f64>, QueryError> {
        Ok(self
            .api
            .instant(&query, at_ms)
            .await?
            .first()
            .map(|s| s.value)
            .filter(|v| v.is_finite()))
    }

    /// The fleet's health from its SLO report `slo` (over `window` ending
    /// at `at_ms`): maturity from the fleet's SLIs (P95 a bucket estimate),
    /// the deployments the sidecars report, the mean CPU and memory use of
    /// the instances; ROI from every instance's hits against the whole
    /// cache's cost, charged once.
    pub async fn health_of(
        &self,
        slo: &SloReport,
        window: Duration,
        at_ms: u64,
    ) -> Result<HealthReport, QueryError> {
        let w = window.as_secs();
        let latest = |metric: &str, how: &str| {
            format!(
                "{how}(last_over_time({}[{w}s]))",
                selector(metric, &self.service, self.revision.as_deref())
            )
        };
        let deployments = self
            .scalar(latest("deployment_frequency", "max"), at_ms)
            .await?;
        let cpu = self
            .scalar(latest("cpu_utilization_percent", "avg"), at_ms)
            .await?;
        let memory = self
            .scalar(latest("memory_utilization_percent", "avg"), at_ms)
            .await?;
        let compute = self.compute_cost(w, at_ms).await?;
        let figures = InstanceFigures {
            deployments_7d: deployments.map(|d| d.round() as u32),
            cpu_utilisation: cpu.map(|p| p / 100.0),
            memory_utilisation: memory.map(|p| p / 100.0),
            compute_cost_usd: compute.unwrap_or(0.0),
        };
        let mut health = fleet_health(slo, figures, window, &self.config.roi);
        health.budget = self.cost(window, at_ms).await?;
        Ok(health)
    }

    /// What the instances (of the revision, if one is named) cost in the
    /// `window_s` seconds before `at_ms`, USD: the sum of their cost
    /// counters' gains. `None` when no instance exports one.
    pub async fn compute_cost(&self, window_s: u64, at_ms: u64) -> Result<Option<f64>, QueryError> {
        let q = summed_gain(
            INSTANCE_COST,
            &self.service,
            self.revision.as_deref(),
            "",
            window_s,
        );
        self.scalar(q, at_ms).await
    }

    /// The month's cost at `at_ms`: every instance's compute since the
    /// month began (all revisions: the bill is the service's), the cache's
    /// monthly cost charged once, and the forecast at the rate the
    /// instances (of the revision, if one is named) cost over `rate_window`.
    /// `None` when no instance exports a cost.
    pub async fn cost(
        &self,
        rate_window: Duration,
        at_ms: u64,
    ) -> Result<Option<crate::eval::CostReport>, QueryError> {
        let (month_start, _) = crate::eval::month_bounds(at_ms);
        let month_s = (at_ms.saturating_sub(month_start) / 1000).max(60);
        let whole_service = Self {
            revision: None,
            ..self.clone()
        };
        let Some(to_date) = whole_service.compute_cost(month_s, at_ms).await? else {
            return Ok(None);
        };
        let w = rate_window.as_secs().max(60);
        let in_window = self.compute_cost(w, at_ms).await?.unwrap_or(0.0);
        Ok(Some(crate::eval::cost_report(
            "fleet",
            to_date,
            in_window / w as f64,
            // The query API does not say when the service started: the
            // cache is charged from the month's start.
            Some(crate::eval::CacheCharge {
                monthly_usd: self.config.roi.redis_monthly_cost_usd,
                since_ms: month_start,
            }),
            self.config.cost.monthly_budget_usd,
            at_ms,
        )))
    }
}

/// A Prometheus query API as a sidecar's own [`FleetView`](crate::app::FleetView):
/// the fleet's report for its read API and status page, from the summed
/// counters (counts and verdicts exact, P95/P99 bucket estimates).
#[derive(Debug, Clone)]
pub struct PrometheusView {
    api: QueryApi,
    config: SidecarConfig,
}

impl PrometheusView {
    /// A view over `api`, against `config`'s targets.
    pub fn new(api: QueryApi, config: SidecarConfig) -> Self {
        Self { api, config }
    }
}

impl crate::app::FleetView for PrometheusView {
    fn slo_report(
        &self,
        service: &str,
        window: Duration,
        at_ms: u64,
    ) -> crate::app::ReportFuture<'_> {
        let reader = FleetReader {
            api: self.api.clone(),
            service: service.to_owned(),
            revision: None,
            config: self.config.clone(),
        };
        Box::pin(async move {
            reader
                .slo_report(window, at_ms)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
