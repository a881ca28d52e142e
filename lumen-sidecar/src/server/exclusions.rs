//! The budget's exclusions over HTTP: `GET /v1/exclusions` (the one-off
//! windows, the recurring ones, and every excluded span of the budget's
//! period) and `POST /v1/exclusions` (`{"from_ms", "to_ms", "reason",
//! "by"}`: a command, as the experiments' are), written to the checkpoint
//! before it is answered.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::{AppState, now_ms, save_snapshot};
use crate::store::{Exclusion, MINUTE_MS};

/// An exclusion command's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeCommand {
    /// Its first minute, Unix ms (a whole minute).
    pub from_ms: u64,
    /// Its end, Unix ms (a whole minute, exclusive).
    pub to_ms: u64,
    /// Why.
    pub reason: String,
    /// Who marks it.
    #[serde(default)]
    pub by: Option<String>,
}

fn refused(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// `GET /v1/exclusions`.
pub async fn list(State(app): State<Arc<AppState>>) -> Response {
    let now = now_ms();
    let (start, _) = app.config.budget_period.bounds(now);
    let store = app.store();
    let x = store.exclusions();
    Json(json!({
        "one_off": x.one_off,
        "recurring": x.recurring.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "spans": x.spans(start * MINUTE_MS, now),
    }))
    .into_response()
}

/// `POST /v1/exclusions`.
pub async fn add(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some((status, why)) =
        crate::listen::guard::command_refusal(&headers, app.config.auth_token.as_deref())
    {
        return refused(status, why);
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let command: ExcludeCommand = match serde_path_to_error::deserialize(de) {
        Ok(c) => c,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("{}: {}", e.path(), e.inner()),
            );
        }
    };
    let now = now_ms();
    let by = command.by.as_deref().unwrap_or("someone");
    let exclusion = match Exclusion::new(command.from_ms, command.to_ms, &command.reason, by, now) {
        Ok(e) => e,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    if exclusion.from_ms > now + 7 * 86_400_000 {
        return refused(StatusCode::BAD_REQUEST, "from: at most 7 days ahead".into());
    }
    let answer = app.store().exclude(exclusion.clone());
    match answer {
        Ok(left_out) => {
            tracing::info!(from_ms = exclusion.from_ms, to_ms = exclusion.to_ms, reason = %exclusion.reason, by = %exclusion.by, requests_left_out = left_out.total, "minutes kept off the error budget");
            let app2 = Arc::clone(&app);
            let _ = tokio::task::spawn_blocking(move || save_snapshot(&app2)).await;
            // With a fleet store, every sidecar of the service applies it.
            let fleet = match (app.fleet_view(), app.service_name()) {
                (None, _) => "not shared: no fleet store".to_owned(),
                (Some(_), None) => "not shared: the service is not known yet".to_owned(),
                (Some(view), Some(service)) => {
                    match view.share_exclusion(&service, &exclusion).await {
                        Ok(true) => "shared with every sidecar through the fleet store".to_owned(),
                        Ok(false) => "not shared: no fleet store".to_owned(),
                        Err(why) => {
                            tracing::warn!(error = %why, "a window kept off the budget was not shared with the fleet");
                            format!("not shared: {why}")
                        }
                    }
                }
            };
            Json(json!({ "excluded": exclusion, "left_out": left_out, "fleet": fleet }))
                .into_response()
        }
        Err(first) => refused(
            StatusCode::CONFLICT,
            format!(
                "minutes before {} are kept by the hour only: exclude from then on (nothing changed)",
                crate::render::format::utc(first * MINUTE_MS)
            ),
        ),
    }
}
