//! Evaluation: pure functions from a window's data to indicators, SLO
//! results, compliance and status. No I/O, no clock: callers pass `now`.

pub mod alert_rules;
mod bucket_quantile;
mod error_budget;
mod cache_tiers;
pub mod calendar;
mod cost;
mod experiment;
mod experiment_stats;
mod health;
mod health_inputs;
mod maturity;
pub mod min_instances;
pub mod mrc;
mod revision_comparison;
mod roi;
mod series;
mod slis;
mod slo;
mod slo_report;
mod ttl_controller;
mod what_if;

pub use bucket_quantile::{BucketEstimate, bucket_quantile};
pub use cache_tiers::{
    LayoutCost, MIN_SAVING, MIN_TIER_LOOKUPS, TierChoice, TierLayout, TierMeans, choose_tiers,
};
pub use cost::{
    CacheCharge, CostConfig, CostReport, DEFAULT_MONTHLY_BUDGET_USD, PRICES_AS_OF, cost_report,
    month_bounds,
};
pub use error_budget::{
    ALERT_TABLE, BURN_WINDOWS, BudgetAlert, BudgetReport, BurnRate, BurndownPoint,
    DEFAULT_MIN_EVENTS, SloBudget, SloPeriod, alert_factor, allowed_share, budget_report,
    budget_report_of_sums, burn_rate,
};
pub use experiment::{
    ArmCounts, Comparison, DEFAULT_ALPHA, DEFAULT_EXPERIMENT_DURATION, DEFAULT_SHARE_B_PERCENT,
    DEFAULT_TAU, Direction, ExperimentSpec, MIN_ARM_REQUESTS, Metric, Outcome, SRM_P_VALUE,
    Verdict, compare, describe, judge,
};
pub use experiment_stats::{
    AlwaysValid, SRM_PRIOR_CONCENTRATION, always_valid_difference, erfc, ln_gamma, srm_p_value,
    srm_sequential_p_value,
};
pub use health::{
    Action, Band, Category, Component, HealthReport, MATURITY_ACTION_BELOW, NO_ACTIONS, Priority,
    SloSummary, Threshold, WEIGHTS, band_of, health,
};
pub use health_inputs::{DEPLOYMENT_WINDOW, maturity_inputs, mean};
pub use maturity::{
    DEPLOYS_FOR_FULL_SCORE, DeploymentSource, Deployments, FAILURE_MULTIPLE_AT_ZERO,
    HIT_RATE_RANGE, LEVEL_NAMES, MIN_MEASURED_METRICS, Maturity, MaturityInputs, MetricScore,
    level_of, maturity, score_availability, score_deployments, score_failure_share, score_hit_rate,
    score_latency, score_utilisation,
};
pub use revision_comparison::{
    DEFAULT_ROLLOUT_ALPHA, DEFAULT_ROLLOUT_MIN_REQUESTS, DEFAULT_ROLLOUT_TAU,
    DEFAULT_SHARE_TOLERANCE, DEFAULT_SHIFT_TOLERANCE, Finding, MetricDifference, QuantileBand,
    ROLLOUT_TESTS, RevisionComparison, RevisionCounts, RolloutTests, cdf_band, compare_revisions,
};
pub use roi::{
    DEFAULT_COST_PER_MISS_USD, DEFAULT_PASS_PERCENT, DEFAULT_REDIS_MONTHLY_USD,
    DEFAULT_WARN_PERCENT, Gate, MONTH_S, RoiConfig, RoiResult, roi, roi_score, roi_share_unknown,
};
pub use series::{
    CURVE_QUANTILES, CurvePoint, Deploy, MAX_POINTS, SeriesPoint, SeriesReport, distribution,
    series_point,
};
pub use slis::{LatencyBuckets, Slis, StatusClass, error_count};
pub use slo::{
    DEFAULT_AVAILABILITY_PERCENT, DEFAULT_ERROR_RATE_PERCENT, DEFAULT_LATENCY_P95_MS,
    DEFAULT_LATENCY_P99_MS, SloEvaluation, SloName, SloResult, SloTargets, Status,
    WARNING_COMPLIANCE_PERCENT, evaluate, status_of,
};
pub use slo_report::{
    CacheReport, CountsReport, LatencyPercentiles, ReportScope, RouteReport, SloReport,
};
pub use ttl_controller::{
    DEFAULT_TARGET_HIT_RATE, TtlControl, TtlStep, next_ttl, poisson_ttl_hit_rate,
};
pub use what_if::{FiredAlert, WhatIf, what_if};
