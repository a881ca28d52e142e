//! The layer through its public API: statuses, errors, cancellations, route
//! labels, cache reports and body-end measurement.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use lumen_middleware::cache::Tier;
use lumen_middleware::recorder::{IntervalSeries, OTHER_ROUTE};
use lumen_middleware::{CacheReport, LumenConfig, LumenLayer, pair};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};

fn layer(config: LumenConfig) -> LumenLayer {
    pair(config).expect("valid config").0
}

fn by_route(mut series: Vec<IntervalSeries>) -> Vec<IntervalSeries> {
    series.sort_by(|a, b| a.route.cmp(&b.route));
    series
}

#[tokio::test]
async fn counts_status_classes_and_errors() {
    let layer = layer(LumenConfig::default());
    let service = layer.layer(service_fn(|req: Request<()>| async move {
        match req.uri().path() {
            "/fail" => Err("inner failure"),
            path => {
                let code: u16 = path[1..].parse().expect("status in path");
                let mut res = Response::new(String::new());
                *res.status_mut() = StatusCode::from_u16(code).expect("valid code");
                Ok(res)
            }
        }
    }));
    for path in ["/200", "/204", "/302", "/404", "/503", "/503", "/fail"] {
        let req = Request::get(path).body(()).expect("request");
        let _ = service.clone().oneshot(req).await;
    }
    let series = layer.recorder().drain();
    assert_eq!(series.len(), 1);
    let s = &series[0];
    assert_eq!(s.route, None);
    assert_eq!(s.status, [0, 2, 1, 1, 2]);
    assert_eq!(s.errors, 1);
    assert_eq!(s.latency.len(), 7, "errors are in the histogram");
    assert_eq!(s.cancelled, 0);
    assert!(layer.recorder().drain().is_empty(), "drained once");
}

#[tokio::test]
async fn a_dropped_request_counts_as_cancelled_only() {
    let layer = layer(LumenConfig::default());
    let mut service = layer.layer(service_fn(|_req: Request<()>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let mut future = Box::pin(service.call(Request::new(())));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    drop(future);
    let s = &layer.recorder().drain()[0];
    assert_eq!(s.cancelled, 1);
    assert_eq!(s.latency.len(), 0);
    assert_eq!(s.status, [0; 5]);
}

async fn cached_answer(cache: CacheReport) -> &'static str {
    cache.hit();
    lookup_without_request();
    cache.record_tier(Tier::L1, Duration::from_micros(3));
    lumen_middleware::cache::record_tier(Tier::L2, Duration::from_micros(900));
    lumen_middleware::cache::record_tier(Tier::L2, Duration::from_micros(1_100));
    "answer"
}

/// Code that never sees the request, like a cache wrapper around Redis.
fn lookup_without_request() {
    lumen_middleware::cache::miss();
}

#[tokio::test]
async fn labels_routes_by_matched_path_and_attributes_cache_reports() {
    let layer = layer(LumenConfig::default()).with_matched_path();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/ask", get(cached_answer))
        .layer(layer);
    for uri in ["/users/1", "/users/2", "/ask", "/nowhere"] {
        let res = app
            .clone()
            .oneshot(
                Request::get(uri)
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        res.into_body().collect().await.expect("body");
    }
    let series = by_route(layer.recorder().drain());
    let routes: Vec<_> = series.iter().map(|s| s.route.as_deref()).collect();
    assert_eq!(routes, [None, Some("/ask"), Some("/users/{id}")]);
    assert_eq!(
        series[0].status,
        [0, 0, 0, 1, 0],
        "unmatched 404 has no route"
    );
    assert_eq!((series[1].cache_hits, series[1].cache_misses), (1, 1));
    // Tier timings land on the route, summed, and travel in the batch.
    assert_eq!(series[1].tiers, [[1, 3], [2, 2_000], [0, 0]]);
    let wire = series[1].to_wire().tiers.expect("timed tiers travel");
    assert_eq!((wire.l2.lookups, wire.l2.mean_us()), (2, Some(1_000.0)));
    assert_eq!(series[2].to_wire().tiers, None, "no timings, no field");
    assert_eq!(series[2].status[1], 2);
    assert_eq!(series[2].cache_hits + series[2].cache_misses, 0);
}

/// GETs `uris` from `app` in turn, each body drained.
async fn get_each(app: &Router, uris: &[&str]) {
    for uri in uris {
        let res = app
            .clone()
            .oneshot(
                Request::get(*uri)
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        res.into_body().collect().await.expect("body");
    }
}

#[tokio::test]
async fn many_routes_through_one_thread_each_count_as_themselves() {
    // A thread remembers the routes it served lately by the address of
    // their matched path, eight at a time: twenty routes in turn collide
    // in that memory, and each request still counts for its own route.
    let layer = layer(LumenConfig::default()).with_matched_path();
    let mut app = Router::new();
    for r in 0..20 {
        app = app.route(&format!("/r{r}/{{id}}"), get(|| async { "r" }));
    }
    let app = app.layer(layer);
    let uris: Vec<String> = (0..3)
        .flat_map(|round| (0..20).map(move |r| format!("/r{}/{round}", (r * 7 + round) % 20)))
        .collect();
    let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
    get_each(&app, &uris).await;
    let counts: Vec<(Option<String>, u64)> = by_route(layer.recorder().drain())
        .into_iter()
        .map(|s| (s.route, s.status[1]))
        .collect();
    let mut expected: Vec<(Option<String>, u64)> = (0..20)
        .map(|r| (Some(format!("/r{r}/{{id}}")), 3))
        .collect();
    expected.sort();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn two_layers_on_one_router_count_in_their_own_registries() {
    // Both layers see the same matched path on the same thread; each
    // counts in its own registry.
    let (inner, outer) = (
        layer(LumenConfig::default()).with_matched_path(),
        layer(LumenConfig::default()).with_matched_path(),
    );
    let app = Router::new()
        .route("/z", get(|| async { "z" }))
        .layer(inner)
        .layer(outer);
    get_each(&app, &["/z", "/z", "/z"]).await;
    for layer in [inner, outer] {
        let series = layer.recorder().drain();
        assert_eq!(series.len(), 1);
        assert_eq!(
            (series[0].route.as_deref(), series[0].status[1]),
            (Some("/z"), 3)
        );
    }
}

#[tokio::test]
async fn a_layered_route_shared_between_paths_labels_each_path() {
    // `nest` and `merge` share one layered route between two paths, and a
    // router built again later (new path strings) reuses nothing stale.
    let layer = layer(LumenConfig::default()).with_matched_path();
    // A service route is layered at once (a handler only when the router
    // is finished, once per path), so the two paths share it.
    let x = service_fn(|_req: Request<axum::body::Body>| async {
        Ok::<_, Infallible>(axum::response::Response::new(axum::body::Body::from("x")))
    });
    let inner = Router::new().route_service("/x/{id}", x).layer(layer);
    let app = Router::new().nest("/api", inner.clone()).merge(inner);
    get_each(&app, &["/api/x/1", "/x/1", "/api/x/2", "/x/2", "/x/3"]).await;
    drop(app);
    let again = Router::new()
        .route("/y", get(|| async { "y" }))
        .route("/x/{id}", get(|| async { "x" }))
        .layer(layer);
    get_each(&again, &["/y", "/x/4", "/y"]).await;
    let counts: Vec<(Option<String>, u64)> = by_route(layer.recorder().drain())
        .into_iter()
        .map(|s| (s.route, s.status[1]))
        .collect();
    assert_eq!(
        counts,
        [
            (Some("/api/x/{id}".into()), 2),
            (Some("/x/{id}".into()), 4),
            (Some("/y".into()), 2)
        ]
    );
}

#[tokio::test]
async fn route_cardinality_is_capped() {
    let config = {
        let mut c = LumenConfig::default();
        c.route_cap = 2;
        c
    };
    let layer = layer(config).with_route_fn(|_, uri, _| Some(uri.path()));
    let service = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    for path in ["/a", "/b", "/c", "/d", "/a"] {
        let req = Request::get(path).body(()).expect("request");
        service.clone().oneshot(req).await.expect("infallible");
    }
    let series = by_route(layer.recorder().drain());
    let counts: Vec<_> = series
        .iter()
        .map(|s| (s.route.clone().expect("labelled"), s.status[1]))
        .collect();
    assert_eq!(
        counts,
        [
            ("/a".into(), 2),
            ("/b".into(), 1),
            (OTHER_ROUTE.to_owned(), 2)
        ]
    );
}

/// A body that yields one chunk, then waits for a signal before it ends.
struct GatedBody {
    gate: tokio::sync::oneshot::Receiver<()>,
    sent_chunk: bool,
}

impl Body for GatedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.sent_chunk {
            self.sent_chunk = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"chunk")))));
        }
        match Pin::new(&mut self.gate).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn body_end_mode_records_at_end_of_stream() {
    let layer = layer(LumenConfig::default()).measure_until_body_end(true);
    let (open, gate) = tokio::sync::oneshot::channel();
    let gate = std::sync::Mutex::new(Some(gate));
    let service = layer.layer(service_fn(move |_req: Request<()>| {
        let gate = gate.lock().expect("lock").take().expect("one request");
        async move {
            Ok::<_, Infallible>(Response::new(GatedBody {
                gate,
                sent_chunk: false,
            }))
        }
    }));
    let response = service.oneshot(Request::new(())).await.expect("infallible");
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("ok");
    assert_eq!(first.into_data().expect("data"), "chunk");
    assert!(
        layer.recorder().drain().is_empty(),
        "not recorded before the end"
    );
    open.send(()).expect("body waits");
    assert!(body.frame().await.is_none());
    let s = &layer.recorder().drain()[0];
    assert_eq!((s.status[1], s.latency.len()), (1, 1));
}

#[tokio::test]
async fn body_end_mode_counts_an_abandoned_body_as_cancelled() {
    let layer = layer(LumenConfig::default()).measure_until_body_end(true);
    let (_open, gate) = tokio::sync::oneshot::channel::<()>();
    let gate = std::sync::Mutex::new(Some(gate));
    let service = layer.layer(service_fn(move |_req: Request<()>| {
        let gate = gate.lock().expect("lock").take().expect("one request");
        async move {
            Ok::<_, Infallible>(Response::new(GatedBody {
                gate,
                sent_chunk: false,
            }))
        }
    }));
    let response = service.oneshot(Request::new(())).await.expect("infallible");
    drop(response);
    let s = &layer.recorder().drain()[0];
    assert_eq!((s.cancelled, s.latency.len()), (1, 0));
}

#[tokio::test]
async fn body_end_mode_records_empty_bodies_at_the_head() {
    let layer = layer(LumenConfig::default()).measure_until_body_end(true);
    let service = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
    }));
    let response = service.oneshot(Request::new(())).await.expect("infallible");
    drop(response);
    let s = &layer.recorder().drain()[0];
    assert_eq!((s.status[1], s.cancelled), (1, 0));
}

/// A body that yields its frames one by one.
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn grpc_response(
    head_status: Option<&'static str>,
    trailer_status: Option<&'static str>,
) -> Response<Frames> {
    let mut frames = std::collections::VecDeque::new();
    frames.push_back(Frame::data(Bytes::from_static(b"\0\0\0\0\0")));
    if let Some(code) = trailer_status {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", code.parse().expect("valid"));
        frames.push_back(Frame::trailers(trailers));
    }
    let mut builder = Response::builder().header("content-type", "application/grpc");
    if let Some(code) = head_status {
        builder = builder.header("grpc-status", code);
    }
    builder.body(Frames(frames)).expect("response")
}

#[tokio::test]
async fn grpc_calls_count_by_grpc_status_in_headers_or_trailers() {
    let layer = layer(LumenConfig::default()).classify_grpc();
    let service = layer.layer(service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(match req.uri().path() {
            "/ok" => grpc_response(None, Some("0")),
            "/unavailable-in-trailers" => grpc_response(None, Some("14")),
            "/not-found-in-head" => grpc_response(Some("5"), None),
            "/internal-in-head" => grpc_response(Some("13"), None),
            _ => grpc_response(None, None),
        })
    }));
    for path in [
        "/ok",
        "/unavailable-in-trailers",
        "/not-found-in-head",
        "/internal-in-head",
        "/no-trailers",
    ] {
        let req = Request::get(path).body(()).expect("request");
        let response = service.clone().oneshot(req).await.expect("infallible");
        let _ = response.into_body().collect().await;
    }
    let series = layer.recorder().drain();
    assert_eq!(series.len(), 1);
    // 2xx: OK and a stream without trailers; 4xx: NOT_FOUND; 5xx: UNAVAILABLE, INTERNAL.
    assert_eq!(series[0].status, [0, 2, 0, 1, 2]);
    assert_eq!(series[0].latency.len(), 5);
}

#[tokio::test]
async fn a_grpc_body_dropped_before_its_trailers_is_cancelled() {
    let layer = layer(LumenConfig::default()).classify_grpc();
    let service = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(grpc_response(None, Some("14")))
    }));
    let response = service
        .oneshot(Request::get("/").body(()).expect("request"))
        .await
        .expect("infallible");
    drop(response);
    let series = layer.recorder().drain();
    assert_eq!(series[0].status, [0; 5]);
    assert_eq!(series[0].cancelled, 1);
}

#[tokio::test]
async fn a_grpc_call_dropped_at_its_deadline_is_a_timeout_and_before_it_a_cancellation() {
    let classified = layer(LumenConfig::default()).classify_grpc();
    let mut service = classified.layer(service_fn(|_req: Request<()>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(grpc_response(Some("0"), None))
    }));
    let mut cx = Context::from_waker(Waker::noop());
    let mut dropped_with = |timeout: &str| {
        let request = Request::get("/")
            .header("content-type", "application/grpc")
            .header("grpc-timeout", timeout)
            .body(())
            .expect("request");
        let mut future = Box::pin(service.call(request));
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(future);
        classified.recorder().drain().remove(0)
    };
    // 30 s left: the client gave up (a cancellation, in no request count).
    let s = dropped_with("30S");
    assert_eq!((s.cancelled, s.status), (1, [0; 5]));
    // A 1 ms deadline is reached (within its 2 ms allowance): the server
    // timed out, DEADLINE_EXCEEDED, a 5xx with its latency.
    let s = dropped_with("1m");
    assert_eq!((s.cancelled, s.status[4], s.latency.len()), (0, 1, 1));
    // Without classify_grpc the header means nothing.
    let plain = layer(LumenConfig::default());
    let mut service = plain.layer(service_fn(|_req: Request<()>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let request = Request::get("/")
        .header("grpc-timeout", "1m")
        .body(())
        .expect("request");
    let mut future = Box::pin(service.call(request));
    assert!(future.as_mut().poll(&mut cx).is_pending());
    drop(future);
    assert_eq!(plain.recorder().drain()[0].cancelled, 1);
}

#[tokio::test]
async fn outside_a_request_only_an_explicit_reporter_counts() {
    let first = layer(LumenConfig::default());
    let second = layer(LumenConfig::default());
    // No request is running on this thread: the free functions have no
    // route and no registry to count for, whichever pair came first.
    assert!(!CacheReport::current().is_attached());
    lumen_middleware::cache::hit();
    // A background task holds the layer's reporter and counts there.
    let warmer = second.cache_report();
    assert!(warmer.is_attached());
    warmer.hit();
    warmer.miss();
    assert!(
        first.recorder().drain().is_empty(),
        "nothing went to the first pair"
    );
    let series = second.recorder().drain();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].route, None);
    assert_eq!((series[0].cache_hits, series[0].cache_misses), (1, 1));
}

#[tokio::test]
async fn responses_are_counted_by_request_method() {
    let layer = layer(LumenConfig::default()).with_matched_path();
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "list" }).post(|| async { StatusCode::CREATED }),
        )
        .layer(layer);
    for (method, n) in [("GET", 3), ("POST", 2), ("PROPFIND", 1)] {
        for _ in 0..n {
            let res = app
                .clone()
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri("/items")
                        .body(axum::body::Body::empty())
                        .expect("request"),
                )
                .await
                .expect("infallible");
            let _ = res.into_body().collect().await;
        }
    }
    let series = layer.recorder().drain();
    assert_eq!(series.len(), 1);
    let m = &series[0].methods;
    assert_eq!(m["GET"].status.success, 3);
    assert_eq!(m["POST"].status.success, 2);
    assert_eq!(
        m["_OTHER"].status.client_error, 1,
        "405 to an unknown method"
    );
    assert_eq!(m.len(), 3);
    assert_eq!(series[0].status, [0, 5, 0, 1, 0]);
}

#[tokio::test]
async fn without_classify_grpc_the_http_status_counts() {
    let layer = layer(LumenConfig::default());
    let service = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(grpc_response(Some("14"), None))
    }));
    let response = service
        .oneshot(Request::get("/").body(()).expect("request"))
        .await
        .expect("infallible");
    let _ = response.into_body().collect().await;
    assert_eq!(
        layer.recorder().drain()[0].status,
        [0, 1, 0, 0, 0],
        "HTTP 200"
    );
}
