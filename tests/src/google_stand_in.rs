//! What the Google API stand-ins share: the error body Google's JSON APIs
//! answer, the tokens Google issues (they expire, and an expired one is
//! answered 401 UNAUTHENTICATED), and the request log line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A token every authority holds from the start (as if issued an hour ago
/// for an hour), for tests that do not ask the metadata server.
pub const TOKEN: &str = "ya29.stand-in-token";
/// How long the tokens of the metadata server stand-in live, as Google's do.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

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

/// Google's 401.
pub fn unauthenticated(message: &str) -> Response {
    google_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
}

#[derive(Debug)]
struct Issued {
    /// Token → when it stops being accepted.
    expiry: BTreeMap<String, Instant>,
    /// Tokens issued so far.
    count: u64,
    /// Calls refused for an expired token.
    expired_refusals: u64,
    /// Valid calls to accept before every token expires (the hour passing
    /// in the middle of a command).
    expire_after: Option<u64>,
}

/// The tokens Google would accept: issued with a lifetime, refused once
/// expired. Shared by the metadata server stand-in (which issues them) and
/// the API stand-ins (which check them).
#[derive(Debug, Clone)]
pub struct TokenAuthority {
    inner: Arc<Mutex<Issued>>,
}

impl Default for TokenAuthority {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenAuthority {
    /// An authority holding [`TOKEN`], valid for [`TOKEN_LIFETIME`].
    pub fn new() -> Self {
        let mut expiry = BTreeMap::new();
        expiry.insert(TOKEN.to_owned(), Instant::now() + TOKEN_LIFETIME);
        Self {
            inner: Arc::new(Mutex::new(Issued {
                expiry,
                count: 0,
                expired_refusals: 0,
                expire_after: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Issued> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new token and its remaining life in seconds (`expires_in`).
    pub fn issue(&self) -> (String, u64) {
        let mut s = self.lock();
        s.count += 1;
        let token = format!("ya29.issued-{}", s.count);
        s.expiry
            .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
        (token, TOKEN_LIFETIME.as_secs())
    }

    /// Every token issued so far expires now (the hour has passed).
    pub fn expire_all(&self) {
        let now = Instant::now();
        for at in self.lock().expiry.values_mut() {
            *at = now;
        }
    }

    /// After `calls` more accepted calls, every token issued so far
    /// expires (an hour passes in the middle of a command).
    pub fn expire_after(&self, calls: u64) {
        self.lock().expire_after = Some(calls);
    }

    /// Tokens issued by the metadata server stand-in.
    pub fn issued(&self) -> u64 {
        self.lock().count
    }

    /// Calls refused because their token had expired.
    pub fn expired_refusals(&self) -> u64 {
        self.lock().expired_refusals
    }

    /// Checks a request's bearer token: `None` when valid; else Google's
    /// answer and, for a token Google never issued or no token at all, the
    /// violation to record (an expired token is no violation: it is how
    /// Google behaves after an hour).
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<(Response, Option<String>)> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut s = self.lock();
        if let Some(left) = s.expire_after {
            if left == 0 {
                let now = Instant::now();
                for at in s.expiry.values_mut() {
                    *at = now;
                }
                s.expire_after = None;
            } else {
                s.expire_after = Some(left - 1);
            }
        }
        match bearer.and_then(|t| s.expiry.get(t).copied()) {
            Some(at) if Instant::now() < at => None,
            Some(_) => {
                s.expired_refusals += 1;
                Some((
                    unauthenticated(
                        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    ),
                    None,
                ))
            }
            None => Some((
                unauthenticated("no valid token"),
                Some(format!("{method} {path}: no bearer token Google issued")),
            )),
        }
    }
}

/// A metadata server stand-in: tokens from `authority` (with `expires_in`),
/// the project id, region and instance id, behind `Metadata-Flavor: Google`.
/// Its address, for `GCE_METADATA_HOST`.
pub async fn metadata_server(authority: TokenAuthority, project: &str) -> String {
    let project = project.to_owned();
    let app = axum::Router::new().route(
        "/computeMetadata/v1/{*rest}",
        axum::routing::get(
            move |axum::extract::Path(rest): axum::extract::Path<String>, headers: HeaderMap| {
                let (authority, project) = (authority.clone(), project.clone());
                async move {
                    if headers
                        .get("metadata-flavor")
                        .and_then(|v| v.to_str().ok())
                        != Some("Google")
                    {
                        return (StatusCode::FORBIDDEN, "missing Metadata-Flavor").into_response();
                    }
                    match rest.as_str() {
                        "instance/service-accounts/default/token" => {
                            let (token, expires_in) = authority.issue();
                            axum::Json(json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}))
                                .into_response()
                        }
                        "project/project-id" => project.into_response(),
                        "instance/region" => "projects/123456/regions/europe-west1".into_response(),
                        "instance/id" => "00bf4bf02d".into_response(),
                        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}
