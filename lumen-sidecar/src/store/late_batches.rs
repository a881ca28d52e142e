//! Batches that arrived after the fleet store's blocks holding their
//! minute had closed: kept apart (as well as in their minute), so the
//! fleet store gets each as a field of its own, named by the batch, and
//! this sidecar's own fields of those blocks never hold it.
//!
//! A block of the fleet store closes [`LATE_AFTER_MINUTES`] after it ends;
//! once every sidecar that wrote it is done with it, one sidecar merges its
//! fields into one (compaction). A sidecar's field of a closed block is
//! never written again with more in it: what arrives later is a late
//! batch, written under its own name (idempotent: the same batch is the
//! same field), and merged into the block's one field in turn.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error_budget_ledger::BudgetCounts;
use super::route_slot::{RouteKey, RouteSlot};

/// Minutes after a fleet store block ends before it closes: a batch
/// accepted later than that for one of its minutes is late for it.
pub const LATE_AFTER_MINUTES: u64 = 15;
/// Late batches held at most: past it a late batch counts in its minute
/// only (logged), as a batch on time would.
pub const MAX_LATE_BATCHES: usize = 5_000;

/// One late batch, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateBatch {
    /// Which batch: a digest of its app instance and sequence number.
    pub id: u64,
    /// The minute it belongs to.
    pub minute: u64,
    /// The minute this sidecar accepted it.
    pub accepted_minute: u64,
    /// Its routes (folded as stored).
    pub routes: Vec<(RouteKey, RouteSlot)>,
    /// Its error budget's counts.
    pub budget: BudgetCounts,
}

impl LateBatch {
    /// Whether it arrived after the block ending at minute `end`
    /// (exclusive) closed.
    pub fn late_for(&self, end: u64) -> bool {
        self.accepted_minute >= end + LATE_AFTER_MINUTES
    }

    /// Whether it is late for the minute it belongs to (and so kept).
    pub fn is_late(minute: u64, accepted_minute: u64) -> bool {
        accepted_minute >= minute + 1 + LATE_AFTER_MINUTES
    }
}

/// The id of the batch `seq` of app instance `instance`: FNV-1a, stable
/// across builds and restarts.
pub fn batch_id(instance: &str, seq: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in instance.bytes().chain([0xff]).chain(seq.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The late batches held, by minute.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LateBatches {
    by_minute: BTreeMap<u64, Vec<LateBatch>>,
    /// `(minute, id)` of those the fleet store has yet to be told.
    #[serde(skip)]
    new: Vec<(u64, u64)>,
}

/// Equal when they hold the same batches (which the fleet store has yet to
/// be told is the writer's concern, not the store's state).
impl PartialEq for LateBatches {
    fn eq(&self, other: &Self) -> bool {
        self.by_minute == other.by_minute
    }
}

impl LateBatches {
    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_minute.is_empty()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.by_minute.values().map(Vec::len).sum()
    }

    /// Keeps `batch`; `false` when the cap is reached (it is not kept).
    /// The same batch twice is kept once.
    pub fn record(&mut self, batch: LateBatch) -> bool {
        let held = self.by_minute.get(&batch.minute);
        if held.is_some_and(|h| h.iter().any(|b| b.id == batch.id)) {
            return true;
        }
        if self.len() >= MAX_LATE_BATCHES {
            return false;
        }
        self.new.push((batch.minute, batch.id));
        self.by_minute.entry(batch.minute).or_default().push(batch);
        true
    }

    /// Those in minutes `start..end`.
    pub fn within(&self, start: u64, end: u64) -> impl Iterator<Item = &LateBatch> {
        self.by_minute.range(start..end).flat_map(|(_, b)| b.iter())
    }

    /// Those the fleet store has yet to be told (every one with `all`),
    /// forgotten as new.
    pub fn take_new(&mut self, all: bool) -> Vec<LateBatch> {
        let new = std::mem::take(&mut self.new);
        if all {
            return self.by_minute.values().flatten().cloned().collect();
        }
        new.into_iter()
            .filter_map(|(minute, id)| {
                self.by_minute
                    .get(&minute)?
                    .iter()
                    .find(|b| b.id == id)
                    .cloned()
            })
            .collect()
    }

    /// Drops those of minutes before `first_kept`.
    pub fn evict_before(&mut self, first_kept: u64) {
        self.by_minute = self.by_minute.split_off(&first_kept);
        let by_minute = &self.by_minute;
        self.new.retain(|(m, _)| by_minute.contains_key(m));
    }

    /// Heap bytes held, roughly.
    pub fn heap_bytes(&self) -> usize {
        self.by_minute
            .values()
            .flatten()
            .map(|b| {
                std::mem::size_of::<LateBatch>()
                    + b.routes
                        .iter()
                        .map(|(_, s)| 96 + s.latency.heap_bytes())
                        .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: u64, minute: u64, accepted_minute: u64) -> LateBatch {
        LateBatch {
            id,
            minute,
            accepted_minute,
            routes: Vec::new(),
            budget: BudgetCounts::default(),
        }
    }

    #[test]
    fn a_batch_is_late_for_the_blocks_closed_when_it_came() {
        let b = batch(1, 100, 100 + 1 + LATE_AFTER_MINUTES);
        assert!(LateBatch::is_late(100, b.accepted_minute));
        assert!(!LateBatch::is_late(100, b.accepted_minute - 1));
        assert!(b.late_for(101), "its minute's block had closed");
        assert!(!b.late_for(110), "its 10-minute block had not");
    }

    #[test]
    fn ids_are_stable_and_tell_batches_apart() {
        assert_eq!(batch_id("app-1", 7), batch_id("app-1", 7));
        assert_ne!(batch_id("app-1", 7), batch_id("app-1", 8));
        assert_ne!(batch_id("app-1", 7), batch_id("app-17", 7));
        assert_eq!(batch_id("", 0), 0x2032_dd64_3620_252e, "FNV-1a, fixed");
    }

    #[test]
    fn new_ones_are_told_once_and_evicted_with_their_minute() {
        let mut late = LateBatches::default();
        assert!(late.record(batch(1, 100, 200)));
        assert!(late.record(batch(1, 100, 201)), "the same batch");
        assert!(late.record(batch(2, 130, 200)));
        assert_eq!(late.len(), 2);
        assert_eq!(late.take_new(false).len(), 2);
        assert!(late.take_new(false).is_empty());
        assert_eq!(late.take_new(true).len(), 2, "all, after a resync");
        assert_eq!(late.within(100, 101).count(), 1);
        for i in 0..MAX_LATE_BATCHES as u64 {
            late.record(batch(10 + i, 110, 200));
        }
        assert_eq!(late.len(), MAX_LATE_BATCHES, "capped");
        assert!(!late.record(batch(1, 150, 200)), "refused past the cap");
        assert!(late.within(150, 151).next().is_none());
        late.take_new(false);
        late.evict_before(120);
        assert_eq!(late.len(), 1);
    }
}
