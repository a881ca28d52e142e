//! One stripe of a route's recording state: two interval buffers that the
//! drain swaps without ever waiting for an idle thread.
//!
//! A stripe has one writer mode for life:
//!
//! - **Owned** (one thread, the stripe's owner, ever writes it): the writer
//!   announces a write with one locked add, reads which buffer is hot, and
//!   adds into it with plain loads and stores (no other thread writes those
//!   counters), then publishes how many writes it completed. The drain flips
//!   the hot buffer, reads how many writes were announced, and waits until
//!   that many completed. Sequentially consistent ordering of the announce
//!   and the flip (Dekker's argument) means a write the drain did not count
//!   saw the flip and went to the new buffer. One locked instruction a
//!   request instead of four.
//! - **Shared** (any threads): the WriterReaderPhaser of HdrHistogram's Java
//!   `Recorder` and of Prometheus' Go client histograms. A writer adds 1 to
//!   `start`, whose top bit names the hot buffer, writes into that buffer
//!   with relaxed atomic adds, and adds 1 to the buffer's `completed`. The
//!   drain flips the top bit; the low bits it got back say how many writes
//!   ever started, so it knows how many the cold buffer must hold.
//!
//! Either way the drain waits only for writes already in flight
//! (nanoseconds), never for a thread that is idle, and writers never wait.

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
    /// A gRPC call that ended with status `code` (0 … 16): a response of
    /// class `class`, counted by code too.
    Grpc {
        index: usize,
        class: usize,
        method: usize,
        code: u8,
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

/// gRPC status codes counted (0 OK … 16 UNAUTHENTICATED).
pub(crate) const GRPC_CODES: usize = 17;

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
    /// gRPC calls by status code.
    grpc: [AtomicU64; GRPC_CODES],
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
            grpc: Default::default(),
            histogram: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds `event` with `add` (an atomic add, or a plain one for a
    /// stripe's only writer).
    #[inline(always)]
    fn apply(&self, event: Event, add: impl Fn(&AtomicU64, u64)) {
        match event {
            Event::Response {
                index,
                class,
                method,
            } => {
                add(&self.histogram[index], 1);
                add(&self.status[method][class], 1);
            }
            Event::Grpc {
                index,
                class,
                method,
                code,
            } => {
                add(&self.histogram[index], 1);
                add(&self.status[method][class], 1);
                if let Some(counter) = self.grpc.get(usize::from(code)) {
                    add(counter, 1);
                }
            }
            Event::Error { index, method } => {
                add(&self.histogram[index], 1);
                add(&self.errors[method], 1);
            }
            Event::Cancelled => {
                add(&self.cancelled, 1);
            }
            Event::Cache { hit: true } => {
                add(&self.cache_hits, 1);
            }
            Event::Cache { hit: false } => {
                add(&self.cache_misses, 1);
            }
            Event::Assigned { by_key } => {
                add(&self.assigned[usize::from(by_key)], 1);
            }
            Event::Tier { tier, us } => {
                add(&self.tiers[tier][0], 1);
                add(&self.tiers[tier][1], us);
            }
        }
    }
}

impl IntervalBuffer {
    /// Adds this (quiescent) buffer into `into` and zeroes it.
    fn take_into(&self, into: &mut Drained) {
        let take = |counter: &AtomicU64| {
            let n = counter.load(Ordering::Relaxed);
            if n != 0 {
                counter.store(0, Ordering::Relaxed);
            }
            n
        };
        for (sum, counter) in into.histogram.iter_mut().zip(self.histogram.iter()) {
            *sum += take(counter);
        }
        for (sums, counters) in into.status_by_method.iter_mut().zip(self.status.iter()) {
            for (sum, counter) in sums.iter_mut().zip(counters) {
                *sum += take(counter);
            }
        }
        for (sum, counter) in into.errors_by_method.iter_mut().zip(self.errors.iter()) {
            *sum += take(counter);
        }
        into.cancelled += take(&self.cancelled);
        into.cache_hits += take(&self.cache_hits);
        into.cache_misses += take(&self.cache_misses);
        for (sum, counter) in into.assigned.iter_mut().zip(self.assigned.iter()) {
            *sum += take(counter);
        }
        for (sum, counter) in into.grpc.iter_mut().zip(self.grpc.iter()) {
            *sum += take(counter);
        }
        for (sums, counters) in into.tiers.iter_mut().zip(self.tiers.iter()) {
            for (sum, counter) in sums.iter_mut().zip(counters) {
                *sum += take(counter);
            }
        }
        self.completed.store(0, Ordering::Relaxed);
    }
}

/// An atomic add, for counters several threads write.
#[inline]
fn add_shared(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A plain add, for counters only one thread ever writes (no locked
/// instruction; the drain reads them only once the writer is done).
#[inline]
fn add_owned(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
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
    /// gRPC calls by status code.
    pub(crate) grpc: [u64; GRPC_CODES],
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
            grpc: [0; GRPC_CODES],
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
    /// Shared: writes started, the top bit naming the hot buffer. Owned:
    /// writes announced.
    start: AtomicU64,
    /// Owned: the hot buffer (0 or 1); only the drain writes it.
    hot: AtomicU64,
    /// Owned: writes completed; only the owner writes it.
    completed: AtomicU64,
    /// Shared: writes started up to the last drain; only the drain touches it.
    drained_through: AtomicU64,
    owned: bool,
    buffers: [IntervalBuffer; 2],
}

impl Stripe {
    /// A stripe only one thread ever writes, with [`record_owned`](Self::record_owned).
    pub(crate) fn owned(len: usize) -> Self {
        Self::new(len, true)
    }

    /// A stripe any threads write, with [`record_shared`](Self::record_shared).
    pub(crate) fn shared(len: usize) -> Self {
        Self::new(len, false)
    }

    fn new(len: usize, owned: bool) -> Self {
        Self {
            start: AtomicU64::new(0),
            hot: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            drained_through: AtomicU64::new(0),
            owned,
            buffers: [IntervalBuffer::new(len), IntervalBuffer::new(len)],
        }
    }

    /// Records one event on an owned stripe. The caller is the only thread
    /// that ever records on this stripe. Wait-free: one locked add.
    #[inline(always)]
    pub(crate) fn record_owned(&self, event: Event) {
        debug_assert!(self.owned, "an owned stripe");
        // Announce, then look which buffer is hot. Both sequentially
        // consistent, as the drain's flip and its read of the announcements
        // are: either the drain counts this write, or this write sees the flip.
        self.start.fetch_add(1, Ordering::SeqCst);
        let buffer = &self.buffers[self.hot.load(Ordering::SeqCst) as usize & 1];
        buffer.apply(event, add_owned);
        let completed = self.completed.load(Ordering::Relaxed);
        self.completed.store(completed + 1, Ordering::Release);
    }

    /// Records one event on a shared stripe. Wait-free: three or four
    /// uncontended atomic adds.
    #[inline(always)]
    pub(crate) fn record_shared(&self, event: Event) {
        debug_assert!(!self.owned, "a shared stripe");
        let phase = self.start.fetch_add(1, Ordering::Acquire);
        let buffer = &self.buffers[(phase >> 63) as usize];
        buffer.apply(event, add_shared);
        buffer.completed.fetch_add(1, Ordering::Release);
    }

    /// Swaps the buffers and adds the cold one into `into`, zeroing it.
    /// Callers serialise drains (the registry holds a lock that no writer
    /// ever takes).
    pub(crate) fn drain(&self, into: &mut Drained) {
        let cold = if self.owned {
            let cold = self.hot.load(Ordering::Relaxed) & 1;
            self.hot.store(cold ^ 1, Ordering::SeqCst);
            let announced = self.start.load(Ordering::SeqCst);
            wait_until(|| self.completed.load(Ordering::Acquire) >= announced);
            &self.buffers[cold as usize]
        } else {
            let phase = self.start.fetch_xor(HOT_BIT, Ordering::AcqRel);
            let started = phase & !HOT_BIT;
            let expected = started - self.drained_through.load(Ordering::Relaxed);
            let cold = &self.buffers[(phase >> 63) as usize];
            wait_until(|| cold.completed.load(Ordering::Acquire) == expected);
            self.drained_through.store(started, Ordering::Relaxed);
            cold
        };
        cold.take_into(into);
    }
}

/// Spins (then yields) until `done`: for writes in flight, which take
/// nanoseconds unless their thread was descheduled mid-write.
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0_u32;
    while !done() {
        spins += 1;
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Records through the stripe's own mode.
    fn record(stripe: &Stripe, event: Event) {
        if stripe.owned {
            stripe.record_owned(event);
        } else {
            stripe.record_shared(event);
        }
    }

    #[test]
    fn drain_takes_what_was_recorded_once() {
        for stripe in [Stripe::owned(8), Stripe::shared(8)] {
            let record = |event| record(&stripe, event);
            let mut d = Drained::new(8);
            record(Event::Response {
                index: 3,
                class: 1,
                method: 2,
            });
            record(Event::Error {
                index: 5,
                method: 0,
            });
            record(Event::Cancelled);
            record(Event::Cache { hit: true });
            record(Event::Tier { tier: 1, us: 700 });
            record(Event::Tier { tier: 1, us: 300 });
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
            // Recorded into each buffer in turn after drains, still exact.
            for _ in 0..3 {
                record(Event::Response {
                    index: 0,
                    class: 4,
                    method: 9,
                });
                stripe.drain(&mut again);
            }
            assert_eq!(again.status(), [0, 0, 0, 0, 3]);
            assert_eq!(again.histogram[0], 3);
        }
    }

    /// `writers` threads record `each` responses on `stripe` while this
    /// thread drains it: every interval is a consistent cut (histogram
    /// total = status total) and nothing is lost.
    fn drains_during_writes(stripe: Stripe, writers: usize, each: usize) {
        let stripe = Arc::new(stripe);
        let writers: Vec<_> = (0..writers)
            .map(|t| {
                let stripe = Arc::clone(&stripe);
                std::thread::spawn(move || {
                    for i in 0..each {
                        record(
                            &stripe,
                            Event::Response {
                                index: (i + t) % 4,
                                class: i % 5,
                                method: i % METHOD_COUNT,
                            },
                        );
                    }
                })
            })
            .collect();
        let n = writers.len() as u64;
        let mut total = 0;
        let mut drains = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            let mut interval = Drained::new(4);
            stripe.drain(&mut interval);
            let hist: u64 = interval.histogram.iter().sum();
            let statuses: u64 = interval.status().iter().sum();
            assert_eq!(hist, statuses, "after {drains} drains");
            total += hist;
            drains += 1;
        }
        for w in writers {
            w.join().expect("writer finished");
        }
        let mut last = Drained::new(4);
        stripe.drain(&mut last);
        total += last.histogram.iter().sum::<u64>();
        assert_eq!(total, each as u64 * n);
    }

    #[test]
    fn concurrent_writers_lose_nothing_and_stay_consistent() {
        drains_during_writes(Stripe::shared(4), 3, 200_000);
    }

    #[test]
    fn an_owned_stripe_drained_while_its_owner_writes_loses_nothing() {
        drains_during_writes(Stripe::owned(4), 1, 1_000_000);
    }
}
