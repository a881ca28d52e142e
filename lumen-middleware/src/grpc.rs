//! gRPC responses are classified by their `grpc-status`, as tower-http's
//! `GrpcErrorsAsFailures` does: a failed call comes back as HTTP 200 with a
//! non-zero `grpc-status` in the headers (a trailers-only response) or in
//! the trailers. Each gRPC code counts as the HTTP status Google's
//! `google.rpc.Code` documents for it, so `UNAVAILABLE` is a 5xx against
//! availability and `NOT_FOUND` a 4xx.

use http::HeaderMap;
use http::header::CONTENT_TYPE;

/// What a response will be counted as, once it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This HTTP status.
    Status(u16),
    /// A gRPC response with this `grpc-status` in its head.
    Grpc(u8),
    /// A gRPC response whose `grpc-status` comes in the trailers.
    GrpcTrailers,
}

/// Whether the response is gRPC (`content-type: application/grpc…`).
#[inline]
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The HTTP status a gRPC status code counts as (google.rpc.Code's mapping).
pub(crate) fn http_status_of_code(code: u8) -> u16 {
    match code {
        0 => 200,          // OK
        1 => 499,          // CANCELLED (client closed request)
        3 | 9 | 11 => 400, // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
        4 => 504,          // DEADLINE_EXCEEDED
        5 => 404,          // NOT_FOUND
        6 | 10 => 409,     // ALREADY_EXISTS, ABORTED
        7 => 403,          // PERMISSION_DENIED
        8 => 429,          // RESOURCE_EXHAUSTED
        12 => 501,         // UNIMPLEMENTED
        14 => 503,         // UNAVAILABLE
        16 => 401,         // UNAUTHENTICATED
        _ => 500,          // UNKNOWN, INTERNAL, DATA_LOSS, anything else
    }
}

/// The highest gRPC status code (UNAUTHENTICATED); codes above it count as
/// UNKNOWN.
pub const MAX_CODE: u8 = 16;

/// `grpc-status` in `headers`; `None` without one. A `grpc-status` that is
/// not a known code counts as 2 (UNKNOWN).
pub(crate) fn code_in(headers: &HeaderMap) -> Option<u8> {
    let value = headers.get("grpc-status")?;
    Some(
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|c| *c <= MAX_CODE)
            .unwrap_or(2),
    )
}

/// The call's deadline from its `grpc-timeout` header, microseconds from
/// its start (`0`: none, or not readable). The header is at most 8 digits
/// and a unit: `H`, `M`, `S`, `m` (milliseconds), `u`, `n`. No allocation.
#[inline]
pub(crate) fn timeout_us(headers: &HeaderMap) -> u64 {
    let Some(value) = headers.get("grpc-timeout") else {
        return 0;
    };
    let bytes = value.as_bytes();
    let Some((&unit, digits)) = bytes.split_last() else {
        return 0;
    };
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let n = digits
        .iter()
        .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
    let us = match unit {
        b'H' => n.saturating_mul(3_600_000_000),
        b'M' => n.saturating_mul(60_000_000),
        b'S' => n.saturating_mul(1_000_000),
        b'm' => n.saturating_mul(1_000),
        b'u' => n,
        b'n' => n / 1_000,
        _ => return 0,
    };
    us.max(1)
}

/// [`timeout_us`] in whole milliseconds (rounded up, so a deadline is
/// never early), at most `u32::MAX` (49 days).
#[inline]
pub(crate) fn timeout_ms(headers: &HeaderMap) -> u32 {
    let us = timeout_us(headers);
    u32::try_from(us.div_ceil(1_000)).unwrap_or(u32::MAX)
}

/// How a response's outcome will be known from its head.
#[inline]
pub(crate) fn outcome_of(status: u16, headers: &HeaderMap) -> Outcome {
    if status != 200 || !is_grpc(headers) {
        return Outcome::Status(status);
    }
    match code_in(headers) {
        Some(code) => Outcome::Grpc(code),
        None => Outcome::GrpcTrailers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("valid value"));
        }
        h
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        let t = |v: &'static str| timeout_us(&headers(&[("grpc-timeout", v)]));
        assert_eq!(t("250m"), 250_000);
        assert_eq!(t("2S"), 2_000_000);
        assert_eq!(t("1H"), 3_600_000_000);
        assert_eq!(t("3M"), 180_000_000);
        assert_eq!(t("1500u"), 1_500);
        assert_eq!(t("500n"), 1, "below a microsecond still has a deadline");
        for bad in ["", "m", "123456789m", "12x", "-5S", "5 S"] {
            assert_eq!(t(bad), 0, "{bad:?}");
        }
        assert_eq!(timeout_us(&HeaderMap::new()), 0);
    }

    #[test]
    fn plain_http_keeps_its_status() {
        assert_eq!(outcome_of(503, &HeaderMap::new()), Outcome::Status(503));
        assert_eq!(
            outcome_of(200, &headers(&[("grpc-status", "14")])),
            Outcome::Status(200),
            "grpc-status means nothing without a gRPC content type"
        );
    }

    #[test]
    fn a_trailers_only_failure_counts_as_its_mapped_status() {
        let h = headers(&[("content-type", "application/grpc"), ("grpc-status", "14")]);
        assert_eq!(outcome_of(200, &h), Outcome::Grpc(14));
        let h = headers(&[
            ("content-type", "application/grpc+proto"),
            ("grpc-status", "5"),
        ]);
        assert_eq!(outcome_of(200, &h), Outcome::Grpc(5));
        for unknown in ["x", "17", "-1"] {
            let h = headers(&[
                ("content-type", "application/grpc"),
                ("grpc-status", unknown),
            ]);
            assert_eq!(outcome_of(200, &h), Outcome::Grpc(2), "{unknown}: UNKNOWN");
        }
    }

    #[test]
    fn without_a_status_in_the_head_the_trailers_decide() {
        let h = headers(&[("content-type", "application/grpc")]);
        assert_eq!(outcome_of(200, &h), Outcome::GrpcTrailers);
    }

    #[test]
    fn every_code_maps_into_a_class() {
        let classes: Vec<u16> = (0..=16).map(|c| http_status_of_code(c) / 100).collect();
        assert_eq!(classes, [2, 4, 5, 4, 5, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 4]);
    }
}
