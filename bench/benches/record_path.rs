//! The layer's recording call alone, without a router or a future
//! (`Recorder::record_request`: the route's lookup, the status class, the
//! histogram index and the adds on the calling thread's own stripe), on 1
//! thread and per thread on 2 (each thread with its own stripe): whether
//! recording contends between threads, apart from the machine's noise in
//! the router-shape benches.
//!
//! Run: `cargo bench -p lumen-bench --bench record_path`, then
//! `cargo run -p lumen-bench --release --bin results` (a line under the
//! router tables).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lumen_middleware::{LumenConfig, pair};

fn bench(c: &mut Criterion) {
    let (layer, shipper) = pair(LumenConfig::default()).expect("valid config");
    std::mem::forget(shipper); // never shipped: the registry keeps filling, as in an app
    let recorder = layer.recorder();
    let mut group = c.benchmark_group("record_path");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for threads in [1_usize, 2] {
        let name = format!("{threads}_thread{}", if threads > 1 { "s" } else { "" });
        group.bench_function(name, |b| {
            b.iter_custom(|n| {
                let barrier = std::sync::Barrier::new(threads + 1);
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            barrier.wait();
                            for i in 0..n {
                                recorder.record_request(
                                    Some("/hello"),
                                    &http::Method::GET,
                                    black_box(i & 1023),
                                    200,
                                );
                            }
                        });
                    }
                    barrier.wait();
                    let start = Instant::now();
                    // The scope joins the threads before it returns.
                    start
                })
                .elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
