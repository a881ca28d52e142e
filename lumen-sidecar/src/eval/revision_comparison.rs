//! A new revision against the revision(s) it replaces, over the same
//! minutes, with tests that stay valid however often they are read: what
//! a progressive rollout decides each step on.
//!
//! Five tests, each at `α / 5` so that the chance of any false alarm over
//! the whole rollout, at every reading, is at most `α`:
//!
//! - **Proportions** (availability: the share of 5xx; error rate: the
//!   share of error statuses; the share of requests at or above each
//!   latency SLO's threshold): the mixture sequential probability ratio
//!   test on the difference of two proportions and its always-valid
//!   interval (Johari, Koomen, Pekelis & Walsh, "Always Valid Inference",
//!   Operations Research 2022), the one A/B experiments use.
//! - **Latency shift**: a time-uniform confidence band for each revision's
//!   latency distribution function (Howard & Ramdas, "Sequential estimation
//!   of quantiles with applications to A/B-testing and best-arm
//!   identification", Bernoulli 28(3), 2022, Theorem 2: with probability
//!   `1 − α`, for every sample size `n` at once,
//!   `sup_x |F̂ₙ(x) − F(x)| ≤ 0.85 √((ln ln(e·n) + 0.8 ln(1612/α)) / n)`).
//!   The statistic is the largest share of requests that the new revision
//!   made slower than some latency: `D = max_x (F̂_old(x) − F̂_new(x))`
//!   over the histogram's bucket bounds. Its interval is `D ± (ε_old +
//!   ε_new)`, each band at `α / 10`. It sees any slowdown of the
//!   distribution, not only at one quantile, needs no threshold chosen in
//!   advance, and stays exact on summed histograms (the bands hold at every
//!   `x`, so at every bucket bound). The same bands give each revision's
//!   P95 and P99 with an interval (`[Q̂(p − ε), Q̂(p + ε)]`), shown beside.
//!
//! Each test reads **worse** when its interval lies wholly above no
//! difference, **no worse** when its upper end is within the tolerance,
//! else **inconclusive**, with how many more requests of the new revision
//! would settle it at this difference. Thin data is never worse: a side
//! with fewer than `min_requests` requests is inconclusive.
//!
//! ```
//! use lumen_sidecar::eval::{RevisionCounts, RolloutTests, Finding, compare_revisions};
//! // 20,000 requests of the old revision with 1 % 5xx, 1,000 of the new with 5 %.
//! let old = RevisionCounts::from_failures(20_000, 200);
//! let new = RevisionCounts::from_failures(1_000, 50);
//! let c = compare_revisions(&old, &new, &RolloutTests::default());
//! assert_eq!(c.finding, Finding::Worse);
//! assert_eq!(c.worse(), vec!["availability", "error_rate"]);
//! ```

use serde::{Deserialize, Serialize};

use super::bucket_quantile::bucket_quantile;
use super::experiment_stats::always_valid_difference;
use super::slo::SloName;

/// The rollout's false-alarm rate over every test and every reading.
pub const DEFAULT_ROLLOUT_ALPHA: f64 = 0.05;
/// How much worse a share of bad requests may be, at most, for a step to
/// be promoted: one percentage point.
pub const DEFAULT_SHARE_TOLERANCE: f64 = 0.01;
/// How large a share of requests may be made slower than some latency,
/// at most, for a step to be promoted: five percentage points.
pub const DEFAULT_SHIFT_TOLERANCE: f64 = 0.05;
/// The size of difference the proportion tests are tuned to (their
/// mixing standard deviation): one percentage point.
pub const DEFAULT_ROLLOUT_TAU: f64 = 0.01;
/// Fewer requests than this on either side is too little data to judge.
pub const DEFAULT_ROLLOUT_MIN_REQUESTS: u64 = 1_000;
/// The tests: four shares and the latency shift.
pub const ROLLOUT_TESTS: usize = 5;

/// The quantiles shown with the latency shift.
const SHOWN_QUANTILES: [f64; 2] = [0.95, 0.99];

/// What one side did over the compared minutes, summed over its instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionCounts {
    /// Finished requests.
    pub requests: u64,
    /// Each SLO's `[good, bad]` events, in [`SloName::ALL`]'s order
    /// (`[0, 0]`: the SLO is not configured).
    pub slo_events: [[u64; 2]; 4],
    /// Latency: `(upper bound s, requests below it)`, cumulative,
    /// ascending; the last bound may be `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl RevisionCounts {
    /// `requests` of which `failures` were server errors, as the
    /// availability and error-rate events count them (no latency): for
    /// examples and tests.
    pub fn from_failures(requests: u64, failures: u64) -> Self {
        let ok = requests - failures.min(requests);
        Self {
            requests,
            slo_events: [[ok, failures], [0, 0], [0, 0], [ok, failures]],
            buckets: Vec::new(),
        }
    }

    /// Adds `other` (another revision of the same side).
    pub fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        for (mine, theirs) in self.slo_events.iter_mut().zip(other.slo_events) {
            mine[0] += theirs[0];
            mine[1] += theirs[1];
        }
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else if !other.buckets.is_empty() {
            self.buckets = merge_cumulative(&self.buckets, &other.buckets);
        }
    }
}

/// Two cumulative bucket lists summed at the union of their bounds (a
/// bound one side lacks takes that side's count at its bound below).
fn merge_cumulative(a: &[(f64, u64)], b: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut bounds: Vec<f64> = a.iter().chain(b).map(|(le, _)| *le).collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let at = |side: &[(f64, u64)], le: f64| {
        side.iter()
            .take_while(|(b, _)| *b <= le)
            .last()
            .map_or(0, |(_, n)| *n)
    };
    bounds
        .into_iter()
        .map(|le| (le, at(a, le) + at(b, le)))
        .collect()
}

/// How the rollout tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RolloutTests {
    /// The false-alarm rate over every test and every reading.
    pub alpha: f64,
    /// The largest worsening of a share of bad requests a step may be
    /// promoted with (a proportion).
    pub share_tolerance: f64,
    /// The largest share of requests made slower a step may be promoted
    /// with (a proportion).
    pub shift_tolerance: f64,
    /// The proportion tests' mixing standard deviation.
    pub tau: f64,
    /// Fewer requests than this on either side is too little data.
    pub min_requests: u64,
}

impl Default for RolloutTests {
    fn default() -> Self {
        Self {
            alpha: DEFAULT_ROLLOUT_ALPHA,
            share_tolerance: DEFAULT_SHARE_TOLERANCE,
            shift_tolerance: DEFAULT_SHIFT_TOLERANCE,
            tau: DEFAULT_ROLLOUT_TAU,
            min_requests: DEFAULT_ROLLOUT_MIN_REQUESTS,
        }
    }
}

impl RolloutTests {
    /// Each test's false-alarm rate.
    pub fn alpha_per_test(&self) -> f64 {
        self.alpha / ROLLOUT_TESTS as f64
    }
}

/// One test's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The new revision is worse: the interval lies wholly above no difference.
    Worse,
    /// No worse than the tolerance: the interval's upper end is within it.
    NoWorse,
    /// Not yet known either way.
    Inconclusive,
}

/// A quantile of one side with its time-uniform interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantileBand {
    /// The quantile (0.95).
    pub q: f64,
    /// The estimate, ms.
    pub value_ms: f64,
    /// The interval's lower end, ms.
    pub low_ms: f64,
    /// The interval's upper end, ms (`None`: beyond the last bucket).
    pub high_ms: Option<f64>,
}

/// One test: old against new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDifference {
    /// `availability`, `error_rate`, `latency_p95`, `latency_p99`, `latency_shift`.
    pub metric: String,
    /// What the numbers are, in words.
    pub measures: String,
    /// The old side's value (a proportion).
    pub old: f64,
    /// The new side's value (a proportion).
    pub new: f64,
    /// New against old (positive: the new revision is worse), a proportion.
    pub difference: f64,
    /// The always-valid interval's lower end.
    pub low: f64,
    /// Its upper end.
    pub high: f64,
    /// Requests of the old side.
    pub old_requests: u64,
    /// Requests of the new side.
    pub new_requests: u64,
    /// The test's false-alarm rate.
    pub alpha: f64,
    /// What the test reads.
    pub finding: Finding,
    /// How many more requests of the new revision would settle an
    /// inconclusive test at this difference (`None`: settled, or the
    /// difference itself is beyond the tolerance, or no data).
    pub needs_more: Option<u64>,
    /// For the latency shift: the old side's P95 and P99 with intervals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_quantiles: Vec<QuantileBand>,
    /// For the latency shift: the new side's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_quantiles: Vec<QuantileBand>,
}

/// Every test of one reading, and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionComparison {
    /// Each test that had events on both sides.
    pub metrics: Vec<MetricDifference>,
    /// Worse if any test is worse; no worse if every test is; else inconclusive.
    pub finding: Finding,
    /// The rollout's false-alarm rate (each test's times the tests).
    pub alpha: f64,
}

impl RevisionComparison {
    /// The tests that read worse.
    pub fn worse(&self) -> Vec<&str> {
        self.metrics
            .iter()
            .filter(|m| m.finding == Finding::Worse)
            .map(|m| m.metric.as_str())
            .collect()
    }

    /// The most new requests an inconclusive test asks for.
    pub fn needs_more(&self) -> Option<u64> {
        self.metrics.iter().filter_map(|m| m.needs_more).max()
    }

    /// The largest lower end among the tests (percentage points): how far
    /// past no difference the worst test surely is.
    pub fn worst_low_points(&self) -> f64 {
        self.metrics
            .iter()
            .map(|m| m.low * 100.0)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// The half-width of Howard & Ramdas's time-uniform band for a
/// distribution function after `n` observations at level `alpha`
/// (Theorem 2); 1 (no information) without observations.
pub fn cdf_band(n: u64, alpha: f64) -> f64 {
    if n == 0 || alpha <= 0.0 {
        return 1.0;
    }
    let n = n as f64;
    let e = 0.85 * (((std::f64::consts::E * n).ln().ln() + 0.8 * (1612.0 / alpha).ln()) / n).sqrt();
    e.min(1.0)
}

/// The fewest observations whose band is at most `width` (`None`: never
/// within 2⁴⁰ observations, or `width` is not positive).
fn observations_for(width: f64, alpha: f64) -> Option<u64> {
    if width <= 0.0 {
        return None;
    }
    let (mut low, mut high) = (1_u64, 1_u64 << 40);
    if cdf_band(high, alpha) > width {
        return None;
    }
    while low < high {
        let mid = low + (high - low) / 2;
        if cdf_band(mid, alpha) <= width {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    Some(low)
}

fn finding(low: f64, high: f64, tolerance: f64, thin: bool) -> Finding {
    if thin {
        Finding::Inconclusive
    } else if low > 0.0 {
        Finding::Worse
    } else if high <= tolerance {
        Finding::NoWorse
    } else {
        Finding::Inconclusive
    }
}

/// What each SLO's events mean as a bad share.
fn measures(slo: SloName) -> &'static str {
    match slo {
        SloName::Availability => "share of requests with a server error",
        SloName::ErrorRate => "share of requests with an error status",
        SloName::LatencyP95 => "share of requests at or above the P95 target",
        SloName::LatencyP99 => "share of requests at or above the P99 target",
    }
}

fn share_test(
    slo: SloName,
    old: [u64; 2],
    new: [u64; 2],
    t: &RolloutTests,
) -> Option<MetricDifference> {
    let (n_old, n_new) = (old[0] + old[1], new[0] + new[1]);
    if n_old == 0 || n_new == 0 {
        return None;
    }
    let alpha = t.alpha_per_test();
    let d = always_valid_difference(old[1], n_old, new[1], n_new, t.tau, alpha)?;
    let thin = n_old < t.min_requests || n_new < t.min_requests;
    let found = finding(d.low, d.high, t.share_tolerance, thin);
    // The interval narrows about as 1/√n of the smaller side.
    let half = (d.high - d.low) / 2.0;
    let room = t.share_tolerance - d.effect;
    let needs_more = match found {
        Finding::Inconclusive if room > 0.0 => {
            let factor = (half / room).powi(2).max(1.0);
            let wanted = (n_new as f64 * factor).ceil() as u64;
            Some(wanted.max(t.min_requests).saturating_sub(n_new).max(1))
        }
        _ => None,
    };
    Some(MetricDifference {
        metric: slo.as_str().to_owned(),
        measures: measures(slo).to_owned(),
        old: old[1] as f64 / n_old as f64,
        new: new[1] as f64 / n_new as f64,
        difference: d.effect,
        low: d.low,
        high: d.high,
        old_requests: n_old,
        new_requests: n_new,
        alpha,
        finding: found,
        needs_more,
        old_quantiles: Vec::new(),
        new_quantiles: Vec::new(),
    })
}

/// The share of a side's requests below `le`.
fn cdf_at(buckets: &[(f64, u64)], le: f64, total: u64) -> f64 {
    let below = buckets
        .iter()
        .take_while(|(b, _)| *b <= le)
        .last()
        .map_or(0, |(_, n)| *n);
    below as f64 / total as f64
}

fn quantile_bands(buckets: &[(f64, u64)], epsilon: f64) -> Vec<QuantileBand> {
    SHOWN_QUANTILES
        .iter()
        .filter_map(|&q| {
            let mid = bucket_quantile(q, buckets)?;
            let low = bucket_quantile((q - epsilon).max(0.0), buckets)?;
            let high = if q + epsilon >= 1.0 {
                None
            } else {
                bucket_quantile(q + epsilon, buckets)?.high_ms
            };
            Some(QuantileBand {
                q,
                value_ms: mid.value_ms,
                low_ms: low.low_ms,
                high_ms: high,
            })
        })
        .collect()
}

fn shift_test(
    old: &RevisionCounts,
    new: &RevisionCounts,
    t: &RolloutTests,
) -> Option<MetricDifference> {
    let total = |b: &[(f64, u64)]| b.last().map_or(0, |(_, n)| *n);
    let (n_old, n_new) = (total(&old.buckets), total(&new.buckets));
    if n_old == 0 || n_new == 0 {
        return None;
    }
    let alpha = t.alpha_per_test();
    let (e_old, e_new) = (cdf_band(n_old, alpha / 2.0), cdf_band(n_new, alpha / 2.0));
    // The largest share the new revision made slower than some bound.
    let mut gap = 0.0_f64;
    let mut at = (0.0, 0.0);
    for &(le, _) in old.buckets.iter().chain(&new.buckets) {
        if le.is_infinite() {
            continue;
        }
        let (f_old, f_new) = (
            cdf_at(&old.buckets, le, n_old),
            cdf_at(&new.buckets, le, n_new),
        );
        if f_old - f_new > gap {
            gap = f_old - f_new;
            at = (1.0 - f_old, 1.0 - f_new);
        }
    }
    let width = e_old + e_new;
    let (low, high) = (gap - width, (gap + width).min(1.0));
    let thin = n_old < t.min_requests || n_new < t.min_requests;
    let found = finding(low, high, t.shift_tolerance, thin);
    let needs_more = match found {
        Finding::Inconclusive => {
            // The new side's band must shrink to what the old side's leaves.
            observations_for(t.shift_tolerance - gap - e_old, alpha / 2.0)
                .map(|n| n.max(t.min_requests).saturating_sub(n_new).max(1))
        }
        _ => None,
    };
    Some(MetricDifference {
        metric: "latency_shift".to_owned(),
        measures: "largest share of requests slower than some latency (old and new: their shares above it)".to_owned(),
        old: at.0,
        new: at.1,
        difference: gap,
        low,
        high,
        old_requests: n_old,
        new_requests: n_new,
        alpha,
        finding: found,
        needs_more,
        old_quantiles: quantile_bands(&old.buckets, e_old),
        new_quantiles: quantile_bands(&new.buckets, e_new),
    })
}

/// Every test of `new` against `old` over the same minutes.
pub fn compare_revisions(
    old: &RevisionCounts,
    new: &RevisionCounts,
    tests: &RolloutTests,
) -> RevisionComparison {
    let mut metrics: Vec<MetricDifference> = SloName::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, &slo)| share_test(slo, old.slo_events[i], new.slo_events[i], tests))
        .collect();
    metrics.extend(shift_test(old, new, tests));
    let finding = if metrics.iter().any(|m| m.finding == Finding::Worse) {
        Finding::Worse
    } else if !metrics.is_empty() && metrics.iter().all(|m| m.finding == Finding::NoWorse) {
        Finding::NoWorse
    } else {
        Finding::Inconclusive
    };
    RevisionComparison {
        metrics,
        finding,
        alpha: tests.alpha,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_latency(requests: u64, failures: u64, buckets: Vec<(f64, u64)>) -> RevisionCounts {
        RevisionCounts {
            buckets,
            ..RevisionCounts::from_failures(requests, failures)
        }
    }

    #[test]
    fn the_band_is_howard_and_ramdas_theorem_2() {
        // 0.85·√((ln ln(e·10⁴) + 0.8·ln(1612/0.05)) / 10⁴)
        let by_hand = 0.85
            * (((std::f64::consts::E * 1e4).ln().ln() + 0.8 * (1612.0_f64 / 0.05).ln()) / 1e4)
                .sqrt();
        assert!((cdf_band(10_000, 0.05) - by_hand).abs() < 1e-12);
        assert!((by_hand - 0.0277).abs() < 5e-4, "{by_hand}");
        assert_eq!(cdf_band(0, 0.05), 1.0);
        assert!(cdf_band(100, 0.01) > cdf_band(1000, 0.01));
        let n = observations_for(0.02, 0.01).expect("reachable");
        assert!(cdf_band(n, 0.01) <= 0.02 && cdf_band(n - 1, 0.01) > 0.02);
    }

    #[test]
    fn thin_data_is_never_worse() {
        let old = RevisionCounts::from_failures(50_000, 500);
        let new = RevisionCounts::from_failures(150, 150);
        let c = compare_revisions(&old, &new, &RolloutTests::default());
        assert_eq!(c.finding, Finding::Inconclusive);
        assert!(c.worse().is_empty());
    }

    #[test]
    fn a_clean_new_revision_is_no_worse_once_there_is_enough() {
        let old = RevisionCounts::from_failures(200_000, 2_000);
        let few = RevisionCounts::from_failures(1_000, 10);
        let c = compare_revisions(&old, &few, &RolloutTests::default());
        assert_eq!(c.finding, Finding::Inconclusive);
        let more = c.needs_more().expect("says how many more");
        let enough = RevisionCounts::from_failures(1_000 + more, (1_000 + more) / 100);
        let c = compare_revisions(&old, &enough, &RolloutTests::default());
        assert_eq!(c.finding, Finding::NoWorse, "{c:#?}");
    }

    #[test]
    fn a_slower_distribution_is_found_and_explained() {
        // Old: 10 % below 10 ms, 50 % below 50 ms, 95 % below 200 ms.
        let old = with_latency(
            100_000,
            0,
            vec![
                (0.01, 10_000),
                (0.05, 50_000),
                (0.2, 95_000),
                (f64::INFINITY, 100_000),
            ],
        );
        // New: everything one bucket slower for a quarter of requests.
        let new = with_latency(
            20_000,
            0,
            vec![
                (0.01, 1_000),
                (0.05, 5_000),
                (0.2, 14_000),
                (f64::INFINITY, 20_000),
            ],
        );
        let c = compare_revisions(&old, &new, &RolloutTests::default());
        let shift = c
            .metrics
            .iter()
            .find(|m| m.metric == "latency_shift")
            .expect("tested");
        assert_eq!(shift.finding, Finding::Worse);
        assert!(
            (shift.difference - 0.25).abs() < 1e-9,
            "{}",
            shift.difference
        );
        assert!((shift.old - 0.5).abs() < 1e-9 && (shift.new - 0.75).abs() < 1e-9);
        assert_eq!(shift.old_quantiles.len(), 2);
        assert_eq!(c.worse(), vec!["latency_shift"]);
        // The same distribution is no shift at all.
        let same = compare_revisions(&old, &old, &RolloutTests::default());
        let s = same
            .metrics
            .iter()
            .find(|m| m.metric == "latency_shift")
            .expect("tested");
        assert_eq!(s.difference, 0.0);
        assert_eq!(s.finding, Finding::NoWorse);
    }

    #[test]
    fn sides_add_at_every_bound() {
        let mut a = with_latency(10, 1, vec![(0.1, 5), (f64::INFINITY, 10)]);
        let b = with_latency(4, 0, vec![(0.05, 1), (0.1, 3), (f64::INFINITY, 4)]);
        a.add(&b);
        assert_eq!(a.requests, 14);
        assert_eq!(a.slo_events[0], [13, 1]);
        assert_eq!(a.buckets, vec![(0.05, 1), (0.1, 8), (f64::INFINITY, 14)]);
    }
}
