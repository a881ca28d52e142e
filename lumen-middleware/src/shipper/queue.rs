//! Batches waiting for the sidecar's acknowledgement.
//!
//! The front batch gets its seq when it is first sent and never changes
//! after that: a resend is the same bytes, so the sidecar's dedup by
//! (instance, seq) makes delivery exactly once. Batches behind it have no seq
//! yet; past the cap, a new interval merges into the newest of them, so a
//! long outage costs bounded memory and loses no count.

use std::collections::VecDeque;

use crate::wire::{self, Batch, Series};

struct Queued {
    batch: Batch,
    sent: bool,
}

/// The queue of unacknowledged batches of one instance.
pub(crate) struct BatchQueue {
    batches: VecDeque<Queued>,
    cap: usize,
    next_seq: u64,
}

impl BatchQueue {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            cap: cap.max(2),
            next_seq: 1,
        }
    }

    /// Queues an interval (its `seq` is ignored); returns true when it was
    /// merged into an unsent batch because the queue is full.
    pub(crate) fn push(&mut self, batch: Batch) -> bool {
        if self.batches.len() >= self.cap
            && let Some(last) = self.batches.back_mut()
            && !last.sent
        {
            merge(&mut last.batch, batch);
            return true;
        }
        self.batches.push_back(Queued { batch, sent: false });
        false
    }

    /// The batch to send now, its seq fixed from here on.
    pub(crate) fn front(&mut self) -> Option<&Batch> {
        let front = self.batches.front_mut()?;
        if !front.sent {
            front.sent = true;
            front.batch.seq = self.next_seq;
            self.next_seq += 1;
        }
        Some(&front.batch)
    }

    /// Removes the front batch if `applied_seq` covers it.
    pub(crate) fn acknowledge(&mut self, applied_seq: u64) -> bool {
        match self.batches.front() {
            Some(front) if front.sent && front.batch.seq <= applied_seq => {
                self.batches.pop_front();
                true
            }
            _ => false,
        }
    }

    /// Removes the front batch, which the sidecar refused for good.
    pub(crate) fn discard_front(&mut self) -> Option<Batch> {
        self.batches.pop_front().map(|q| q.batch)
    }

    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }

    /// Requests in all queued batches (those finished, errors included).
    pub(crate) fn requests(&self) -> u64 {
        self.batches.iter().map(|q| batch_requests(&q.batch)).sum()
    }

    /// Whether no queued batch holds a series (only idle intervals, whose
    /// process figures nothing depends on): nothing worth waiting for.
    pub(crate) fn holds_no_series(&self) -> bool {
        self.batches.iter().all(|q| q.batch.series.is_empty())
    }
}

/// Finished requests in a batch.
pub(crate) fn batch_requests(batch: &Batch) -> u64 {
    batch
        .series
        .iter()
        .map(|s| {
            s.status
                .checked_total()
                .unwrap_or(u64::MAX)
                .saturating_add(s.errors)
        })
        .sum()
}

fn merge(into: &mut Batch, newer: Batch) {
    into.end_ms = into.end_ms.max(newer.end_ms);
    into.start_ms = into.start_ms.min(newer.start_ms);
    if newer.process.is_some() {
        into.process = newer.process;
    }
    for series in newer.series {
        match into.series.iter_mut().find(|s| s.route == series.route) {
            Some(existing) => merge_series(existing, series),
            None => into.series.push(series),
        }
    }
}

fn merge_series(into: &mut Series, newer: Series) {
    let mut latency = wire::decode_histogram(&into.latency_us)
        .expect("queued histograms were encoded by this process");
    let other = wire::decode_histogram(&newer.latency_us)
        .expect("queued histograms were encoded by this process");
    latency
        .add(&other)
        .expect("histograms of one registry share one layout");
    into.latency_us = wire::encode_histogram(&latency);
    into.status = into.status.saturating_add(&newer.status);
    into.errors = into.errors.saturating_add(newer.errors);
    into.cancelled = into.cancelled.saturating_add(newer.cancelled);
    into.cache.hits = into.cache.hits.saturating_add(newer.cache.hits);
    into.cache.misses = into.cache.misses.saturating_add(newer.cache.misses);
    for (method, counts) in newer.methods {
        let merged = into.methods.entry(method).or_default();
        merged.status = merged.status.saturating_add(&counts.status);
        merged.errors = merged.errors.saturating_add(counts.errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::StatusCounts;
    use hdrhistogram::Histogram;

    fn batch(start_ms: u64, route: &str, ok: u64) -> Batch {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
        h.record_n(1_000 + start_ms, ok).expect("in range");
        let status = StatusCounts {
            success: ok,
            ..Default::default()
        };
        Batch::new("i", 0, "s", start_ms, start_ms + 10).with_series([Series::new(
            Some(route),
            &h,
            status,
        )
        .with_method("GET", wire::MethodCounts { status, errors: 0 })])
    }

    #[test]
    fn seq_is_fixed_at_first_send_and_kept_on_resend() {
        let mut q = BatchQueue::new(4);
        q.push(batch(0, "/a", 1));
        q.push(batch(10, "/a", 2));
        assert_eq!(q.front().expect("one").seq, 1);
        assert_eq!(q.front().expect("same").seq, 1, "resend keeps its seq");
        assert!(!q.acknowledge(0));
        assert!(q.acknowledge(1));
        assert_eq!(q.front().expect("next").seq, 2);
        assert!(q.acknowledge(7), "a higher applied seq covers it");
        assert!(q.front().is_none());
    }

    #[test]
    fn a_full_queue_merges_without_losing_counts() {
        let mut q = BatchQueue::new(2);
        q.push(batch(0, "/a", 1));
        q.front(); // in flight
        assert!(!q.push(batch(10, "/a", 2)));
        assert!(q.push(batch(20, "/a", 3)));
        assert!(q.push(batch(30, "/b", 4)));
        assert_eq!(q.len(), 2);
        assert_eq!(q.requests(), 10);
        q.acknowledge(1);
        let merged = q.front().expect("merged").clone();
        assert_eq!(merged.seq, 2);
        assert_eq!((merged.start_ms, merged.end_ms), (10, 40));
        assert_eq!(merged.series.len(), 2);
        let a = wire::decode_histogram(&merged.series[0].latency_us).expect("decodes");
        assert_eq!(a.len(), 5);
        assert_eq!(merged.series[0].status.success, 5);
        assert_eq!(merged.series[0].methods["GET"].status.success, 5);
        // What the sidecar checks: the merged batch still decodes.
        let mut sent = merged.clone();
        sent.seq = 2;
        wire::decode(&serde_json::to_vec(&sent).expect("json")).expect("a valid batch");
    }

    #[test]
    fn the_in_flight_batch_is_never_merged_into() {
        let mut q = BatchQueue::new(2);
        q.push(batch(0, "/a", 1));
        q.push(batch(10, "/a", 1));
        q.front();
        q.acknowledge(1);
        q.front(); // the only batch is now in flight, seq 2
        assert!(
            !q.push(batch(20, "/a", 1)),
            "the in-flight batch is the only one: no merge"
        );
        assert!(
            q.push(batch(30, "/a", 1)),
            "full: merged into the unsent one"
        );
        assert_eq!(q.len(), 2);
        let front = q.front().expect("front");
        assert_eq!(
            (front.seq, front.start_ms, front.series[0].status.success),
            (2, 10, 1),
            "unchanged"
        );
        assert!(q.acknowledge(2));
        let merged = q.front().expect("merged");
        assert_eq!(
            (
                merged.start_ms,
                merged.end_ms,
                merged.series[0].status.success
            ),
            (20, 40, 2)
        );
    }
}
