//! In an axum `Router`, as users add it (`Router::layer` with
//! `with_matched_path()`), the layer allocates nothing of its own: a
//! request through it allocates exactly what a request through a
//! pass-through layer added the same way does (axum boxes every layered
//! route's service and future alike). Counted by an instrumented global
//! allocator; the router is polled on this thread with a no-op waker and
//! every response body is drained. (An unfinished router, called without
//! `with_state`, rebuilds each layered route on every request; `axum::serve`
//! finishes it first, as this test does.) Around the whole router (labels
//! from a route function), a request allocates exactly what it does
//! through the bare router.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use lumen_middleware::{LumenConfig, pair};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The allocator's count is global: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn requests(n: usize) -> Vec<Request<Body>> {
    (0..n)
        .map(|i| {
            Request::get(["/a", "/b/7", "/a"][i % 3])
                .body(Body::empty())
                .expect("request")
        })
        .collect()
}

fn drive<S, B>(router: &mut S, requests: Vec<Request<Body>>)
where
    S: Service<Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    for request in requests {
        let mut future = std::pin::pin!(router.call(request));
        let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
            panic!("the handler answers at once");
        };
        assert_eq!(response.status(), 200);
        let mut body = std::pin::pin!(response.into_body().collect());
        assert!(matches!(body.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
}

/// Allocations of `n` requests through `router` (after a warm-up of 100;
/// the router sees 100 + 3n requests): the
/// fewest of three rounds. The allocator counts every thread, and the test
/// harness's own threads allocate now and then (printing another test's
/// result); they can only add to a round, while an allocation of the layer
/// is in every round.
fn allocations<S, B>(router: &mut S, n: usize) -> usize
where
    S: Service<Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    drive(router, requests(100));
    (0..3)
        .map(|_| {
            let batch = requests(n);
            let region = Region::new(GLOBAL);
            drive(router, batch);
            region.change().allocations
        })
        .min()
        .expect("three rounds")
}

fn app() -> Router {
    Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b/{id}", get(|| async { "b" }))
}

#[test]
fn a_router_with_the_layer_allocates_what_a_pass_through_layer_does() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid");
    // `with_state` finishes the routes, as `axum::serve` does.
    let mut pass_through = app()
        .layer(tower::layer::util::Identity::new())
        .with_state(());
    let mut bare = app().with_state(());
    let mut lumen = app().layer(layer.with_matched_path()).with_state(());
    // Without `with_matched_path` the layer's responses carry its own body
    // wrapper, which axum boxes: one allocation a request; unless
    // `with_axum_body` hands axum its body back.
    let mut wrapped = app().layer(layer).with_state(());
    let mut unlabelled = app().layer(layer.with_axum_body()).with_state(());
    let n = 3_000;
    let (bare, pass_through, lumen, wrapped, unlabelled) = (
        allocations(&mut bare, n),
        allocations(&mut pass_through, n),
        allocations(&mut lumen, n),
        allocations(&mut wrapped, n),
        allocations(&mut unlabelled, n),
    );
    assert_eq!(wrapped, pass_through + n, "the wrapper body is boxed once");
    assert_eq!(unlabelled, pass_through, "axum's body handed back");
    assert_eq!(
        lumen,
        pass_through,
        "per request: bare {} , pass-through {}, Lumen {}",
        bare / n,
        pass_through / n,
        lumen / n
    );
    let series = layer.recorder().drain();
    let routed: Vec<(Option<String>, u64)> = series
        .iter()
        .map(|s| (s.route.clone(), s.status[1]))
        .collect();
    assert!(routed.contains(&(Some("/a".into()), 6_067)), "{routed:?}");
    assert!(
        routed.contains(&(Some("/b/{id}".into()), 3_033)),
        "{routed:?}"
    );
    let unrouted: u64 = series
        .iter()
        .filter(|s| s.route.is_none())
        .map(|s| s.status[1])
        .sum();
    assert_eq!(
        unrouted,
        2 * 9_100,
        "the two unlabelled layers' requests, without routes"
    );
}

#[test]
fn the_layer_around_a_router_allocates_what_the_bare_router_does() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid");
    let outside = layer.with_route_fn(|_, uri, _| {
        Some(if uri.path().starts_with("/b/") {
            "/b/{id}"
        } else {
            uri.path()
        })
    });
    // Its own body wrapper, and axum's body handed back.
    let mut wrapped = tower::Layer::layer(&outside, app().with_state(()));
    let mut axum_body = tower::Layer::layer(&outside.with_axum_body(), app().with_state(()));
    let mut bare = app().with_state(());
    let n = 3_000;
    let bare = allocations(&mut bare, n);
    for (kind, allocated) in [
        ("ResponseBody", allocations(&mut wrapped, n)),
        ("axum Body", allocations(&mut axum_body, n)),
    ] {
        assert_eq!(
            allocated,
            bare,
            "per request: bare {}, Lumen around it ({kind}) {}",
            bare / n,
            allocated / n
        );
    }
    let series = layer.recorder().drain();
    let routed: Vec<(Option<String>, u64)> = series
        .iter()
        .map(|s| (s.route.clone(), s.status[1]))
        .collect();
    assert!(
        routed.contains(&(Some("/a".into()), 2 * 6_067)),
        "{routed:?}"
    );
    assert!(
        routed.contains(&(Some("/b/{id}".into()), 2 * 3_033)),
        "{routed:?}"
    );
}
