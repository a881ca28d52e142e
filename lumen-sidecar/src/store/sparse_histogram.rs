//! A histogram that keeps only its non-zero buckets: what one route's minute
//! costs in memory is 12 bytes per distinct latency bucket it saw.

use serde::{Deserialize, Serialize};

/// Non-zero counters of an HDR layout, by ascending index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseHistogram {
    indices: Vec<u32>,
    counts: Vec<u64>,
}

impl SparseHistogram {
    /// Builds from `(index, count)` pairs in any order; zero counts are
    /// dropped and repeated indices summed.
    pub fn from_pairs(mut pairs: Vec<(u32, u64)>) -> Self {
        pairs.sort_unstable_by_key(|p| p.0);
        let mut out = Self::default();
        for (index, count) in pairs {
            if count == 0 {
                continue;
            }
            match out.indices.last() {
                Some(last) if *last == index => {
                    let c = out
                        .counts
                        .last_mut()
                        .expect("counts and indices have one length");
                    *c = c.saturating_add(count);
                }
                _ => {
                    out.indices.push(index);
                    out.counts.push(count);
                }
            }
        }
        out.indices.shrink_to_fit();
        out.counts.shrink_to_fit();
        out
    }

    /// Adds `other` into this one (a merge of two sorted lists).
    pub fn merge(&mut self, other: &Self) {
        if other.indices.is_empty() {
            return;
        }
        let mut pairs: Vec<(u32, u64)> = self.iter().chain(other.iter()).collect();
        pairs.sort_unstable_by_key(|p| p.0);
        *self = Self::from_pairs(pairs);
    }

    /// Adds every counter into a dense array indexed like the layout.
    pub fn add_to_dense(&self, dense: &mut [u64]) {
        for (index, count) in self.iter() {
            if let Some(slot) = dense.get_mut(index as usize) {
                *slot = slot.saturating_add(count);
            }
        }
    }

    /// `(index, count)` pairs by ascending index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.indices
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0_u64, |s, c| s.saturating_add(*c))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.indices.capacity() * 4 + self.counts.capacity() * 8
    }

    /// Whether every index is below `len` and counts are positive: what a
    /// snapshot must satisfy before it is trusted.
    pub fn is_valid_for(&self, len: usize) -> bool {
        self.indices.len() == self.counts.len()
            && self.indices.windows(2).all(|w| w[0] < w[1])
            && self.indices.iter().all(|i| (*i as usize) < len)
            && self.counts.iter().all(|c| *c > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sorted_nonzero_sums() {
        let h = SparseHistogram::from_pairs(vec![(5, 1), (2, 3), (5, 4), (9, 0)]);
        assert_eq!(h.iter().collect::<Vec<_>>(), [(2, 3), (5, 5)]);
        assert_eq!(h.total(), 8);
        let mut m = h.clone();
        m.merge(&SparseHistogram::from_pairs(vec![(1, 1), (5, 1)]));
        assert_eq!(m.iter().collect::<Vec<_>>(), [(1, 1), (2, 3), (5, 6)]);
        let mut dense = vec![0; 6];
        m.add_to_dense(&mut dense);
        assert_eq!(dense, [0, 1, 3, 0, 0, 6]);
        assert!(m.is_valid_for(6));
        assert!(!m.is_valid_for(5));
    }
}
