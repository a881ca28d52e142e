//! The mentoring API that Lumen's report was written about, rebuilt on axum
//! with a Redis answer cache, plus its load generator and the local demo.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lumen_examples::app::{RunningApi, connect_cache};
//! use lumen_examples::settings::ApiSettings;
//!
//! let settings = ApiSettings::from_env()?;
//! let cache = connect_cache(&settings).await?;
//! let listener = tokio::net::TcpListener::bind(settings.listen).await?;
//! let api = RunningApi::start(listener, settings, cache, lumen_middleware::LumenConfig::from_env()?)?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

/// The workspace README's Rust snippets, compiled as doctests here (a crate
/// that is never published) so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// The Rust snippets of `docs/app.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/app.md")]
struct AppPageDoctests;

/// The Rust snippets of `docs/feedback-loop.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/feedback-loop.md")]
struct FeedbackLoopPageDoctests;

/// The Rust snippets of `docs/experiments.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/experiments.md")]
struct ExperimentsPageDoctests;

pub mod answer_cache;
pub mod app;
pub mod backend;
pub mod demo;
pub mod load;
pub mod settings;

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}
