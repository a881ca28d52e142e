//! What the peers' default histograms would report for the same values:
//! Prometheus classic buckets and OpenTelemetry explicit buckets, read with
//! `histogram_quantile`'s linear interpolation, and an OpenTelemetry base-2
//! exponential histogram of 160 buckets, read with log-linear interpolation
//! (as Prometheus reads native histograms).

/// Prometheus client libraries' default buckets, seconds.
pub const PROMETHEUS_DEFAULT_BUCKETS_S: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// OpenTelemetry SDKs' default explicit bucket boundaries (in the
/// instrument's unit; ms here, as for `http.server.duration` in ms, which
/// equals the semantic conventions' seconds list × 1000).
pub const OTEL_DEFAULT_BOUNDARIES_MS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];
/// OpenTelemetry's default maximum bucket count for exponential histograms.
pub const EXPONENTIAL_MAX_BUCKETS: usize = 160;
/// OpenTelemetry's maximum scale.
pub const EXPONENTIAL_MAX_SCALE: i32 = 20;

/// The bucket holding rank q·n of `counts` and how far into it the rank
/// falls (0–1); `None` without counts.
fn locate_rank(counts: &[u64], q: f64) -> Option<(usize, f64)> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0_u64;
    for (i, count) in counts.iter().enumerate() {
        let cumulative = below + count;
        if cumulative as f64 >= rank && *count > 0 {
            return Some((i, (rank - below as f64) / *count as f64));
        }
        below = cumulative;
    }
    // Rounding left the rank past the last count: the last non-empty bucket's top.
    counts.iter().rposition(|c| *c > 0).map(|i| (i, 1.0))
}

/// Cumulative-upper-bound buckets, as Prometheus classic histograms keep them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplicitHistogram {
    /// Upper bounds, ascending (the last bucket, +Inf, is implicit).
    pub bounds: Vec<f64>,
    /// Counts per bucket, `bounds.len() + 1` of them (the last is +Inf).
    pub counts: Vec<u64>,
}

impl ExplicitHistogram {
    /// An empty histogram with these upper bounds.
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
        }
    }

    /// Counts `v` in the first bucket whose bound is ≥ `v` (`le` semantics).
    pub fn record(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
    }

    /// `histogram_quantile(q, …)`: finds the bucket holding rank q·n and
    /// interpolates linearly inside it; the lowest bucket starts at 0 (when
    /// its bound is positive); a rank in +Inf returns the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (i, fraction) = locate_rank(&self.counts, q)?;
        if i == self.bounds.len() {
            return self.bounds.last().copied();
        }
        let upper = self.bounds[i];
        let lower = if i == 0 {
            upper.min(0.0)
        } else {
            self.bounds[i - 1]
        };
        Some(lower + (upper - lower) * fraction)
    }
}

/// An OpenTelemetry base-2 exponential histogram of positive values, at the
/// largest scale that keeps all of them within `max_buckets` buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialHistogram {
    /// Scale: bucket bases are 2^(2^-scale).
    pub scale: i32,
    /// Index of `counts[0]`.
    pub offset: i64,
    /// Counts of consecutive buckets.
    pub counts: Vec<u64>,
}

/// The bucket of `v` at `scale`: (base^i, base^(i+1)] holds `v`.
pub fn exponential_index(v: f64, scale: i32) -> i64 {
    (v.log2() * 2_f64.powi(scale)).ceil() as i64 - 1
}

impl ExponentialHistogram {
    /// Builds from `values` (all > 0), choosing the scale as the SDK's
    /// rescaling would end: the highest at which they fit.
    pub fn from_values(values: &[f64], max_buckets: usize) -> Self {
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let mut scale = EXPONENTIAL_MAX_SCALE;
        while scale > -10
            && (exponential_index(max, scale) - exponential_index(min, scale) + 1) as usize
                > max_buckets
        {
            scale -= 1;
        }
        let offset = exponential_index(min, scale);
        let len = (exponential_index(max, scale) - offset + 1) as usize;
        let mut counts = vec![0_u64; len];
        for v in values {
            counts[(exponential_index(*v, scale) - offset) as usize] += 1;
        }
        Self {
            scale,
            offset,
            counts,
        }
    }

    /// Lower and upper bound of bucket `i` (absolute index).
    pub fn bounds(&self, i: i64) -> (f64, f64) {
        let base = 2_f64.powf(2_f64.powi(-self.scale));
        (base.powf(i as f64), base.powf(i as f64 + 1.0))
    }

    /// The quantile with log-linear interpolation inside the bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (k, fraction) = locate_rank(&self.counts, q)?;
        let (lower, upper) = self.bounds(self.offset + k as i64);
        Some(lower * (upper / lower).powf(fraction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_interpolation_by_hand() {
        // Buckets le=1, le=2, le=4, +Inf with 10, 20, 10, 0 values.
        let h = ExplicitHistogram {
            bounds: vec![1.0, 2.0, 4.0],
            counts: vec![10, 20, 10, 0],
        };
        // Rank 0.5·40 = 20: 10 below, bucket (1, 2] holds 20 → 1 + 1·10/20 = 1.5.
        assert_eq!(h.quantile(0.5), Some(1.5));
        // Rank 0.95·40 = 38: 30 below, bucket (2, 4] holds 10 → 2 + 2·8/10 = 3.6.
        assert!((h.quantile(0.95).expect("data") - 3.6).abs() < 1e-12);
        // Rank 0.1·40 = 4 in the first bucket, from 0: 1·4/10 = 0.4.
        assert_eq!(h.quantile(0.1), Some(0.4));
        // A rank in +Inf answers the highest finite bound.
        let tail = ExplicitHistogram {
            bounds: vec![1.0],
            counts: vec![1, 9],
        };
        assert_eq!(tail.quantile(0.99), Some(1.0));
        let mut r = ExplicitHistogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 3.0] {
            r.record(v);
        }
        assert_eq!(r.counts, [2, 2, 1], "le semantics: 1.0 is in le=1");
    }

    #[test]
    fn exponential_buckets_by_hand() {
        // Scale 0: base 2, (1, 2] is index 0, (2, 4] index 1, exactly 4 is index 1.
        assert_eq!(exponential_index(1.5, 0), 0);
        assert_eq!(exponential_index(4.0, 0), 1);
        assert_eq!(exponential_index(4.1, 0), 2);
        // Scale 1: base √2; 2 is the upper bound of index 1.
        assert_eq!(exponential_index(2.0, 1), 1);
        let h = ExponentialHistogram::from_values(&[3.0, 3.0, 3.0, 3.0], 160);
        assert_eq!(
            h.scale, EXPONENTIAL_MAX_SCALE,
            "one value fits at the finest scale"
        );
        let wide = ExponentialHistogram::from_values(&[1.0, 1e6], 160);
        assert!(wide.counts.len() <= 160);
        // At scale 3, 1.0 is index −1 (it tops (2^-1/8, 1]) and 1e6 index
        // ⌈19.93·8⌉−1 = 159: 161 buckets, one too many; scale 2 fits.
        assert_eq!(wide.scale, 2);
        // Log-linear inside one bucket: half way through (2, 4] is 2·√2.
        let one = ExponentialHistogram {
            scale: 0,
            offset: 1,
            counts: vec![2],
        };
        assert!((one.quantile(0.5).expect("data") - 2.0 * 2_f64.sqrt()).abs() < 1e-12);
    }
}
