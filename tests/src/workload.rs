//! Traffic shaped like a real service's, for every test and bench that
//! stores, transports or merges data (checkpoint, WAL, fleet store, OTLP,
//! memory): dozens of routes with Zipf-like rates (thousands of requests a
//! minute on the busiest), each minute a bimodal mix of cache hits
//! (lognormal around 0.4 ms, σ 0.5) and misses (lognormal around the
//! route's median, σ 1), a day of minutes. Deterministic from a seed; the
//! exact counts a test expects come from the same numbers.
//!
//! ```
//! use lumen_tests::workload::Workload;
//! let w = Workload::day();
//! let minute = w.minute(0);
//! assert_eq!(minute.len(), 64);
//! assert_eq!(
//!     minute.iter().map(|r| r.requests()).sum::<u64>(),
//!     w.requests_in_minute(0)
//! );
//! ```

use hdrhistogram::Histogram;
use lumen_middleware::wire::{self, Batch, CacheCounts, Series, StatusCounts};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Start of simulated time used by [`Workload::day`] (a whole minute).
pub const T0_MS: u64 = 1_764_115_200_000;

/// One route's minute: its latencies as a histogram and its counts.
#[derive(Debug, Clone)]
pub struct RouteMinute {
    /// The route's label.
    pub route: String,
    /// Latency of every finished request, µs.
    pub latency: Histogram<u64>,
    /// Responses by status class.
    pub status: StatusCounts,
    /// Inner-service failures (in the histogram too).
    pub errors: u64,
    /// Client-abandoned requests (not in the histogram).
    pub cancelled: u64,
    /// Cache lookups.
    pub cache: CacheCounts,
}

impl RouteMinute {
    /// Finished requests (the histogram's count).
    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// The minute as a wire series.
    pub fn series(&self) -> Series {
        Series::new(Some(&self.route), &self.latency, self.status)
            .with_errors(self.errors)
            .with_cancelled(self.cancelled)
            .with_cache(self.cache.hits, self.cache.misses)
    }
}

/// A service's traffic: `routes` routes, the busiest with
/// `peak_per_minute` requests a minute and route `r` with
/// `peak / (1 + r/4)` (so 64 routes carry about 11.5 × the peak a minute),
/// for `minutes` minutes from `start_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Routes.
    pub routes: usize,
    /// Requests a minute on the busiest route.
    pub peak_per_minute: u64,
    /// Minutes of traffic.
    pub minutes: u64,
    /// σ of the misses' log-latency.
    pub sigma: f64,
    /// First minute, Unix ms (a whole minute).
    pub start_ms: u64,
    /// Varies everything.
    pub seed: u64,
}

impl Workload {
    /// A production day: 64 routes, 3,000 requests a minute on the busiest
    /// (about 34,500 a minute in all, 50 million a day), σ 1, 1,440 minutes
    /// ending before now.
    pub fn day() -> Self {
        let now_minute = crate::now_ms() / 60_000;
        Self {
            routes: 64,
            peak_per_minute: 3_000,
            minutes: 1_440,
            sigma: 1.0,
            start_ms: (now_minute - 1_440) * 60_000,
            seed: 1,
        }
    }

    /// The same traffic over `minutes` minutes ending before now.
    pub fn ending_now(self, minutes: u64) -> Self {
        let now_minute = crate::now_ms() / 60_000;
        Self {
            minutes,
            start_ms: (now_minute - minutes) * 60_000,
            ..self
        }
    }

    /// Route `r`'s label: long, as real ones are.
    pub fn route(&self, r: usize) -> String {
        format!("/api/v1/tenants/{{tenant_id}}/resources-{r:02}/{{resource_id}}/items")
    }

    /// Route `r`'s requests in any minute.
    pub fn route_requests(&self, r: usize) -> u64 {
        (self.peak_per_minute * 4 / (4 + r as u64)).max(1)
    }

    /// Requests in minute `m` (every route's).
    pub fn requests_in_minute(&self, _m: u64) -> u64 {
        (0..self.routes).map(|r| self.route_requests(r)).sum()
    }

    /// Every finished request of the workload.
    pub fn total_requests(&self) -> u64 {
        self.requests_in_minute(0) * self.minutes
    }

    /// Minute `m`'s start, Unix ms.
    pub fn minute_start_ms(&self, m: u64) -> u64 {
        self.start_ms + m * 60_000
    }

    /// Minute `m` of every route: its own draws.
    pub fn minute(&self, m: u64) -> Vec<RouteMinute> {
        (0..self.routes).map(|r| self.route_minute(r, m)).collect()
    }

    /// Route `r`'s minute `m`.
    pub fn route_minute(&self, r: usize, m: u64) -> RouteMinute {
        let n = self.route_requests(r);
        let mut rng = SmallRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(m * 1_000 + r as u64),
        );
        let hit_share = 0.3 + 0.5 * (r % 7) as f64 / 6.0;
        let miss_median_us = 8_000.0 + 72_000.0 * (r % 10) as f64 / 9.0;
        let mut latency =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        let mut hits = 0;
        for _ in 0..n {
            let hit = rng.random_bool(hit_share);
            let v = if hit {
                hits += 1;
                400.0 * (0.5 * standard_normal(&mut rng)).exp()
            } else {
                miss_median_us * (self.sigma * standard_normal(&mut rng)).exp()
            };
            latency
                .record((v.round() as u64).clamp(1, 60_000_000))
                .expect("clamped into range");
        }
        // 0.2 % 5xx, 1.5 % 4xx, 0.1 % inner failures, from the minute's draw.
        let server_error = n / 500 + u64::from(rng.random_bool(0.5));
        let client_error = n * 15 / 1_000;
        let errors = n / 1_000;
        let success = n - server_error.min(n) - client_error - errors;
        let server_error = n - success - client_error - errors;
        RouteMinute {
            route: self.route(r),
            latency,
            status: StatusCounts {
                success,
                client_error,
                server_error,
                ..Default::default()
            },
            errors,
            cancelled: n / 400,
            cache: CacheCounts {
                hits,
                misses: n - hits,
            },
        }
    }

    /// Minute `m`'s finished requests and those that count against
    /// availability (5xx and inner failures), every route's.
    pub fn requests_and_unavailable(&self, m: u64) -> (u64, u64) {
        self.minute(m).iter().fold((0, 0), |(n, bad), r| {
            let failed = r.status.server_error + r.errors;
            (
                n + r.status.success + r.status.client_error + failed,
                bad + failed,
            )
        })
    }

    /// [`Workload::requests_and_unavailable`] summed over `minutes` of
    /// every one of `workloads` (a fleet's instances).
    pub fn fleet_requests_and_unavailable(
        workloads: &[Workload],
        minutes: impl Iterator<Item = u64>,
    ) -> (u64, u64) {
        minutes.fold((0, 0), |(n, bad), m| {
            workloads.iter().fold((n, bad), |(n, bad), w| {
                let (x, y) = w.requests_and_unavailable(m);
                (n + x, bad + y)
            })
        })
    }

    /// Minute `m` as one instance's batch (`seq`), as it travels (JSON).
    pub fn batch(&self, service: &str, instance: &str, seq: u64, m: u64) -> Vec<u8> {
        self.batch_of(service, instance, seq, m, None)
    }

    /// [`Workload::batch`] with the app process's figures as a busy app on
    /// 1 vCPU and 512 MiB reports them: 0.55 cores and 300 MiB resident.
    pub fn batch_with_process(&self, service: &str, instance: &str, seq: u64, m: u64) -> Vec<u8> {
        let process = wire::ProcessStats {
            cpu_seconds: (m + 1) as f64 * 60.0 * 0.55,
            rss_bytes: 300 << 20,
            memory_limit_bytes: Some(512 << 20),
            cpu_limit_cores: Some(1.0),
        };
        self.batch_of(service, instance, seq, m, Some(process))
    }

    fn batch_of(
        &self,
        service: &str,
        instance: &str,
        seq: u64,
        m: u64,
        process: Option<wire::ProcessStats>,
    ) -> Vec<u8> {
        let start_ms = self.minute_start_ms(m);
        let batch = Batch::new(instance, seq, service, start_ms, start_ms + 59_000)
            .with_revision(&format!("{service}-00001-abc"))
            .with_series(self.minute(m).iter().map(RouteMinute::series));
        let batch = match process {
            Some(p) => batch.with_process(p),
            None => batch,
        };
        serde_json::to_vec(&batch).expect("a batch serializes")
    }
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_heavy_tailed_spread_and_exactly_counted() {
        let w = Workload::day();
        let busiest = w.route_minute(0, 7);
        assert_eq!(busiest.requests(), 3_000);
        // Hits near 0.4 ms, misses around tens of ms with σ 1: the minute
        // spans three orders of magnitude and holds many distinct buckets.
        assert!(busiest.latency.min() < 300, "{}", busiest.latency.min());
        assert!(busiest.latency.max() > 100_000, "{}", busiest.latency.max());
        let buckets = busiest.latency.iter_recorded().count();
        assert!(buckets > 1_000, "{buckets} distinct buckets");
        let s = busiest.status;
        assert_eq!(
            s.success + s.client_error + s.server_error + busiest.errors,
            3_000
        );
        assert_eq!(busiest.cache.hits + busiest.cache.misses, 3_000);
        // Each minute draws afresh; the same minute again is the same.
        assert_ne!(busiest.latency, w.route_minute(0, 8).latency);
        assert_eq!(busiest.latency, w.route_minute(0, 7).latency);
        assert!(w.total_requests() > 45_000_000, "{}", w.total_requests());
        assert!(w.route_requests(63) >= 150);
    }
}
