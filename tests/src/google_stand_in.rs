//! What the Google API stand-ins share: the error body Google's JSON APIs
//! answer, the bearer-token check, and the request log line.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The bearer token the stand-ins accept.
pub const TOKEN: &str = "ya29.stand-in-token";

/// `{"error": {"code", "message", "status"}}` with `status`, as Google answers.
pub fn google_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "message": message, "status": code}})),
    )
        .into_response()
}

/// `METHOD path?query`, for a stand-in's request log.
pub fn request_line(method: &Method, path: &str, query: Option<&str>) -> String {
    format!(
        "{method} {path}{}",
        query.map(|q| format!("?{q}")).unwrap_or_default()
    )
}

/// What is wrong when the request does not carry [`TOKEN`] as its bearer token.
pub fn bearer_violation(method: &Method, path: &str, headers: &HeaderMap) -> Option<String> {
    (headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")))
        .then(|| format!("{method} {path}: no bearer token"))
}

/// Google's 401.
pub fn unauthenticated() -> Response {
    google_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "no valid token",
    )
}
