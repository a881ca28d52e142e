//! Where requests are recorded: a fixed table of routes, each with one
//! [`Stripe`] per recording thread (up to the stripe count; threads beyond
//! share as many more), each stripe double-buffered.
//!
//! Memory: each stripe of a route holds 2 dense histograms of
//! `layout.len()` 8-byte counters (17,408 for the default layout: 272 KiB a
//! stripe), allocated the first time a thread of that stripe records on the
//! route. So a route costs `272 KiB × min(recording threads, 2 × stripes)`,
//! and the app at most `272 KiB × 2 × stripes × (route cap + 2)`: with the
//! default cap of 8 stripes and 64 routes, 280 MiB at the very most (more
//! than 8 threads recording on every route), and 2 recording threads on 10
//! routes cost 5.3 MiB.

pub(crate) mod key_sample;
mod stripe;
mod thread_slot;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use hdrhistogram::Histogram;

pub(crate) use key_sample::DrainedKeys;
use key_sample::KeyRing;
pub(crate) use key_sample::{MODULUS, THRESHOLD};
use stripe::Stripe;
pub(crate) use stripe::{Drained, Event, METHOD_COUNT};

/// The index in [`METHODS`](crate::wire::METHODS) of `method` (`_OTHER` for
/// any method but the nine standard ones).
#[inline]
pub(crate) fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::CONNECT => 5,
        http::Method::OPTIONS => 6,
        http::Method::TRACE => 7,
        http::Method::PATCH => 8,
        _ => METHOD_COUNT - 1,
    }
}

use crate::layout::HistogramLayout;
use crate::wire::{Arm, Variant};

/// Route label of requests beyond the route cap.
pub const OTHER_ROUTE: &str = "other";

/// The recording state of one route (or of the unclassified requests).
pub(crate) struct RouteSeries {
    name: Option<Box<str>>,
    layout: HistogramLayout,
    stripes: Box<[OnceLock<Stripe>]>,
    keys: KeyRing,
    /// For an arm's series, the arm; `None` for a route's own series.
    arm: Option<Arm>,
    /// A route's series per experiment arm, made the first time one of its
    /// requests is assigned to an arm.
    arms: OnceLock<Box<[RouteSeries; 2]>>,
    /// For an arm's series, the experiment its requests were last
    /// assigned in.
    experiment: AtomicU32,
}

impl RouteSeries {
    fn new(name: Option<&str>, layout: HistogramLayout, stripes: usize) -> Self {
        Self::with_arm(name, layout, stripes, None)
    }

    fn with_arm(
        name: Option<&str>,
        layout: HistogramLayout,
        stripes: usize,
        arm: Option<Arm>,
    ) -> Self {
        Self {
            name: name.map(Into::into),
            layout,
            // Owned stripes, then as many shared ones.
            stripes: (0..2 * stripes).map(|_| OnceLock::new()).collect(),
            keys: KeyRing::default(),
            arm,
            arms: OnceLock::new(),
            experiment: AtomicU32::new(0),
        }
    }

    /// The series of this route's requests assigned to `arm` of
    /// `experiment`; an arm's series is its own (a request is assigned
    /// once). Allocates once per route, at its first assignment.
    #[inline]
    pub(crate) fn arm(&'static self, arm: Arm, experiment: u32) -> &'static RouteSeries {
        if self.arm.is_some() {
            return self;
        }
        let stripes = self.stripes.len() / 2;
        let series = &self.arms.get_or_init(|| {
            Box::new(Arm::BOTH.map(|a| {
                RouteSeries::with_arm(self.name.as_deref(), self.layout, stripes, Some(a))
            }))
        })[arm as usize];
        if series.experiment.load(Ordering::Relaxed) != experiment {
            series.experiment.store(experiment, Ordering::Relaxed);
        }
        series
    }

    /// Counts one keyed cache lookup and samples its key.
    #[inline]
    pub(crate) fn record_key(&self, hash: u64) {
        self.keys.record(hash);
    }

    /// Times one lookup of cache tier `tier` (an index in
    /// [`TIERS`](crate::wire::TIERS)) at `latency`.
    #[inline]
    pub(crate) fn record_tier(&self, tier: usize, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(crate::wire::MAX_HIGHEST_TRACKABLE_US);
        self.record(Event::Tier { tier, us });
    }

    /// Records a response of `status` to a request of method `method` (an
    /// index in [`METHODS`](crate::wire::METHODS)) after `latency_us`.
    #[inline]
    pub(crate) fn record_response(&self, latency_us: u64, status: u16, method: usize) {
        let class = crate::wire::StatusClass::of_code(status).index();
        self.record(Event::Response {
            index: self.layout.index_of(latency_us),
            class,
            method,
        });
    }

    /// Records a gRPC call that ended with `code` (0 … 16) after
    /// `latency_us`, in the class of `status`, the HTTP status the code
    /// maps to.
    #[inline]
    pub(crate) fn record_grpc(&self, latency_us: u64, code: u8, status: u16, method: usize) {
        self.record(Event::Grpc {
            index: self.layout.index_of(latency_us),
            class: crate::wire::StatusClass::of_code(status).index(),
            method,
            code,
        });
    }

    /// Records an inner-service failure after `latency_us`.
    #[inline]
    pub(crate) fn record_error(&self, latency_us: u64, method: usize) {
        self.record(Event::Error {
            index: self.layout.index_of(latency_us),
            method,
        });
    }

    /// Records `event` on the calling thread's stripe: its own (the first
    /// `stripes` threads' slots), else a shared one.
    // Always inlined: the event is then known at each call site and only
    // its own arm is compiled in (measured: not inlined, a request cost
    // ~30 more instructions once the gRPC arm was added).
    #[inline(always)]
    pub(crate) fn record(&self, event: Event) {
        let owned = self.stripes.len() / 2;
        let slot = thread_slot::thread_slot();
        if slot < owned {
            self.stripes[slot]
                .get_or_init(|| Stripe::owned(self.layout.len()))
                .record_owned(event);
        } else {
            self.stripes[owned + (slot & (owned - 1))]
                .get_or_init(|| Stripe::shared(self.layout.len()))
                .record_shared(event);
        }
    }

    fn drain(&self, into: &mut Drained) {
        for stripe in self.stripes.iter().filter_map(OnceLock::get) {
            stripe.drain(into);
        }
    }

    /// Stripes allocated so far.
    #[cfg(test)]
    fn allocated_stripes(&self) -> usize {
        self.stripes.iter().filter(|s| s.get().is_some()).count()
    }
}

/// One route's interval, drained.
#[derive(Debug, Clone)]
pub struct IntervalSeries {
    /// Route label; `None` for requests no route was given to.
    pub route: Option<String>,
    /// The experiment arm its requests were assigned to, if any.
    pub variant: Option<Variant>,
    /// Latency in µs.
    pub latency: Histogram<u64>,
    /// Responses by class, `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: [u64; 5],
    /// The responses and inner failures by request method (only methods seen).
    pub methods: std::collections::BTreeMap<String, crate::wire::MethodCounts>,
    /// Inner-service failures.
    pub errors: u64,
    /// Client-abandoned requests.
    pub cancelled: u64,
    /// Cache hits reported.
    pub cache_hits: u64,
    /// Cache misses reported.
    pub cache_misses: u64,
    /// The interval's sample of cache keys.
    pub(crate) keys: DrainedKeys,
    /// Cache lookups timed by tier, `[lookups, summed µs]` in
    /// [`TIERS`](crate::wire::TIERS)' order.
    pub tiers: [[u64; 2]; 3],
    /// For an arm's series, requests assigned to it `[at random, by key]`.
    pub assigned: [u64; 2],
    /// gRPC calls by status code (index = code), beside `status`.
    pub grpc_codes: [u64; 17],
}

impl IntervalSeries {
    /// The series as it travels in a batch.
    pub fn to_wire(&self) -> crate::wire::Series {
        crate::wire::Series {
            route: self.route.clone(),
            variant: self.variant,
            latency_us: crate::wire::encode_histogram(&self.latency),
            status: crate::wire::StatusCounts::from_array(self.status),
            errors: self.errors,
            methods: self.methods.clone(),
            grpc_codes: self
                .grpc_codes
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            cancelled: self.cancelled,
            cache: crate::wire::CacheCounts {
                hits: self.cache_hits,
                misses: self.cache_misses,
            },
            keys: (self.keys.lookups > 0).then(|| crate::wire::KeySample {
                threshold: THRESHOLD.load(std::sync::atomic::Ordering::Relaxed),
                lookups: self.keys.lookups,
                dropped: self.keys.dropped,
                accesses: self.keys.accesses.clone(),
            }),
            assignments: (self.assigned != [0, 0]).then_some(crate::wire::Assignments {
                random: self.assigned[0],
                by_key: self.assigned[1],
            }),
            tiers: self.tiers.iter().any(|t| t[0] > 0).then(|| {
                crate::wire::TierTimes::from_array(
                    self.tiers
                        .map(|[lookups, total_us]| crate::wire::TierTime { lookups, total_us }),
                )
            }),
        }
    }
}

/// All routes' recording state. One per app, alive for the rest of the
/// process (it is leaked, like a global metrics recorder, so that the request
/// path can hold it without touching a shared reference count).
pub(crate) struct Registry {
    layout: HistogramLayout,
    stripes: usize,
    unrouted: RouteSeries,
    other: OnceLock<RouteSeries>,
    table: Box<[OnceLock<RouteSeries>]>,
    routes: AtomicUsize,
    route_cap: usize,
    drain_lock: Mutex<()>,
}

impl Registry {
    /// A registry for `layout`, `stripes` rounded up to a power of two, and at
    /// most `route_cap` named routes.
    pub(crate) fn new(layout: HistogramLayout, stripes: usize, route_cap: usize) -> Self {
        let stripes = stripes.clamp(1, 64).next_power_of_two();
        let table_len = (route_cap.max(1) * 2).next_power_of_two();
        Self {
            layout,
            stripes,
            unrouted: RouteSeries::new(None, layout, stripes),
            other: OnceLock::new(),
            table: (0..table_len).map(|_| OnceLock::new()).collect(),
            routes: AtomicUsize::new(0),
            route_cap,
            drain_lock: Mutex::new(()),
        }
    }

    /// Leaks the registry for the rest of the process.
    pub(crate) fn leak(self) -> &'static Self {
        Box::leak(Box::new(self))
    }

    /// The series of requests that carry no route label.
    #[inline]
    pub(crate) fn unrouted(&self) -> &RouteSeries {
        &self.unrouted
    }

    /// The series of `route`, created on first sight while fewer than the cap
    /// exist, else the [`OTHER_ROUTE`] series.
    pub(crate) fn route(&self, route: &str) -> &RouteSeries {
        let mask = self.table.len() - 1;
        let mut at = route_hash(route.as_bytes()) as usize & mask;
        for _ in 0..self.table.len() {
            let slot = &self.table[at];
            match slot.get() {
                Some(series) if series.name.as_deref() == Some(route) => return series,
                Some(_) => {}
                None => {
                    if self.routes.fetch_add(1, Ordering::Relaxed) >= self.route_cap {
                        self.routes.fetch_sub(1, Ordering::Relaxed);
                        return self.other();
                    }
                    let series = slot
                        .get_or_init(|| RouteSeries::new(Some(route), self.layout, self.stripes));
                    if series.name.as_deref() == Some(route) {
                        return series;
                    }
                    // Another thread put another route here first.
                    self.routes.fetch_sub(1, Ordering::Relaxed);
                }
            }
            at = (at + 1) & mask;
        }
        self.other()
    }

    fn other(&self) -> &RouteSeries {
        self.other
            .get_or_init(|| RouteSeries::new(Some(OTHER_ROUTE), self.layout, self.stripes))
    }

    /// Takes every route's interval since the last drain. Routes with nothing
    /// recorded are left out.
    pub(crate) fn drain(&self) -> Vec<IntervalSeries> {
        let _only_one_drain = self
            .drain_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        let all = std::iter::once(&self.unrouted)
            .chain(self.other.get())
            .chain(self.table.iter().filter_map(OnceLock::get));
        let mut drained = Drained::new(self.layout.len());
        // A route's own series, then its arms' (labelled with the
        // experiment their requests were assigned in).
        let all = all.flat_map(|series| {
            std::iter::once(series)
                .chain(series.arms.get().into_iter().flat_map(|arms| arms.iter()))
        });
        for series in all {
            series.drain(&mut drained);
            let keys = series.keys.drain();
            if !drained.is_empty() || keys.lookups > 0 {
                let mut interval = self.to_interval(series.name.as_deref(), &drained);
                interval.keys = keys;
                interval.variant = series.arm.map(|arm| Variant {
                    experiment: series.experiment.load(Ordering::Relaxed),
                    arm,
                });
                out.push(interval);
                drained = Drained::new(self.layout.len());
            }
        }
        out
    }

    fn to_interval(&self, route: Option<&str>, d: &Drained) -> IntervalSeries {
        let mut latency = Histogram::new_with_bounds(
            self.layout.lowest(),
            self.layout.highest(),
            self.layout.significant_digits(),
        )
        .expect("the layout was validated when it was built");
        for (index, count) in d.histogram.iter().enumerate() {
            if *count != 0 {
                latency
                    .record_n(self.layout.lowest_equivalent(index), *count)
                    .expect("a bucket's lowest value is within the layout's range");
            }
        }
        let methods = crate::wire::METHODS
            .iter()
            .zip(d.status_by_method.iter().zip(&d.errors_by_method))
            .filter(|(_, (status, errors))| **errors > 0 || status.iter().any(|n| *n > 0))
            .map(|(name, (status, errors))| {
                (
                    (*name).to_owned(),
                    crate::wire::MethodCounts {
                        status: crate::wire::StatusCounts::from_array(*status),
                        errors: *errors,
                    },
                )
            })
            .collect();
        IntervalSeries {
            route: route.map(str::to_owned),
            variant: None,
            latency,
            status: d.status(),
            methods,
            errors: d.errors(),
            cancelled: d.cancelled,
            cache_hits: d.cache_hits,
            cache_misses: d.cache_misses,
            keys: DrainedKeys::default(),
            tiers: d.tiers,
            assigned: d.assigned,
            grpc_codes: d.grpc,
        }
    }
}

/// A hash of a route label for the table, eight bytes at a time (a
/// byte-at-a-time hash such as FNV costs a multiply per byte, 30 serial
/// multiplies for `/api/v1/mentors/{id}/sessions`). The table compares the
/// whole label after, so a collision only costs a probe.
#[inline]
fn route_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of eight bytes"));
        h = (h ^ word).wrapping_mul(K).rotate_left(29);
    }
    let tail = words
        .remainder()
        .iter()
        .rev()
        .fold(0_u64, |t, b| (t << 8) | u64::from(*b));
    h = (h ^ tail).wrapping_mul(K);
    // The table takes the low bits; a product's low bits only depend on
    // its factors' low bits, so fold the high half down.
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(cap: usize) -> Registry {
        Registry::new(HistogramLayout::default(), 2, cap)
    }

    #[test]
    fn routes_are_interned_and_capped() {
        let r = registry(2);
        let a = r.route("/a") as *const RouteSeries;
        assert_eq!(a, r.route("/a") as *const RouteSeries);
        r.route("/b");
        let c = r.route("/c");
        assert_eq!(c.name.as_deref(), Some(OTHER_ROUTE));
        assert_eq!(r.route("/d").name.as_deref(), Some(OTHER_ROUTE));
        assert_eq!(r.route("/b").name.as_deref(), Some("/b"));
    }

    #[test]
    fn stripes_are_allocated_by_the_threads_that_record() {
        let r = Registry::new(HistogramLayout::default(), 8, 4);
        let a = r.route("/a");
        assert_eq!(a.allocated_stripes(), 0, "a route seen costs nothing yet");
        a.record_response(1_000, 200, 0);
        a.record_response(1_000, 200, 0);
        assert_eq!(a.allocated_stripes(), 1, "one thread, one stripe");
        std::thread::scope(|s| {
            s.spawn(|| r.route("/a").record_response(2_000, 200, 0));
        });
        assert_eq!(a.allocated_stripes(), 2);
        assert_eq!(r.route("/b").allocated_stripes(), 0);
        let total: u64 = r.drain().iter().map(|s| s.latency.len()).sum();
        assert_eq!(total, 3, "every stripe drained");
    }

    #[test]
    fn more_threads_than_stripes_share_the_rest_and_lose_nothing() {
        // Two owned stripes: of six threads at most two own one; the rest
        // share. Drained all along, every interval is consistent and the
        // sum is exact.
        let r = Registry::new(HistogramLayout::default(), 2, 4);
        let route = r.route("/a");
        let (mut total, mut done) = (0, false);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..6)
                .map(|t| {
                    s.spawn(move || {
                        for i in 0..20_000_u64 {
                            route.record_response(100 + (i + t) % 900, 200, 0);
                        }
                    })
                })
                .collect();
            while !done {
                done = writers.iter().all(|w| w.is_finished());
                for series in r.drain() {
                    assert_eq!(series.latency.len(), series.status[1]);
                    total += series.status[1];
                }
            }
        });
        assert_eq!(total, 120_000);
        assert!(route.allocated_stripes() <= 4, "2 owned, 2 shared at most");
    }

    #[test]
    fn threads_that_come_and_go_hand_their_stripes_on_and_lose_nothing() {
        // Short-lived threads one after another, as a blocking pool's: each
        // takes the slot (and so the own stripe) the one before handed
        // back, carrying on its counts; drains in between see them all.
        let r = Registry::new(HistogramLayout::default(), 1, 4);
        let route = r.route("/a");
        let mut total = 0;
        for t in 0..50_u64 {
            std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..100 {
                        route.record_response(10 + t + i, 200, 0);
                    }
                });
            });
            if t % 7 == 0 {
                total += r.drain().iter().map(|s| s.status[1]).sum::<u64>();
            }
        }
        total += r.drain().iter().map(|s| s.status[1]).sum::<u64>();
        assert_eq!(total, 5_000);
    }

    #[test]
    fn drain_reports_each_route_once() {
        let r = registry(8);
        r.route("/a").record_response(1_500, 200, 0);
        r.route("/a").record_response(2_500, 503, 2);
        r.route("/b").record_error(10, 0);
        r.unrouted().record(Event::Cache { hit: false });
        let mut series = r.drain();
        series.sort_by(|x, y| x.route.cmp(&y.route));
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].route, None);
        assert_eq!(series[0].cache_misses, 1);
        assert_eq!(series[1].route.as_deref(), Some("/a"));
        assert_eq!(series[1].status, [0, 1, 0, 0, 1]);
        assert_eq!(series[1].methods["GET"].status.success, 1);
        assert_eq!(series[1].methods["POST"].status.server_error, 1);
        assert_eq!(series[1].methods.len(), 2);
        assert_eq!(series[1].latency.len(), 2);
        assert_eq!(
            series[1].latency.max(),
            series[1].latency.highest_equivalent(2_500)
        );
        assert_eq!(series[2].errors, 1);
        assert!(r.drain().is_empty());
    }

    #[test]
    fn route_hashes_tell_labels_apart_in_every_byte() {
        // Labels that differ in one byte anywhere (in a whole word or in
        // the tail, in the low or the high bits of a byte) hash apart, and
        // spread over a small table's slots.
        let base = b"/api/v1/mentors/{id}/sessions".to_vec();
        let mut slots = std::collections::HashSet::new();
        for at in 0..base.len() {
            for bit in [0x01_u8, 0x80] {
                let mut other = base.clone();
                other[at] ^= bit;
                assert_ne!(
                    route_hash(&other),
                    route_hash(&base),
                    "byte {at} bit {bit:#x}"
                );
                slots.insert(route_hash(&other) & 127);
            }
        }
        assert!(
            slots.len() > 35,
            "58 labels in only {} of 128 slots",
            slots.len()
        );
        assert_ne!(route_hash(b"/a"), route_hash(b"/a\0"), "the length counts");
    }

    #[test]
    fn odd_status_codes_fall_into_the_nearest_class() {
        let r = registry(1);
        r.unrouted().record_response(1, 99, 0);
        r.unrouted().record_response(1, 999, 0);
        assert_eq!(r.drain()[0].status, [1, 0, 0, 0, 1]);
    }
}
