//! The HTTP handlers: ingest and the read API on one router over the
//! application state. Building and running the server is
//! [`crate::sidecar`]'s job.

mod ingest;
mod read;

pub use read::window_param;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// The routes, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ingest", post(ingest::ingest))
        .route("/v1/slo", get(read::slo))
        .route("/v1/report", get(read::report))
        .route("/v1/health", get(read::health))
        .route("/v1/budget", get(read::budget))
        .route("/metrics", get(read::metrics))
        .route("/healthz", get(read::healthz))
        .route("/", get(read::status_page))
        .with_state(state)
}
