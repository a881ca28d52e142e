//! The bucket layout of an HDR histogram, as plain arithmetic.
//!
//! HdrHistogram places a value in a bucket whose width is at most the value's
//! `10^-digits` part. The same arithmetic runs in the middleware's lock-free
//! recorder (atomic counters in this layout) and in the sidecar's window store
//! (sparse counters in this layout), and it is the layout of the `hdrhistogram`
//! crate: a count at [`HistogramLayout::lowest_equivalent`] of an index lands
//! in that very index there too (tested below), so converting between the two
//! is exact.

use thiserror::Error;

/// Lowest value the default layout distinguishes: 1 µs.
pub const DEFAULT_LOWEST_US: u64 = 1;
/// Highest value the default layout tracks: 60 s in µs. Larger values are
/// clamped to it (and still counted).
pub const DEFAULT_HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits the default layout keeps: 3, i.e. a value is
/// known to within 0.1 %.
pub const DEFAULT_SIGNIFICANT_DIGITS: u8 = 3;

/// A layout that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    /// The lowest value must be at least 1.
    #[error("lowest trackable value must be at least 1, got {0}")]
    LowestZero(u64),
    /// The highest value must be at least twice the lowest.
    #[error("highest trackable value {highest} must be at least twice the lowest {lowest}")]
    RangeTooNarrow {
        /// Lowest value asked for.
        lowest: u64,
        /// Highest value asked for.
        highest: u64,
    },
    /// Significant digits outside 1..=5.
    #[error("significant digits must be 1 to 5, got {0}")]
    Digits(u8),
}

/// Where each value goes: the index arithmetic of an HDR histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramLayout {
    lowest: u64,
    highest: u64,
    digits: u8,
    unit_magnitude: u32,
    sub_bucket_half_count_magnitude: u32,
    sub_bucket_half_count: usize,
    sub_bucket_mask: u64,
    leading_zero_count_base: u32,
    len: usize,
}

impl Default for HistogramLayout {
    fn default() -> Self {
        Self::new(
            DEFAULT_LOWEST_US,
            DEFAULT_HIGHEST_US,
            DEFAULT_SIGNIFICANT_DIGITS,
        )
        .expect("the default layout is valid")
    }
}

impl HistogramLayout {
    /// The layout for values from `lowest` to `highest` kept to `digits`
    /// significant decimal digits.
    pub fn new(lowest: u64, highest: u64, digits: u8) -> Result<Self, LayoutError> {
        if lowest < 1 {
            return Err(LayoutError::LowestZero(lowest));
        }
        if highest < lowest.saturating_mul(2) {
            return Err(LayoutError::RangeTooNarrow { lowest, highest });
        }
        if !(1..=5).contains(&digits) {
            return Err(LayoutError::Digits(digits));
        }
        let largest_single_unit = 2 * 10_u64.pow(u32::from(digits));
        let unit_magnitude = lowest.ilog2();
        let sub_bucket_count_magnitude = (largest_single_unit as f64).log2().ceil() as u32;
        let sub_bucket_half_count_magnitude = sub_bucket_count_magnitude.max(1) - 1;
        let sub_bucket_count = 1_u64 << (sub_bucket_half_count_magnitude + 1);
        let sub_bucket_half_count = (sub_bucket_count / 2) as usize;
        let sub_bucket_mask = (sub_bucket_count - 1) << unit_magnitude;
        let mut smallest_untrackable = sub_bucket_count << unit_magnitude;
        let mut buckets = 1_usize;
        while smallest_untrackable <= highest {
            if smallest_untrackable > u64::MAX / 2 {
                buckets += 1;
                break;
            }
            smallest_untrackable <<= 1;
            buckets += 1;
        }
        Ok(Self {
            lowest,
            highest,
            digits,
            unit_magnitude,
            sub_bucket_half_count_magnitude,
            sub_bucket_half_count,
            sub_bucket_mask,
            leading_zero_count_base: 64 - unit_magnitude - sub_bucket_half_count_magnitude - 1,
            len: (buckets + 1) * sub_bucket_half_count,
        })
    }

    /// Number of counters a dense histogram of this layout holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a layout has at least one bucket. Here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Lowest value distinguished.
    pub fn lowest(&self) -> u64 {
        self.lowest
    }

    /// Highest value tracked; larger values are clamped to it.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Significant decimal digits kept.
    pub fn significant_digits(&self) -> u8 {
        self.digits
    }

    /// The counter index of `value`, clamping values above
    /// [`highest`](Self::highest) to it.
    #[inline]
    pub fn index_of(&self, value: u64) -> usize {
        let value = value.min(self.highest);
        let bucket = self.leading_zero_count_base - (value | self.sub_bucket_mask).leading_zeros();
        let sub_bucket = (value >> (bucket + self.unit_magnitude)) as usize;
        ((bucket as usize + 1) << self.sub_bucket_half_count_magnitude) + sub_bucket
            - self.sub_bucket_half_count
    }

    /// The smallest value that lands at `index`.
    pub fn lowest_equivalent(&self, index: usize) -> u64 {
        let (bucket, sub_bucket) = self.split(index);
        (sub_bucket as u64) << (bucket + self.unit_magnitude)
    }

    /// The largest value that lands at `index`: what a quantile reports, as
    /// HdrHistogram's `value_at_quantile` does.
    pub fn highest_equivalent(&self, index: usize) -> u64 {
        let (bucket, _) = self.split(index);
        let width = 1_u64 << (bucket + self.unit_magnitude);
        self.lowest_equivalent(index) + width - 1
    }

    fn split(&self, index: usize) -> (u32, usize) {
        let bucket = (index >> self.sub_bucket_half_count_magnitude) as i64 - 1;
        let mut sub_bucket =
            (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count;
        if bucket < 0 {
            sub_bucket -= self.sub_bucket_half_count;
            (0, sub_bucket)
        } else {
            (bucket as u32, sub_bucket)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    #[test]
    fn default_layout_has_hdrhistogram_length() {
        let layout = HistogramLayout::default();
        assert_eq!(layout.len(), 17_408);
        let hdr = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        assert_eq!(layout.len(), hdr.distinct_values());
    }

    #[test]
    fn indexes_agree_with_hdrhistogram() {
        for (low, high, digits) in [
            (1, 60_000_000, 3),
            (1, 3_600_000_000, 2),
            (1000, 1 << 40, 3),
        ] {
            let layout = HistogramLayout::new(low, high, digits).expect("valid");
            let hdr = Histogram::<u64>::new_with_bounds(low, high, digits).expect("valid");
            let mut value = 0_u64;
            while value <= high {
                let index = layout.index_of(value);
                assert_eq!(
                    layout.lowest_equivalent(index),
                    hdr.lowest_equivalent(value),
                    "lowest of {value}"
                );
                assert_eq!(
                    layout.highest_equivalent(index),
                    hdr.highest_equivalent(value),
                    "highest of {value}"
                );
                value = value + 1 + value / 97;
            }
        }
    }

    #[test]
    fn values_above_the_range_clamp() {
        let layout = HistogramLayout::default();
        assert_eq!(layout.index_of(u64::MAX), layout.index_of(60_000_000));
        assert!(layout.index_of(60_000_000) < layout.len());
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert_eq!(
            HistogramLayout::new(0, 10, 3),
            Err(LayoutError::LowestZero(0))
        );
        assert_eq!(
            HistogramLayout::new(10, 15, 3),
            Err(LayoutError::RangeTooNarrow {
                lowest: 10,
                highest: 15
            })
        );
        assert_eq!(HistogramLayout::new(1, 100, 6), Err(LayoutError::Digits(6)));
    }

    #[test]
    fn relative_width_is_within_a_thousandth() {
        let layout = HistogramLayout::default();
        for value in [1_500_u64, 2_048, 9_999, 123_456, 59_999_999] {
            let index = layout.index_of(value);
            let low = layout.lowest_equivalent(index) as f64;
            let high = layout.highest_equivalent(index) as f64;
            assert!(
                (high - low) / low.max(1.0) < 0.001,
                "{value}: {low}..{high}"
            );
        }
    }
}
