//! The layer's cost as users pay it ([`lumen_bench::router_shape`]): an
//! axum `Router` with one route, each layer added with `Router::layer`, a
//! fresh request per call, the body drained; in one criterion run, on 1
//! and 2 threads: the bare router, a pass-through layer, Lumen without and
//! with route labels, axum-prometheus and the OpenTelemetry tower layer.
//! `--bin router_rounds` measures the same variants interleaved.
//!
//! Run: `cargo bench -p lumen-bench --features peers --bench router_overhead`
//! then `cargo run -p lumen-bench --release --bin results`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lumen_bench::router_shape::{run, variants};

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (variants, upkeep) = variants();
    for threads in [1_usize, 2] {
        let mut group = c.benchmark_group(format!(
            "router_overhead/{threads}_thread{}",
            if threads > 1 { "s" } else { "" }
        ));
        group
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        for (name, router) in &variants {
            group.bench_function(*name, |b| {
                b.iter_custom(|n| {
                    let t = run(router, threads, n);
                    upkeep(); // outside the timing, as the exporter's task would
                    t
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, overhead);
criterion_main!(benches);
