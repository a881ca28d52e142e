//! Quantiles of a fleet, estimated from summed histogram buckets: what a
//! Prometheus-style histogram can say once instances are added up.
//!
//! The buckets count each request by its recorded latency (the top of its
//! HDR bucket, µs): a request is in the bucket `le = b` when its latency is
//! below `b`. The quantile of rank ⌈q·n⌉ (nearest rank, as the sidecar's own
//! quantiles) lies in the first bucket whose cumulative count reaches that
//! rank; the estimate interpolates linearly inside it, as PromQL's
//! `histogram_quantile` does, and the bucket's bounds come with it.

use serde::{Deserialize, Serialize};

use crate::store::nearest_rank;

/// A quantile known only to lie in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketEstimate {
    /// The interpolated estimate, ms.
    pub value_ms: f64,
    /// The bucket's lower bound, ms (the quantile is at or above it).
    pub low_ms: f64,
    /// The bucket's upper bound, ms (the quantile is below it); `null` for
    /// the last, unbounded bucket.
    pub high_ms: Option<f64>,
}

/// The quantile `q` of cumulative bucket counts `(upper bound s, requests
/// below it)`, ascending; the last bound may be `+Inf`. `None` without
/// requests.
pub fn bucket_quantile(q: f64, cumulative: &[(f64, u64)]) -> Option<BucketEstimate> {
    let total = cumulative.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = nearest_rank(q, total);
    let mut low_s = 0.0;
    let mut below = 0_u64;
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                return Some(BucketEstimate {
                    value_ms: low_s * 1000.0,
                    low_ms: low_s * 1000.0,
                    high_ms: None,
                });
            }
            let in_bucket = count.saturating_sub(below).max(1);
            let share = (rank - below) as f64 / in_bucket as f64;
            return Some(BucketEstimate {
                value_ms: (low_s + (le - low_s) * share) * 1000.0,
                low_ms: low_s * 1000.0,
                high_ms: Some(le * 1000.0),
            });
        }
        low_s = le;
        below = count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rank_falls_in_its_bucket_and_is_interpolated() {
        // 100 requests: 50 under 100 ms, 40 more under 200 ms, 10 above.
        let buckets = [(0.1, 50), (0.2, 90), (0.5, 100), (f64::INFINITY, 100)];
        let p95 = bucket_quantile(0.95, &buckets).expect("requests");
        assert_eq!(p95.low_ms, 200.0);
        assert_eq!(p95.high_ms, Some(500.0));
        // Rank 95 is the 5th of the 10 in (200, 500]: halfway.
        assert!((p95.value_ms - 350.0).abs() < 1e-9, "{p95:?}");
        let p50 = bucket_quantile(0.5, &buckets).expect("requests");
        assert_eq!((p50.low_ms, p50.high_ms), (0.0, Some(100.0)));
        assert!((p50.value_ms - 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_unbounded_bucket_gives_its_lower_bound_only() {
        let buckets = [(0.1, 1), (f64::INFINITY, 10)];
        let p95 = bucket_quantile(0.95, &buckets).expect("requests");
        assert_eq!(
            (p95.low_ms, p95.high_ms, p95.value_ms),
            (100.0, None, 100.0)
        );
    }

    #[test]
    fn no_requests_no_quantile() {
        assert_eq!(bucket_quantile(0.95, &[]), None);
        assert_eq!(bucket_quantile(0.95, &[(0.1, 0), (f64::INFINITY, 0)]), None);
    }
}
