//! [`LumenLayer`] and the service it wraps, [`Lumen`].

use std::marker::PhantomData;
use std::task::{Context, Poll};

use http::{Extensions, Method, Request, Response, Uri};
use tower::{Layer, Service};

use crate::body_kind::{BodyKind, Wrapped};
use crate::future::ResponseFuture;
use crate::in_flight::InFlight;
use crate::recorder::Recorder;
use crate::registry::Registry;
use crate::route::{ClassifyRoute, RouteLabels};

/// Records every request of the service it wraps. Made by
/// [`pair`](crate::pair) together with the [`Shipper`](crate::Shipper) that
/// sends what it records. `K` is the body its responses carry
/// ([`Wrapped`] by default; [`AxumBody`](crate::body_kind::AxumBody) in an axum
/// `Router`, from [`with_matched_path`](Self::with_matched_path)).
pub struct LumenLayer<K = Wrapped> {
    pub(crate) registry: &'static Registry,
    pub(crate) labels: RouteLabels,
    pub(crate) until_body_end: bool,
    pub(crate) grpc: bool,
    pub(crate) kind: PhantomData<fn() -> K>,
}

impl<K> Clone for LumenLayer<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for LumenLayer<K> {}

impl<K> std::fmt::Debug for LumenLayer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LumenLayer")
            .field("until_body_end", &self.until_body_end)
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}

impl<K> LumenLayer<K> {
    /// Labels requests with axum's `MatchedPath` (add the layer with
    /// `Router::layer`, so the path is known when the layer runs), and
    /// hands axum its own response bodies back, so axum does not box them
    /// again.
    #[cfg(feature = "axum")]
    pub fn with_matched_path(self) -> LumenLayer<crate::body_kind::AxumBody> {
        LumenLayer {
            labels: RouteLabels::MatchedPath,
            ..self.with_axum_body()
        }
    }

    /// Hands axum's own response `Body` back, unwrapped (a body recorded
    /// at its end is boxed into one): for a layer around a whole
    /// `Router` (`tower::Layer::layer(&lumen, router)`, labels from
    /// [`with_route_fn`](Self::with_route_fn)), or any service answering
    /// with axum's `Body`. Without it, responses carry
    /// [`ResponseBody`](crate::ResponseBody), which every body frame
    /// passes through.
    #[cfg(feature = "axum")]
    pub fn with_axum_body(self) -> LumenLayer<crate::body_kind::AxumBody> {
        LumenLayer {
            registry: self.registry,
            labels: self.labels,
            until_body_end: self.until_body_end,
            grpc: self.grpc,
            kind: PhantomData,
        }
    }

    /// Labels requests with a function of the method, URI and extensions:
    /// `.with_route_fn(|_, uri, _| uri.path().strip_prefix("/api"))`.
    /// Borrowed labels cost no allocation; keep them to a small set.
    pub fn with_route_fn<F>(self, classify: F) -> Self
    where
        F: for<'a> Fn(&'a Method, &'a Uri, &'a Extensions) -> Option<&'a str>
            + Send
            + Sync
            + 'static,
    {
        self.with_route_classifier(classify)
    }

    /// Labels requests with `classifier`. It lives for the rest of the
    /// process (it is leaked, so the request path copies a plain reference).
    pub fn with_route_classifier(mut self, classifier: impl ClassifyRoute) -> Self {
        self.labels = RouteLabels::Custom(Box::leak(Box::new(classifier)));
        self
    }

    /// Measures until the response body's end of stream instead of until the
    /// response head is ready. A body dropped before its end counts as
    /// cancelled.
    pub fn measure_until_body_end(mut self, yes: bool) -> Self {
        self.until_body_end = yes;
        self
    }

    /// Classifies gRPC responses by their `grpc-status` (in the head, or in
    /// the trailers, then measuring until them) instead of their HTTP status,
    /// which is 200 for a failed call: for tonic servers, as tower-http's
    /// `GrpcErrorsAsFailures`. Off by default, so HTTP services do not pay
    /// for the content-type look-up.
    pub fn classify_grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    /// A cache reporter for this layer's requests without a route: what a
    /// background task (a cache warmer, a refresher) reports on, since it
    /// serves no request.
    pub fn cache_report(&self) -> crate::CacheReport {
        crate::CacheReport::unrouted(self.registry)
    }

    /// Records without a service: for apps that are not tower services, for
    /// replaying known latencies, and for tests.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.registry)
    }
}

impl<S, K> Layer<S> for LumenLayer<K> {
    type Service = Lumen<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        Lumen {
            inner,
            layer: *self,
        }
    }
}

/// The service [`LumenLayer`] makes.
pub struct Lumen<S, K = Wrapped> {
    inner: S,
    layer: LumenLayer<K>,
}

impl<S: Clone, K> Clone for Lumen<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer,
        }
    }
}

impl<S: std::fmt::Debug, K> std::fmt::Debug for Lumen<S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lumen")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for Lumen<S, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
    K: BodyKind<ResBody>,
{
    type Response = Response<K::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let series = self.layer.labels.series(self.layer.registry, &request);
        let method = crate::registry::method_index(request.method()) as u8;
        let deadline_ms = if self.layer.grpc {
            crate::grpc::timeout_ms(request.headers())
        } else {
            0
        };
        let start = crate::clock::Tick::now();
        let inner = self.inner.call(request);
        ResponseFuture::new(
            inner,
            InFlight {
                series,
                start,
                method,
                deadline_ms,
            },
            self.layer.until_body_end,
            self.layer.grpc,
        )
    }
}
