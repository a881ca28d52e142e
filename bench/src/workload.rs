//! Synthetic traffic for the sidecar benches: batches with realistic
//! latency spreads, and a store filled with simulated time.

use std::time::Duration;

use hdrhistogram::Histogram;
use lumen_middleware::wire::{
    Batch, CacheCounts, DecodedBatch, DecodedSeries, LatencyCounts, Series, StatusCounts,
};
use lumen_sidecar::store::{MINUTE_MS, WindowStore};
use lumen_tests::distributions::Distribution;

/// Start of simulated time (a whole minute).
pub const T0_MS: u64 = 1_764_115_200_000;

/// Route `r`'s median latency, µs: 5–50 ms by route.
pub fn route_median_us(r: usize) -> f64 {
    5_000.0 + 45_000.0 * (r % 10) as f64 / 9.0
}

/// Latencies of route `r`: lognormal, its median, σ 0.6.
pub fn route_distribution(r: usize) -> Distribution {
    Distribution::LogNormal {
        median_us: route_median_us(r),
        sigma: 0.6,
    }
}

/// One route's interval of `requests` (1 % 5xx, 2 % 4xx), decoded form.
pub fn decoded_series(route: usize, requests: u64, seed: u64) -> DecodedSeries {
    decoded_series_of(route, requests, seed, &route_distribution(route))
}

/// As [`decoded_series`], with latencies drawn from `distribution`.
pub fn decoded_series_of(
    route: usize,
    requests: u64,
    seed: u64,
    distribution: &Distribution,
) -> DecodedSeries {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for v in distribution.sample(requests as usize, seed) {
        latency.record(v).expect("clamped into range");
    }
    let c5 = requests / 100;
    let c4 = requests / 50;
    DecodedSeries {
        grpc_codes: [0; 17],
        route: Some(format!("/api/v1/route/{route}")),
        latency: LatencyCounts::from_histogram(&latency),
        status: StatusCounts {
            success: requests - c4 - c5,
            client_error: c4,
            server_error: c5,
            ..Default::default()
        },
        errors: 0,
        cancelled: 0,
        cache: CacheCounts {
            hits: requests * 6 / 10,
            misses: requests - requests * 6 / 10,
        },
        methods: Default::default(),
        keys: None,
        tiers: None,
        variant: None,
        assignments: None,
    }
}

/// A batch of `routes` routes with `requests` each, as it travels (JSON).
pub fn batch_json(seq: u64, start_ms: u64, routes: usize, requests: u64) -> Vec<u8> {
    let series: Vec<Series> = (0..routes)
        .map(|r| {
            let d = decoded_series(r, requests, seq * 1000 + r as u64);
            Series::new(d.route.as_deref(), &d.latency.to_histogram(), d.status)
                .with_cache(d.cache.hits, d.cache.misses)
        })
        .collect();
    let batch = Batch::new("bench-instance", seq, "bench", start_ms, start_ms + 10_000)
        .with_revision("bench-00001")
        .with_series(series);
    serde_json::to_vec(&batch).expect("a batch serializes")
}

/// A store holding `minutes` of one-minute batches for `routes` routes with
/// `per_minute` requests each, ending at the returned `now_ms`.
pub fn filled_store(routes: usize, minutes: u64, per_minute: u64) -> (WindowStore, u64) {
    filled_store_within(routes, minutes, per_minute, None)
}

/// A store like [`filled_store_within`]'s, but every route-minute draws its
/// own latencies (lognormal, σ `sigma`, the route's median), as real minutes
/// do: merged blocks then hold what real ones would.
pub fn filled_store_fresh(
    routes: usize,
    minutes: u64,
    per_minute: u64,
    sigma: f64,
    budget: Option<usize>,
) -> (WindowStore, u64) {
    fill(minutes, budget, |m| {
        (0..routes)
            .map(|r| {
                decoded_series_of(
                    r,
                    per_minute,
                    m * routes as u64 + r as u64 + 1,
                    &Distribution::LogNormal {
                        median_us: route_median_us(r),
                        sigma,
                    },
                )
            })
            .collect()
    })
}

/// As [`filled_store`], keeping the store within `budget` bytes as the
/// sidecar does (once a simulated hour).
pub fn filled_store_within(
    routes: usize,
    minutes: u64,
    per_minute: u64,
    budget: Option<usize>,
) -> (WindowStore, u64) {
    // Latency samples are reused across minutes (drawing 10^8 values would
    // dominate the fill); each minute still holds its own histogram.
    let templates: Vec<DecodedSeries> = (0..routes)
        .map(|r| decoded_series(r, per_minute, r as u64 + 1))
        .collect();
    fill(minutes, budget, |_| templates.clone())
}

/// `minutes` one-minute batches of `series_of(minute)`, the store kept
/// within `budget` once a simulated hour; the store and the end's `now_ms`.
fn fill(
    minutes: u64,
    budget: Option<usize>,
    mut series_of: impl FnMut(u64) -> Vec<DecodedSeries>,
) -> (WindowStore, u64) {
    let mut store = WindowStore::new(Duration::from_secs(24 * 3600));
    let now_ms = T0_MS + minutes * MINUTE_MS - 1;
    for m in 0..minutes {
        let batch = DecodedBatch {
            instance: "bench-instance".into(),
            seq: m + 1,
            service: "bench".into(),
            revision: Some("bench-00001".into()),
            start_ms: T0_MS + m * MINUTE_MS,
            end_ms: T0_MS + (m + 1) * MINUTE_MS - 1,
            process: None,
            series: series_of(m),
        };
        store
            .apply(&batch, now_ms)
            .expect("batches are within the clock");
        if let Some(b) = budget
            && m % 60 == 59
        {
            store.fit_memory_cap(b, T0_MS + (m + 1) * MINUTE_MS - 1);
        }
    }
    (store, now_ms)
}
