//! Per-request cost of each metrics layer over a trivial inner service
//! (`service_fn` answering 200), on 1 and 2 threads, in one criterion run:
//! bare, Lumen, Lumen with route labels, axum-prometheus, and the
//! OpenTelemetry tower HTTP layer (metrics only). Every layer is applied with
//! `Layer::layer` directly on the same service; each call is polled once
//! with a no-op waker (all complete at once), no runtime in the loop.
//!
//! Run: `cargo bench -p lumen-bench --features peers --bench request_overhead`
//! then `cargo run -p lumen-bench --bin results` to print the ratios and
//! refresh `bench/RESULTS.md`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use lumen_middleware::{LumenConfig, pair};
use tower::{Layer, Service, service_fn};

type Req = Request<String>;

fn request() -> Req {
    Request::get("/hello")
        .body(String::new())
        .expect("valid request")
}

/// Calls the service once and polls the answer to completion.
#[inline]
fn one<S>(service: &mut S, cx: &mut Context<'_>)
where
    S: Service<Req>,
{
    let ready = service.poll_ready(cx);
    debug_assert!(ready.is_ready());
    let mut future = std::pin::pin!(service.call(request()));
    match future.as_mut().poll(cx) {
        Poll::Ready(r) => {
            black_box(r.is_ok());
        }
        Poll::Pending => panic!("the inner service answers at once"),
    }
}

/// Runs `iters` requests on each of `threads` threads, each with its own
/// clone of the service; returns the wall time (so time per iteration is
/// the per-thread cost per request).
fn run<S>(service: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<Req> + Clone + Send + 'static,
{
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut service = service.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                // Warm this thread (stripe, clock, first route sight).
                for _ in 0..100 {
                    one(&mut service, &mut cx);
                }
                barrier.wait();
                for _ in 0..iters {
                    one(&mut service, &mut cx);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

fn inner() -> impl Service<Req, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new(String::from("hello"))) })
}

fn otel_layer() -> opentelemetry_instrumentation_tower::http::server::Layer {
    use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
    let provider = SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build();
    opentelemetry::global::set_meter_provider(provider);
    opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
        .with_tracing(false)
        .build()
        .expect("layer builds")
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (lumen, _shipper) = pair(LumenConfig::default()).expect("valid config");
    let lumen_routes = lumen.with_route_fn(|_, uri, _| Some(uri.path()));
    let (prometheus, prometheus_handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let otel = otel_layer();

    for threads in [1_usize, 2] {
        let mut group = c.benchmark_group(format!(
            "request_overhead/{threads}_thread{}",
            if threads > 1 { "s" } else { "" }
        ));
        group
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        let bare = inner();
        group.bench_function("bare", |b| b.iter_custom(|n| run(&bare, threads, n)));
        let with_lumen = lumen.layer(inner());
        group.bench_function("lumen", |b| b.iter_custom(|n| run(&with_lumen, threads, n)));
        let with_routes = lumen_routes.layer(inner());
        group.bench_function("lumen_route_labels", |b| {
            b.iter_custom(|n| run(&with_routes, threads, n))
        });
        let with_prometheus = prometheus.layer(inner());
        group.bench_function("axum_prometheus", |b| {
            b.iter_custom(|n| {
                let t = run(&with_prometheus, threads, n);
                // Outside the timing: the exporter's upkeep the spawned task would do.
                prometheus_handle.run_upkeep();
                t
            })
        });
        let with_otel = otel.layer(inner());
        group.bench_function("opentelemetry_tower", |b| {
            b.iter_custom(|n| run(&with_otel, threads, n))
        });
        group.finish();
    }
}

criterion_group!(benches, overhead);
criterion_main!(benches);
