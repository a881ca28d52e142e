//! The experiments' HTTP API: `GET /v1/experiments` (JSON, or the decision
//! reports with `?format=markdown`), `POST /v1/experiments` (start one:
//! `{"param", "a", "b", "share_b_percent", "duration", "primary", "alpha",
//! "tau"}`, the last five optional) and `POST /v1/experiments/stop`. With
//! a token configured (`LUMEN_AUTH_TOKEN`) the POSTs need it as a bearer
//! token. With a fleet store the commands run on the fleet's shared
//! experiments (`503` when the store cannot be reached: nothing changed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::experiments::{ExperimentCommand, ExperimentError, ExperimentReport};
use crate::app::{AppState, now_ms, save_snapshot};
use crate::eval::{ExperimentSpec, Metric};

/// A start command's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartExperiment {
    /// The parameter the app reads.
    pub param: String,
    /// Arm A's value (the value in force).
    pub a: u64,
    /// Arm B's value.
    pub b: u64,
    /// B's share of requests, percent (default 50).
    #[serde(default)]
    pub share_b_percent: Option<u8>,
    /// Its length, such as `7d` (default 7 days).
    #[serde(default)]
    pub duration: Option<String>,
    /// Its primary metric (default `cache_hit_rate`).
    #[serde(default)]
    pub primary: Option<Metric>,
    /// The level of every test (default 0.05).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// The primary test's mixing standard deviation, a proportion (default 0.02).
    #[serde(default)]
    pub tau: Option<f64>,
}

impl StartExperiment {
    /// The spec, defaults filled in; a bad duration is named.
    pub fn spec(self) -> Result<ExperimentSpec, String> {
        let mut spec = ExperimentSpec::new(&self.param, self.a, self.b);
        if let Some(share) = self.share_b_percent {
            spec.share_b_percent = share;
        }
        if let Some(d) = &self.duration {
            spec.duration =
                lumen_middleware::units::parse_duration(d).map_err(|e| format!("duration: {e}"))?;
        }
        if let Some(p) = self.primary {
            spec.primary = p;
        }
        if let Some(a) = self.alpha {
            spec.alpha = a;
        }
        if let Some(t) = self.tau {
            spec.tau = t;
        }
        Ok(spec)
    }
}

fn refused(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// The answer refusing a command, if it is refused
/// ([`crate::listen::guard::command_refusal`]).
fn refusal(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    crate::listen::guard::command_refusal(headers, app.config.auth_token.as_deref())
        .map(|(status, why)| refused(status, why))
}

fn status_of(e: &ExperimentError) -> StatusCode {
    match e {
        ExperimentError::AlreadyRunning { .. } | ExperimentError::NoneRunning => {
            StatusCode::CONFLICT
        }
        ExperimentError::Invalid(_) => StatusCode::BAD_REQUEST,
    }
}

/// Runs `command`: on the fleet's shared experiments when a fleet store
/// shares them, else here. `Err` is the answer to send.
async fn run(
    app: &Arc<AppState>,
    command: ExperimentCommand,
) -> Result<ExperimentReport, Response> {
    let answer = match app.experiments.share().cloned() {
        Some(shared) => shared
            .run(&app.experiments, app.service_name(), command)
            .await
            .map_err(|why| {
                refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the fleet store is unavailable, nothing changed: {why}"),
                )
            })?,
        None => app.experiments.run_command(command, now_ms()),
    };
    answer.map_err(|e| refused(status_of(&e), e.to_string()))
}

/// Writes the checkpoint after a command, so that a restart keeps it.
async fn keep(app: &Arc<AppState>) {
    let app = Arc::clone(app);
    let _ = tokio::task::spawn_blocking(move || save_snapshot(&app)).await;
}

/// `GET /v1/experiments`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let report = app.experiments.report(now_ms());
    match params.get("format").map(String::as_str) {
        None | Some("json") => Json(report).into_response(),
        Some("markdown") => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::render::experiments_markdown(&report),
        )
            .into_response(),
        Some(other) => refused(
            StatusCode::BAD_REQUEST,
            format!("format: {other:?} is not json or markdown"),
        ),
    }
}

/// `POST /v1/experiments`.
pub async fn start(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(answer) = refusal(&app, &headers) {
        return answer;
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let command: StartExperiment = match serde_path_to_error::deserialize(de) {
        Ok(c) => c,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("{}: {}", e.path(), e.inner()),
            );
        }
    };
    let spec = match command.spec() {
        Ok(s) => s,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e),
    };
    match run(&app, ExperimentCommand::Start(spec)).await {
        Ok(report) => {
            keep(&app).await;
            (StatusCode::CREATED, Json(report)).into_response()
        }
        Err(refusal) => refusal,
    }
}

/// `POST /v1/experiments/stop`.
pub async fn stop(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(answer) = refusal(&app, &headers) {
        return answer;
    }
    match run(&app, ExperimentCommand::Stop).await {
        Ok(report) => {
            keep(&app).await;
            Json(report).into_response()
        }
        Err(refusal) => refusal,
    }
}
