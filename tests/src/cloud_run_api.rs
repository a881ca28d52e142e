//! A stand-in for the Cloud Run Admin API v2 (Google's API cannot run
//! here). It checks every request as the API documents it (the discovery
//! document's paths and query parameters, a bearer token Google issued and
//! that has not expired, a PATCH that is either the whole Service, sent
//! with the template and so as its service account (`actAs`), or the
//! fields its `updateMask` names, with the current `etag`, traffic targets
//! of the documented enum summing to 100 on existing Ready revisions, split
//! among any number of them, tags unique), answers the documented shapes (Service with `LATEST` and tagged
//! traffic entries, paged `ListRevisionsResponse`, long-running
//! `Operation`), and can answer a stale etag (400 FAILED_PRECONDITION, or
//! 409 ABORTED), 503s, or a failed operation. A PATCH that leaves a tag
//! out deletes it, as Google does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use crate::google_stand_in::TOKEN;
use crate::google_stand_in::{TokenAuthority, google_error, request_line};
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

/// The caller's service account's runtime identity, in the template.
pub const RUNTIME_IDENTITY: &str = "lumen-runtime@lumen-demo.iam.gserviceaccount.com";

/// What the stand-in holds and saw.
#[derive(Debug, Default)]
pub struct RunApiState {
    /// `projects/P/locations/R/services/S`.
    pub service_name: String,
    /// The revisions, oldest first.
    pub revisions: Vec<StandInRevision>,
    /// The revision taking traffic (all of it).
    pub serving: String,
    /// Whether it takes it through a `LATEST` entry (as after a plain
    /// deploy) rather than by name.
    pub latest_traffic: bool,
    /// When traffic is split: each revision taking some and its percent
    /// (`serving` is then the one with the most); empty when `serving`
    /// takes it all.
    pub split: Vec<(String, u64)>,
    /// Every traffic split set, in order (`revision percent%, …`).
    pub splits_set: Vec<String>,
    /// Tag-only traffic entries (0 %): tag → revision. Each has its own URL.
    pub tags: Vec<(String, String)>,
    /// The service's etag.
    pub etag: u64,
    /// Operations: name → (polls so far, the change they carry out).
    pub operations: BTreeMap<String, (u32, Change)>,
    /// The service-level `scaling.minInstanceCount`, once set.
    pub min_instances: Option<u64>,
    /// Every request: `METHOD path?query`.
    pub requests: Vec<String>,
    /// Each accepted PATCH body.
    pub patches: Vec<Value>,
    /// Requests refused as not what the API documents (a test that sees any has found a bug).
    pub violations: Vec<String>,
    /// The PATCHes that arrived with a stale etag (someone changed the service).
    pub conflicts_left: u32,
    /// Answer a stale etag 409 ABORTED instead of 400 FAILED_PRECONDITION
    /// (AIP-154 allows both; Cloud Run's own choice is not documented).
    pub stale_etag_aborted: bool,
    /// Answer 503 to this many requests.
    pub unavailable_left: u32,
    /// Fail the next operation (done with an error).
    pub fail_operation: bool,
    /// Apply the next accepted PATCH at once but answer it 500, as when the
    /// answer is lost after the change landed.
    pub apply_then_fail: bool,
    /// Whether the caller may act as [`RUNTIME_IDENTITY`]
    /// (`iam.serviceAccounts.actAs`): a PATCH that sends the template needs it.
    pub caller_can_act_as: bool,
    /// The tokens Google would accept.
    pub authority: TokenAuthority,
}

/// What an accepted PATCH changes once its operation completes.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The revision taking all (or the most) traffic, and whether through `LATEST`.
    pub traffic: Option<(String, bool)>,
    /// The split, when more than one revision takes traffic (else empty).
    pub split: Option<Vec<(String, u64)>>,
    /// The tag-only entries after it.
    pub tags: Option<Vec<(String, String)>>,
    /// The minimum instances.
    pub min_instances: Option<u64>,
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

    /// The tokens it accepts.
    pub fn authority(&self) -> TokenAuthority {
        self.state().authority.clone()
    }
}

fn service_json(s: &RunApiState) -> Value {
    let mut v = service_body(s);
    if let Some(n) = s.min_instances {
        v["scaling"] = json!({ "minInstanceCount": n });
    }
    v
}

fn latest_ready(s: &RunApiState) -> &str {
    s.revisions
        .iter()
        .rev()
        .find(|r| r.ready)
        .map_or("", |r| r.name.as_str())
}

fn service_body(s: &RunApiState) -> Value {
    let service_id = s.service_name.rsplit('/').next().unwrap_or("");
    let (mut traffic, mut statuses) = if s.latest_traffic {
        (
            vec![json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100})],
            vec![json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100})],
        )
    } else if !s.split.is_empty() {
        let entries: Vec<Value> = s
            .split
            .iter()
            .map(|(r, p)| json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": r, "percent": p}))
            .collect();
        (entries.clone(), entries)
    } else {
        let entry = json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": s.serving, "percent": 100});
        (vec![entry.clone()], vec![entry])
    };
    for (tag, revision) in &s.tags {
        // A tag-only entry: no percent (0), its own URL.
        traffic.push(json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "tag": tag}));
        statuses.push(json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "tag": tag,
            "uri": format!("https://{tag}---{service_id}-7x2kq3vbma-ew.a.run.app")}));
    }
    json!({
        "name": s.service_name,
        "uid": "7f1c0000-0000-4000-8000-000000000001",
        "generation": s.etag.to_string(),
        "etag": format!("\"{}\"", s.etag),
        "template": {
            "serviceAccount": RUNTIME_IDENTITY,
            "containers": [{"name": "app", "image": "europe-docker.pkg.dev/p/r/app@sha256:9f2c"}],
        },
        "traffic": traffic,
        "trafficStatuses": statuses,
        "latestReadyRevision": format!("{}/revisions/{}", s.service_name, latest_ready(s)),
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
            (k.to_owned(), v.replace("%2C", ",").replace("%2c", ","))
        })
        .collect()
}

type Refusal = (StatusCode, &'static str, String);
/// The revisions with traffic, their percents and whether through
/// LATEST, and the tags.
type Traffic = (Vec<(String, u64, bool)>, Vec<(String, String)>);

/// Checks the traffic targets of a PATCH: the revision taking all traffic
/// (and whether through LATEST) and the tag-only entries.
fn check_traffic(s: &RunApiState, targets: &[Value]) -> Result<Traffic, Refusal> {
    let bad = |m: String| Err((StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m));
    let mut sum = 0;
    let mut taking: Vec<(String, u64, bool)> = Vec::new();
    let mut tags = Vec::new();
    for t in targets {
        let percent = t["percent"].as_u64().unwrap_or(0);
        let revision = match t["type"].as_str() {
            Some("TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION") => {
                let Some(name) = t["revision"].as_str() else {
                    return bad(format!("a REVISION target without revision: {t}"));
                };
                match s.revisions.iter().find(|r| r.name == name) {
                    None => return bad(format!("revision {name} not found")),
                    Some(r) if !r.ready && percent > 0 => {
                        return Err((
                            StatusCode::BAD_REQUEST,
                            "FAILED_PRECONDITION",
                            format!("revision {name} is not ready"),
                        ));
                    }
                    Some(_) => name.to_owned(),
                }
            }
            Some("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST") => latest_ready(s).to_owned(),
            other => return bad(format!("traffic type {other:?}")),
        };
        if let Some(tag) = t["tag"].as_str() {
            if tags.iter().any(|(t, _)| t == tag) {
                return bad(format!("tag {tag} given twice"));
            }
            tags.push((tag.to_owned(), revision.clone()));
        }
        if percent > 100 {
            return bad(format!("percent {percent}: from 0 to 100"));
        }
        if percent > 0 {
            if taking.iter().any(|(r, _, _)| *r == revision) {
                return bad(format!("revision {revision} given twice"));
            }
            let latest = t["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
            taking.push((revision, percent, latest));
        }
        sum += percent;
    }
    if sum != 100 {
        return bad(format!("traffic percents sum to {sum}, not 100"));
    }
    if taking.is_empty() {
        return bad("no revision".into());
    }
    Ok((taking, tags))
}

/// Checks a PATCH body against the current service under `mask` (empty:
/// the whole Service replaces the old one); `Err` says what the real API
/// would refuse.
fn check_patch(s: &RunApiState, body: &Value, mask: &[String]) -> Result<Change, Refusal> {
    let bad = |m: String| Err((StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m));
    let whole = mask.is_empty();
    for field in mask {
        if !["traffic", "scaling.minInstanceCount", "scaling"].contains(&field.as_str()) {
            return bad(format!("updateMask: the stand-in does not take {field}"));
        }
    }
    let masked = |f: &str| {
        whole
            || mask
                .iter()
                .any(|m| m == f || f.starts_with(&format!("{m}.")))
    };
    let mut change = Change::default();
    if masked("scaling.minInstanceCount") {
        change.min_instances = match body.get("scaling") {
            None if whole => None,
            Some(scaling) => match scaling["minInstanceCount"].as_u64() {
                Some(n) if n <= 1000 => Some(n),
                _ => {
                    return bad(format!(
                        "scaling.minInstanceCount {scaling}: an integer from 0 to 1000"
                    ));
                }
            },
            None => return bad("updateMask names scaling; the body has none".into()),
        };
    }
    if whole {
        if body["template"] != service_json(s)["template"] {
            return bad("the body is not the whole Service: its template would be replaced".into());
        }
        // Sending the template deploys as its service account.
        if !s.caller_can_act_as {
            return Err((
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!(
                    "Permission 'iam.serviceaccounts.actAs' denied on service account {RUNTIME_IDENTITY} (or it may not exist)."
                ),
            ));
        }
    }
    if masked("traffic") {
        let Some(targets) = body["traffic"].as_array() else {
            return bad("no traffic".into());
        };
        let (taking, tags) = check_traffic(s, targets)?;
        let top = taking
            .iter()
            .max_by_key(|(_, p, _)| *p)
            .expect("at least one");
        if taking.len() == 1 {
            change.traffic = Some((top.0.clone(), top.2));
            change.split = Some(Vec::new());
        } else {
            change.traffic = Some((top.0.clone(), false));
            change.split = Some(taking.iter().map(|(r, p, _)| (r.clone(), *p)).collect());
        }
        change.tags = Some(tags);
    }
    Ok(change)
}

fn apply_traffic(s: &mut RunApiState, change: &Change) {
    if let Some((serving, latest)) = &change.traffic {
        s.serving = serving.clone();
        s.latest_traffic = *latest;
        let split = change.split.clone().unwrap_or_default();
        s.splits_set.push(if split.is_empty() {
            format!("{serving} 100%")
        } else {
            split
                .iter()
                .map(|(r, p)| format!("{r} {p}%"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        s.split = split;
    }
    if let Some(tags) = &change.tags {
        s.tags = tags.clone();
    }
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
    if let Some((answer, violation)) = s.authority.check(&method, &path, &headers) {
        s.violations.extend(violation);
        return answer;
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
            let Some((polls, change)) = s.operations.get(&name).cloned() else {
                return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such operation");
            };
            let polls = polls + 1;
            s.operations.insert(name.clone(), (polls, change.clone()));
            let mut op = json!({
                "name": name,
                "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"},
                "done": polls > POLLS_BEFORE_DONE,
            });
            if polls > POLLS_BEFORE_DONE {
                if s.fail_operation {
                    op["error"] = json!({"code": 9, "message": "Revision is not ready and cannot serve traffic."});
                } else if polls == POLLS_BEFORE_DONE + 1 {
                    apply_traffic(&mut s, &change);
                    if change.min_instances.is_some() {
                        s.min_instances = change.min_instances;
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
            if body.get("etag").is_some() && body["etag"] != json!(format!("\"{}\"", s.etag)) {
                // AIP-154: a stale etag fails the precondition.
                return if s.stale_etag_aborted {
                    google_error(
                        StatusCode::CONFLICT,
                        "ABORTED",
                        "etag mismatch: the service changed since it was read",
                    )
                } else {
                    google_error(
                        StatusCode::BAD_REQUEST,
                        "FAILED_PRECONDITION",
                        "The provided etag does not match the current etag of the resource.",
                    )
                };
            }
            let mask: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "updateMask")
                .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                .filter(|f| !f.is_empty())
                .collect();
            match check_patch(&s, &body, &mask) {
                // Permission denied is Google's answer to a caller without
                // the role, not a malformed request.
                Err((status, code, message)) if status == StatusCode::FORBIDDEN => {
                    google_error(status, code, &message)
                }
                Err((status, code, message)) => {
                    s.violations.push(format!("PATCH refused: {message}"));
                    google_error(status, code, &message)
                }
                Ok(change) if s.apply_then_fail => {
                    s.apply_then_fail = false;
                    apply_traffic(&mut s, &change);
                    s.etag += 1;
                    s.patches.push(body);
                    google_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "INTERNAL",
                        "internal error",
                    )
                }
                Ok(change) => {
                    let n = s.operations.len() + 1;
                    let location = s
                        .service_name
                        .split("/services/")
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let name = format!("{location}/operations/op-{n}");
                    s.operations.insert(name.clone(), (0, change));
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
