//! A dense histogram of a window, for quantiles.

use lumen_middleware::layout::HistogramLayout;

/// Every counter of a layout: the merge of a window's minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseHistogram {
    layout: HistogramLayout,
    counts: Vec<u64>,
    total: u64,
}

impl DenseHistogram {
    /// An empty histogram of `layout`.
    pub fn new(layout: HistogramLayout) -> Self {
        Self {
            layout,
            counts: vec![0; layout.len()],
            total: 0,
        }
    }

    /// Counts `count` values of `value_us`.
    pub fn record_n(&mut self, value_us: u64, count: u64) {
        let index = self.layout.index_of(value_us);
        self.counts[index] = self.counts[index].saturating_add(count);
        self.total = self.total.saturating_add(count);
    }

    /// Adds `other` (of the same layout) into this one.
    pub fn add(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.total = self.total.saturating_add(other.total);
    }

    /// The counters, for merging into.
    pub(crate) fn counts_mut(&mut self) -> &mut [u64] {
        &mut self.counts
    }

    /// Recomputes the total after `counts_mut` was used.
    pub(crate) fn recount(&mut self) {
        self.total = self.counts.iter().fold(0_u64, |s, c| s.saturating_add(*c));
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0 < q ≤ 1), in µs: the highest value of the
    /// bucket holding the value of rank ⌈q·n⌉ (nearest rank), as
    /// HdrHistogram's `value_at_quantile` does. Within 0.1 % above the exact
    /// nearest-rank quantile for the default layout. `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0_u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                return Some(self.layout.highest_equivalent(index));
            }
        }
        None
    }

    /// Values at or below `threshold_us` (bucket-exact for thresholds on a
    /// bucket's upper edge).
    pub fn count_at_or_below(&self, threshold_us: u64) -> u64 {
        let last = self.layout.index_of(threshold_us);
        self.counts[..=last]
            .iter()
            .fold(0_u64, |s, c| s.saturating_add(*c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut h = DenseHistogram::new(HistogramLayout::default());
        assert_eq!(h.quantile_us(0.95), None);
        for v in 1..=100 {
            h.record_n(v, 1);
        }
        assert_eq!(h.quantile_us(0.95), Some(95));
        assert_eq!(h.quantile_us(0.99), Some(99));
        assert_eq!(h.quantile_us(1.0), Some(100));
        assert_eq!(h.quantile_us(0.0), Some(1));
        assert_eq!(h.count_at_or_below(50), 50);
        h.record_n(200_000, 1);
        let top = h.quantile_us(1.0).expect("non-empty");
        assert!((200_000..=200_200).contains(&top), "{top}");
    }
}
