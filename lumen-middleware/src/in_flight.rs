//! A request on its way, and how its outcome will be known.

use crate::registry::RouteSeries;

/// A request on its way: its route and when it started.
#[derive(Clone, Copy)]
pub(crate) struct InFlight {
    pub(crate) series: &'static RouteSeries,
    pub(crate) start: crate::clock::Tick,
    /// The request's method, as an index in [`METHODS`](crate::wire::METHODS).
    pub(crate) method: u8,
    /// A gRPC call's deadline (`grpc-timeout`), ms from `start`; 0: none.
    /// (Milliseconds in 32 bits keep the request's state at 24 bytes.)
    pub(crate) deadline_ms: u32,
}

impl InFlight {
    /// Records the response with `status`, now.
    #[inline]
    pub(crate) fn respond(&self, status: u16) {
        self.series
            .record_response(self.elapsed_us(), status, usize::from(self.method));
    }

    /// Records a gRPC call that ended with `code`, now: counted as the HTTP
    /// status the code maps to, and by code.
    #[inline]
    pub(crate) fn respond_grpc(&self, code: u8) {
        self.record_grpc(self.elapsed_us(), code);
    }

    #[inline]
    fn record_grpc(&self, elapsed_us: u64, code: u8) {
        let code = code.min(crate::grpc::MAX_CODE);
        self.series.record_grpc(
            elapsed_us,
            code,
            crate::grpc::http_status_of_code(code),
            usize::from(self.method),
        );
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

    /// Records a call dropped before its outcome: a gRPC call past its
    /// deadline timed out on the server's side (a server that answers too
    /// slowly; tonic's timeout drops the handler and answers
    /// DEADLINE_EXCEEDED, counted as 504); any other is the client's
    /// cancellation.
    ///
    /// "Past" allows 5 % of the deadline (at least 2 ms): the server's timer
    /// starts before this layer sees the call, and a client whose deadline
    /// expires resets the stream a network hop later; a call given up that
    /// close to its deadline timed out.
    #[inline]
    pub(crate) fn dropped(&self) {
        let elapsed = self.elapsed_us();
        let deadline_us = u64::from(self.deadline_ms) * 1_000;
        let slack = (deadline_us / 20).max(2_000);
        if deadline_us > 0 && elapsed.saturating_add(slack) >= deadline_us {
            // DEADLINE_EXCEEDED.
            self.record_grpc(elapsed, 4);
        } else {
            self.series.record(crate::registry::Event::Cancelled);
        }
    }
}
