//! What body type the layer's responses carry: its own [`ResponseBody`]
//! wrapper (any `http_body::Body`), or, in an axum `Router`, axum's own
//! `Body`, so axum does not box the response body a second time.

use crate::body::ResponseBody;

mod sealed {
    pub trait Sealed {}
}

/// How [`Lumen`](crate::Lumen) hands back a response body of type `B`:
/// unchanged when it has already recorded the request, or wrapped in a
/// [`ResponseBody`] that records at the body's end. Sealed: the two kinds
/// are [`Wrapped`] and, with the `axum` feature, [`AxumBody`].
pub trait BodyKind<B>: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The body of the layer's responses.
    type Body;
    /// A body the layer need not watch.
    fn unwatched(body: B) -> Self::Body;
    /// A body the layer records at the end of.
    fn watched(body: ResponseBody<B>) -> Self::Body;
}

/// Responses carry [`ResponseBody<B>`]: any inner body type; the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrapped;

impl sealed::Sealed for Wrapped {}

impl<B> BodyKind<B> for Wrapped {
    type Body = ResponseBody<B>;

    #[inline]
    fn unwatched(body: B) -> ResponseBody<B> {
        ResponseBody::plain(body)
    }

    #[inline]
    fn watched(body: ResponseBody<B>) -> ResponseBody<B> {
        body
    }
}

/// Responses carry axum's `Body`, as the routes of a `Router` do: a body
/// the layer need not watch is handed back as it came (axum then has
/// nothing to box); only a watched one (until its end, or gRPC trailers)
/// is boxed. What [`LumenLayer::with_matched_path`](crate::LumenLayer::with_matched_path) gives.
#[cfg(feature = "axum")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AxumBody;

#[cfg(feature = "axum")]
impl sealed::Sealed for AxumBody {}

#[cfg(feature = "axum")]
impl BodyKind<axum::body::Body> for AxumBody {
    type Body = axum::body::Body;

    #[inline]
    fn unwatched(body: axum::body::Body) -> axum::body::Body {
        body
    }

    #[inline]
    fn watched(body: ResponseBody<axum::body::Body>) -> axum::body::Body {
        axum::body::Body::new(body)
    }
}
