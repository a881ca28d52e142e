//! The fleet store at scale: 50 sidecars × 32 routes × 24 h of minutes,
//! written to a real `redis-server` by the sidecar's own writer (its first
//! write: everything it holds), then read back and merged by the reader on
//! one thread: the 1 h and 24 h windows' full evaluation, and the memory
//! Redis uses for it.
//!
//! Run: `cargo run -p lumen-bench --release --bin fleet_store` (needs
//! `redis-server` on the PATH); it writes `target/lumen-bench/fleet_store.json`
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

/// Sidecars (instances) in the fleet.
const INSTANCES: usize = 50;
/// Routes per instance.
const ROUTES: usize = 32;
/// Minutes of data each sidecar holds (24 h).
const MINUTES: u64 = 1440;
/// The loads: requests per route per minute per instance, and the
/// lognormal σ of their latencies. Busy: 50 × 32 × 100 a minute (about
/// 2,700 requests a second) with a wide spread; moderate: 530 a second,
/// a typical spread.
const LOADS: [(&str, u64, f64); 2] = [("busy", 100, 1.0), ("moderate", 20, 0.6)];
/// Latency samples per route, cycled by minute, so an hour's histogram
/// holds as many distinct buckets as fresh traffic would.
const TEMPLATES: usize = 12;
/// Timed reads per window (after one untimed).
const RUNS: usize = 7;

/// The bytes of every value, by key tier (`m`, `t`, `h`, `b`), and the keys.
async fn tier_bytes(url: &str) -> serde_json::Value {
    let client = redis::Client::open(url).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("lumen:*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    let mut by_tier = std::collections::BTreeMap::<String, (u64, u64)>::new();
    for key in keys {
        let tier = key.split(':').nth(2).unwrap_or("?").to_owned();
        let values: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap_or_default();
        let e = by_tier.entry(tier).or_default();
        e.0 += 1;
        e.1 += values.iter().map(|v| v.len() as u64).sum::<u64>();
    }
    serde_json::json!(
        by_tier
            .into_iter()
            .map(|(t, (keys, bytes))| (t, serde_json::json!({"keys": keys, "bytes": bytes})))
            .collect::<serde_json::Map<_, _>>()
    )
}

fn config() -> SidecarConfig {
    SidecarConfig {
        service: Some("bench".into()),
        ..SidecarConfig::default()
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let mut scenarios = Vec::new();
    for (name, per_minute, sigma) in LOADS {
        let mut row = scenario(per_minute, sigma).await;
        row["load"] = name.into();
        println!("{row}");
        scenarios.push(row);
    }
    write_figures("fleet_store.json", &serde_json::Value::from(scenarios));
}

/// One fleet of [`INSTANCES`] sidecars with `per_minute` requests per
/// route-minute of σ `sigma`: written, then read.
async fn scenario(per_minute: u64, sigma: f64) -> serde_json::Value {
    let redis = RedisProc::start().await;
    let empty = used_memory(&redis.url).await;
    let now = now_ms();
    let last = now / MINUTE_MS;
    let templates: Vec<Vec<DecodedSeries>> = (0..ROUTES)
        .map(|r| {
            (0..TEMPLATES)
                .map(|t| {
                    decoded_series_of(
                        r,
                        per_minute,
                        (r * TEMPLATES + t + 1) as u64,
                        &Distribution::LogNormal {
                            median_us: route_median_us(r),
                            sigma,
                        },
                    )
                })
                .collect()
        })
        .collect();
    let mut written = Vec::new();
    let fill = Instant::now();
    for i in 0..INSTANCES {
        let mut store = WindowStore::new(Duration::from_secs(24 * 3600));
        for m in 0..MINUTES {
            let minute = last + 1 - MINUTES + m;
            let series = (0..ROUTES)
                .map(|r| templates[r][(m as usize + i) % TEMPLATES].clone())
                .collect();
            apply_on_time(
                &mut store,
                "bench",
                &format!("app-{i}"),
                m + 1,
                minute,
                series,
            );
        }
        let state = AppState::new(config(), store);
        let con = connection(open_client(&redis.url, None).expect("url")).expect("connection");
        let mut writer = FleetWriter::new(con, format!("bench-{i}"), Duration::from_secs(86_400));
        let started = Instant::now();
        let summary = writer.write(&state).await.expect("written");
        written.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(summary.resync && summary.blocks > 0);
    }
    eprintln!("filled in {:.0} s", fill.elapsed().as_secs_f64());
    let used = used_memory(&redis.url).await.saturating_sub(empty);
    let tiers = tier_bytes(&redis.url).await;

    let con = connection(open_client(&redis.url, None).expect("url")).expect("connection");
    let reader = FleetStoreReader::new(con, "bench".into(), config());
    let mut rows = Vec::new();
    for (name, window) in [("1h", 3600), ("24h", 86_400)] {
        let window = Duration::from_secs(window);
        let w = reader.window(window, now).await.expect("read");
        let minutes = w.data.window.as_secs() / 60;
        assert_eq!(w.instances, INSTANCES as u64);
        assert_eq!(
            w.data.total.counts.requests(),
            minutes * (INSTANCES * ROUTES) as u64 * per_minute,
            "every request of the {minutes} minutes covered"
        );
        let mut ms = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let report = reader.slo_report(window, now).await.expect("read");
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(report.routes.len(), ROUTES);
        }
        rows.push(serde_json::json!({
            "window": name,
            "minutes_covered": minutes,
            "median_ms": median(ms),
        }));
    }
    serde_json::json!({
        "instances": INSTANCES,
        "routes": ROUTES,
        "minutes": MINUTES,
        "requests_per_route_minute": per_minute,
        "sigma": sigma,
        "redis_used_memory_bytes": used,
        "value_bytes_by_tier": tiers,
        "first_write_median_ms": median(written),
        "reads": rows,
    })
}
