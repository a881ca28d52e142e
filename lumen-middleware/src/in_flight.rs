//! A request on its way, and how its outcome will be known.

use crate::registry::RouteSeries;

/// A request on its way: its route and when it started.
#[derive(Clone, Copy)]
pub(crate) struct InFlight {
    pub(crate) series: &'static RouteSeries,
    pub(crate) start: crate::clock::Tick,
    /// The request's method, as an index in [`METHODS`](crate::wire::METHODS).
    pub(crate) method: u8,
}

impl InFlight {
    /// Records the response with `status`, now.
    #[inline]
    pub(crate) fn respond(&self, status: u16) {
        self.series
            .record_response(self.elapsed_us(), status, usize::from(self.method));
    }

    /// Records an inner failure, now.
    #[inline]
    pub(crate) fn fail(&self) {
        self.series
            .record_error(self.elapsed_us(), usize::from(self.method));
    }

    #[inline]
    pub(crate) fn elapsed_us(&self) -> u64 {
        self.start.elapsed_us()
    }
}

/// What a response will be counted as, once it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This HTTP status (for gRPC, the status its `grpc-status` maps to).
    Status(u16),
    /// A gRPC response whose `grpc-status` comes in the trailers.
    GrpcTrailers,
}
