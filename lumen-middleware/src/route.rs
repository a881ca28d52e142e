//! Route labels: off, axum's `MatchedPath`, or a function of yours.

use http::{Extensions, Method, Uri};

use crate::registry::{Registry, RouteSeries};

/// Names the route of a request, or `None` to count it without a route.
///
/// Implemented for every
/// `Fn(&Method, &Uri, &Extensions) -> Option<&str>`. Return labels from a
/// small fixed set (the cap, 64 by default, sends the rest to `other`).
pub trait ClassifyRoute: Send + Sync + 'static {
    /// The route label of this request.
    fn classify<'a>(
        &self,
        method: &'a Method,
        uri: &'a Uri,
        extensions: &'a Extensions,
    ) -> Option<&'a str>;
}

impl<F> ClassifyRoute for F
where
    F: for<'a> Fn(&'a Method, &'a Uri, &'a Extensions) -> Option<&'a str> + Send + Sync + 'static,
{
    fn classify<'a>(
        &self,
        method: &'a Method,
        uri: &'a Uri,
        extensions: &'a Extensions,
    ) -> Option<&'a str> {
        self(method, uri, extensions)
    }
}

/// How the layer labels routes. Copy, so cloning the service per request
/// touches no reference count.
#[derive(Clone, Copy)]
pub(crate) enum RouteLabels {
    /// Every request counts for the service only.
    Off,
    /// axum's `MatchedPath` (the route pattern, such as `/users/{id}`).
    #[cfg(feature = "axum")]
    MatchedPath,
    /// A classifier of the app's.
    Custom(&'static dyn ClassifyRoute),
}

impl RouteLabels {
    #[inline]
    pub(crate) fn series<B>(
        self,
        registry: &'static Registry,
        request: &http::Request<B>,
    ) -> &'static RouteSeries {
        let label = match self {
            Self::Off => None,
            #[cfg(feature = "axum")]
            Self::MatchedPath => request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(axum::extract::MatchedPath::as_str),
            Self::Custom(classifier) => {
                classifier.classify(request.method(), request.uri(), request.extensions())
            }
        };
        match label {
            Some(route) => registry.route(route),
            None => registry.unrouted(),
        }
    }
}

/// Gives a route closure the signature [`LumenLayer::with_route_fn`](crate::LumenLayer::with_route_fn)
/// needs when the closure is defined before it is passed (a closure in a
/// `let` otherwise gets one lifetime for its arguments and fails with
/// "implementation of `Fn` is not general enough").
///
/// ```
/// use lumen_middleware::{LumenConfig, pair, route_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (layer, _shipper) = pair(LumenConfig::default())?;
/// // Defined first, used later: wrap it in `route_fn`.
/// let classify = route_fn(|_, uri, _| uri.path().strip_prefix("/api"));
/// let layer = layer.with_route_fn(classify);
/// // Passed inline, or as a `fn` item, it needs no wrapper.
/// fn by_first_segment<'a>(
///     _: &'a http::Method,
///     uri: &'a http::Uri,
///     _: &'a http::Extensions,
/// ) -> Option<&'a str> {
///     uri.path().split('/').nth(1)
/// }
/// let _ = layer.with_route_fn(by_first_segment);
/// # Ok(()) }
/// ```
pub fn route_fn<F>(classify: F) -> F
where
    F: for<'a> Fn(&'a Method, &'a Uri, &'a Extensions) -> Option<&'a str> + Send + Sync + 'static,
{
    classify
}
