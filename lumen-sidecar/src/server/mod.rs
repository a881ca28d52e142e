//! The HTTP handlers: ingest and the read API on one router over the
//! application state. Building and running the server is
//! [`crate::sidecar`]'s job.

mod exclusions;
mod experiments;
mod ingest;
mod read_api;

pub use experiments::StartExperiment;
pub use read_api::window_param;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// The routes, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ingest", post(ingest::ingest))
        .route("/v1/slo", get(read_api::slo))
        .route("/v1/report", get(read_api::report))
        .route("/v1/health", get(read_api::health))
        .route("/v1/budget", get(read_api::budget))
        .route("/v1/what-if", get(read_api::what_if))
        .route(
            "/v1/exclusions",
            get(exclusions::list).post(exclusions::add),
        )
        .route("/v1/fleet/slo", get(read_api::fleet_slo))
        .route("/v1/series", get(read_api::series))
        .route("/v1/tuning", get(read_api::tuning))
        .route(
            "/v1/experiments",
            get(experiments::list).post(experiments::start),
        )
        .route("/v1/experiments/stop", post(experiments::stop))
        .route("/metrics", get(read_api::metrics))
        .route("/healthz", get(read_api::healthz))
        .route("/", get(read_api::status_page).post(misdirected))
        .fallback(misdirected)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            known_host,
        ))
        .with_state(state)
}

/// Refuses (421) a request for a host the sidecar is not reached by
/// ([`crate::listen::guard::host_allowed`]): DNS rebinding cannot read the sidecar.
async fn known_host(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .map(|h| h.to_str().unwrap_or("(not text)").to_owned());
    match host {
        Some(host) if !crate::listen::guard::host_allowed(&host, &app.config.allowed_hosts) => (
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            axum::Json(serde_json::json!({
                "error": format!("host: {host:?} is not an address of this sidecar, localhost or a name in LUMEN_ALLOWED_HOSTS")
            })),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// A request for a path the sidecar does not serve: logged (a wrong
/// `LUMEN_SIDECAR_URL` shows up here) and answered 404 with the paths.
async fn misdirected(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::warn!(%method, path = %uri.path(), "request for a path the sidecar does not serve; batches go to POST /v1/ingest");
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": format!("no {method} {}: batches go to POST /v1/ingest; reads are GET /v1/slo, /v1/report, /v1/health, /v1/budget, /v1/series, /v1/fleet/slo, /v1/tuning, /v1/experiments, /metrics, /healthz, /", uri.path())
        })),
    )
        .into_response()
}
