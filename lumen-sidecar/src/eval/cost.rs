//! What the service costs, in near real time: each instance's compute cost
//! accrued from its CPU and memory limits, its lifetime and Cloud Run's
//! prices; the cache's monthly cost pro rata; the month to date and the
//! month-end forecast against the monthly budget.
//!
//! An estimate, never a bill: Google's own spend figures lag by hours (up
//! to a day), which is why the rollback gate judges this estimate. The
//! default prices are Cloud Run's published tier-1 prices for
//! instance-based billing (CPU always allocated, as the sidecar needs),
//! as of [`PRICES_AS_OF`] (not re-checked here); set yours in `[cost]`.

use serde::{Deserialize, Serialize};

use super::calendar::{civil_from_days, days_from_civil};

/// Cloud Run, tier 1, instance-based billing: USD per vCPU-second.
pub const DEFAULT_VCPU_SECOND_USD: f64 = 0.000_018;
/// Cloud Run, tier 1, instance-based billing: USD per GiB-second.
pub const DEFAULT_GIB_SECOND_USD: f64 = 0.000_002;
/// The date the default prices stand for (cloud.google.com/run/pricing as
/// known then; not re-checked when this was written: verify yours).
pub const PRICES_AS_OF: &str = "2025-06";
/// vCPUs one instance is billed for: the deploy kit's app 0.75 + sidecar 0.25.
pub const DEFAULT_INSTANCE_VCPU: f64 = 1.0;
/// GiB one instance is billed for: the deploy kit's app 512 MiB + sidecar 256 MiB.
pub const DEFAULT_INSTANCE_MEMORY_GIB: f64 = 0.75;
/// The default monthly cost budget, USD.
pub const DEFAULT_MONTHLY_BUDGET_USD: f64 = 200.0;

/// The cost settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostConfig {
    /// vCPUs one instance is billed for (every container's limit summed).
    pub instance_vcpu: f64,
    /// GiB of memory one instance is billed for (every container's limit summed).
    pub instance_memory_gib: f64,
    /// Price of a vCPU-second, USD.
    pub vcpu_second_usd: f64,
    /// Price of a GiB-second, USD.
    pub gib_second_usd: f64,
    /// The service's monthly budget, USD.
    pub monthly_budget_usd: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            instance_vcpu: DEFAULT_INSTANCE_VCPU,
            instance_memory_gib: DEFAULT_INSTANCE_MEMORY_GIB,
            vcpu_second_usd: DEFAULT_VCPU_SECOND_USD,
            gib_second_usd: DEFAULT_GIB_SECOND_USD,
            monthly_budget_usd: DEFAULT_MONTHLY_BUDGET_USD,
        }
    }
}

impl CostConfig {
    /// What one instance costs per second of its life, USD.
    pub fn instance_usd_per_s(&self) -> f64 {
        self.instance_vcpu * self.vcpu_second_usd + self.instance_memory_gib * self.gib_second_usd
    }

    /// What one instance has cost after `lifetime_s` seconds, USD.
    pub fn accrued_usd(&self, lifetime_s: f64) -> f64 {
        self.instance_usd_per_s() * lifetime_s.max(0.0)
    }
}

/// The calendar month (UTC) holding `at_ms`: its first and next month's
/// first millisecond.
pub fn month_bounds(at_ms: u64) -> (u64, u64) {
    let day = (at_ms / 86_400_000) as i64;
    let (y, m, _) = civil_from_days(day);
    let start = days_from_civil(y, m, 1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = days_from_civil(ny, nm, 1);
    (start as u64 * 86_400_000, end as u64 * 86_400_000)
}

/// The month's cost so far and at its end, against the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// Whose cost: `"instance"` (one sidecar's own) or `"fleet"`.
    pub scope: String,
    /// The month's first millisecond (UTC).
    pub month_start_ms: u64,
    /// The next month's first millisecond.
    pub month_end_ms: u64,
    /// Compute (instances) so far this month, USD.
    pub compute_usd: f64,
    /// The cache's monthly cost, pro rata from when it is charged (the
    /// month's start, or the service's if later) to now, USD; 0 without a
    /// cache.
    pub cache_usd: f64,
    /// `compute_usd + cache_usd`.
    pub month_to_date_usd: f64,
    /// The compute cost's current rate, USD per hour.
    pub compute_usd_per_hour: f64,
    /// The month's end at the current rate: month to date, plus the current
    /// compute rate for the rest of the month, plus the rest of the cache's
    /// monthly cost.
    pub forecast_usd: f64,
    /// The monthly budget, USD.
    pub budget_usd: f64,
    /// The forecast over the budget, percent.
    pub forecast_percent_of_budget: f64,
    /// Whether the forecast is above the budget.
    pub over_budget: bool,
    /// What these figures are.
    pub note: String,
}

/// The cache of a cost report: its monthly price, charged once, from
/// `since_ms` (or the month's start, if later). `None`: there is no cache
/// (none configured, no lookup reported), and nothing is charged for one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheCharge {
    /// The cache's monthly price, USD.
    pub monthly_usd: f64,
    /// From when it is charged (the service's start), Unix ms.
    pub since_ms: u64,
}

/// The month's cost at `at_ms` of `scope`, from the compute accrued this
/// month and its current rate (USD per second), with the cache (when there
/// is one) charged once from when the service started.
pub fn cost_report(
    scope: &str,
    compute_usd: f64,
    compute_usd_per_s: f64,
    cache: Option<CacheCharge>,
    budget_usd: f64,
    at_ms: u64,
) -> CostReport {
    let (start, end) = month_bounds(at_ms);
    let month_s = (end - start) as f64 / 1000.0;
    let elapsed_s = at_ms.saturating_sub(start) as f64 / 1000.0;
    let left_s = (month_s - elapsed_s).max(0.0);
    let (cache_usd, cache_rest_usd) = match cache {
        Some(c) => {
            let charged_s = at_ms.saturating_sub(c.since_ms.max(start)) as f64 / 1000.0;
            (
                c.monthly_usd * charged_s / month_s,
                c.monthly_usd * left_s / month_s,
            )
        }
        None => (0.0, 0.0),
    };
    let month_to_date_usd = compute_usd + cache_usd;
    let forecast_usd = month_to_date_usd + compute_usd_per_s * left_s + cache_rest_usd;
    let forecast_percent_of_budget = if budget_usd > 0.0 {
        forecast_usd / budget_usd * 100.0
    } else {
        0.0
    };
    CostReport {
        scope: scope.to_owned(),
        month_start_ms: start,
        month_end_ms: end,
        compute_usd,
        cache_usd,
        month_to_date_usd,
        compute_usd_per_hour: compute_usd_per_s * 3600.0,
        forecast_usd,
        budget_usd,
        forecast_percent_of_budget,
        over_budget: forecast_usd > budget_usd,
        note: format!(
            "an estimate from instance lifetimes, limits and the configured prices (defaults: Cloud Run tier-1 list prices as of {PRICES_AS_OF}), not a bill; Google's spend figures lag by hours"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_cover_december_and_leap_february() {
        // 2026-12-02T09:00Z.
        let at = days_from_civil(2026, 12, 2) as u64 * 86_400_000 + 9 * 3_600_000;
        let (s, e) = month_bounds(at);
        assert_eq!(s, days_from_civil(2026, 12, 1) as u64 * 86_400_000);
        assert_eq!(e, days_from_civil(2027, 1, 1) as u64 * 86_400_000);
        let feb = days_from_civil(2028, 2, 29) as u64 * 86_400_000;
        let (s, e) = month_bounds(feb);
        assert_eq!((e - s) / 86_400_000, 29);
    }

    #[test]
    fn an_instance_costs_its_limits_times_the_prices() {
        let c = CostConfig::default();
        // 1 vCPU × 0.000018 + 0.75 GiB × 0.000002 = 0.0000195 USD/s.
        assert!((c.instance_usd_per_s() - 0.000_019_5).abs() < 1e-15);
        assert!((c.accrued_usd(3600.0) - 0.0702).abs() < 1e-12);
        assert_eq!(c.accrued_usd(-5.0), 0.0);
    }

    #[test]
    fn forecast_is_to_date_plus_the_rate_for_the_rest_plus_the_cache_once() {
        // Ten days into a 30-day month (November 2026).
        let start = days_from_civil(2026, 11, 1) as u64 * 86_400_000;
        let at = start + 10 * 86_400_000;
        let cache = Some(CacheCharge {
            monthly_usd: 30.0,
            since_ms: 0,
        });
        let r = cost_report("fleet", 40.0, 100.0 / (30.0 * 86_400.0), cache, 200.0, at);
        assert!((r.cache_usd - 10.0).abs() < 1e-9);
        assert!((r.month_to_date_usd - 50.0).abs() < 1e-9);
        // 50 so far + 100/30 a day for 20 days + the cache's other 20.
        let expected = 50.0 + 100.0 * 20.0 / 30.0 + 20.0;
        assert!((r.forecast_usd - expected).abs() < 1e-9, "{r:?}");
        assert!(!r.over_budget);
        let r = cost_report("fleet", 40.0, 400.0 / (30.0 * 86_400.0), cache, 200.0, at);
        assert!(r.over_budget, "{r:?}");
        assert!(r.forecast_percent_of_budget > 100.0);
    }

    #[test]
    fn a_cache_is_charged_only_when_there_is_one_and_from_the_start() {
        let start = days_from_civil(2026, 11, 1) as u64 * 86_400_000;
        let at = start + 10 * 86_400_000;
        // A service started a minute ago without a cache: nothing for one.
        let r = cost_report("instance", 0.001, 0.0, None, 200.0, at);
        assert_eq!(r.cache_usd, 0.0);
        assert!((r.month_to_date_usd - 0.001).abs() < 1e-12);
        // With one, started a minute ago: a minute of it so far, the rest
        // of the month forecast.
        let cache = Some(CacheCharge {
            monthly_usd: 30.0,
            since_ms: at - 60_000,
        });
        let r = cost_report("instance", 0.0, 0.0, cache, 200.0, at);
        assert!(
            (r.cache_usd - 30.0 * 60.0 / (30.0 * 86_400.0)).abs() < 1e-12,
            "{r:?}"
        );
        assert!(
            (r.forecast_usd - (r.cache_usd + 20.0)).abs() < 1e-9,
            "{r:?}"
        );
    }
}
