//! Lumen's recording layer: one tower layer that records every request's
//! latency into HDR histograms, counts status classes and the cache hits and
//! misses handlers report, and ships interval batches to the Lumen sidecar
//! exactly once.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use lumen_middleware::{LumenConfig, pair};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (layer, shipper) = pair(LumenConfig::from_env()?)?;
//! let mut shipper = shipper.spawn();
//!
//! let service = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//! let response = service.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), 200);
//!
//! // On SIGTERM: send what is left (here no sidecar listens, so it stays unsent).
//! let report = shipper.shutdown(Duration::from_millis(100)).await?;
//! assert_eq!(report.unsent_requests, 1);
//! # Ok(()) }
//! ```
//!
//! The request path takes no lock, allocates nothing and does no I/O: a
//! request costs two raw clock reads, one locked add and a few plain adds
//! on the calling thread's own stripe (threads beyond the stripe count
//! share stripes, with atomic adds). See `bench/RESULTS.md` for measured
//! figures.
//!
//! What an app needs is at the root: the layer set ([`LumenLayer`],
//! [`Lumen`], [`ResponseFuture`], [`ResponseBody`]), [`pair`] and its
//! [`LumenConfig`], the shipper's handle and errors, [`CacheReport`] and
//! [`tuning()`]. The modules hold the rest: [`cache`] and [`mod@tuning`]
//! (reporting from code that never sees the request), [`route`] (route
//! labels), [`body_kind`] (axum's own body), [`config`] (the defaults),
//! [`recorder`] (recording without a tower service). The batch format the
//! sidecar reads is [`wire`] (with [`layout`] and [`units`]); an app never
//! needs it.
//!
//! Features: `layer` (default) is everything above; `axum` adds route labels
//! from `MatchedPath` and the [`CacheReport`] extractor. With
//! `default-features = false` only [`wire`], [`layout`] and [`units`] remain,
//! which is what the sidecar uses.

#![forbid(unsafe_code)]

pub mod layout;
pub mod units;
pub mod wire;

#[cfg(feature = "layer")]
mod body;
#[cfg(feature = "layer")]
pub mod body_kind;
#[cfg(feature = "layer")]
pub mod cache;
#[cfg(feature = "layer")]
mod clock;
#[cfg(feature = "layer")]
pub mod config;
#[cfg(feature = "layer")]
mod future;
#[cfg(feature = "layer")]
mod grpc;
#[cfg(feature = "layer")]
mod in_flight;
#[cfg(feature = "layer")]
mod layer;
#[cfg(feature = "layer")]
mod process;
#[cfg(feature = "layer")]
pub mod recorder;
#[cfg(feature = "layer")]
mod registry;
#[cfg(feature = "layer")]
pub mod route;
#[cfg(feature = "layer")]
mod shipper;
#[cfg(feature = "layer")]
mod signal;
#[cfg(feature = "layer")]
pub mod tuning;

#[cfg(feature = "layer")]
pub use body::ResponseBody;
#[cfg(feature = "layer")]
pub use cache::CacheReport;
#[cfg(feature = "layer")]
pub use config::{ConfigError, LumenConfig};
#[cfg(feature = "layer")]
pub use future::ResponseFuture;
#[cfg(feature = "layer")]
pub use layer::{Lumen, LumenLayer};
#[cfg(feature = "layer")]
pub use route::route_fn;
#[cfg(feature = "layer")]
pub use shipper::{Shipper, ShipperGone, ShipperHandle, ShipperStats, ShutdownReport};
#[cfg(feature = "layer")]
pub use signal::shutdown_signal;
#[cfg(feature = "layer")]
pub use tuning::tuning;

/// The layer and the shipper that sends what it records.
///
/// The layer's registry lives for the rest of the process; make one pair per
/// app. Cache reports made outside any request go where the app says, through
/// [`LumenLayer::cache_report`] (see [`cache`]).
#[cfg(feature = "layer")]
pub fn pair(config: LumenConfig) -> Result<(LumenLayer, Shipper), ConfigError> {
    config.validate()?;
    clock::calibrate();
    registry::THRESHOLD.store(
        (config.key_sample_rate * f64::from(registry::MODULUS)).round() as u32,
        std::sync::atomic::Ordering::Relaxed,
    );
    let registry = registry::Registry::new(config.layout, config.stripes, config.route_cap).leak();
    let shipper = Shipper::new(registry, config)?;
    let layer = LumenLayer {
        registry,
        labels: route::RouteLabels::Off,
        until_body_end: false,
        grpc: false,
        kind: std::marker::PhantomData,
    };
    Ok((layer, shipper))
}
