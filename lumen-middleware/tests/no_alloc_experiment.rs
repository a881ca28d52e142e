//! An experiment's assignment allocates nothing on the request path in
//! steady state (each route's arm series are made once, at its first
//! assignment): counted by an instrumented global allocator over 10,000
//! requests, each assigned by key and reporting a cache lookup in its arm.
//! A file of its own, so no other test's thread allocates behind the count.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use lumen_middleware::wire::{ExperimentArms, TuningAnswer};
use lumen_middleware::{LumenConfig, pair, tuning};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn assigning_requests_to_arms_does_not_allocate() {
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid");
    assert!(tuning().apply(&TuningAnswer {
        version: 1,
        experiment: Some(ExperimentArms {
            id: 4,
            param: "ttl".into(),
            a: 60,
            b: 600,
            share_b_percent: 50,
        }),
        ..Default::default()
    }));
    let ttl = tuning().param("ttl");
    let inner = service_fn(move |req: Request<()>| async move {
        let key = req.uri().path().len() as u64 ^ req.uri().query().map_or(0, |q| q.len() as u64);
        let value = ttl.assign(Some(key)).value_or(0);
        lumen_middleware::cache::record(value == 600);
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let mut service = layer
        .with_route_fn(|_, uri, _| Some(uri.path()))
        .layer(inner);
    let make = |n: usize| -> Vec<Request<()>> {
        (0..n)
            .map(|i| {
                let path = ["/a", "/b", "/c"][i % 3];
                Request::get(format!("{path}?{}", "x".repeat(i % 7)))
                    .body(())
                    .expect("request")
            })
            .collect()
    };
    let mut cx = Context::from_waker(Waker::noop());
    let mut drive = |requests: Vec<Request<()>>| {
        for request in requests {
            assert!(service.poll_ready(&mut cx).is_ready());
            let mut future = std::pin::pin!(service.call(request));
            assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        }
    };
    // Warm-up: each route's first sight and its arms' first assignment.
    drive(make(300));
    let requests = make(10_000);
    let region = Region::new(GLOBAL);
    drive(requests);
    let change = region.change();
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");

    let series = layer.recorder().drain();
    let in_arms: u64 = series
        .iter()
        .filter(|s| s.variant.is_some_and(|v| v.experiment == 4))
        .map(|s| s.status[1])
        .sum();
    let outside: u64 = series
        .iter()
        .filter(|s| s.variant.is_none())
        .map(|s| s.status[1])
        .sum();
    assert_eq!((in_arms, outside), (10_300, 0), "every request in an arm");
}

// No test harness (`harness = false`): the measurement runs on the
// process's only thread, so no harness thread allocates behind the count's
// back (libtest's main thread did, now and then, on a slow machine).
fn main() {
    assigning_requests_to_arms_does_not_allocate();
    println!("test assigning_requests_to_arms_does_not_allocate ... ok");
}
