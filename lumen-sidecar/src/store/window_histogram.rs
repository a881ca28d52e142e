//! [`WindowHistogram`]: a window's merged latency, for quantiles; and the
//! [`Scratch`] buffer it is merged in.

use lumen_middleware::layout::HistogramLayout;

use super::sparse_histogram::SparseHistogram;

/// A window's latency: non-zero buckets by ascending index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowHistogram {
    layout: HistogramLayout,
    buckets: Vec<(u32, u64)>,
    total: u64,
}

impl WindowHistogram {
    /// An empty histogram of `layout`.
    pub fn new(layout: HistogramLayout) -> Self {
        Self {
            layout,
            buckets: Vec::new(),
            total: 0,
        }
    }

    /// Counts `count` values of `value_us`.
    pub fn record_n(&mut self, value_us: u64, count: u64) {
        if count == 0 {
            return;
        }
        let index = self.layout.index_of(value_us) as u32;
        match self.buckets.binary_search_by_key(&index, |b| b.0) {
            Ok(at) => self.buckets[at].1 = self.buckets[at].1.saturating_add(count),
            Err(at) => self.buckets.insert(at, (index, count)),
        }
        self.total = self.total.saturating_add(count);
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// `(index, count)` of the non-zero buckets.
    pub fn buckets(&self) -> &[(u32, u64)] {
        &self.buckets
    }

    /// The value at quantile `q` (0 < q ≤ 1), in µs: the highest value of the
    /// bucket holding the value of rank ⌈q·n⌉ (nearest rank), as
    /// HdrHistogram's `value_at_quantile` does. Within 0.1 % above the exact
    /// nearest-rank quantile for the default layout. `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = nearest_rank(q, self.total);
        let mut seen = 0_u64;
        for (index, count) in &self.buckets {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                return Some(self.layout.highest_equivalent(*index as usize));
            }
        }
        None
    }
}

/// The rank of quantile `q` among `total` values, nearest-rank: ⌈q·n⌉, at
/// least 1. The P95 is below a target exactly when at least this many of
/// the values are.
pub fn nearest_rank(q: f64, total: u64) -> u64 {
    ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1)
}

/// A dense buffer of one layout, reused across routes: histograms are added
/// into it, then taken out as a [`WindowHistogram`], zeroing only the range
/// they touched.
#[derive(Debug)]
pub struct Scratch {
    layout: HistogramLayout,
    counts: Vec<u64>,
    touched: Option<(usize, usize)>,
}

impl Scratch {
    /// A zeroed buffer of `layout`.
    pub fn new(layout: HistogramLayout) -> Self {
        Self {
            layout,
            counts: vec![0; layout.len()],
            touched: None,
        }
    }

    fn touch(&mut self, low: usize, high: usize) {
        self.touched = Some(match self.touched {
            None => (low, high),
            Some((l, h)) => (l.min(low), h.max(high)),
        });
    }

    /// Adds a stored histogram.
    pub fn add_sparse(&mut self, h: &SparseHistogram) {
        if let Some((low, high)) = h.add_to_dense(&mut self.counts) {
            self.touch(low, high);
        }
    }

    /// Adds a window histogram.
    pub fn add_window(&mut self, h: &WindowHistogram) {
        for (index, count) in &h.buckets {
            let slot = &mut self.counts[*index as usize];
            *slot = slot.saturating_add(*count);
        }
        if let (Some(first), Some(last)) = (h.buckets.first(), h.buckets.last()) {
            self.touch(first.0 as usize, last.0 as usize);
        }
    }

    /// Takes what was added, leaving the buffer zeroed.
    pub fn take(&mut self) -> WindowHistogram {
        let mut out = WindowHistogram::new(self.layout);
        if let Some((low, high)) = self.touched.take() {
            for (i, slot) in self.counts[low..=high].iter_mut().enumerate() {
                if *slot != 0 {
                    out.buckets.push(((low + i) as u32, *slot));
                    out.total = out.total.saturating_add(*slot);
                    *slot = 0;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut h = WindowHistogram::new(HistogramLayout::default());
        assert_eq!(h.quantile_us(0.95), None);
        for v in (1..=100).rev() {
            h.record_n(v, 1);
        }
        assert_eq!(h.quantile_us(0.95), Some(95));
        assert_eq!(h.quantile_us(0.99), Some(99));
        assert_eq!(h.quantile_us(1.0), Some(100));
        assert_eq!(h.quantile_us(0.0), Some(1));
        h.record_n(200_000, 1);
        let top = h.quantile_us(1.0).expect("non-empty");
        assert!((200_000..=200_200).contains(&top), "{top}");
    }

    #[test]
    fn scratch_merges_and_comes_back_clean() {
        let layout = HistogramLayout::default();
        let mut scratch = Scratch::new(layout);
        scratch.add_sparse(&SparseHistogram::from_pairs(vec![(5, 2), (900, 1)]));
        scratch.add_sparse(&SparseHistogram::from_pairs(vec![(5, 1)]));
        let a = scratch.take();
        assert_eq!(a.buckets(), [(5, 3), (900, 1)]);
        assert_eq!(a.total(), 4);
        assert!(scratch.counts.iter().all(|c| *c == 0));
        scratch.add_window(&a);
        scratch.add_window(&a);
        assert_eq!(scratch.take().buckets(), [(5, 6), (900, 2)]);
        assert_eq!(scratch.take().total(), 0);
    }
}
