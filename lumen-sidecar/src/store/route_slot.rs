//! One route's counts and latency over a minute or a block.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::counts::Counts;
use super::sparse_histogram::SparseHistogram;

/// Route label as stored: `None` for requests without one.
pub type RouteKey = Option<Arc<str>>;

/// One route's minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSlot {
    /// Its counts.
    pub counts: Counts,
    /// Its latency, µs, in [`store_layout`](super::store_layout).
    pub latency: SparseHistogram,
}

impl RouteSlot {
    /// Adds `other` (counts and histogram).
    pub fn add(&mut self, other: &Self) {
        self.counts.add(&other.counts);
        self.latency.merge(&other.latency);
    }

    /// Takes `other` out, saturating at zero: exact when `other` was added.
    pub fn subtract(&mut self, other: &Self) {
        self.counts.subtract(&other.counts);
        self.latency.subtract(&other.latency);
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.counts == Counts::default() && self.latency.total() == 0
    }
}
