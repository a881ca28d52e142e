//! The PromQL the fleet read path sends: exact sums, over every instance,
//! of what each counter gained in a window.
//!
//! `increase()` extrapolates to the window's edges and misses a series'
//! first sample, so it is not exact. A window's gain of one series is
//! instead its last sample in the window minus its value at the window's
//! start; a series that started inside the window (a new instance) counts
//! from zero, one that reset (a restarted sidecar) counts its last value,
//! one that ended inside the window (a removed instance) keeps its last
//! sample. The sums are of integers, exact in `f64` up to 2^53.

use crate::monitoring::scope::quote;

/// Every finished request, by route, method and status class.
pub const REQUESTS: &str = crate::metrics::REQUESTS_TOTAL;
/// Requests the client abandoned, by route.
pub const CANCELLED: &str = crate::metrics::CANCELLED_TOTAL;
/// Cache lookups, by route and result.
pub const CACHE_LOOKUPS: &str = crate::metrics::CACHE_LOOKUPS_TOTAL;
/// Each SLO's good and bad events, by route.
pub const SLO_EVENTS: &str = crate::metrics::SLO_EVENTS_TOTAL;
/// The one-off windows kept off the error budgets each sidecar knows.
pub const EXCLUSIONS: &str = crate::metrics::BUDGET_EXCLUSION_INFO;
/// Each instance's accrued compute cost, USD.
pub const INSTANCE_COST: &str = crate::metrics::INSTANCE_COST_TOTAL;

/// `metric{service_name="…"}`, or `metric{service_name="…",revision_name="…"}`
/// for one revision's instances.
pub fn selector(metric: &str, service: &str, revision: Option<&str>) -> String {
    let matchers = match revision {
        None => format!("service_name={}", quote(service)),
        Some(r) => format!("service_name={},revision_name={}", quote(service), quote(r)),
    };
    crate::metrics::promql_selector(metric, &matchers)
}

/// What every series of `selector` gained in the `window_s` seconds before
/// the evaluation time, one value per series (see the module's notes).
pub fn window_gain(selector: &str, window_s: u64) -> String {
    format!(
        "((last_over_time({selector}[{window_s}s]) - {selector} offset {window_s}s) >= 0) or last_over_time({selector}[{window_s}s])"
    )
}

/// The gain of `metric` for `service` (one `revision`'s instances, if
/// given) over `window_s`, summed over every instance, one value per
/// combination of the `by` labels.
pub fn summed_gain(
    metric: &str,
    service: &str,
    revision: Option<&str>,
    by: &str,
    window_s: u64,
) -> String {
    format!(
        "sum by ({by}) ({})",
        window_gain(&selector(metric, service, revision), window_s)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gains_are_per_series_and_scoped_to_the_service() {
        let q = summed_gain(REQUESTS, "api \"x\"", None, "http_route, status_class", 300);
        assert_eq!(
            q,
            "sum by (http_route, status_class) (((last_over_time(http_server_requests_total{service_name=\"api \\\"x\\\"\"}[300s]) - http_server_requests_total{service_name=\"api \\\"x\\\"\"} offset 300s) >= 0) or last_over_time(http_server_requests_total{service_name=\"api \\\"x\\\"\"}[300s]))"
        );
        assert_eq!(
            selector(REQUESTS, "api", Some("api-00002-x")),
            "http_server_requests_total{service_name=\"api\",revision_name=\"api-00002-x\"}"
        );
        assert_eq!(
            selector(REQUESTS, "api", Some("api-00002-x")),
            "http_server_requests_total{service_name=\"api\",revision_name=\"api-00002-x\"}"
        );
    }
}
