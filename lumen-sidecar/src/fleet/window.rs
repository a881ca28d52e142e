//! A fleet's window as plain data: the exact counts summed over every
//! instance and the summed latency buckets, per route and for the service,
//! read from query results; and its evaluation by the same pure functions
//! as a sidecar's own window.

use std::collections::BTreeMap;

use super::query_api::QuerySample;
use crate::eval::{
    BucketEstimate, LatencyBuckets, ReportScope, RouteReport, Slis, SloName, SloReport, SloTargets,
    StatusClass, bucket_quantile,
};
use crate::store::{BudgetCounts, Counts};

/// Good and bad events of the four SLOs, in [`SloName::ALL`]'s order.
pub type SloEventCounts = [[u64; 2]; 4];

/// One route's (or the service's) counts over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetRoute {
    /// Requests by status class, inner failures, cancellations, cache lookups.
    pub counts: Counts,
    /// Each SLO's `[good, bad]` events.
    pub slo_events: SloEventCounts,
    /// `(upper bound s, requests below it)`, cumulative, ascending.
    pub buckets: Vec<(f64, u64)>,
}

/// A fleet's window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetWindow {
    /// The service's whole traffic.
    pub total: FleetRoute,
    /// Each route, by label (`None`: requests without one).
    pub routes: BTreeMap<Option<String>, FleetRoute>,
    /// Instances (sidecars) whose series reported in the window.
    pub instances: u64,
}

/// The route of a sample: `http_route` on `/metrics`, `http.route` over OTLP.
fn route_key(sample: &QuerySample) -> Option<String> {
    [sample.label("http_route"), sample.label("http.route")]
        .into_iter()
        .find(|r| !r.is_empty())
        .map(str::to_owned)
}

/// A summed counter as a count: sums of integers are integral; a negative
/// or non-finite value (which a counter cannot produce) counts as zero.
fn as_count(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value.round() as u64
    } else {
        0
    }
}

fn slo_index(name: &str) -> Option<usize> {
    SloName::ALL.iter().position(|s| s.as_str() == name)
}

impl FleetRoute {
    fn add_request(&mut self, outcome: &str, n: u64) {
        let c = &mut self.counts;
        match StatusClass::ALL.iter().position(|s| s.as_str() == outcome) {
            Some(i) => c.status[i] = c.status[i].saturating_add(n),
            None if outcome == crate::app::INNER_FAILURE_LABEL => {
                c.errors = c.errors.saturating_add(n);
            }
            None => {}
        }
    }
}

/// The query results a window is made of (each a `sum by` of window gains).
#[derive(Debug, Clone, Default)]
pub struct FleetSamples {
    /// Requests by `http_route`, `status_class`.
    pub requests: Vec<QuerySample>,
    /// Cancellations by `http_route`.
    pub cancelled: Vec<QuerySample>,
    /// Cache lookups by `http_route`, `result`.
    pub cache: Vec<QuerySample>,
    /// SLO events by `http_route`, `slo_name`, `result`.
    pub slo_events: Vec<QuerySample>,
    /// Latency buckets by `http_route`, `le`.
    pub route_buckets: Vec<QuerySample>,
    /// Latency buckets of the service by `le`.
    pub total_buckets: Vec<QuerySample>,
    /// One sample whose value is the number of instances.
    pub instances: Vec<QuerySample>,
}

impl FleetSamples {
    /// Takes `part` (the same queries over a span inside this window) out
    /// of these counts, series by series (matched on every label); a gain
    /// never goes below zero. The instance count stays.
    pub fn subtract(&mut self, part: &FleetSamples) {
        fn take(whole: &mut [QuerySample], part: &[QuerySample]) {
            let part: BTreeMap<_, f64> = part.iter().map(|p| (&p.labels, p.value)).collect();
            for w in whole {
                if let Some(v) = part.get(&w.labels) {
                    w.value = (w.value - v).max(0.0);
                }
            }
        }
        take(&mut self.requests, &part.requests);
        take(&mut self.cancelled, &part.cancelled);
        take(&mut self.cache, &part.cache);
        take(&mut self.slo_events, &part.slo_events);
        take(&mut self.route_buckets, &part.route_buckets);
        take(&mut self.total_buckets, &part.total_buckets);
    }
}

fn cumulative(samples: &[&QuerySample]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|s| {
            let le = match s.label("le") {
                "+Inf" => f64::INFINITY,
                other => other.parse::<f64>().ok()?,
            };
            Some((le, as_count(s.value)))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

impl FleetWindow {
    /// Assembles the window from query results.
    pub fn from_samples(s: &FleetSamples) -> Self {
        let mut routes: BTreeMap<Option<String>, FleetRoute> = BTreeMap::new();
        for q in &s.requests {
            routes
                .entry(route_key(q))
                .or_default()
                .add_request(q.label("status_class"), as_count(q.value));
        }
        for q in &s.cancelled {
            let c = &mut routes.entry(route_key(q)).or_default().counts;
            c.cancelled = c.cancelled.saturating_add(as_count(q.value));
        }
        for q in &s.cache {
            let c = &mut routes.entry(route_key(q)).or_default().counts;
            match q.label("result") {
                "hit" => c.cache_hits = c.cache_hits.saturating_add(as_count(q.value)),
                "miss" => c.cache_misses = c.cache_misses.saturating_add(as_count(q.value)),
                _ => {}
            }
        }
        for q in &s.slo_events {
            let (Some(i), result) = (slo_index(q.label("slo_name")), q.label("result")) else {
                continue;
            };
            let slot = match result {
                "good" => 0,
                "bad" => 1,
                _ => continue,
            };
            let e = &mut routes.entry(route_key(q)).or_default().slo_events[i][slot];
            *e = e.saturating_add(as_count(q.value));
        }
        let mut by_route: BTreeMap<Option<String>, Vec<&QuerySample>> = BTreeMap::new();
        for q in &s.route_buckets {
            by_route.entry(route_key(q)).or_default().push(q);
        }
        for (route, samples) in by_route {
            routes.entry(route).or_default().buckets = cumulative(&samples);
        }
        let mut total = FleetRoute::default();
        for r in routes.values() {
            total.counts.add(&r.counts);
            for (t, e) in total.slo_events.iter_mut().zip(r.slo_events) {
                t[0] = t[0].saturating_add(e[0]);
                t[1] = t[1].saturating_add(e[1]);
            }
        }
        total.buckets = cumulative(&s.total_buckets.iter().collect::<Vec<_>>());
        Self {
            total,
            routes,
            instances: s.instances.first().map_or(0, |q| as_count(q.value)),
        }
    }
}

/// The budget counts of a window's SLO events, as the budget ledger holds them.
pub fn budget_counts(events: &SloEventCounts) -> BudgetCounts {
    let [availability, p95, p99, error_rate] = *events;
    BudgetCounts {
        total: availability[0].saturating_add(availability[1]),
        unavailable: availability[1],
        errors: error_rate[1],
        slow_p95: p95[1],
        slow_p99: p99[1],
    }
}

/// The indicators of one route of a fleet: counts exact, latency quantiles
/// estimated from the buckets, the latency SLOs judged from the exact
/// events under their targets.
pub fn fleet_slis(route: &FleetRoute, targets: &SloTargets) -> Slis {
    let slis = Slis::of_counts(&route.counts, &targets.error_classes);
    let estimate = |q: f64| -> Option<BucketEstimate> { bucket_quantile(q, &route.buckets) };
    let [_, p95, p99, _] = route.slo_events;
    slis.with_buckets(LatencyBuckets {
        p95: estimate(0.95),
        p99: estimate(0.99),
        under_p95: p95[0],
        under_p99: p99[0],
        total: p95[0].saturating_add(p95[1]),
    })
}

/// The fleet's SLO report: the same document as a sidecar's `/v1/slo`,
/// scoped to the fleet.
pub fn fleet_report(
    window: &FleetWindow,
    targets: &SloTargets,
    service: &str,
    window_s: u64,
    evaluated_at_ms: u64,
) -> SloReport {
    let route = |name: Option<String>, r: &FleetRoute| {
        RouteReport::from_slis(name, &fleet_slis(r, targets), &r.counts, targets)
    };
    let total = route(None, &window.total);
    SloReport::from_routes(
        service.to_owned(),
        None,
        window_s,
        evaluated_at_ms,
        total,
        window
            .routes
            .iter()
            .map(|(name, r)| route(name.clone(), r))
            .collect(),
        ReportScope::Fleet {
            instances: window.instances,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Status;

    fn sample(labels: &[(&str, &str)], value: f64) -> QuerySample {
        QuerySample {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        }
    }

    fn events(route: &str, slo: &str, good: f64, bad: f64) -> [QuerySample; 2] {
        [
            sample(
                &[("http_route", route), ("slo_name", slo), ("result", "good")],
                good,
            ),
            sample(
                &[("http_route", route), ("slo_name", slo), ("result", "bad")],
                bad,
            ),
        ]
    }

    fn samples() -> FleetSamples {
        let mut slo_events = Vec::new();
        slo_events.extend(events("/a", "availability", 990.0, 10.0));
        slo_events.extend(events("/a", "error_rate", 985.0, 15.0));
        slo_events.extend(events("/a", "latency_p95", 960.0, 40.0));
        slo_events.extend(events("/a", "latency_p99", 995.0, 5.0));
        let bucket = |le: &str, n: f64| sample(&[("le", le)], n);
        FleetSamples {
            requests: vec![
                sample(&[("http_route", "/a"), ("status_class", "2xx")], 985.0),
                sample(&[("http_route", "/a"), ("status_class", "4xx")], 5.0),
                sample(&[("http_route", "/a"), ("status_class", "5xx")], 9.0),
                sample(&[("http_route", "/a"), ("status_class", "error")], 1.0),
            ],
            cancelled: vec![sample(&[("http_route", "/a")], 3.0)],
            cache: vec![
                sample(&[("http_route", "/a"), ("result", "hit")], 30.0),
                sample(&[("http_route", "/a"), ("result", "miss")], 10.0),
            ],
            slo_events,
            route_buckets: Vec::new(),
            total_buckets: vec![
                bucket("0.1", 500.0),
                bucket("+Inf", 1000.0),
                bucket("0.2", 960.0),
                bucket("0.5", 995.0),
            ],
            instances: vec![sample(&[], 3.0)],
        }
    }

    #[test]
    fn counts_and_judgements_come_from_the_sums() {
        let w = FleetWindow::from_samples(&samples());
        assert_eq!(w.instances, 3);
        let c = &w.total.counts;
        assert_eq!(
            (c.status[1], c.status[4], c.errors, c.cancelled),
            (985, 9, 1, 3)
        );
        assert_eq!((c.cache_hits, c.cache_misses), (30, 10));
        let r = fleet_report(&w, &SloTargets::default(), "api", 300, 0);
        assert_eq!(r.requests, 1000);
        let slo = |n: SloName| r.slos.iter().find(|s| s.name == n).expect("four SLOs");
        assert_eq!(slo(SloName::Availability).current, Some(99.0));
        assert!(!slo(SloName::Availability).met);
        assert_eq!(slo(SloName::ErrorRate).current, Some(1.5));
        // 960 of 1000 under 200 ms: P95 < 200 ms is met, from the counts.
        let p95 = slo(SloName::LatencyP95);
        assert!(p95.met);
        assert_eq!(p95.under_target_percent, Some(96.0));
        let est = p95.estimate.expect("a bucket estimate");
        assert_eq!((est.low_ms, est.high_ms), (100.0, Some(200.0)));
        // 995 of 1000 under 500 ms: P99 < 500 ms met.
        assert!(slo(SloName::LatencyP99).met);
        // Two of four met.
        assert_eq!(r.compliance_rate, Some(50.0));
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.scope, ReportScope::Fleet { instances: 3 });
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.routes[0].route.as_deref(), Some("/a"));
    }

    #[test]
    fn one_request_short_of_the_rank_fails_the_latency_slo() {
        let mut s = samples();
        s.slo_events
            .retain(|q| q.label("slo_name") != "latency_p95");
        s.slo_events
            .extend(events("/a", "latency_p95", 949.0, 51.0));
        let r = fleet_report(
            &FleetWindow::from_samples(&s),
            &SloTargets::default(),
            "api",
            300,
            0,
        );
        let p95 = r
            .slos
            .iter()
            .find(|x| x.name == SloName::LatencyP95)
            .expect("four SLOs");
        assert!(!p95.met, "rank 950 of 1000 is not under the target");
    }

    #[test]
    fn no_traffic_is_no_data() {
        let r = fleet_report(
            &FleetWindow::from_samples(&FleetSamples::default()),
            &SloTargets::default(),
            "api",
            300,
            0,
        );
        assert_eq!(r.status, Status::NoData);
        assert_eq!(r.compliance_rate, None);
    }

    #[test]
    fn budget_counts_follow_the_ledgers_meaning() {
        let w = FleetWindow::from_samples(&samples());
        assert_eq!(
            budget_counts(&w.total.slo_events),
            BudgetCounts {
                total: 1000,
                unavailable: 10,
                errors: 15,
                slow_p95: 40,
                slow_p99: 5
            }
        );
    }
}
