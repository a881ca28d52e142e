//! The fleet's figures in PromQL, for the dashboard, the Prometheus rules
//! and the Cloud Monitoring policies: ratios of counters summed over every
//! instance, never a `min`/`max`/`avg` of per-instance gauges.
//!
//! Exact (ratios of sums of exact counts): availability, error rate, each
//! SLO's met/not met and the compliance, the share of requests under a
//! latency target, the cache hit rate, ROI. Estimated: P95/P99
//! (`histogram_quantile` over summed buckets). `rate()`/`increase()`
//! extrapolate numerator and denominator alike, so their ratios are the
//! ratios of the counts in the window.

use super::scope::Scope;
use crate::eval::{
    DEPLOYS_FOR_FULL_SCORE, FAILURE_MULTIPLE_AT_ZERO, HIT_RATE_RANGE, MIN_MEASURED_METRICS, SloName,
};
use crate::metrics::{CACHE_LOOKUPS_TOTAL, SLO_EVENTS_TOTAL};

impl Scope {
    /// The evaluation window as a PromQL range (`300s`).
    pub fn range(&self) -> String {
        format!("{}s", self.window.as_secs())
    }

    /// `sum(increase(lumen_slo_events_total{…}[range]))` of one SLO, of
    /// one result (`good`, `bad`) or both.
    pub fn slo_events(&self, name: SloName, result: Option<&str>, range: &str) -> String {
        let matchers = match result {
            Some(r) => format!("slo_name=\"{}\",result=\"{r}\"", name.as_str()),
            None => format!("slo_name=\"{}\"", name.as_str()),
        };
        format!(
            "sum(increase({}[{range}]))",
            self.selector(SLO_EVENTS_TOTAL, &matchers)
        )
    }

    /// The fleet's share of `result` events of one SLO over `range`, 0–1.
    pub fn slo_share(&self, name: SloName, result: &str, range: &str) -> String {
        format!(
            "{} / {}",
            self.slo_events(name, Some(result), range),
            self.slo_events(name, None, range)
        )
    }

    /// 1 when the fleet meets the SLO over `range`, else 0, exactly as the
    /// sidecar judges it: availability's good share at or above its target,
    /// the error rate's bad share below its target, a latency SLO's share of
    /// requests under its target at or above 95 % (99 %), which is "P95
    /// below the target" for the request of nearest rank.
    pub fn slo_met(&self, name: SloName, range: &str) -> String {
        let t = &self.targets;
        match name {
            SloName::Availability => format!(
                "(100 * {} >= bool {})",
                self.slo_share(name, "good", range),
                t.availability_percent
            ),
            SloName::ErrorRate => format!(
                "(100 * {} < bool {})",
                self.slo_share(name, "bad", range),
                t.error_rate_percent
            ),
            SloName::LatencyP95 => {
                format!("({} >= bool 0.95)", self.slo_share(name, "good", range))
            }
            SloName::LatencyP99 => {
                format!("({} >= bool 0.99)", self.slo_share(name, "good", range))
            }
        }
    }

    /// The fleet's SLO compliance over `range`, percent (SLOs met over four);
    /// no value without requests.
    pub fn fleet_compliance(&self, range: &str) -> String {
        let met: Vec<String> = SloName::ALL
            .iter()
            .map(|n| self.slo_met(*n, range))
            .collect();
        format!(
            "25 * ({}) and on() ({} > 0)",
            met.join(" + "),
            self.slo_events(SloName::Availability, None, range)
        )
    }

    /// The fleet's quantile `q` over `range`, seconds: an estimate from the
    /// summed buckets (exact at the bucket bounds, the targets among them).
    pub fn fleet_quantile(&self, q: f64, range: &str) -> String {
        format!(
            "histogram_quantile({q}, sum by (le) (rate({}[{range}])))",
            self.selector(self.data_path.latency_buckets(), "")
        )
    }

    /// The fleet's share of requests under the P95 target over `range`,
    /// percent (exact).
    pub fn fleet_under_p95_target(&self, range: &str) -> String {
        format!(
            "100 * {}",
            self.slo_share(SloName::LatencyP95, "good", range)
        )
    }

    /// The fleet's cache hit rate, percent, over `range` (`5m`): summed
    /// hits over summed lookups of every instance, exact.
    pub fn fleet_hit_rate(&self, range: &str) -> String {
        format!(
            "100 * sum(increase({}[{range}])) / sum(increase({}[{range}]))",
            self.selector(CACHE_LOOKUPS_TOTAL, "result=\"hit\""),
            self.selector(CACHE_LOOKUPS_TOTAL, "")
        )
    }

    /// The fleet's ROI, percent, over the evaluation window: every
    /// instance's hits times the cost per miss, against the whole cache's
    /// cost prorated to the window (charged once, not once per instance).
    pub fn fleet_roi(&self) -> String {
        let window_s = self.window.as_secs();
        let cost = self.roi.redis_monthly_cost_usd * window_s as f64 / crate::eval::MONTH_S;
        format!(
            "100 * (sum(increase({}[{window_s}s])) * {} - {cost}) / {cost}",
            self.selector(CACHE_LOOKUPS_TOTAL, "result=\"hit\""),
            self.roi.cost_per_miss_usd
        )
    }

    /// The fleet's maturity score over the evaluation window, 0–100: the
    /// sidecar's six scoring functions over the fleet's inputs (availability,
    /// error rate and hit rate exact; P95 a bucket estimate; deployments the
    /// most any sidecar saw; CPU and memory the instances' mean), averaged
    /// over those with data; none without availability or with fewer than
    /// three metrics.
    pub fn fleet_maturity(&self) -> String {
        let range = self.range();
        let t = &self.targets;
        let failure = |share_percent: String, allowed: f64| {
            let zero_at = allowed * FAILURE_MULTIPLE_AT_ZERO;
            format!(
                "clamp(100 * ({zero_at} - {share_percent}) / {}, 0, 100)",
                zero_at - allowed
            )
        };
        let availability = failure(
            format!(
                "(100 * {})",
                self.slo_share(SloName::Availability, "bad", &range)
            ),
            100.0 - t.availability_percent,
        );
        let error_rate = failure(
            format!(
                "(100 * {})",
                self.slo_share(SloName::ErrorRate, "bad", &range)
            ),
            t.error_rate_percent,
        );
        let p95_ms = t.latency_p95_ms;
        let latency = format!(
            "clamp(100 * ({} - 1000 * {}) / {p95_ms}, 0, 100)",
            2.0 * p95_ms,
            self.fleet_quantile(0.95, &range)
        );
        let (low, high) = HIT_RATE_RANGE;
        let hit_rate = format!(
            "clamp(100 * (({}) - {low}) / {}, 0, 100)",
            self.fleet_hit_rate(&range),
            high - low
        );
        let deployments = format!(
            "clamp_max(100 * max({}) / {DEPLOYS_FOR_FULL_SCORE}, 100)",
            self.selector("deployment_frequency", "")
        );
        // The utilisation score: 50 idle, 100 from 40 % to 80 %, 0 at 100 %.
        let utilisation = |metric: &str| {
            let u = format!("(avg({}) / 100)", self.selector(metric, ""));
            format!(
                "clamp_min(clamp_max(50 + 125 * {u}, 100) - clamp_min(500 * ({u} - 0.8), 0), 0)"
            )
        };
        let efficiency = format!(
            "((({}) + ({})) / 2 or ({}) or ({}))",
            utilisation("cpu_utilization_percent"),
            utilisation("memory_utilization_percent"),
            utilisation("cpu_utilization_percent"),
            utilisation("memory_utilization_percent"),
        );
        // What each score needs: traffic, requests with a latency, cache
        // lookups, a deployment count, a utilisation.
        let increase =
            |metric: &str| format!("sum(increase({}[{range}])) > 0", self.selector(metric, ""));
        let traffic = format!(
            "{} > 0",
            self.slo_events(SloName::Availability, None, &range)
        );
        let present = [
            traffic.clone(),
            increase(self.data_path.latency_buckets()),
            traffic.clone(),
            increase(CACHE_LOOKUPS_TOTAL),
            format!("max({})", self.selector("deployment_frequency", "")),
            format!(
                "avg({}) or avg({})",
                self.selector("cpu_utilization_percent", ""),
                self.selector("memory_utilization_percent", "")
            ),
        ];
        let scores = [
            availability,
            latency,
            error_rate,
            hit_rate,
            deployments,
            efficiency,
        ];
        let sum: Vec<String> = scores
            .iter()
            .map(|s| format!("(({s}) or vector(0))"))
            .collect();
        let count: Vec<String> = present
            .iter()
            .map(|p| format!("((({p}) * 0 + 1) or vector(0))"))
            .collect();
        let count = count.join(" + ");
        format!(
            "({}) / ({count}) and on() ({traffic}) and on() (({count}) >= {MIN_MEASURED_METRICS})",
            sum.join(" + "),
        )
    }
}
