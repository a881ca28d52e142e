//! Cache hits and misses reported by the app.
//!
//! While the layer polls a request's future it marks the thread with the
//! request's route, so a report made anywhere inside the handler — in the
//! handler itself or in a cache wrapper around a Redis client that never
//! sees the request — lands on that route. Outside a request (a background
//! task) there is no route to count for, so [`hit`], [`miss`] and
//! [`record`] count nothing there; a task that reports for the whole service
//! holds the layer's [`LumenLayer::cache_report`](crate::LumenLayer::cache_report)
//! and counts on it, with no route.
//!
//! An app with more than one tier (an in-process L1 in front of Redis)
//! may also time each tier's lookups with [`record_tier`]: the sidecar then
//! says whether the L1, the L2 or both pay off.
//!
//! ```
//! # use lumen_middleware::cache;
//! // Deep inside a cache wrapper:
//! fn lookup(key: &str) -> Option<String> {
//!     let found = None; // redis.get(key)…
//!     cache::record(found.is_some());
//!     found
//! }
//! # lookup("k");
//! ```

use std::cell::Cell;

use crate::registry::{Event, Registry, RouteSeries};

thread_local! {
    static CURRENT: Cell<Option<&'static RouteSeries>> = const { Cell::new(None) };
}

/// A cache tier whose lookups [`record_tier`] times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tier {
    /// An in-process cache (e.g. moka, quick_cache).
    L1 = 0,
    /// A shared cache over the network (e.g. Redis, Memorystore).
    L2 = 1,
    /// The origin the caches stand in front of (the backend, the database).
    Origin = 2,
}

/// Restores the thread's previous request mark when dropped.
pub(crate) struct RequestMark(Option<&'static RouteSeries>);

impl Drop for RequestMark {
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

/// Marks the thread as working for `series` until the mark is dropped.
#[inline]
pub(crate) fn enter(series: &'static RouteSeries) -> RequestMark {
    RequestMark(CURRENT.replace(Some(series)))
}

/// The series the thread's current request records into (after an
/// experiment assignment, its arm's), or `fallback` outside a request.
#[inline]
pub(crate) fn current_or(fallback: &'static RouteSeries) -> &'static RouteSeries {
    CURRENT.get().unwrap_or(fallback)
}

/// Moves the thread's current request to `arm` of `experiment`: it is
/// recorded there, with the cache reports that follow. A request already
/// assigned keeps its arm; outside a request, nothing happens.
#[inline]
pub(crate) fn assign_arm(arm: crate::wire::Arm, experiment: u32, by_key: bool) {
    if let Some(series) = CURRENT.get() {
        let in_arm = series.arm(arm, experiment);
        if !std::ptr::eq(in_arm, series) {
            in_arm.record(Event::Assigned { by_key });
            CURRENT.set(Some(in_arm));
        }
    }
}

/// A handle that reports cache lookups for one request's route. Copy it into
/// spawned tasks: it keeps the route.
///
/// With the `axum` feature it is an extractor: `async fn h(cache: CacheReport)`.
#[derive(Clone, Copy)]
pub struct CacheReport {
    series: Option<&'static RouteSeries>,
}

impl std::fmt::Debug for CacheReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheReport")
            .field("attached", &self.series.is_some())
            .finish()
    }
}

impl CacheReport {
    /// The current request's reporter; outside a request, one that counts
    /// nothing (see [`is_attached`](Self::is_attached)).
    pub fn current() -> Self {
        Self {
            series: CURRENT.get(),
        }
    }

    /// A reporter for `registry`'s requests without a route.
    pub(crate) fn unrouted(registry: &'static Registry) -> Self {
        Self {
            series: Some(registry.unrouted()),
        }
    }

    /// Whether reports land anywhere (false outside a request for
    /// [`current`](Self::current)).
    pub fn is_attached(&self) -> bool {
        self.series.is_some()
    }

    /// Counts one lookup answered by the cache.
    pub fn hit(&self) {
        self.record(true);
    }

    /// Counts one lookup that missed the cache.
    pub fn miss(&self) {
        self.record(false);
    }

    /// Counts one lookup, a hit when `hit`.
    pub fn record(&self, hit: bool) {
        if let Some(series) = self.series {
            series.record(Event::Cache { hit });
        }
    }

    /// Times one lookup of `tier` (hit or miss) that took `latency`
    /// (beyond an hour counts as an hour). No lock, no allocation.
    #[inline]
    pub fn record_tier(&self, tier: Tier, latency: std::time::Duration) {
        if let Some(series) = self.series {
            series.record_tier(tier as usize, latency);
        }
    }

    /// Counts one lookup of the key whose 64-bit hash is `hash`, a hit when
    /// `hit`, and offers the key to the miss-ratio sample (SHARDS: about
    /// `LUMEN_KEY_SAMPLE_RATE` of keys are kept, with every access to them).
    /// No lock, no allocation (but once per route, for its sample's ring).
    #[inline]
    pub fn record_key(&self, hash: u64, hit: bool) {
        if let Some(series) = self.series {
            series.record(Event::Cache { hit });
            series.record_key(hash);
        }
    }
}

/// What the miss-ratio sample keeps of a lookup of the key hashed to
/// `hash` (the mixed hash it ships, when the key is sampled at
/// `LUMEN_KEY_SAMPLE_RATE`): the exact function [`record_key`] calls, for
/// checking the sidecar's curves against exact ones.
pub use crate::registry::key_sample::sampled as sampled_key;

/// Sampled accesses one route ships per interval; the rest are counted as
/// dropped (the sidecar then judges the interval by the part it holds).
pub use crate::registry::key_sample::RING_SLOTS as KEY_SAMPLE_SLOTS;

/// Counts a cache lookup of the key hashed to `hash` for the current
/// request, a hit when `hit`, and offers the key to the sidecar's
/// miss-ratio curve (the L1 size recommendation). Hash the key with any
/// good 64-bit hash; the same key must always give the same hash.
///
/// ```
/// # use lumen_middleware::cache;
/// use std::hash::{BuildHasher, Hash, Hasher};
/// let hash = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
///     .hash_one("what is an slo");
/// cache::record_key(hash, false);
/// ```
#[inline]
pub fn record_key(hash: u64, hit: bool) {
    CacheReport::current().record_key(hash, hit);
}

/// Times one lookup of cache tier `tier` for the current request: how long
/// the L1 or L2 took to answer (hit or miss), or the origin to fetch. The
/// sidecar weighs the tiers' mean times with the hit rates to say whether
/// the L1, the L2 or both pay off. Time each tier a lookup touches.
///
/// ```
/// use lumen_middleware::cache::{self, Tier};
/// use std::time::Instant;
/// let started = Instant::now();
/// let found: Option<String> = None; // redis.get(key)…
/// cache::record_tier(Tier::L2, started.elapsed());
/// # let _ = found;
/// ```
#[inline]
pub fn record_tier(tier: Tier, latency: std::time::Duration) {
    CacheReport::current().record_tier(tier, latency);
}

/// Counts a cache hit for the current request (see the module docs).
pub fn hit() {
    CacheReport::current().hit();
}

/// Counts a cache miss for the current request.
pub fn miss() {
    CacheReport::current().miss();
}

/// Counts a cache lookup for the current request, a hit when `hit`.
pub fn record(hit: bool) {
    CacheReport::current().record(hit);
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CacheReport {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::current())
    }
}
