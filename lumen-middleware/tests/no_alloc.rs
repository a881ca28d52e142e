//! The request path allocates nothing in steady state: counted by an
//! instrumented global allocator over 10,000 requests, with and without
//! route labels. The service is polled on this thread with a no-op waker, so
//! no runtime thread allocates behind the count's back.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use lumen_middleware::{LumenConfig, pair};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn drive<S>(service: &mut S, requests: Vec<Request<()>>)
where
    S: Service<Request<()>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    for request in requests {
        assert!(service.poll_ready(&mut cx).is_ready());
        let mut future = std::pin::pin!(service.call(request));
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
}

fn steady_state_requests_do_not_allocate() {
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid");
    let inner =
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let mut plain = layer.layer(inner);
    let routed_layer = layer.with_route_fn(|_, uri, _| Some(uri.path()));
    let mut routed = routed_layer.layer(inner);
    let make = |n: usize| -> Vec<Request<()>> {
        (0..n)
            .map(|i| {
                Request::get(["/a", "/b", "/c"][i % 3])
                    .body(())
                    .expect("request")
            })
            .collect()
    };

    // Warm-up: clock calibration, thread ordinal, first sight of each route.
    drive(&mut plain, make(100));
    drive(&mut routed, make(100));

    let (plain_requests, routed_requests) = (make(10_000), make(10_000));
    let region = Region::new(GLOBAL);
    drive(&mut plain, plain_requests);
    drive(&mut routed, routed_requests);
    let change = region.change();
    // Freeing the requests is expected (they were built before the region).
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");

    let series = layer.recorder().drain();
    let total: u64 = series.iter().map(|s| s.status[1]).sum();
    assert_eq!(total, 20_200, "every request was recorded");
}

// No test harness (`harness = false`): the measurement runs on the
// process's only thread, so no harness thread allocates behind the count's
// back (libtest's main thread did, now and then, on a slow machine).
fn main() {
    steady_state_requests_do_not_allocate();
    println!("test steady_state_requests_do_not_allocate ... ok");
}
