//! The gate's evidence: one revision's own fleet data (every instance of
//! that revision, summed exactly) from a Prometheus query API, judged by
//! the sidecar's own pure functions.

use std::collections::BTreeSet;
use std::time::Duration;

use super::triggers::Evidence;
use crate::eval::{
    RevisionComparison, RevisionCounts, RoiConfig, RolloutTests, compare_revisions, roi,
};
use crate::fleet::promql::{REQUESTS, selector};
use crate::fleet::{FleetReader, QueryError};
use crate::store::MINUTE_MS;

/// What `revision`'s instances show over `window` ending at `at_ms`, the
/// minutes kept off the error budgets left out.
pub async fn read_evidence(
    source: &FleetReader,
    revision: &str,
    window: Duration,
    at_ms: u64,
) -> Result<Evidence, QueryError> {
    let reader = FleetReader {
        revision: Some(revision.to_owned()),
        ..source.clone()
    };
    let window_s = window.as_secs();
    // The minute of the reading: in a window kept off the budgets (the
    // configuration's maintenance or a sidecar's mark), nothing is judged.
    let minute_ms = at_ms / MINUTE_MS * MINUTE_MS;
    let excluded = reader
        .excluded_spans(minute_ms, minute_ms + MINUTE_MS, at_ms)
        .await?
        .into_iter()
        .next();
    let slo = reader.slo_report(window, at_ms).await?;
    let compute = reader.compute_cost(window_s, at_ms).await?;
    let cost = reader.cost(window, at_ms).await?;
    // The revision serves the service: the whole cache's cost is charged.
    let whole = RoiConfig {
        instances: Some(1),
        ..reader.config.roi
    };
    let r = roi(
        slo.cache.hits,
        slo.cache.misses,
        slo.requests,
        window.as_secs_f64(),
        compute.unwrap_or(0.0),
        &whole,
    );
    Ok(Evidence {
        revision: revision.to_owned(),
        window_s,
        at_ms,
        requests: slo.requests,
        lookups: slo.cache.hits + slo.cache.misses,
        hit_rate: slo.cache.hit_rate,
        compliance_percent: slo.compliance_rate,
        slos_failing: slo
            .slos
            .iter()
            .filter(|s| s.current.is_some() && !s.met)
            .map(|s| s.name.as_str().to_owned())
            .collect(),
        roi_percent: r.roi_percent,
        cost_usd: Some(r.cost_usd),
        forecast_usd: compute.and(cost.as_ref().map(|c| c.forecast_usd)),
        month_to_date_usd: cost.map(|c| c.month_to_date_usd),
        comparison: None,
        excluded: excluded.map(|s| s.reason),
    })
}

/// What `revision`'s instances did in the `window_s` seconds before `at_ms`.
async fn revision_counts(
    source: &FleetReader,
    revision: &str,
    window_s: u64,
    at_ms: u64,
) -> Result<RevisionCounts, QueryError> {
    let reader = FleetReader {
        revision: Some(revision.to_owned()),
        ..source.clone()
    };
    let w = reader.window(window_s, at_ms).await?;
    Ok(RevisionCounts {
        requests: w.total.counts.requests(),
        slo_events: w.total.slo_events,
        buckets: w.total.buckets,
    })
}

/// `new` against the sum of `old` over the same minutes, from `since_ms`
/// (when the rollout set its first traffic) to `at_ms`: every instance of
/// each, exact counts and summed histogram buckets.
pub async fn read_comparison(
    source: &FleetReader,
    new: &str,
    old: &[String],
    since_ms: u64,
    at_ms: u64,
    tests: &RolloutTests,
) -> Result<(RevisionComparison, RevisionCounts), QueryError> {
    let window_s = (at_ms.saturating_sub(since_ms) / 1000).max(1);
    let new_counts = revision_counts(source, new, window_s, at_ms).await?;
    let mut old_counts = RevisionCounts::default();
    for revision in old {
        old_counts.add(&revision_counts(source, revision, window_s, at_ms).await?);
    }
    Ok((
        compare_revisions(&old_counts, &new_counts, tests),
        new_counts,
    ))
}

/// The service's revisions that finished requests in the `lookback`
/// before `at_ms`: those that served traffic, as the fleet's data shows.
pub async fn served_revisions(
    source: &FleetReader,
    lookback: Duration,
    at_ms: u64,
) -> Result<BTreeSet<String>, QueryError> {
    let query = format!(
        "count by (revision_name) (last_over_time({}[{}s]))",
        selector(REQUESTS, &source.service, None),
        lookback.as_secs()
    );
    Ok(source
        .api
        .instant(&query, at_ms)
        .await?
        .iter()
        .map(|s| s.label("revision_name").to_owned())
        .filter(|r| !r.is_empty() && r != "unknown")
        .collect())
}
