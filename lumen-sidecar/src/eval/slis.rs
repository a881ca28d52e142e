//! Service-level indicators of a window: pure arithmetic over counts and a
//! histogram.

use serde::{Deserialize, Serialize};

use super::bucket_quantile::BucketEstimate;
use crate::store::{Counts, RouteWindow};

pub use lumen_middleware::wire::StatusClass;

/// The indicators of one window of one route (or the service).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slis {
    /// Finished requests (cancelled ones excluded).
    pub requests: u64,
    /// Requests without a 5xx or inner failure, in percent.
    pub availability_percent: Option<f64>,
    /// Requests of the error classes (and inner failures), in percent.
    pub error_rate_percent: Option<f64>,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// Cache hits over lookups, in percent.
    pub cache_hit_rate_percent: Option<f64>,
    /// A fleet's latency, known from summed buckets rather than exact
    /// histograms; `None` for a sidecar's own window.
    pub buckets: Option<LatencyBuckets>,
}

/// A fleet's latency: the quantiles estimated from summed buckets, and the
/// exact number of requests under each latency target (by which the
/// latency SLOs are judged: "P95 < T" holds exactly when at least
/// ⌈0.95·n⌉ requests are under T).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyBuckets {
    /// The P95's bucket and estimate.
    pub p95: Option<BucketEstimate>,
    /// The P99's bucket and estimate.
    pub p99: Option<BucketEstimate>,
    /// Requests under the P95 target.
    pub under_p95: u64,
    /// Requests under the P99 target.
    pub under_p99: u64,
    /// Requests whose latency was recorded.
    pub total: u64,
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

impl Slis {
    /// Computes the indicators of a window.
    pub fn of(window: &RouteWindow, error_classes: &[StatusClass]) -> Self {
        Self {
            latency_p95_ms: window.latency.quantile_us(0.95).map(us_to_ms),
            latency_p99_ms: window.latency.quantile_us(0.99).map(us_to_ms),
            ..Self::of_counts(&window.counts, error_classes)
        }
    }

    /// The indicators counts alone give (no latency).
    pub fn of_counts(c: &Counts, error_classes: &[StatusClass]) -> Self {
        let requests = c.requests();
        let bad_for_availability =
            c.status[StatusClass::ServerError.index()].saturating_add(c.errors);
        Self {
            requests,
            availability_percent: percent(requests.saturating_sub(bad_for_availability), requests),
            error_rate_percent: percent(error_count(c, error_classes), requests),
            latency_p95_ms: None,
            latency_p99_ms: None,
            cache_hit_rate_percent: percent(
                c.cache_hits,
                c.cache_hits.saturating_add(c.cache_misses),
            ),
            buckets: None,
        }
    }

    /// With a fleet's latency: the bucket estimates as the quantiles.
    pub fn with_buckets(self, buckets: LatencyBuckets) -> Self {
        Self {
            latency_p95_ms: buckets.p95.map(|e| e.value_ms),
            latency_p99_ms: buckets.p99.map(|e| e.value_ms),
            buckets: Some(buckets),
            ..self
        }
    }
}

/// Requests counted as errors: the configured classes plus inner failures.
pub fn error_count(c: &Counts, error_classes: &[StatusClass]) -> u64 {
    let mut seen = [false; 5];
    let mut n = c.errors;
    for class in error_classes {
        if !std::mem::replace(&mut seen[class.index()], true) {
            n = n.saturating_add(c.status[class.index()]);
        }
    }
    n
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{WindowHistogram, store_layout};

    fn window(
        status: [u64; 5],
        errors: u64,
        cancelled: u64,
        hits: u64,
        misses: u64,
    ) -> RouteWindow {
        let mut latency = WindowHistogram::new(store_layout());
        let n = status.iter().sum::<u64>() + errors;
        for i in 0..n {
            latency.record_n(1_000 * (i + 1), 1);
        }
        RouteWindow {
            counts: Counts {
                status,
                errors,
                cancelled,
                cache_hits: hits,
                cache_misses: misses,
                ..Counts::default()
            },
            latency,
        }
    }

    #[test]
    fn indicators_follow_the_design() {
        let w = window([0, 980, 0, 15, 4], 1, 7, 600, 400);
        let s = Slis::of(&w, &[StatusClass::ClientError, StatusClass::ServerError]);
        assert_eq!(s.requests, 1000, "cancelled requests are not requests");
        assert_eq!(s.availability_percent, Some(99.5));
        assert_eq!(s.error_rate_percent, Some(2.0));
        // Rank 950 is 950 ms; its bucket (width 512 µs) ends at 950,271 µs.
        assert_eq!(s.latency_p95_ms, Some(950.271));
        assert_eq!(s.cache_hit_rate_percent, Some(60.0));
        let only_5xx = Slis::of(&w, &[StatusClass::ServerError, StatusClass::ServerError]);
        assert_eq!(
            only_5xx.error_rate_percent,
            Some(0.5),
            "a class listed twice counts once"
        );
    }

    #[test]
    fn no_requests_means_no_values() {
        let s = Slis::of(&window([0; 5], 0, 3, 0, 0), &[StatusClass::ServerError]);
        assert_eq!(s.requests, 0);
        assert_eq!(s.availability_percent, None);
        assert_eq!(s.latency_p99_ms, None);
        assert_eq!(s.cache_hit_rate_percent, None);
    }
}
