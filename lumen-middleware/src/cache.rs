//! Cache hits and misses reported by the app.
//!
//! While the layer polls a request's future it marks the thread with the
//! request's route, so a report made anywhere inside the handler — in the
//! handler itself or in a cache wrapper around a Redis client that never
//! sees the request — lands on that route. Outside a request (a background
//! task), [`hit`] and [`miss`] count for the service without a route, in the
//! first registry [`pair`](crate::pair) made.
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
use std::sync::OnceLock;

use crate::registry::{Event, Registry, RouteSeries};

thread_local! {
    static CURRENT: Cell<Option<&'static RouteSeries>> = const { Cell::new(None) };
}

pub(crate) static DEFAULT_REGISTRY: OnceLock<&'static Registry> = OnceLock::new();

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
    /// The current request's reporter; outside a request, the default
    /// registry's route-less series; with no registry at all, a reporter
    /// that counts nothing.
    pub fn current() -> Self {
        let series = CURRENT
            .get()
            .or_else(|| DEFAULT_REGISTRY.get().map(|r| r.unrouted()));
        Self { series }
    }

    /// Whether reports land anywhere (false only before any
    /// [`pair`](crate::pair) was made).
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
