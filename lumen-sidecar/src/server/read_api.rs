//! The read API: `/v1/slo`, `/v1/report`, `/metrics`, `/healthz`, `/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use lumen_middleware::units::parse_duration;
use serde_json::json;

use crate::app::{AppState, now_ms};
use crate::config::window_is_valid;
use crate::eval::SloReport;
use crate::render;

/// The `window` query parameter, or the configured default.
pub fn window_param(
    params: &HashMap<String, String>,
    default: Duration,
) -> Result<Duration, String> {
    let Some(text) = params.get("window") else {
        return Ok(default);
    };
    let w = parse_duration(text).map_err(|e| format!("window: {e}"))?;
    if !window_is_valid(w) {
        return Err(format!(
            "window: {text} is not whole minutes from 1m to 24h"
        ));
    }
    Ok(w)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn bad_window(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// `GET /v1/slo?window=1h`.
pub async fn slo(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match window_param(&params, app.config.window) {
        Ok(w) => Json(app.report(w)).into_response(),
        Err(e) => bad_window(e),
    }
}

/// The `step` of a series over `window`: whole minutes, at most the
/// window, dividing it, at most [`MAX_POINTS`](crate::eval::MAX_POINTS) steps;
/// by default the shortest giving at most 360.
pub fn step_param(params: &HashMap<String, String>, window: Duration) -> Result<Duration, String> {
    let Some(text) = params.get("step") else {
        // The shortest whole-minute step that divides the window into at
        // most 360 steps.
        let minutes = (window.as_secs() / 60).max(1);
        let step = (1..=minutes)
            .find(|d| minutes.is_multiple_of(*d) && minutes / d <= 360)
            .unwrap_or(minutes);
        return Ok(Duration::from_secs(step * 60));
    };
    let step = parse_duration(text).map_err(|e| format!("step: {e}"))?;
    let (s, w) = (step.as_secs(), window.as_secs());
    if s < 60 || !s.is_multiple_of(60) {
        return Err(format!("step: {text} is not whole minutes of at least 1m"));
    }
    if s > w || !w.is_multiple_of(s) {
        return Err(format!(
            "step: {text} does not divide the window ({}m) into whole steps",
            w / 60
        ));
    }
    if w / s > crate::eval::MAX_POINTS {
        return Err(format!(
            "step: {text} makes {} steps of the window; at most {} (take a longer step)",
            w / s,
            crate::eval::MAX_POINTS
        ));
    }
    Ok(step)
}

/// `GET /v1/series?window=6h&step=1m[&route=/ask]`: each step's requests,
/// availability, error rate, P50…P99.9 and cache hit rate, and the window's
/// latency distribution.
pub async fn series(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let window = match window_param(&params, app.config.window) {
        Ok(w) => w,
        Err(e) => return bad_window(e),
    };
    let step = match step_param(&params, window) {
        Ok(s) => s,
        Err(e) => return bad_window(e),
    };
    let route = params.get("route").map(String::as_str);
    Json(app.series(window, step, route)).into_response()
}

/// `GET /v1/report?window=1h`: Markdown.
pub async fn report(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match window_param(&params, app.config.window) {
        Ok(w) => {
            let e = app.evaluate(w);
            (
                [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
                render::markdown(&e.slo, Some((&e.health, &e.budget)))
                    + &render::tuning_markdown(&app.tuning.report())
                    + &render::experiments_markdown(&app.experiments.report(now_ms())),
            )
                .into_response()
        }
        Err(e) => bad_window(e),
    }
}

/// `GET /v1/health?window=1h`: maturity, ROI and health as JSON.
pub async fn health(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match window_param(&params, app.config.window) {
        Ok(w) => Json(app.evaluate(w).health).into_response(),
        Err(e) => bad_window(e),
    }
}

/// `GET /v1/budget`: error budgets and burn rates over the SLO period.
pub async fn budget(State(app): State<Arc<AppState>>) -> Response {
    Json(app.evaluate(app.config.window).budget).into_response()
}

/// `GET /v1/what-if?availability=99.9&latency_p95_ms=150&latency_p99_ms=900&error_rate=0.5&error_classes=5xx&period=30d`:
/// the targets given (the configured ones for the rest) over this
/// sidecar's stored history: budgets now and every burn-rate alert that
/// would have fired. `400` names a bad parameter.
pub async fn what_if(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match what_if_params(&params, &app.config.slo, app.config.budget_period) {
        Ok((targets, period)) => {
            // The fleet's history when the sidecar has a fleet store.
            if let (Some(view), Some(service)) = (app.fleet_view(), app.service_name()) {
                match view.what_if(&service, &targets, period, now_ms()).await {
                    Ok(Some(answer)) => return Json(answer).into_response(),
                    Ok(None) => {}
                    Err(why) => {
                        return error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("the fleet store could not be read: {why}"),
                        );
                    }
                }
            }
            Json(app.what_if(&targets, period, now_ms())).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// The targets and period of a what-if: `configured` with the parameters
/// given laid over it.
pub fn what_if_params(
    params: &HashMap<String, String>,
    configured: &crate::eval::SloTargets,
    period: crate::eval::SloPeriod,
) -> Result<(crate::eval::SloTargets, crate::eval::SloPeriod), String> {
    use crate::config::values::{non_negative, percent_range};
    let mut t = configured.clone();
    let mut period = period;
    for (key, value) in params {
        let bad = |why: String| format!("{key}: {why}");
        match key.as_str() {
            "availability" => t.availability_percent = percent_range(value).map_err(bad)?,
            "error_rate" => t.error_rate_percent = percent_range(value).map_err(bad)?,
            "latency_p95_ms" | "latency_p99_ms" => {
                let ms = non_negative(value, "milliseconds above 0")
                    .ok()
                    .filter(|ms| *ms > 0.0 && *ms <= 60_000.0)
                    .ok_or_else(|| bad("milliseconds above 0, at most 60000".into()))?;
                if key == "latency_p95_ms" {
                    t.latency_p95_ms = ms;
                } else {
                    t.latency_p99_ms = ms;
                }
            }
            "error_classes" => {
                t.error_classes = value
                    .split(',')
                    .map(|c| {
                        crate::eval::StatusClass::parse(c.trim())
                            .ok_or_else(|| bad(format!("{c:?} is not 1xx … 5xx")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "period" => {
                period = crate::eval::SloPeriod::parse(value)
                    .ok_or_else(|| bad("7d, 28d, 30d or month".into()))?;
            }
            other => {
                return Err(format!(
                    "{other}: not a what-if parameter (availability, error_rate, latency_p95_ms, latency_p99_ms, error_classes, period)"
                ));
            }
        }
    }
    Ok((t, period))
}

/// The fleet's report over `window`, when the sidecar has a fleet view:
/// `None` without one, `Some(Err)` when it cannot be read.
async fn fleet_report(app: &AppState, window: Duration) -> Option<Result<SloReport, String>> {
    let view = app.fleet_view()?;
    let Some(service) = app.service_name() else {
        return Some(Err("no batch yet names the service".into()));
    };
    Some(view.slo_report(&service, window, now_ms()).await)
}

/// `GET /v1/fleet/slo?window=1h`: the whole fleet's report, from the
/// fleet store or the Prometheus query API configured (404 when neither
/// is, 503 when it cannot be read).
pub async fn fleet_slo(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let window = match window_param(&params, app.config.window) {
        Ok(w) => w,
        Err(e) => return bad_window(e),
    };
    match fleet_report(&app, window).await {
        Some(Ok(report)) => Json(report).into_response(),
        Some(Err(e)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the fleet cannot be read: {e}"),
        ),
        None => error(
            StatusCode::NOT_FOUND,
            "no fleet source: set LUMEN_FLEET_REDIS_URL (fleet.redis_url) or LUMEN_FLEET_PROMETHEUS_URL (fleet.prometheus_url) to read the whole fleet here; /v1/slo is this instance".into(),
        ),
    }
}

/// `GET /`: the status page: the fleet's when the sidecar has a fleet
/// source (this instance's, with the reason, when it cannot be read).
pub async fn status_page(State(app): State<Arc<AppState>>) -> Html<String> {
    let window = app.config.window;
    match fleet_report(&app, window).await {
        Some(Ok(fleet)) => Html(render::status_page(&fleet, None, "/v1/fleet/slo")),
        Some(Err(e)) => Html(render::status_page(
            &app.report(window),
            Some(&format!(
                "the fleet cannot be read ({e}); this is this instance only"
            )),
            "/v1/slo",
        )),
        None => Html(render::status_page(&app.report(window), None, "/v1/slo")),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let evaluation = app.evaluate(app.config.window);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::prometheus_text(&crate::metrics::Sources {
            app: &app,
            evaluation: &evaluation,
        }),
    )
        .into_response()
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /v1/tuning`: the feedback loop's mode, each cache's TTL and the
/// changes with their hit rates before and after.
pub async fn tuning(State(app): State<Arc<AppState>>) -> Response {
    Json(app.tuning.report()).into_response()
}
