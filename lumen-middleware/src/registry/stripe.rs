//! One stripe of a route's recording state: two interval buffers and the
//! phase counter that lets the drain swap them without ever waiting for an
//! idle thread (the WriterReaderPhaser of HdrHistogram's Java `Recorder`, and
//! of Prometheus' Go client histograms).
//!
//! A writer adds 1 to `start`, whose top bit names the hot buffer, writes
//! into that buffer with relaxed atomic adds, and adds 1 to the buffer's
//! `completed`. The drain flips the top bit; the low bits it got back say how
//! many writes ever started, so it knows how many the cold buffer must hold
//! and waits only for writes already in flight (nanoseconds), never for a
//! thread that is idle. Writers never wait.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::{METHODS, TIERS};

const HOT_BIT: u64 = 1 << 63;

/// Request methods counted apart (the last is every other method).
pub(crate) const METHOD_COUNT: usize = METHODS.len();
/// Cache tiers timed apart.
pub(crate) const TIER_COUNT: usize = TIERS.len();

/// What one request (or one cache report) adds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// A response of status class `class` (0 = 1xx … 4 = 5xx) to a request
    /// of method `method` (an index in [`METHODS`]) after `index`'s latency.
    Response {
        index: usize,
        class: usize,
        method: usize,
    },
    /// The inner service failed after `index`'s latency.
    Error { index: usize, method: usize },
    /// The client went away before the response.
    Cancelled,
    /// A cache lookup the handler reported.
    Cache { hit: bool },
    /// The request was assigned to this series' experiment arm, by the
    /// app's key or at random.
    Assigned { by_key: bool },
    /// One lookup of cache tier `tier` (an index in
    /// [`TIERS`](crate::wire::TIERS)) that took `us` µs.
    Tier { tier: usize, us: u64 },
}

/// Counters of one interval of one stripe.
pub(crate) struct IntervalBuffer {
    completed: AtomicU64,
    /// Responses by method, then status class.
    status: [[AtomicU64; 5]; METHOD_COUNT],
    /// Inner failures by method.
    errors: [AtomicU64; METHOD_COUNT],
    cancelled: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Lookups and their summed µs by cache tier.
    tiers: [[AtomicU64; 2]; TIER_COUNT],
    /// Requests assigned to the arm at random, and by key.
    assigned: [AtomicU64; 2],
    histogram: Box<[AtomicU64]>,
}

impl IntervalBuffer {
    fn new(len: usize) -> Self {
        Self {
            completed: AtomicU64::new(0),
            status: Default::default(),
            errors: Default::default(),
            cancelled: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            tiers: Default::default(),
            assigned: Default::default(),
            histogram: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    fn apply(&self, event: Event) {
        match event {
            Event::Response {
                index,
                class,
                method,
            } => {
                self.histogram[index].fetch_add(1, Ordering::Relaxed);
                self.status[method][class].fetch_add(1, Ordering::Relaxed);
            }
            Event::Error { index, method } => {
                self.histogram[index].fetch_add(1, Ordering::Relaxed);
                self.errors[method].fetch_add(1, Ordering::Relaxed);
            }
            Event::Cancelled => {
                self.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Event::Cache { hit: true } => {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
            }
            Event::Cache { hit: false } => {
                self.cache_misses.fetch_add(1, Ordering::Relaxed);
            }
            Event::Assigned { by_key } => {
                self.assigned[usize::from(by_key)].fetch_add(1, Ordering::Relaxed);
            }
            Event::Tier { tier, us } => {
                self.tiers[tier][0].fetch_add(1, Ordering::Relaxed);
                self.tiers[tier][1].fetch_add(us, Ordering::Relaxed);
            }
        }
    }
}

/// Sums of drained buffers; the histogram is dense in the registry's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drained {
    pub(crate) histogram: Vec<u64>,
    /// Responses by method, then status class.
    pub(crate) status_by_method: [[u64; 5]; METHOD_COUNT],
    /// Inner failures by method.
    pub(crate) errors_by_method: [u64; METHOD_COUNT],
    pub(crate) cancelled: u64,
    pub(crate) cache_hits: u64,
    pub(crate) cache_misses: u64,
    /// `[lookups, summed µs]` by cache tier.
    pub(crate) tiers: [[u64; 2]; TIER_COUNT],
    /// Requests assigned to the arm `[at random, by key]`.
    pub(crate) assigned: [u64; 2],
}

impl Drained {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            histogram: vec![0; len],
            status_by_method: [[0; 5]; METHOD_COUNT],
            errors_by_method: [0; METHOD_COUNT],
            cancelled: 0,
            cache_hits: 0,
            cache_misses: 0,
            tiers: [[0; 2]; TIER_COUNT],
            assigned: [0; 2],
        }
    }

    /// Responses by status class, all methods.
    pub(crate) fn status(&self) -> [u64; 5] {
        let mut total = [0; 5];
        for by_class in &self.status_by_method {
            for (t, n) in total.iter_mut().zip(by_class) {
                *t += n;
            }
        }
        total
    }

    /// Inner failures, all methods.
    pub(crate) fn errors(&self) -> u64 {
        self.errors_by_method.iter().sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.status_by_method.iter().flatten().all(|c| *c == 0)
            && self.errors() == 0
            && self.cancelled == 0
            && self.cache_hits == 0
            && self.cache_misses == 0
            && self.tiers.iter().all(|t| t[0] == 0)
            && self.assigned == [0, 0]
    }
}

/// A stripe, aligned so that two stripes never share a cache line.
#[repr(align(128))]
pub(crate) struct Stripe {
    start: AtomicU64,
    /// Writes started up to the last drain; only the drain touches it.
    drained_through: AtomicU64,
    buffers: [IntervalBuffer; 2],
}

impl Stripe {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            start: AtomicU64::new(0),
            drained_through: AtomicU64::new(0),
            buffers: [IntervalBuffer::new(len), IntervalBuffer::new(len)],
        }
    }

    /// Records one event. Wait-free: three or four uncontended atomic adds.
    #[inline]
    pub(crate) fn record(&self, event: Event) {
        let phase = self.start.fetch_add(1, Ordering::Acquire);
        let buffer = &self.buffers[(phase >> 63) as usize];
        buffer.apply(event);
        buffer.completed.fetch_add(1, Ordering::Release);
    }

    /// Swaps the buffers and adds the cold one into `into`, zeroing it.
    /// Callers serialise drains (the registry holds a lock that no writer
    /// ever takes).
    pub(crate) fn drain(&self, into: &mut Drained) {
        let phase = self.start.fetch_xor(HOT_BIT, Ordering::AcqRel);
        let started = phase & !HOT_BIT;
        let expected = started - self.drained_through.load(Ordering::Relaxed);
        let cold = &self.buffers[(phase >> 63) as usize];
        let mut spins = 0_u32;
        while cold.completed.load(Ordering::Acquire) != expected {
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        for (sum, counter) in into.histogram.iter_mut().zip(cold.histogram.iter()) {
            let n = counter.load(Ordering::Relaxed);
            if n != 0 {
                *sum += n;
                counter.store(0, Ordering::Relaxed);
            }
        }
        for (sums, counters) in into.status_by_method.iter_mut().zip(cold.status.iter()) {
            for (sum, counter) in sums.iter_mut().zip(counters) {
                *sum += counter.swap(0, Ordering::Relaxed);
            }
        }
        for (sum, counter) in into.errors_by_method.iter_mut().zip(cold.errors.iter()) {
            *sum += counter.swap(0, Ordering::Relaxed);
        }
        into.cancelled += cold.cancelled.swap(0, Ordering::Relaxed);
        into.cache_hits += cold.cache_hits.swap(0, Ordering::Relaxed);
        into.cache_misses += cold.cache_misses.swap(0, Ordering::Relaxed);
        for (sum, counter) in into.assigned.iter_mut().zip(cold.assigned.iter()) {
            *sum += counter.swap(0, Ordering::Relaxed);
        }
        for (sums, counters) in into.tiers.iter_mut().zip(cold.tiers.iter()) {
            for (sum, counter) in sums.iter_mut().zip(counters) {
                *sum += counter.swap(0, Ordering::Relaxed);
            }
        }
        cold.completed.store(0, Ordering::Relaxed);
        self.drained_through.store(started, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drain_takes_what_was_recorded_once() {
        let stripe = Stripe::new(8);
        let mut d = Drained::new(8);
        stripe.record(Event::Response {
            index: 3,
            class: 1,
            method: 2,
        });
        stripe.record(Event::Error {
            index: 5,
            method: 0,
        });
        stripe.record(Event::Cancelled);
        stripe.record(Event::Cache { hit: true });
        stripe.record(Event::Tier { tier: 1, us: 700 });
        stripe.record(Event::Tier { tier: 1, us: 300 });
        stripe.drain(&mut d);
        assert_eq!(d.tiers, [[0, 0], [2, 1_000], [0, 0]]);
        assert_eq!(d.histogram, vec![0, 0, 0, 1, 0, 1, 0, 0]);
        assert_eq!(d.status(), [0, 1, 0, 0, 0]);
        assert_eq!(d.status_by_method[2], [0, 1, 0, 0, 0], "a POST");
        assert_eq!(d.errors_by_method[0], 1, "a GET");
        assert_eq!(
            (d.errors(), d.cancelled, d.cache_hits, d.cache_misses),
            (1, 1, 1, 0)
        );
        let mut again = Drained::new(8);
        stripe.drain(&mut again);
        stripe.drain(&mut again);
        assert!(again.is_empty());
        stripe.record(Event::Response {
            index: 0,
            class: 4,
            method: 9,
        });
        stripe.drain(&mut again);
        assert_eq!(again.status(), [0, 0, 0, 0, 1]);
    }

    #[test]
    fn concurrent_writers_lose_nothing_and_stay_consistent() {
        let stripe = Arc::new(Stripe::new(4));
        let writers: Vec<_> = (0..3)
            .map(|t| {
                let stripe = Arc::clone(&stripe);
                std::thread::spawn(move || {
                    for i in 0..200_000 {
                        stripe.record(Event::Response {
                            index: (i + t) % 4,
                            class: i % 5,
                            method: i % METHOD_COUNT,
                        });
                    }
                })
            })
            .collect();
        let mut total = Drained::new(4);
        while !writers.iter().all(|w| w.is_finished()) {
            let mut interval = Drained::new(4);
            stripe.drain(&mut interval);
            // Every drained interval is a consistent cut: histogram = statuses.
            let hist: u64 = interval.histogram.iter().sum();
            let statuses: u64 = interval.status().iter().sum();
            assert_eq!(hist, statuses);
            for (t, i) in total.histogram.iter_mut().zip(interval.histogram) {
                *t += i;
            }
        }
        for w in writers {
            w.join().expect("writer finished");
        }
        let mut last = Drained::new(4);
        stripe.drain(&mut last);
        let sum: u64 = total.histogram.iter().sum::<u64>() + last.histogram.iter().sum::<u64>();
        assert_eq!(sum, 600_000);
    }
}
