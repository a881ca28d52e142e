//! [`ResponseBody`]: the response body, unchanged, that records at its end of
//! stream when the layer measures until then, or when a gRPC response's
//! trailers bring its `grpc-status`.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::grpc;
use crate::grpc::Outcome;
use crate::in_flight::InFlight;

pin_project! {
    /// The body of [`Lumen`](crate::Lumen)'s responses.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<(InFlight, Outcome)>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((request, _)) = this.project().in_flight.take() {
                request.dropped();
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn plain(inner: B) -> Self {
        Self {
            inner,
            in_flight: None,
        }
    }

    pub(crate) fn measured(inner: B, request: InFlight, outcome: Outcome) -> Self {
        Self {
            inner,
            in_flight: Some((request, outcome)),
        }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some((request, outcome)) = *this.in_flight {
            // At the end: the status known from the head, or for gRPC the
            // trailers' `grpc-status` (none at all counts as OK, as in tower-http).
            let respond = |trailers: Option<&http::HeaderMap>| match outcome {
                Outcome::Status(status) => request.respond(status),
                Outcome::Grpc(code) => request.respond_grpc(code),
                Outcome::GrpcTrailers => {
                    request.respond_grpc(trailers.and_then(grpc::code_in).unwrap_or(0));
                }
            };
            match &frame {
                None => {
                    *this.in_flight = None;
                    respond(None);
                }
                Some(Err(_)) => {
                    *this.in_flight = None;
                    request.fail();
                }
                Some(Ok(f)) if f.is_trailers() || this.inner.is_end_stream() => {
                    *this.in_flight = None;
                    respond(f.trailers_ref());
                }
                Some(Ok(_)) => {}
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
