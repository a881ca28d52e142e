//! The cumulative counts the sidecar exports: every event count an SLI is a
//! ratio of, since the sidecar started, exact and addable across instances.
//! Summed over a fleet's sidecars (by Prometheus, Managed Service for
//! Prometheus or Cloud Monitoring), they give the service's availability,
//! error rate, cache hit rate, SLO compliance and burn rates exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use lumen_middleware::wire::{DecodedSeries, METHODS, MethodCounts, StatusCounts};

use crate::eval::{SloName, StatusClass};
use crate::store::BudgetRules;

/// The method label of requests whose sender did not say their method.
const UNKNOWN_METHOD: &str = "_OTHER";

/// The outcome label of an inner failure (no response), beside the status classes.
pub const INNER_FAILURE_LABEL: &str = "error";

/// Finished requests by (route, method, outcome); the method is one of
/// [`METHODS`] (`_OTHER` when the sender did not say), the outcome a status
/// class's label or `error` (an inner failure).
pub type RequestTotals = BTreeMap<(Option<String>, &'static str, &'static str), u64>;

/// The exported latency histogram's bucket boundaries: the OpenTelemetry
/// semantic conventions' advice for `http.server.request.duration` plus
/// every configured latency target, so a histogram cut at a target is exact.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBoundaries {
    seconds: Vec<f64>,
    micros: Vec<u64>,
}

/// The semantic conventions' advised boundaries, seconds.
pub const ADVISED_BOUNDARIES_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl LatencyBoundaries {
    /// The advised boundaries and the targets (ms), ascending, each once.
    pub fn with_targets(targets_ms: &[f64]) -> Self {
        let mut micros: Vec<u64> = ADVISED_BOUNDARIES_S
            .iter()
            .map(|s| (s * 1e6).round() as u64)
            .chain(
                targets_ms
                    .iter()
                    .filter(|ms| ms.is_finite() && **ms > 0.0)
                    .map(|ms| (ms * 1000.0).round() as u64),
            )
            .collect();
        micros.sort_unstable();
        micros.dedup();
        Self {
            seconds: micros.iter().map(|us| *us as f64 / 1e6).collect(),
            micros,
        }
    }

    /// Upper bounds, seconds, ascending (the `+Inf` bucket is implied).
    pub fn seconds(&self) -> &[f64] {
        &self.seconds
    }

    /// The bucket of a recorded latency: the first boundary it is below,
    /// or `len()` (the `+Inf` bucket).
    pub fn bucket_of(&self, value_us: u64) -> usize {
        self.micros.partition_point(|b| *b <= value_us)
    }

    /// Boundaries (without `+Inf`).
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }
}

/// One route's latency histogram since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyTotals {
    /// Requests per bucket (not cumulative), the last one `+Inf`.
    pub buckets: Vec<u64>,
    /// Requests.
    pub count: u64,
    /// Sum of the recorded latencies, µs.
    pub sum_us: u64,
}

impl LatencyTotals {
    /// `(upper bound s, requests below it)`, cumulative, ending with `+Inf`.
    pub fn cumulative(&self, boundaries: &LatencyBoundaries) -> Vec<(f64, u64)> {
        let mut seen = 0_u64;
        boundaries
            .seconds()
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(le, n)| {
                seen = seen.saturating_add(*n);
                (le, seen)
            })
            .collect()
    }
}

/// Good and bad events of one SLO on one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SloEvents {
    /// Events that meet the objective.
    pub good: u64,
    /// Events that spend its budget.
    pub bad: u64,
}

/// Everything counted since start, by route.
#[derive(Debug, Clone, Default)]
pub struct CumulativeTotals {
    /// Finished requests.
    pub requests: RequestTotals,
    /// Requests the client abandoned.
    pub cancelled: BTreeMap<Option<String>, u64>,
    /// Cache lookups, `[hits, misses]`.
    pub cache: BTreeMap<Option<String>, [u64; 2]>,
    /// Each SLO's events.
    pub slo_events: BTreeMap<(Option<String>, SloName), SloEvents>,
    /// Latency.
    pub latency: BTreeMap<Option<String>, LatencyTotals>,
    /// gRPC calls by route and status code (0 … 16).
    pub grpc: BTreeMap<(Option<String>, u8), u64>,
    /// The revision every count is of: the configured one (Cloud Run's
    /// `K_REVISION`), else the first a batch named. Fixed once set, so the
    /// counters' `revision_name` label never changes in a sidecar's life
    /// (a changed label would start a new series from the whole count).
    pub revision: Option<String>,
}

impl CumulativeTotals {
    /// Adds one stored series. `rules` say which events are bad, exactly as
    /// the error budgets count them: availability's are 5xx and inner
    /// failures, the error rate's the error classes and inner failures, a
    /// latency SLO's the requests whose recorded latency is not below its
    /// target. A series of a minute kept off the budget (`off_budget`)
    /// adds no SLO event: the exported SLO counters, and the Cloud
    /// Monitoring SLOs and rules built on them, leave a window known
    /// beforehand out as the ledger does.
    pub fn add(
        &mut self,
        series: &DecodedSeries,
        rules: &BudgetRules,
        bounds: &LatencyBoundaries,
        off_budget: bool,
    ) {
        let route = &series.route;
        if series.cache.hits + series.cache.misses > 0 {
            let c = self.cache.entry(route.clone()).or_insert([0, 0]);
            c[0] = c[0].saturating_add(series.cache.hits);
            c[1] = c[1].saturating_add(series.cache.misses);
        }
        if series.cancelled > 0 {
            let c = self.cancelled.entry(route.clone()).or_insert(0);
            *c = c.saturating_add(series.cancelled);
        }
        self.add_requests(series);
        for (code, n) in (0_u8..).zip(series.grpc_codes) {
            if n > 0 {
                let c = self.grpc.entry((route.clone(), code)).or_insert(0);
                *c = c.saturating_add(n);
            }
        }

        let budget = rules.count(series);
        let latency = self
            .latency
            .entry(route.clone())
            .or_insert_with(|| LatencyTotals {
                buckets: vec![0; bounds.len() + 1],
                ..LatencyTotals::default()
            });
        let (mut under_p95, mut under_p99) = (0_u64, 0_u64);
        for (value_us, n) in series.latency.values() {
            let slot = &mut latency.buckets[bounds.bucket_of(value_us)];
            *slot = slot.saturating_add(n);
            latency.count = latency.count.saturating_add(n);
            latency.sum_us = latency.sum_us.saturating_add(value_us.saturating_mul(n));
            if value_us < rules.p95_us {
                under_p95 += n;
            }
            if value_us < rules.p99_us {
                under_p99 += n;
            }
        }
        for (name, good, bad) in [
            (
                SloName::Availability,
                budget.total - budget.unavailable,
                budget.unavailable,
            ),
            (
                SloName::ErrorRate,
                budget.total.saturating_sub(budget.errors),
                budget.errors,
            ),
            (SloName::LatencyP95, under_p95, budget.slow_p95),
            (SloName::LatencyP99, under_p99, budget.slow_p99),
        ] {
            if good + bad > 0 && !off_budget {
                let e = self.slo_events.entry((route.clone(), name)).or_default();
                e.good = e.good.saturating_add(good);
                e.bad = e.bad.saturating_add(bad);
            }
        }
    }

    fn add_requests(&mut self, series: &DecodedSeries) {
        let unsplit = [(
            UNKNOWN_METHOD,
            MethodCounts {
                status: series.status,
                errors: series.errors,
            },
        )];
        let by_method: Vec<(&'static str, MethodCounts)> = if series.methods.is_empty() {
            unsplit.to_vec()
        } else {
            series
                .methods
                .iter()
                .filter_map(|(name, counts)| {
                    METHODS
                        .iter()
                        .find(|m| **m == name.as_str())
                        .map(|m| (*m, *counts))
                })
                .collect()
        };
        for (method, counts) in by_method {
            add_outcomes(
                &mut self.requests,
                series.route.as_ref(),
                method,
                &counts.status,
                counts.errors,
            );
        }
    }
}

fn add_outcomes(
    totals: &mut RequestTotals,
    route: Option<&String>,
    method: &'static str,
    status: &StatusCounts,
    errors: u64,
) {
    let outcomes = StatusClass::ALL
        .iter()
        .map(|c| c.as_str())
        .chain([INNER_FAILURE_LABEL]);
    let counts = status.as_array().into_iter().chain([errors]);
    for (outcome, n) in outcomes.zip(counts) {
        if n > 0 {
            let c = totals.entry((route.cloned(), method, outcome)).or_insert(0);
            *c = c.saturating_add(n);
        }
    }
}

/// The totals as a checkpoint keeps them (plain lists: JSON has no tuple keys).
#[derive(Debug, Serialize, Deserialize)]
struct TotalsRecord {
    requests: Vec<(Option<String>, String, String, u64)>,
    cancelled: Vec<(Option<String>, u64)>,
    cache: Vec<(Option<String>, [u64; 2])>,
    slo_events: Vec<(Option<String>, SloName, u64, u64)>,
    /// The boundaries the latency buckets were counted with, µs.
    boundaries_us: Vec<u64>,
    latency: Vec<(Option<String>, Vec<u64>, u64, u64)>,
    /// The counts' revision (absent in checkpoints before it was kept).
    #[serde(default)]
    revision: Option<String>,
    /// gRPC calls by route and code (absent before they were counted).
    #[serde(default)]
    grpc: Vec<(Option<String>, u8, u64)>,
}

fn static_label(known: &[&'static str], label: &str) -> Option<&'static str> {
    known.iter().find(|k| **k == label).copied()
}

impl CumulativeTotals {
    /// The totals for a checkpoint.
    pub fn to_json(&self, bounds: &LatencyBoundaries) -> serde_json::Value {
        let record = TotalsRecord {
            requests: self
                .requests
                .iter()
                .map(|((r, m, o), n)| (r.clone(), (*m).to_owned(), (*o).to_owned(), *n))
                .collect(),
            cancelled: self
                .cancelled
                .iter()
                .map(|(r, n)| (r.clone(), *n))
                .collect(),
            cache: self.cache.iter().map(|(r, c)| (r.clone(), *c)).collect(),
            slo_events: self
                .slo_events
                .iter()
                .map(|((r, name), e)| (r.clone(), *name, e.good, e.bad))
                .collect(),
            boundaries_us: bounds.micros.clone(),
            latency: self
                .latency
                .iter()
                .map(|(r, l)| (r.clone(), l.buckets.clone(), l.count, l.sum_us))
                .collect(),
            revision: self.revision.clone(),
            grpc: self
                .grpc
                .iter()
                .map(|((r, code), n)| (r.clone(), *code, *n))
                .collect(),
        };
        serde_json::to_value(record).expect("totals serialize")
    }

    /// The totals a checkpoint kept; `None` when it holds none readable.
    /// Latency buckets counted with other boundaries (the targets changed)
    /// are left out: that histogram starts again from zero.
    pub fn from_json(value: &serde_json::Value, bounds: &LatencyBoundaries) -> Option<Self> {
        let record: TotalsRecord = serde_json::from_value(value.clone()).ok()?;
        let outcomes: Vec<&'static str> = StatusClass::ALL
            .iter()
            .map(|c| c.as_str())
            .chain([INNER_FAILURE_LABEL])
            .collect();
        let mut methods: Vec<&'static str> = METHODS.to_vec();
        methods.push(UNKNOWN_METHOD);
        let mut out = Self {
            revision: record.revision,
            ..Self::default()
        };
        for (route, method, outcome, n) in record.requests {
            if let (Some(m), Some(o)) = (
                static_label(&methods, &method),
                static_label(&outcomes, &outcome),
            ) {
                out.requests.insert((route, m, o), n);
            }
        }
        out.cancelled = record.cancelled.into_iter().collect();
        out.grpc = record
            .grpc
            .into_iter()
            .filter(|(_, code, _)| usize::from(*code) < crate::store::GRPC_CODES)
            .map(|(r, code, n)| ((r, code), n))
            .collect();
        out.cache = record.cache.into_iter().collect();
        out.slo_events = record
            .slo_events
            .into_iter()
            .map(|(r, name, good, bad)| ((r, name), SloEvents { good, bad }))
            .collect();
        if record.boundaries_us == bounds.micros {
            out.latency = record
                .latency
                .into_iter()
                .filter(|(_, b, _, _)| b.len() == bounds.len() + 1)
                .map(|(r, buckets, count, sum_us)| {
                    (
                        r,
                        LatencyTotals {
                            buckets,
                            count,
                            sum_us,
                        },
                    )
                })
                .collect();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_are_boundaries_each_once() {
        let b = LatencyBoundaries::with_targets(&[200.0, 500.0, 123.4]);
        let s = b.seconds();
        assert!(s.contains(&0.2) && s.contains(&0.1234));
        assert_eq!(
            s.len(),
            ADVISED_BOUNDARIES_S.len() + 2,
            "0.5 is advised already"
        );
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        // A request is in the bucket of the first boundary it is below.
        let at = |us| b.seconds().get(b.bucket_of(us)).copied();
        assert_eq!(at(199_999), Some(0.2));
        assert_eq!(at(200_000), Some(0.25));
        assert_eq!(at(10_000_000), None, "+Inf");
    }

    #[test]
    fn totals_survive_a_checkpoint() {
        use lumen_middleware::wire::{CacheCounts, DecodedSeries, LatencyCounts};
        let bounds = LatencyBoundaries::with_targets(&[200.0, 500.0]);
        let mut h =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        h.record_n(150_000, 7).expect("in range");
        h.record_n(300_000, 3).expect("in range");
        let series = DecodedSeries {
            grpc_codes: [0; 17],
            route: Some("/a".into()),
            latency: LatencyCounts::from_histogram(&h),
            status: StatusCounts {
                success: 9,
                server_error: 1,
                ..Default::default()
            },
            errors: 0,
            cancelled: 2,
            cache: CacheCounts { hits: 4, misses: 1 },
            methods: Default::default(),
            keys: None,
            tiers: None,
            variant: None,
            assignments: None,
        };
        let mut totals = CumulativeTotals::default();
        totals.add(&series, &BudgetRules::default(), &bounds, false);
        let json = totals.to_json(&bounds);
        let back = CumulativeTotals::from_json(&json, &bounds).expect("readable");
        assert_eq!(back.requests, totals.requests);
        assert_eq!(back.cancelled, totals.cancelled);
        assert_eq!(back.cache, totals.cache);
        assert_eq!(back.slo_events, totals.slo_events);
        assert_eq!(back.latency, totals.latency);
        // Other targets, other buckets: the histogram starts again.
        let other = LatencyBoundaries::with_targets(&[300.0]);
        let moved = CumulativeTotals::from_json(&json, &other).expect("readable");
        assert!(moved.latency.is_empty());
        assert_eq!(moved.requests, totals.requests);
    }
}
