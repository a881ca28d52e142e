//! [`SeriesReport`]: a window cut into steps, each step's indicators, and
//! the latency distribution of the whole window as a percentile curve:
//! what `GET /v1/series` returns and the status page charts.

use serde::{Deserialize, Serialize};

use super::slis::{Slis, StatusClass};
use super::slo_report::LatencyPercentiles;
use crate::store::RouteWindow;

/// The percentiles of the distribution curve, as fractions.
pub const CURVE_QUANTILES: [f64; 10] = [
    0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999,
];
/// The most steps a series may have.
pub const MAX_POINTS: u64 = 1440;

/// One step's indicators.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// The step's start, Unix ms.
    pub start_ms: u64,
    /// Finished requests.
    pub requests: u64,
    /// Requests without a 5xx or inner failure, percent (`null` without requests).
    pub availability_percent: Option<f64>,
    /// Requests of the error classes, percent.
    pub error_rate_percent: Option<f64>,
    /// Exact percentiles of the step's merged histograms, ms.
    pub latency: Option<LatencyPercentiles>,
    /// Cache hits over lookups, percent.
    pub cache_hit_rate_percent: Option<f64>,
}

/// One point of the window's latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The percentile, 0 to 100.
    pub percentile: f64,
    /// Its latency, ms (the top of its 0.1 % bucket).
    pub latency_ms: f64,
}

/// A window in steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesReport {
    /// The route, or `null` for the whole service.
    pub route: Option<String>,
    /// The window, s.
    pub window_s: u64,
    /// The step, s.
    pub step_s: u64,
    /// Each step, oldest first.
    pub points: Vec<SeriesPoint>,
    /// The latency distribution over the whole window (empty without requests).
    pub distribution: Vec<CurvePoint>,
    /// The spans of the window kept off the error budgets (shaded on charts).
    #[serde(default)]
    pub excluded: Vec<crate::store::ExcludedSpan>,
    /// The revisions first seen in the window, and when: the deploys
    /// (marked on charts).
    #[serde(default)]
    pub deploys: Vec<Deploy>,
}

/// A new revision, when it was first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// The revision.
    pub revision: String,
    /// When its first request was recorded, Unix ms.
    pub at_ms: u64,
}

/// The indicators of one step's window starting at `start_ms`.
pub fn series_point(
    start_ms: u64,
    window: &RouteWindow,
    error_classes: &[StatusClass],
) -> SeriesPoint {
    let slis = Slis::of_counts(&window.counts, error_classes);
    SeriesPoint {
        start_ms,
        requests: slis.requests,
        availability_percent: slis.availability_percent,
        error_rate_percent: slis.error_rate_percent,
        latency: LatencyPercentiles::of(window),
        cache_hit_rate_percent: slis.cache_hit_rate_percent,
    }
}

/// The percentile curve of `window`'s latency at [`CURVE_QUANTILES`].
pub fn distribution(window: &RouteWindow) -> Vec<CurvePoint> {
    CURVE_QUANTILES
        .iter()
        .filter_map(|q| {
            window.latency.quantile_us(*q).map(|us| CurvePoint {
                percentile: q * 100.0,
                latency_ms: us as f64 / 1000.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Counts, WindowHistogram, store_layout};

    #[test]
    fn a_step_and_the_curve_say_what_its_histogram_holds() {
        let mut latency = WindowHistogram::new(store_layout());
        for v in 1..=1000 {
            latency.record_n(v * 1000, 1); // 1 ms … 1 s
        }
        let window = RouteWindow {
            counts: Counts {
                status: [0, 990, 0, 0, 10],
                cache_hits: 3,
                cache_misses: 1,
                ..Counts::default()
            },
            latency,
        };
        let p = series_point(60_000, &window, &[StatusClass::ServerError]);
        assert_eq!(p.requests, 1000);
        assert_eq!(p.availability_percent, Some(99.0));
        assert_eq!(p.error_rate_percent, Some(1.0));
        assert_eq!(p.cache_hit_rate_percent, Some(75.0));
        let l = p.latency.expect("latency");
        assert!((l.p50_ms - 500.0).abs() <= 0.5, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() <= 1.0, "{l:?}");
        let curve = distribution(&window);
        assert_eq!(curve.len(), CURVE_QUANTILES.len());
        assert!(curve.windows(2).all(|w| w[0].latency_ms <= w[1].latency_ms));
        assert!((curve[curve.len() - 1].latency_ms - 1000.0).abs() <= 1.0);
        let empty = RouteWindow {
            counts: Counts::default(),
            latency: WindowHistogram::new(store_layout()),
        };
        assert_eq!(series_point(0, &empty, &[]).latency, None);
        assert!(distribution(&empty).is_empty());
    }
}
