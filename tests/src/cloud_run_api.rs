//! A stand-in for the Cloud Run Admin API v2 (Google's API cannot run
//! here). It checks every request as the API documents it (the discovery
//! document's paths and query parameters, `Authorization: Bearer`, a PATCH
//! body that is the whole Service with the current `etag` and traffic
//! targets of the documented enum summing to 100 on existing Ready
//! revisions), answers the documented shapes (Service, paged
//! `ListRevisionsResponse`, long-running `Operation`), and can answer an
//! etag conflict (409 ABORTED), 503s, or a failed operation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use crate::google_stand_in::TOKEN;
use crate::google_stand_in::{bearer_violation, google_error, request_line, unauthenticated};
/// Revisions per page of a list (small, so paging is exercised).
const PAGE: usize = 2;
/// Polls an operation answers `done: false` before it completes.
const POLLS_BEFORE_DONE: u32 = 2;

/// One revision: its short name, creation time, whether Ready.
#[derive(Debug, Clone)]
pub struct StandInRevision {
    /// Short name.
    pub name: String,
    /// RFC 3339.
    pub create_time: String,
    /// Ready.
    pub ready: bool,
}

/// What the stand-in holds and saw.
#[derive(Debug, Default)]
pub struct RunApiState {
    /// `projects/P/locations/R/services/S`.
    pub service_name: String,
    /// The revisions, oldest first.
    pub revisions: Vec<StandInRevision>,
    /// The revision taking traffic (all of it).
    pub serving: String,
    /// The service's etag.
    pub etag: u64,
    /// Operations: name → (polls so far, target revision, min instances).
    pub operations: BTreeMap<String, (u32, String, Option<u64>)>,
    /// The service-level `scaling.minInstanceCount`, once set.
    pub min_instances: Option<u64>,
    /// Every request: `METHOD path?query`.
    pub requests: Vec<String>,
    /// Each accepted PATCH body.
    pub patches: Vec<Value>,
    /// Requests refused as not what the API documents (a test that sees any has found a bug).
    pub violations: Vec<String>,
    /// Answer 409 ABORTED to this many PATCHes (as if someone deployed meanwhile).
    pub conflicts_left: u32,
    /// Answer 503 to this many requests.
    pub unavailable_left: u32,
    /// Fail the next operation (done with an error).
    pub fail_operation: bool,
}

/// A running stand-in.
#[derive(Debug, Clone)]
pub struct RunApi {
    /// Its base URL.
    pub base: String,
    state: Arc<Mutex<RunApiState>>,
}

impl RunApi {
    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, RunApiState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn service_json(s: &RunApiState) -> Value {
    let mut v = service_body(s);
    if let Some(n) = s.min_instances {
        v["scaling"] = json!({ "minInstanceCount": n });
    }
    v
}

fn service_body(s: &RunApiState) -> Value {
    json!({
        "name": s.service_name,
        "uid": "7f1c0000-0000-4000-8000-000000000001",
        "generation": s.etag.to_string(),
        "etag": format!("\"{}\"", s.etag),
        "template": {"containers": [{"name": "app", "image": "europe-docker.pkg.dev/p/r/app:1"}]},
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": s.serving, "percent": 100}],
        "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": s.serving, "percent": 100}],
        "latestReadyRevision": format!("{}/revisions/{}", s.service_name, s.revisions.iter().rev().find(|r| r.ready).map_or("", |r| r.name.as_str())),
        "latestCreatedRevision": format!("{}/revisions/{}", s.service_name, s.revisions.last().map_or("", |r| r.name.as_str())),
        "reconciling": false,
    })
}

fn revision_json(s: &RunApiState, r: &StandInRevision) -> Value {
    json!({
        "name": format!("{}/revisions/{}", s.service_name, r.name),
        "createTime": r.create_time,
        "conditions": [{
            "type": "Ready",
            "state": if r.ready { "CONDITION_SUCCEEDED" } else { "CONDITION_FAILED" },
        }],
    })
}

fn query_params(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Checks a PATCH body against the current service; `Err` says what the
/// real API would refuse.
fn check_patch(
    s: &RunApiState,
    body: &Value,
) -> Result<(String, Option<u64>), (StatusCode, &'static str, String)> {
    let bad = |m: String| Err((StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m));
    let min = match body.get("scaling") {
        None => None,
        Some(scaling) => match scaling["minInstanceCount"].as_u64() {
            Some(n) if n <= 1000 => Some(n),
            _ => {
                return bad(format!(
                    "scaling.minInstanceCount {scaling}: an integer from 0 to 1000"
                ));
            }
        },
    };
    if body["template"] != service_json(s)["template"] {
        return bad("the body is not the whole Service: its template would be replaced".into());
    }
    let Some(targets) = body["traffic"].as_array() else {
        return bad("no traffic".into());
    };
    let mut sum = 0;
    let mut only = None;
    for t in targets {
        match t["type"].as_str() {
            Some("TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION") => {
                let Some(name) = t["revision"].as_str() else {
                    return bad(format!("a REVISION target without revision: {t}"));
                };
                match s.revisions.iter().find(|r| r.name == name) {
                    None => return bad(format!("revision {name} not found")),
                    Some(r) if !r.ready => {
                        return Err((
                            StatusCode::BAD_REQUEST,
                            "FAILED_PRECONDITION",
                            format!("revision {name} is not ready"),
                        ));
                    }
                    Some(_) => only = Some(name.to_owned()),
                }
            }
            Some("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST") => {}
            other => return bad(format!("traffic type {other:?}")),
        }
        sum += t["percent"].as_u64().unwrap_or(0);
    }
    if sum != 100 {
        return bad(format!("traffic percents sum to {sum}, not 100"));
    }
    only.map(|r| (r, min)).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "no revision".into(),
        )
    })
}

async fn handle(
    State(state): State<Arc<Mutex<RunApiState>>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    let path = format!("/v2/{rest}");
    s.requests
        .push(request_line(&method, &path, query.as_deref()));
    if let Some(violation) = bearer_violation(&method, &path, &headers) {
        s.violations.push(violation);
        return unauthenticated();
    }
    if s.unavailable_left > 0 {
        s.unavailable_left -= 1;
        return google_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "try again");
    }
    let params = query_params(query.as_deref());
    let service = format!("/v2/{}", s.service_name);
    let allowed: &[&str] = match (method.as_str(), path.as_str()) {
        ("GET", p) if p == service => &[],
        ("PATCH", p) if p == service => &[
            "updateMask",
            "validateOnly",
            "allowMissing",
            "forceNewRevision",
        ],
        ("GET", p) if p == format!("{service}/revisions") => {
            &["pageSize", "pageToken", "showDeleted"]
        }
        ("GET", p) if p.contains("/operations/") => &[],
        _ => {
            s.violations
                .push(format!("{method} {path}: no such method"));
            return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method");
        }
    };
    if let Some((k, _)) = params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        s.violations
            .push(format!("{method} {path}: unknown parameter {k}"));
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "unknown parameter",
        );
    }
    match method.as_str() {
        "GET" if path == service => axum::Json(service_json(&s)).into_response(),
        "GET" if path.ends_with("/revisions") => {
            let start: usize = params
                .iter()
                .find(|(k, _)| k == "pageToken")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = s
                .revisions
                .iter()
                .rev() // newest first, as the API lists them
                .skip(start)
                .take(PAGE)
                .map(|r| revision_json(&s, r))
                .collect();
            let mut answer = json!({ "revisions": page });
            if start + PAGE < s.revisions.len() {
                answer["nextPageToken"] = json!((start + PAGE).to_string());
            }
            axum::Json(answer).into_response()
        }
        "GET" => {
            let name = path.trim_start_matches("/v2/").to_owned();
            let Some((polls, target, min)) = s.operations.get(&name).cloned() else {
                return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such operation");
            };
            let polls = polls + 1;
            s.operations
                .insert(name.clone(), (polls, target.clone(), min));
            let mut op = json!({
                "name": name,
                "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"},
                "done": polls > POLLS_BEFORE_DONE,
            });
            if polls > POLLS_BEFORE_DONE {
                if s.fail_operation {
                    op["error"] = json!({"code": 9, "message": "Revision is not ready and cannot serve traffic."});
                } else if polls == POLLS_BEFORE_DONE + 1 {
                    s.serving = target;
                    if min.is_some() {
                        s.min_instances = min;
                    }
                    s.etag += 1;
                    op["response"] = service_json(&s);
                } else {
                    op["response"] = service_json(&s);
                }
            }
            axum::Json(op).into_response()
        }
        _ => {
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                s.violations.push("PATCH: not JSON".into());
                return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "not JSON");
            };
            if s.conflicts_left > 0 {
                s.conflicts_left -= 1;
                s.etag += 1; // someone else changed the service
            }
            if body["etag"] != json!(format!("\"{}\"", s.etag)) {
                return google_error(
                    StatusCode::CONFLICT,
                    "ABORTED",
                    "etag mismatch: the service changed since it was read",
                );
            }
            match check_patch(&s, &body) {
                Err((status, code, message)) => {
                    s.violations.push(format!("PATCH refused: {message}"));
                    google_error(status, code, &message)
                }
                Ok((target, min)) => {
                    let n = s.operations.len() + 1;
                    let location = s
                        .service_name
                        .split("/services/")
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let name = format!("{location}/operations/op-{n}");
                    s.operations.insert(name.clone(), (0, target, min));
                    s.patches.push(body);
                    axum::Json(json!({
                        "name": name,
                        "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"},
                        "done": false,
                    }))
                    .into_response()
                }
            }
        }
    }
}

/// Starts the stand-in for `projects/{project}/locations/{region}/services/{service}`
/// with `revisions` (oldest first), `serving` taking all traffic.
pub async fn run_api(
    project: &str,
    region: &str,
    service: &str,
    revisions: Vec<StandInRevision>,
    serving: &str,
) -> RunApi {
    let state = Arc::new(Mutex::new(RunApiState {
        service_name: format!("projects/{project}/locations/{region}/services/{service}"),
        revisions,
        serving: serving.to_owned(),
        etag: 1,
        ..RunApiState::default()
    }));
    let app = axum::Router::new()
        .route("/v2/{*rest}", axum::routing::any(handle))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    RunApi {
        base: format!("http://{addr}"),
        state,
    }
}
