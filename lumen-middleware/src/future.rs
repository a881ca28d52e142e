//! [`ResponseFuture`]: records when the response head (or an error) arrives,
//! and counts a cancellation when dropped before.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::body_kind::{BodyKind, Wrapped};
use crate::cache;
use crate::grpc;
use crate::grpc::Outcome;
use crate::in_flight::InFlight;

pin_project! {
    /// The future of [`Lumen`](crate::Lumen)'s response.
    pub struct ResponseFuture<F, K = Wrapped> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        until_body_end: bool,
        grpc: bool,
        kind: PhantomData<fn() -> K>,
    }

    impl<F, K> PinnedDrop for ResponseFuture<F, K> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(request) = this.project().in_flight.take() {
                request.dropped();
            }
        }
    }
}

impl<F, K> ResponseFuture<F, K> {
    pub(crate) fn new(inner: F, in_flight: InFlight, until_body_end: bool, grpc: bool) -> Self {
        Self {
            inner,
            in_flight: Some(in_flight),
            until_body_end,
            grpc,
            kind: PhantomData,
        }
    }
}

impl<F, K, B, E> Future for ResponseFuture<F, K>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    K: BodyKind<B>,
{
    type Output = Result<Response<K::Body>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let request = this
            .in_flight
            .as_mut()
            .expect("ResponseFuture polled after it completed");
        let polled = {
            let _mark = cache::enter(request.series);
            let polled = this.inner.poll(cx);
            // A handler that assigned the request to an experiment's arm
            // moved the mark to the arm's series: the request counts there.
            request.series = cache::current_or(request.series);
            polled
        };
        let result = ready!(polled);
        let request = this
            .in_flight
            .take()
            .expect("ResponseFuture polled after it completed");
        Poll::Ready(match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let outcome = if *this.grpc {
                    grpc::outcome_of(status, response.headers())
                } else {
                    Outcome::Status(status)
                };
                let known_now = !*this.until_body_end || response.body().is_end_stream();
                match outcome {
                    Outcome::Status(status) if known_now => {
                        request.respond(status);
                        Ok(response.map(K::unwatched))
                    }
                    Outcome::Grpc(code) if known_now => {
                        request.respond_grpc(code);
                        Ok(response.map(K::unwatched))
                    }
                    _ => Ok(response
                        .map(|body| K::watched(ResponseBody::measured(body, request, outcome)))),
                }
            }
            Err(error) => {
                request.fail();
                Err(error)
            }
        })
    }
}
