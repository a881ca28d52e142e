//! The ROI gate: what the cache saves against what it costs.

use serde::{Deserialize, Serialize};

/// Default cost of one cache miss (the backend call a hit avoids), USD.
pub const DEFAULT_COST_PER_MISS_USD: f64 = 0.002;
/// Default monthly cost of the cache (Redis), USD.
pub const DEFAULT_REDIS_MONTHLY_USD: f64 = 50.0;
/// Default ROI (percent) at or above which the gate passes.
pub const DEFAULT_PASS_PERCENT: f64 = 500.0;
/// Default ROI (percent) at or above which the gate warns rather than fails.
pub const DEFAULT_WARN_PERCENT: f64 = 300.0;
/// A month, for prorating the monthly cost, seconds.
pub const MONTH_S: f64 = 30.0 * 86_400.0;

/// The ROI settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoiConfig {
    /// What one hit saves, USD.
    pub cost_per_miss_usd: f64,
    /// The cache's monthly cost, USD (must be above 0).
    pub redis_monthly_cost_usd: f64,
    /// PASS at or above, percent.
    pub pass_percent: f64,
    /// WARN at or above, percent.
    pub warn_percent: f64,
    /// Instances the cache's cost is shared over, for one sidecar's own
    /// (per-instance) ROI: its instance is charged `1 / instances` of the
    /// bill. `None`: not said (a fleet then gets no per-instance ROI).
    pub instances: Option<u32>,
}

impl Default for RoiConfig {
    fn default() -> Self {
        Self {
            cost_per_miss_usd: DEFAULT_COST_PER_MISS_USD,
            redis_monthly_cost_usd: DEFAULT_REDIS_MONTHLY_USD,
            pass_percent: DEFAULT_PASS_PERCENT,
            warn_percent: DEFAULT_WARN_PERCENT,
            instances: None,
        }
    }
}

/// The gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Gate {
    /// ROI at or above the pass threshold.
    Pass,
    /// ROI at or above the warn threshold.
    Warn,
    /// ROI below the warn threshold.
    Fail,
    /// No request in the window.
    NoData,
}

/// The ROI of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoiResult {
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Hits over lookups, percent.
    pub hit_rate: Option<f64>,
    /// Hits × cost per miss, USD.
    pub savings_usd: f64,
    /// The service's cost in the window, USD: the cache's monthly cost
    /// prorated (its share) plus [`RoiResult::compute_cost_usd`].
    pub cost_usd: f64,
    /// What the instances cost in the window, USD (see `[cost]`).
    #[serde(default)]
    pub compute_cost_usd: f64,
    /// (savings − cost) ÷ cost × 100.
    pub roi_percent: Option<f64>,
    /// PASS, WARN, FAIL or NO_DATA.
    pub gate: Gate,
    /// The ROI mapped onto 0–100 by [`roi_score`].
    pub score: Option<f64>,
    /// The thresholds used.
    pub pass_percent: f64,
    /// The thresholds used.
    pub warn_percent: f64,
    /// The share of the cache's cost charged (`1 / instances`).
    pub cost_share: f64,
    /// Why there is no ROI, when there is none.
    pub missing: Option<String>,
}

/// 100 at or above the pass threshold; 70 to 100 linearly between warn and
/// pass; 0 to 70 linearly between 0 % and warn; 0 below 0 %.
pub fn roi_score(roi: f64, warn: f64, pass: f64) -> f64 {
    if roi >= pass {
        100.0
    } else if roi >= warn {
        70.0 + 30.0 * (roi - warn) / (pass - warn)
    } else if roi >= 0.0 {
        70.0 * roi / warn
    } else {
        0.0
    }
}

/// The ROI of `hits`/`misses` over `window_s` seconds with `requests`
/// finished, against the service's cost: `compute_cost_usd` (what the
/// instances cost in the window) plus `1 / instances` of the cache's cost
/// (all of it when `instances` is `None`: callers decide whether that is
/// true, see [`RoiConfig::instances`]).
pub fn roi(
    hits: u64,
    misses: u64,
    requests: u64,
    window_s: f64,
    compute_cost_usd: f64,
    c: &RoiConfig,
) -> RoiResult {
    let lookups = hits + misses;
    let hit_rate = (lookups > 0).then(|| hits as f64 * 100.0 / lookups as f64);
    let savings = hits as f64 * c.cost_per_miss_usd;
    let cost_share = 1.0 / f64::from(c.instances.unwrap_or(1).max(1));
    let compute_cost_usd = compute_cost_usd.max(0.0);
    let cost = c.redis_monthly_cost_usd * window_s / MONTH_S * cost_share + compute_cost_usd;
    let missing = if requests == 0 {
        Some("no request in the window".to_owned())
    } else if lookups == 0 {
        Some("no cache lookups reported in the window".to_owned())
    } else {
        None
    };
    let (roi_percent, gate, score) = if missing.is_some() || cost <= 0.0 {
        (None, Gate::NoData, None)
    } else {
        let r = (savings - cost) / cost * 100.0;
        let gate = if r >= c.pass_percent {
            Gate::Pass
        } else if r >= c.warn_percent {
            Gate::Warn
        } else {
            Gate::Fail
        };
        (
            Some(r),
            gate,
            Some(roi_score(r, c.warn_percent, c.pass_percent)),
        )
    };
    RoiResult {
        hits,
        misses,
        hit_rate,
        savings_usd: savings,
        cost_usd: cost,
        compute_cost_usd,
        roi_percent,
        gate,
        score,
        pass_percent: c.pass_percent,
        warn_percent: c.warn_percent,
        cost_share,
        missing,
    }
}

/// A fleet's instance cannot know its share of a shared cost: its ROI is
/// left out, saying why, rather than charged the whole bill.
pub fn roi_share_unknown(mut r: RoiResult) -> RoiResult {
    r.roi_percent = None;
    r.score = None;
    r.gate = Gate::NoData;
    r.missing = Some(
        "one instance of a fleet: its share of the cache's cost is unknown (set roi.instances / LUMEN_ROI_INSTANCES, or read the fleet ROI on the dashboard and policies)".to_owned(),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RoiConfig {
        // $30 a month is $1 a day; a hit saves 1 cent.
        RoiConfig {
            cost_per_miss_usd: 0.01,
            redis_monthly_cost_usd: 30.0,
            ..RoiConfig::default()
        }
    }

    #[test]
    fn gate_boundaries() {
        let day = 86_400.0;
        // 600 hits save $6 against $1: ROI 500 % exactly → PASS.
        for (hits, roi_expected, gate) in [
            (600, 500.0, Gate::Pass),
            (599, 499.0, Gate::Warn),
            (400, 300.0, Gate::Warn),
            (399, 299.0, Gate::Fail),
            (0, -100.0, Gate::Fail),
        ] {
            let r = roi(hits, 10, 1000, day, 0.0, &cfg());
            assert!(
                (r.roi_percent.expect("data") - roi_expected).abs() < 1e-9,
                "{hits}"
            );
            assert_eq!(r.gate, gate, "{hits}");
        }
        let r = roi(600, 400, 1000, day, 0.0, &cfg());
        assert!((r.savings_usd - 6.0).abs() < 1e-12);
        assert!((r.cost_usd - 1.0).abs() < 1e-12);
        assert_eq!(r.hit_rate, Some(60.0));
    }

    #[test]
    fn score_boundaries() {
        for (r, s) in [
            (900.0, 100.0),
            (500.0, 100.0),
            (400.0, 85.0),
            (300.0, 70.0),
            (150.0, 35.0),
            (0.0, 0.0),
            (-100.0, 0.0),
        ] {
            assert!((roi_score(r, 300.0, 500.0) - s).abs() < 1e-9, "{r}");
        }
    }

    #[test]
    fn the_service_cost_counts_the_instances_beside_the_cache() {
        // $1 of cache for the day plus $3 of compute: 600 hits save $6,
        // ROI (6 − 4) / 4 = 50 %.
        let r = roi(600, 400, 1000, 86_400.0, 3.0, &cfg());
        assert!((r.cost_usd - 4.0).abs() < 1e-12);
        assert!((r.compute_cost_usd - 3.0).abs() < 1e-12);
        assert!((r.roi_percent.expect("data") - 50.0).abs() < 1e-9);
        assert_eq!(r.gate, Gate::Fail);
    }

    #[test]
    fn no_traffic_is_no_data() {
        let r = roi(0, 0, 0, 3600.0, 0.0, &cfg());
        assert!(r.missing.is_some());
        assert_eq!(
            (r.gate, r.roi_percent, r.score, r.hit_rate),
            (Gate::NoData, None, None, None)
        );
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn two_instances_each_carry_half_the_cost() {
        // $30 a month, 1 cent a hit; one day. The fleet: 2 × 400 hits = $8
        // saved against $1: ROI 700 %. Each instance, charged half: $4 against $0.5.
        let c = |instances| RoiConfig {
            cost_per_miss_usd: 0.01,
            redis_monthly_cost_usd: 30.0,
            instances,
            ..RoiConfig::default()
        };
        let fleet = roi(800, 200, 2000, 86_400.0, 0.0, &c(None));
        let one = roi(400, 100, 1000, 86_400.0, 0.0, &c(Some(2)));
        let whole_bill = roi(400, 100, 1000, 86_400.0, 0.0, &c(None));
        let (f, o) = (
            fleet.roi_percent.expect("roi"),
            one.roi_percent.expect("roi"),
        );
        assert!((f - 700.0).abs() < 1e-9 && (o - f).abs() < 1e-9, "{f} {o}");
        assert!((whole_bill.roi_percent.expect("roi") - 300.0).abs() < 1e-9);
        assert!((one.cost_share - 0.5).abs() < 1e-12);
        let unknown = roi_share_unknown(one);
        assert_eq!((unknown.roi_percent, unknown.gate), (None, Gate::NoData));
    }
}
