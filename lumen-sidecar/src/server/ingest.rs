//! `POST /v1/ingest`: the wire contract's receiving end.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::json;

use crate::app::{AppState, IngestError, RejectReason, now_ms};
use crate::store::StoreError;
use lumen_middleware::wire::{WIRE_VERSION, WIRE_VERSIONS_HEADER, WireError};

/// Seconds a sender is asked to wait when the batch could not be made durable.
const RETRY_AFTER_S: &str = "5";

fn refuse(app: &AppState, reason: RejectReason, status: StatusCode, message: String) -> Response {
    app.stats.reject(reason);
    tracing::debug!(reason = reason.as_str(), %message, "batch refused");
    (status, Json(json!({ "error": message }))).into_response()
}

/// Authenticates, reads at most the body limit, decodes, applies.
pub async fn ingest(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    if !crate::listen::guard::bearer_ok(&headers, app.config.auth_token.as_deref()) {
        return refuse(
            &app,
            RejectReason::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "authorization: a valid bearer token is required".into(),
        );
    }
    if let Some(content_type) = crate::listen::guard::not_json(&headers) {
        return refuse(
            &app,
            RejectReason::ContentType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type: {content_type:?}; send application/json"),
        );
    }
    let limit = app.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return refuse(
            &app,
            RejectReason::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: over the limit of {limit} bytes"),
        );
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                &app,
                RejectReason::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body: over the limit of {limit} bytes"),
            );
        }
        Err(e) => {
            return refuse(
                &app,
                RejectReason::Malformed,
                StatusCode::BAD_REQUEST,
                format!("body: cannot be read: {e}"),
            );
        }
    };
    // Parsing, inflating and checking run on the blocking pool: an
    // expensive batch (bounded by the wire's inflate budget) never holds an
    // async worker that other requests need.
    let decoded = {
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || lumen_middleware::wire::decode(&bytes)).await
    };
    let Ok(decoded) = decoded else {
        return refuse(
            &app,
            RejectReason::Malformed,
            StatusCode::INTERNAL_SERVER_ERROR,
            "body: decoding did not finish".into(),
        );
    };
    let batch = match decoded {
        Ok(batch) => batch,
        Err(e @ WireError::Version(_)) => {
            // A newer (or older) sender: a distinct answer it keeps its
            // batch on, naming the versions read here.
            app.stats.reject(RejectReason::Version);
            tracing::warn!(error = %e, "batch of a wire version this sidecar does not read; the sender keeps it");
            return (
                StatusCode::CONFLICT,
                [(WIRE_VERSIONS_HEADER, WIRE_VERSION.to_string())],
                Json(json!({ "error": e.to_string(), "wire_versions": [WIRE_VERSION] })),
            )
                .into_response();
        }
        Err(e) => {
            return refuse(
                &app,
                RejectReason::Malformed,
                StatusCode::BAD_REQUEST,
                e.to_string(),
            );
        }
    };
    match app.ingest(batch, bytes, now_ms()).await {
        Err(IngestError::Store(e @ StoreError::OtherService { .. })) => {
            if let Some(held_back) = app.stats.other_service_log.due(now_ms()) {
                tracing::error!(
                    error = %e,
                    held_back,
                    "batch of another service refused (logged at most once a minute; lumen_batches_rejected_total{{reason=\"other_service\"}} counts each)"
                );
            }
            refuse(
                &app,
                RejectReason::OtherService,
                StatusCode::CONFLICT,
                e.to_string(),
            )
        }
        Err(IngestError::Store(e @ StoreError::MinuteFull { .. })) => refuse(
            &app,
            RejectReason::Malformed,
            StatusCode::BAD_REQUEST,
            e.to_string(),
        ),
        Err(IngestError::Store(e @ StoreError::FromTheFuture { .. })) => refuse(
            &app,
            RejectReason::Future,
            StatusCode::BAD_REQUEST,
            e.to_string(),
        ),
        Err(IngestError::Unavailable(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_S)],
            Json(json!({ "error": why })),
        )
            .into_response(),
        Ok(applied) => {
            let mut answer = json!({ "applied_seq": applied.applied_seq() });
            if let Some(tuning) = app.tuning_answer() {
                answer["tuning"] = json!(tuning);
            }
            (StatusCode::OK, Json(answer)).into_response()
        }
    }
}
