//! The sidecar at scale: ingest (decode + dedup + store) of batches of 1, 10
//! and 64 routes, and evaluation of 1 h and 24 h windows over 64 routes.
//!
//! Run: `cargo bench -p lumen-bench --bench sidecar_scale`, then
//! `cargo run -p lumen-bench --release --bin results`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lumen_bench::workload::{T0_MS, batch_json, filled_store};
use lumen_sidecar::eval::{SloReport, SloTargets};
use lumen_sidecar::store::WindowStore;

/// Batches prepared per route count; ingest cycles through them.
const PREPARED: u64 = 600;
/// Requests per route in one 10 s batch.
const REQUESTS_PER_SERIES: u64 = 200;

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("sidecar_ingest");
    group
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for routes in [1_usize, 10, 64] {
        // 600 batches of 10 s each: 100 minutes of one instance.
        let bodies: Vec<Vec<u8>> = (0..PREPARED)
            .map(|i| batch_json(i + 1, T0_MS + i * 10_000, routes, REQUESTS_PER_SERIES))
            .collect();
        let now_ms = T0_MS + PREPARED * 10_000;
        group.bench_function(format!("{routes}_routes"), |b| {
            b.iter_custom(|iters| {
                let mut store = WindowStore::new(Duration::from_secs(24 * 3600));
                let mut elapsed = Duration::ZERO;
                for i in 0..iters {
                    let k = i % PREPARED;
                    if k == 0 && i > 0 {
                        store = WindowStore::new(Duration::from_secs(24 * 3600));
                    }
                    let start = Instant::now();
                    let batch =
                        lumen_middleware::wire::decode(&bodies[k as usize]).expect("valid batch");
                    let applied = store.apply(&batch, now_ms).expect("stored");
                    elapsed += start.elapsed();
                    std::hint::black_box(applied);
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("sidecar_evaluate");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    let (store, end_ms) = filled_store(64, 1440, 600);
    // Evaluate 25 minutes before the data ends, mid-minute: windows then
    // start and end inside 10-minute blocks, as they do in real time.
    let now_ms = end_ms - 25 * 60_000 - 30_000;
    let targets = SloTargets::default();
    for (name, window) in [
        ("1h_64_routes", Duration::from_secs(3600)),
        ("24h_64_routes", Duration::from_secs(86_400)),
    ] {
        // Warm: the 10-minute and hour rollups of past blocks are cached,
        // as they are between two scrapes of a running sidecar.
        group.bench_function(name, |b| {
            b.iter(|| {
                let data = store.window(now_ms, window);
                SloReport::evaluate(&data, &targets, None, now_ms)
            })
        });
        // Cold: every rollup built during the evaluation (first scrape after a restart).
        group.bench_function(format!("{name}_cold"), |b| {
            b.iter_batched_ref(
                || {
                    let mut cold = store.clone();
                    cold.drop_caches();
                    cold
                },
                |cold| {
                    let data = cold.window(now_ms, window);
                    SloReport::evaluate(&data, &targets, None, now_ms)
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn budgets(c: &mut Criterion) {
    use lumen_sidecar::eval::{DEFAULT_MIN_EVENTS, SloPeriod, budget_report};
    use lumen_sidecar::store::{BudgetCounts, BudgetLedger};
    let mut group = c.benchmark_group("sidecar_budget");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    // 30 days of minutes (the ledger keeps service totals, whatever the
    // number of routes), evicted into 3 days of minutes and hours beyond.
    let mut ledger = BudgetLedger::default();
    let first = T0_MS / 60_000;
    let minutes = 30 * 1440;
    for m in 0..minutes {
        let counts = BudgetCounts {
            total: 38_400,
            unavailable: m % 7,
            errors: m % 11,
            slow_p95: 1_500,
            slow_p99: 300,
        };
        ledger.add(first + m, &counts, false);
    }
    ledger.evict(first + minutes - 1);
    let now_ms = (first + minutes - 1) * 60_000 + 30_000;
    let targets = SloTargets::default();
    group.bench_function("30d_every_slo_and_window", |b| {
        b.iter(|| {
            budget_report(
                &ledger,
                &targets,
                SloPeriod::Rolling(30),
                DEFAULT_MIN_EVENTS,
                now_ms,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, evaluate, budgets);
criterion_main!(benches);
