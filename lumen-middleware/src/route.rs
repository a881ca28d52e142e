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

/// The series of the route one layered axum route serves, remembered by
/// its `MatchedPath`'s address: `Router::layer` makes one service per
/// route, so after its first request a request costs a pointer comparison
/// instead of hashing and comparing the path. It holds the path (a
/// reference-counted string), so the address cannot be reused for another
/// path while it is remembered; a service axum shares between paths
/// (`nest`, `merge`) remembers the first and looks the others up.
#[cfg(feature = "axum")]
#[derive(Default)]
pub(crate) struct MatchedPathMemo(
    std::sync::OnceLock<(axum::extract::MatchedPath, &'static RouteSeries)>,
);

#[cfg(feature = "axum")]
impl MatchedPathMemo {
    /// A memo for one layered route, for the rest of the process (leaked
    /// like the registry, so cloning the service per request touches no
    /// reference count; one per route each time a router is built).
    pub(crate) fn leak() -> &'static Self {
        Box::leak(Box::default())
    }

    #[inline]
    fn series(
        &self,
        registry: &'static Registry,
        path: &axum::extract::MatchedPath,
    ) -> &'static RouteSeries {
        if let Some((known, series)) = self.0.get() {
            if std::ptr::eq(known.as_str(), path.as_str()) {
                return series;
            }
            return registry.route(path.as_str());
        }
        let series = registry.route(path.as_str());
        // Another thread may have remembered first: the same route.
        let _ = self.0.set((path.clone(), series));
        series
    }
}

impl RouteLabels {
    /// Whether services of this layer remember their route
    /// ([`MatchedPathMemo`]).
    #[cfg(feature = "axum")]
    pub(crate) fn remembers_routes(self) -> bool {
        matches!(self, Self::MatchedPath)
    }

    #[inline]
    pub(crate) fn series<B>(
        self,
        registry: &'static Registry,
        request: &http::Request<B>,
        #[cfg(feature = "axum")] memo: Option<&'static MatchedPathMemo>,
    ) -> &'static RouteSeries {
        let label = match self {
            Self::Off => None,
            #[cfg(feature = "axum")]
            Self::MatchedPath => {
                let path = request.extensions().get::<axum::extract::MatchedPath>();
                match (path, memo) {
                    (Some(path), Some(memo)) => return memo.series(registry, path),
                    (path, _) => path.map(axum::extract::MatchedPath::as_str),
                }
            }
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
