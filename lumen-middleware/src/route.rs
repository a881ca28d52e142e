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

/// The series of the routes a thread served lately, by the address of
/// axum's `MatchedPath` (a reference-counted string per route of a
/// router): after a route's first request on a thread, a request costs a
/// pointer comparison instead of hashing and comparing the path. An entry
/// holds the path, so its address cannot be reused for another string
/// while it is remembered; eight entries a thread, so it stays small
/// whatever the routers an app builds.
#[cfg(feature = "axum")]
mod matched_path_cache {
    use std::cell::RefCell;

    use axum::extract::MatchedPath;

    use crate::registry::{Registry, RouteSeries};

    const WAYS: usize = 8;

    type Entry = Option<(MatchedPath, &'static Registry, &'static RouteSeries)>;

    thread_local! {
        static CACHE: RefCell<[Entry; WAYS]> = const { RefCell::new([const { None }; WAYS]) };
    }

    /// The series of `path` in `registry`.
    #[inline]
    pub(super) fn series(registry: &'static Registry, path: &MatchedPath) -> &'static RouteSeries {
        // Strings are allocated at least 8 bytes apart: the bits above.
        let way = (path.as_str().as_ptr() as usize >> 3) % WAYS;
        CACHE
            .try_with(|cache| {
                let mut cache = cache.borrow_mut();
                if let Some((known, in_registry, series)) = &cache[way]
                    && std::ptr::eq(known.as_str(), path.as_str())
                    && std::ptr::eq(*in_registry, registry)
                {
                    return *series;
                }
                let series = registry.route(path.as_str());
                cache[way] = Some((path.clone(), registry, series));
                series
            })
            // While the thread exits: look it up.
            .unwrap_or_else(|_| registry.route(path.as_str()))
    }
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
            Self::MatchedPath => {
                return match request.extensions().get::<axum::extract::MatchedPath>() {
                    Some(path) => matched_path_cache::series(registry, path),
                    None => registry.unrouted(),
                };
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
