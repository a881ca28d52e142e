//! The request-path cost of the feedback loop's two app-side calls, in one
//! criterion run beside the cache counter they extend: a tuning read
//! (`CacheTuning::ttl_or`: one relaxed atomic load) and
//! `CacheReport::record_key` (a cache count plus the key's spatial-sampling
//! test, and for a sampled key one store into the route's ring), against
//! `CacheReport::record` alone; the cache tier timing
//! (`CacheReport::record_tier`), and an experiment's assignment by key
//! (`TunedParam::assign`: the key's mix, the arm's value; outside a request,
//! so without the switch to the arm's series, which is one thread-local
//! store more). The per-request budget they are held to is issue #17's
//! 100 ns for the whole layer.
//!
//! Run: `cargo bench -p lumen-bench --bench tuning_channel`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lumen_middleware::{LumenConfig, pair, tuning};

fn bench(c: &mut Criterion) {
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid config");
    let report = layer.cache_report();
    let handle = tuning().cache("/ask");
    let mut g = c.benchmark_group("tuning_channel");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("tuning read (ttl_or)", |b| {
        b.iter(|| black_box(handle.ttl_or(black_box(Duration::from_secs(300)))))
    });
    g.bench_function("cache record (hit/miss only)", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            report.record(black_box(!i.is_multiple_of(3)));
        })
    });
    g.bench_function("cache record_key (1 % of keys sampled)", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            report.record_key(black_box(i), !i.is_multiple_of(3));
        })
    });
    g.bench_function("cache record_tier", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            report.record_tier(
                black_box(lumen_middleware::cache::Tier::L2),
                black_box(Duration::from_micros(i & 1023)),
            );
        })
    });
    assert!(tuning().apply(&lumen_middleware::wire::TuningAnswer {
        version: u64::MAX / 2,
        experiment: Some(lumen_middleware::wire::ExperimentArms {
            id: 1,
            param: "answer_ttl_s".into(),
            a: 300,
            b: 900,
            share_b_percent: 50,
        }),
        ..Default::default()
    }));
    let param = tuning().param("answer_ttl_s");
    g.bench_function("experiment assign (by key)", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            black_box(param.assign(black_box(Some(i))).value_or(300))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
