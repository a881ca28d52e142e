//! The shape users run the layer in: an axum `Router` with one route, each
//! layer added with `Router::layer` and the router finished with
//! `with_state` (as `axum::serve` does), a fresh request per call, the
//! response body drained. Polled with a no-op waker: the handler answers at
//! once, so no runtime is in the loop (the same for every variant).

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use tower::Service;

/// The app: one route answering `hello`, not yet finished.
pub fn app() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

/// A finished app as a benchmark calls it: a `Router` (layers inside it,
/// added with `Router::layer`), or a `Router` wrapped by Lumen from the
/// outside (`Layer::layer(&lumen, router)`: no per-route boxing).
#[derive(Clone)]
pub enum Shape {
    /// The router itself.
    Router(Router),
    /// Lumen around the whole router.
    Wrapped(lumen_middleware::Lumen<Router, lumen_middleware::body_kind::AxumBody>),
}

/// Calls `service` once with a fresh request and drains the body.
#[inline]
pub fn call_once<S, B>(service: &mut S, cx: &mut Context<'_>)
where
    S: Service<Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::get("/hello")
        .body(Body::empty())
        .expect("valid request");
    let mut future = std::pin::pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(cx) else {
        panic!("the handler answers at once");
    };
    let mut body = std::pin::pin!(response.into_body().collect());
    match body.as_mut().poll(cx) {
        Poll::Ready(Ok(collected)) => {
            black_box(collected.to_bytes().len());
        }
        _ => panic!("the body is whole"),
    }
}

impl Shape {
    /// One call (see [`call_once`]).
    #[inline]
    pub fn call_once(&mut self, cx: &mut Context<'_>) {
        match self {
            Shape::Router(r) => call_once(r, cx),
            Shape::Wrapped(w) => call_once(w, cx),
        }
    }
}

/// Runs `iters` requests on each of `threads` threads, each with its own
/// clone of `router`; the wall time (per iteration: per request per thread).
pub fn run(router: &Shape, threads: usize, iters: u64) -> Duration {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut router = router.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                for _ in 0..100 {
                    router.call_once(&mut cx);
                }
                barrier.wait();
                for _ in 0..iters {
                    router.call_once(&mut cx);
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

/// The variants compared, finished: the bare router, a pass-through layer
/// (`Identity`: what any `Router::layer` costs by itself), Lumen without
/// and with route labels (`with_matched_path()`), Lumen around the whole
/// router (labels from a route function: the matched path is the router's
/// own, out of an outer layer's sight), axum-prometheus and the
/// OpenTelemetry tower layer (metrics only). Call inside a Tokio runtime
/// context; the second value runs the Prometheus exporter's upkeep (call it
/// between timings).
#[cfg(feature = "peers")]
pub fn variants() -> (Vec<(&'static str, Shape)>, impl Fn()) {
    let (lumen, shipper) =
        lumen_middleware::pair(lumen_middleware::LumenConfig::default()).expect("valid config");
    std::mem::forget(shipper); // never shipped: the registry keeps filling, as in an app
    let (prometheus, prometheus_handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let otel = {
        use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
        let provider = SdkMeterProvider::builder()
            .with_reader(ManualReader::builder().build())
            .build();
        opentelemetry::global::set_meter_provider(provider);
        opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
            .with_tracing(false)
            .build()
            .expect("layer builds")
    };
    let variants = vec![
        ("bare", app().with_state(())),
        (
            "pass_through",
            app()
                .layer(tower::layer::util::Identity::new())
                .with_state(()),
        ),
        ("lumen", app().layer(lumen).with_state(())),
        (
            "lumen_matched_path",
            app().layer(lumen.with_matched_path()).with_state(()),
        ),
        ("axum_prometheus", app().layer(prometheus).with_state(())),
        ("opentelemetry_tower", app().layer(otel).with_state(())),
    ];
    let mut variants: Vec<(&'static str, Shape)> = variants
        .into_iter()
        .map(|(name, router)| (name, Shape::Router(router)))
        .collect();
    let outside = lumen
        .with_route_fn(|_, uri, _| Some(uri.path()))
        .with_axum_body();
    variants.insert(
        4,
        (
            "lumen_outside",
            Shape::Wrapped(tower::Layer::layer(&outside, app().with_state(()))),
        ),
    );
    (variants, move || prometheus_handle.run_upkeep())
}

/// The variants' names as the tables show them.
pub const ROUTER_CASES: [(&str, &str); 7] = [
    ("bare", "bare router"),
    ("pass_through", "pass-through layer (`Identity`)"),
    ("lumen", "Lumen"),
    (
        "lumen_matched_path",
        "Lumen, route labels (`with_matched_path()`)",
    ),
    (
        "lumen_outside",
        "Lumen around the Router (`lumen.layer(router)`, labels from `with_route_fn`)",
    ),
    ("axum_prometheus", "axum-prometheus 0.10"),
    (
        "opentelemetry_tower",
        "opentelemetry-instrumentation-tower 0.19 (metrics only)",
    ),
];
