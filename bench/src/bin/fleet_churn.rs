//! The fleet store under churn, today's layout: the same day of traffic
//! (32 routes, 2,000 requests per route-minute for the whole service,
//! lognormal latencies, σ 1) served by 10, 100 or 1,000 instance lifetimes
//! of 10 minutes to 6 hours (Cloud Run scaling, deploys, restarts), back to
//! back in as many sequences as keep every minute served, each written to a real `redis-server` by the sidecar's own
//! writer as it would stand at the end of the day (blocks past their tier's
//! horizon gone), then read back and evaluated on one thread; then
//! compacted (every closed block's fields merged into one) and measured
//! again, in the same run. Before compaction each instance keeps a field in
//! every block it touched, so memory and read time grow with the
//! lifetimes; after it they follow the traffic (issue 37).
//!
//! Run: `cargo run -p lumen-bench --release --bin fleet_churn` (needs
//! `redis-server` on the PATH); it writes `target/lumen-bench/fleet_churn.json`
//! for the `results` bin.

use std::time::{Duration, Instant};

use lumen_bench::fleet_redis::{apply_on_time, median, used_memory};
use lumen_bench::workload::{decoded_series_of, route_median_us};
use lumen_bench::write_figures;
use lumen_middleware::wire::DecodedSeries;
use lumen_sidecar::app::{AppState, now_ms};
use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::fleet::store::{FleetStoreReader, FleetWriter, connection, open_client};
use lumen_sidecar::store::{MINUTE_MS, WindowStore};
use lumen_tests::RedisProc;
use lumen_tests::distributions::Distribution;

/// Routes of the service.
const ROUTES: usize = 32;
/// Minutes of the day.
const MINUTES: u64 = 1440;
/// Requests per route-minute of the service, shared by the instances alive.
const SERVICE_PER_ROUTE_MINUTE: u64 = 2_000;
/// σ of the latencies' logarithm.
const SIGMA: f64 = 1.0;
/// Instance lifetimes in the day, one scenario each.
const LIFETIMES: [usize; 3] = [10, 100, 1_000];
/// Latency samples per route, cycled by minute.
const TEMPLATES: usize = 12;
/// Timed reads per window (after one untimed).
const RUNS: usize = 5;

fn config() -> SidecarConfig {
    SidecarConfig {
        service: Some("churn".into()),
        ..SidecarConfig::default()
    }
}

/// SplitMix64: the next of a seeded sequence, uniform in `[0, 1)`.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

/// The mean of a lifetime drawn log-uniformly from 10 minutes to 6 hours.
const MEAN_LIFETIME: f64 = 350.0 / 3.583_518_938_456_11; // (360 − 10) / ln 36

/// Instances alive at once for `n` lifetimes of the usual lengths in a day.
fn slots(n: usize) -> usize {
    ((n as f64 * MEAN_LIFETIME / MINUTES as f64).round() as usize).max(1)
}

/// `n` lifetimes `(first minute, minutes)` tiling the day in [`slots`]
/// back-to-back sequences (one instance of each alive at any minute):
/// lengths drawn log-uniformly from 10 minutes to 6 hours, scaled so each
/// sequence fills the day.
fn lifetimes(n: usize, seed: u64) -> Vec<(u64, u64)> {
    let mut rng = seed;
    let slots = slots(n);
    let mut out = Vec::with_capacity(n);
    for slot in 0..slots {
        let count = n / slots + usize::from(slot < n % slots);
        let raw: Vec<f64> = (0..count)
            .map(|_| (10.0_f64.ln() + uniform(&mut rng) * 36.0_f64.ln()).exp())
            .collect();
        let scale = MINUTES as f64 / raw.iter().sum::<f64>();
        let mut start = 0;
        for (i, len) in raw.iter().enumerate() {
            let end = if i + 1 == count {
                MINUTES
            } else {
                (start + (len * scale).round().max(1.0) as u64).min(MINUTES)
            };
            if end > start {
                out.push((start, end - start));
            }
            start = end;
        }
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let mut rows = Vec::new();
    for n in LIFETIMES {
        let row = scenario(n).await;
        println!("{row}");
        rows.push(row);
    }
    write_figures("fleet_churn.json", &serde_json::Value::from(rows));
}

/// Each route's latency samples at `per_instance` requests a minute, for
/// instance `instance`.
fn templates(per_instance: u64, instance: usize) -> Vec<Vec<DecodedSeries>> {
    (0..ROUTES)
        .map(|r| {
            (0..TEMPLATES)
                .map(|t| {
                    decoded_series_of(
                        r,
                        per_instance,
                        ((instance * ROUTES + r) * TEMPLATES + t + 1) as u64,
                        &Distribution::LogNormal {
                            median_us: route_median_us(r),
                            sigma: SIGMA,
                        },
                    )
                })
                .collect()
        })
        .collect()
}

/// The day served by `n` instance lifetimes: written, then read.
async fn scenario(n: usize) -> serde_json::Value {
    let per_instance = SERVICE_PER_ROUTE_MINUTE.div_ceil(slots(n) as u64);
    let redis = RedisProc::start().await;
    let empty = used_memory(&redis.url).await;
    let now = now_ms();
    let first = now / MINUTE_MS + 1 - MINUTES;
    let lives = lifetimes(n, 37);
    let mut requests = 0_u64;
    let fill = Instant::now();
    for (i, (start, len)) in lives.iter().enumerate() {
        // Each instance draws its own latencies: merged, the fleet's
        // histograms are as varied as real traffic's.
        let templates = templates(per_instance, i);
        let mut store = WindowStore::new(Duration::from_secs(24 * 3600));
        for m in *start..start + len {
            let minute = first + m;
            let series = (0..ROUTES)
                .map(|r| templates[r][(m as usize + i) % TEMPLATES].clone())
                .collect();
            apply_on_time(
                &mut store,
                "churn",
                &format!("app-{i}"),
                m + 1,
                minute,
                series,
            );
            requests += ROUTES as u64 * per_instance;
        }
        let state = AppState::new(config(), store);
        let con = connection(open_client(&redis.url, None).expect("url")).expect("connection");
        let mut writer = FleetWriter::new(con, format!("churn-{i}"), Duration::from_secs(86_400));
        writer.write(&state).await.expect("written");
    }
    eprintln!(
        "{n} lifetimes written in {:.0} s",
        fill.elapsed().as_secs_f64()
    );
    let used = used_memory(&redis.url).await.saturating_sub(empty);

    let con = connection(open_client(&redis.url, None).expect("url")).expect("connection");
    let reader = FleetStoreReader::new(con, "churn".into(), config());
    let reads = read_back(&reader, &lives, first, per_instance, now, n).await;
    // Compacted: every closed block's fields merged into one (the
    // sidecars write every interval, so each wrote after its blocks closed).
    let started = Instant::now();
    let compacted = reader.compact(now, |_, _, _| {}).await.expect("compacted");
    let compaction_ms = started.elapsed().as_secs_f64() * 1000.0;
    let used_compacted = used_memory(&redis.url).await.saturating_sub(empty);
    let reads_compacted = read_back(&reader, &lives, first, per_instance, now, n).await;
    serde_json::json!({
        "lifetimes": lives.len(),
        "alive_at_once": slots(n),
        "routes": ROUTES,
        "requests_per_route_minute": per_instance * slots(n) as u64,
        "sigma": SIGMA,
        "requests": requests,
        "redis_used_memory_bytes": used,
        "reads": reads,
        "compacted": {
            "blocks": compacted.blocks,
            "fields": compacted.fields,
            "compaction_ms": compaction_ms,
            "redis_used_memory_bytes": used_compacted,
            "reads": reads_compacted,
        },
    })
}

/// The 1 h and 24 h windows read and evaluated: each checked to hold
/// every request, then timed.
async fn read_back(
    reader: &FleetStoreReader,
    lives: &[(u64, u64)],
    first: u64,
    per_instance: u64,
    now: u64,
    n: usize,
) -> Vec<serde_json::Value> {
    let mut reads = Vec::new();
    for (name, window) in [("1h", 3600), ("24h", 86_400)] {
        let window = Duration::from_secs(window);
        let covered = reader.window(window, now).await.expect("read");
        let from = now / MINUTE_MS + 1 - covered.data.window.as_secs() / 60;
        let want: u64 = lives
            .iter()
            .map(|(start, len)| {
                let (a, b) = (first + start, first + start + len);
                b.saturating_sub(a.max(from))
            })
            .sum::<u64>()
            * ROUTES as u64
            * per_instance;
        assert_eq!(
            covered.data.total.counts.requests(),
            want,
            "{n} lifetimes, {name}: every request of the window"
        );
        let mut ms = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let report = reader.slo_report(window, now).await.expect("read");
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(report.routes.len() <= ROUTES);
        }
        reads.push(serde_json::json!({
            "window": name,
            "instances_read": covered.instances,
            "median_ms": median(ms),
        }));
    }
    reads
}
