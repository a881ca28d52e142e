//! [`Recorder`]: the recording path without a tower service.

use crate::registry::{Event, Registry, RouteSeries};
pub use crate::registry::{IntervalSeries, OTHER_ROUTE};

/// Records into the same registry as its [`LumenLayer`](crate::LumenLayer),
/// through the same wait-free path. Copy.
#[derive(Clone, Copy)]
pub struct Recorder {
    registry: &'static Registry,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    pub(crate) fn new(registry: &'static Registry) -> Self {
        Self { registry }
    }

    fn series(&self, route: Option<&str>) -> &'static RouteSeries {
        match route {
            Some(route) => self.registry.route(route),
            None => self.registry.unrouted(),
        }
    }

    /// A response with `status` after `latency_us` microseconds.
    /// The method counts as `_OTHER`; [`record_request`](Self::record_request) names it.
    pub fn record_response(&self, route: Option<&str>, latency_us: u64, status: u16) {
        self.series(route)
            .record_response(latency_us, status, crate::registry::METHOD_COUNT - 1);
    }

    /// A response with `status` to a `method` request after `latency_us` microseconds.
    pub fn record_request(
        &self,
        route: Option<&str>,
        method: &http::Method,
        latency_us: u64,
        status: u16,
    ) {
        self.series(route).record_response(
            latency_us,
            status,
            crate::registry::method_index(method),
        );
    }

    /// A request whose inner service failed after `latency_us`.
    pub fn record_error(&self, route: Option<&str>, latency_us: u64) {
        self.series(route)
            .record_error(latency_us, crate::registry::METHOD_COUNT - 1);
    }

    /// A request the client abandoned.
    pub fn record_cancelled(&self, route: Option<&str>) {
        self.series(route).record(Event::Cancelled);
    }

    /// A cache lookup, a hit when `hit`.
    pub fn record_cache(&self, route: Option<&str>, hit: bool) {
        self.series(route).record(Event::Cache { hit });
    }

    /// One lookup of cache tier `tier` that took `latency`.
    pub fn record_tier(
        &self,
        route: Option<&str>,
        tier: crate::cache::Tier,
        latency: std::time::Duration,
    ) {
        self.series(route).record_tier(tier as usize, latency);
    }

    /// Takes everything recorded since the last drain, per route. The
    /// [`Shipper`](crate::Shipper) calls this every interval; calling it
    /// yourself takes the data away from the shipper.
    pub fn drain(&self) -> Vec<IntervalSeries> {
        self.registry.drain()
    }
}
