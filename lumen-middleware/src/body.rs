//! [`ResponseBody`]: the response body, unchanged, that records at its end of
//! stream when the layer measures until then.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::future::InFlight;
use crate::registry::Event;

pin_project! {
    /// The body of [`Lumen`](crate::Lumen)'s responses.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<(InFlight, u16)>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((request, _)) = this.project().in_flight.take() {
                request.series.record(Event::Cancelled);
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

    pub(crate) fn measured(inner: B, request: InFlight, status: u16) -> Self {
        Self {
            inner,
            in_flight: Some((request, status)),
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
        if let Some((request, status)) = *this.in_flight {
            match &frame {
                None => {
                    *this.in_flight = None;
                    request.series.record_response(request.elapsed_us(), status);
                }
                Some(Err(_)) => {
                    *this.in_flight = None;
                    request.series.record_error(request.elapsed_us());
                }
                Some(Ok(_)) if this.inner.is_end_stream() => {
                    *this.in_flight = None;
                    request.series.record_response(request.elapsed_us(), status);
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
