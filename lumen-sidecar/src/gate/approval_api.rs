//! The gate's small HTTP API: `GET /v1/gate` (the status), `POST
//! /v1/gate/approve` and `POST /v1/gate/veto` (`{"window": ID, "by": WHO}`,
//! the window required) acting on that approval window; commands come as
//! JSON from no other site ([`crate::listen::guard`]), and with a token
//! configured each request must carry `Authorization: Bearer TOKEN`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::machine::GateEvent;
use super::watch::{SharedGate, lock};

/// A command's body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateCommand {
    /// The window's id (the one the Slack message names); required.
    #[serde(default)]
    pub window: Option<String>,
    /// Who decides, for the record.
    #[serde(default)]
    pub by: Option<String>,
}

#[derive(Clone)]
struct ApiState {
    shared: SharedGate,
    events: mpsc::UnboundedSender<GateEvent>,
    token: Option<Arc<str>>,
    /// Approvers' names and tokens: when any are set, a command's token
    /// says who decides.
    approvers: Arc<[(String, String)]>,
}

/// Reads `NAME=TOKEN,NAME=TOKEN`; names and tokens must not be empty.
pub fn parse_approvers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, token)) if !name.trim().is_empty() && !token.trim().is_empty() => {
                Ok((name.trim().to_owned(), token.trim().to_owned()))
            }
            _ => Err("--approvers: NAME=TOKEN pairs, comma-separated (a pair is malformed; not shown: it may hold a token)".to_owned()),
        })
        .collect()
}

/// Who decides: with approvers configured, the holder of the command's
/// token (`Err` when it is none of theirs, or `by` names someone else);
/// without, the name claimed, marked as such.
fn decider(
    state: &ApiState,
    headers: &HeaderMap,
    by: Option<String>,
) -> Result<String, (StatusCode, String)> {
    if state.approvers.is_empty() {
        let claimed = by.unwrap_or_else(|| "someone".into());
        return Ok(match &state.token {
            Some(_) => format!("{claimed} (claimed; holder of the gate's token)"),
            None => format!("{claimed} (claimed)"),
        });
    }
    let holder = state
        .approvers
        .iter()
        .find(|(_, token)| crate::listen::guard::bearer_ok(headers, Some(token.as_str())));
    match (holder, by) {
        (None, _) => Err((
            StatusCode::UNAUTHORIZED,
            "authorization: an approver's bearer token is required".into(),
        )),
        (Some((name, _)), Some(by)) if by != *name => Err((
            StatusCode::FORBIDDEN,
            format!("by: the token is {name}'s, not {by:?}'s"),
        )),
        (Some((name, _)), _) => Ok(name.clone()),
    }
}

fn refused(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn status(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if !crate::listen::guard::bearer_ok(&headers, state.token.as_deref()) {
        return refused(StatusCode::UNAUTHORIZED, "bearer token required".into());
    }
    let s = lock(&state.shared).snapshot();
    Json(s).into_response()
}

fn command(state: &ApiState, headers: &HeaderMap, body: &[u8], approve: bool) -> Response {
    // JSON from this site with the token: a web page cannot decide. (With
    // approvers, their tokens are checked when the decider is found.)
    let token = if state.approvers.is_empty() {
        state.token.as_deref()
    } else {
        None
    };
    if let Some((status, why)) = crate::listen::guard::command_refusal(headers, token) {
        return refused(status, why);
    }
    let cmd: GateCommand = if body.iter().all(u8::is_ascii_whitespace) {
        GateCommand::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(c) => c,
            Err(e) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not {{\"window\": ID, \"by\": WHO}}: {e}"),
                );
            }
        }
    };
    // A decision names the window it is about: never whatever is open.
    if cmd.window.is_none() {
        return refused(
            StatusCode::BAD_REQUEST,
            "window: name the window (its Slack message gives its id)".into(),
        );
    }
    let who = match decider(state, headers, cmd.by) {
        Ok(who) => who,
        Err((status, why)) => return refused(status, why),
    };
    let decided = {
        let mut s = lock(&state.shared);
        if approve {
            s.machine.approve(cmd.window.as_deref(), &who)
        } else {
            s.machine.veto(cmd.window.as_deref(), &who)
        }
    };
    match decided {
        Ok(event) => {
            let answer = json!({ "accepted": true, "event": &event });
            if state.events.send(event).is_err() {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gate is stopping".into(),
                );
            }
            Json(answer).into_response()
        }
        Err(e) => refused(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn approve(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    command(&state, &headers, &body, true)
}

async fn veto(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    command(&state, &headers, &body, false)
}

/// The API's routes over the gate's shared state.
pub fn router(
    shared: SharedGate,
    events: mpsc::UnboundedSender<GateEvent>,
    token: Option<String>,
    approvers: Vec<(String, String)>,
) -> axum::Router {
    axum::Router::new()
        .route("/v1/gate", get(status))
        .route("/v1/gate/approve", post(approve))
        .route("/v1/gate/veto", post(veto))
        .with_state(ApiState {
            shared,
            events,
            token: token.map(Arc::from),
            approvers: approvers.into(),
        })
}
