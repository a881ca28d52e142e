//! Request counts of one route over some span of time.

use serde::{Deserialize, Serialize};

/// What a route saw: status classes, failures, cancellations, cache lookups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Responses by class, `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: [u64; 5],
    /// Requests whose inner service failed before a response.
    pub errors: u64,
    /// Requests the client abandoned (in no other count).
    pub cancelled: u64,
    /// Cache hits reported.
    pub cache_hits: u64,
    /// Cache misses reported.
    pub cache_misses: u64,
    /// gRPC calls by status code (index = code, 0 OK … 16), beside
    /// `status`; zeros for plain HTTP (and then not written).
    #[serde(default, skip_serializing_if = "no_grpc")]
    pub grpc: [u64; GRPC_CODES],
}

/// gRPC status codes counted apart.
pub const GRPC_CODES: usize = lumen_middleware::wire::GRPC_CODES;

fn no_grpc(codes: &[u64; GRPC_CODES]) -> bool {
    codes.iter().all(|n| *n == 0)
}

impl Counts {
    /// Finished requests: every status plus errors (cancellations excluded).
    pub fn requests(&self) -> u64 {
        self.status
            .iter()
            .fold(self.errors, |sum, c| sum.saturating_add(*c))
    }

    /// Takes `other` out field by field, saturating at zero.
    pub fn subtract(&mut self, other: &Self) {
        self.combine(other, u64::saturating_sub);
    }

    /// Adds `other` field by field, saturating.
    pub fn add(&mut self, other: &Self) {
        self.combine(other, u64::saturating_add);
    }

    /// Every field set to `f(self's, other's)`.
    fn combine(&mut self, other: &Self, f: fn(u64, u64) -> u64) {
        let pairs = self
            .status
            .iter_mut()
            .zip(other.status)
            .chain(self.grpc.iter_mut().zip(other.grpc))
            .chain([
                (&mut self.errors, other.errors),
                (&mut self.cancelled, other.cancelled),
                (&mut self.cache_hits, other.cache_hits),
                (&mut self.cache_misses, other.cache_misses),
            ]);
        for (a, b) in pairs {
            *a = f(*a, b);
        }
    }
}
