//! The gate's small HTTP API: `GET /v1/gate` (the status), `POST
//! /v1/gate/approve` and `POST /v1/gate/veto` (`{"window": ID, "by": WHO}`,
//! the window required) acting on that approval window; commands come as
//! JSON from no other site ([`crate::listen::guard`]), and with a token
//! configured each request must carry `Authorization: Bearer TOKEN`; and
//! `POST /slack/interactions`, the window message's buttons as Slack
//! sends their clicks ([`super::slack_interactions`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::machine::{GateEvent, GateState};
use super::rollout::{RolloutPhase, RolloutRequest, RolloutStatus};
use super::slack_interactions::{Decision, SlackDecisions};
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
    /// Decisions from Slack's buttons, when configured.
    slack: Option<Arc<SlackDecisions>>,
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

/// `GET /`: the gate's page (the rollout and its charts), under the same
/// token as the status.
async fn page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if !crate::listen::guard::bearer_ok(&headers, state.token.as_deref()) {
        return refused(StatusCode::UNAUTHORIZED, "bearer token required".into());
    }
    let s = lock(&state.shared).snapshot();
    let state_text = super::watch::status_text(&s);
    let first_line = state_text.lines().next().unwrap_or_default().to_owned();
    axum::response::Html(super::rollout_page::rollout_page(
        &s.service,
        &first_line,
        s.rollout.as_ref(),
    ))
    .into_response()
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
    match decide(state, cmd.window.as_deref(), &who, approve) {
        Ok(event) => Json(json!({ "accepted": true, "event": &event })).into_response(),
        Err((status, why)) => refused(status, why),
    }
}

/// `POST /v1/gate/rollout`: a rollout for the gate to carry out from its
/// next reading, as a command (JSON, from no other site, with the token
/// or an approver's); refused while a rollout runs or a window is open.
async fn start_rollout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = if state.approvers.is_empty() {
        state.token.as_deref()
    } else {
        None
    };
    if let Some((status, why)) = crate::listen::guard::command_refusal(&headers, token) {
        return refused(status, why);
    }
    let request: RolloutRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("the body is not a rollout ({{\"to\": REVISION, …}}): {e}"),
            );
        }
    };
    let plan = match request.plan() {
        Ok(p) => p,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    let who = match decider(&state, &headers, request.by.clone()) {
        Ok(who) => who,
        Err((status, why)) => return refused(status, why),
    };
    let mut s = lock(&state.shared);
    if let Some(r) = &s.status.rollout
        && matches!(r.phase, RolloutPhase::Starting | RolloutPhase::Stepping)
    {
        return refused(
            StatusCode::CONFLICT,
            format!("a rollout of {} is running", r.plan.to),
        );
    }
    if matches!(
        s.machine.state(),
        GateState::Open(_) | GateState::RollingBack { .. }
    ) {
        return refused(
            StatusCode::CONFLICT,
            "an approval window is open: decide it first".into(),
        );
    }
    tracing::info!(to = %plan.to, by = %who, "rollout asked for");
    let mut rollout = RolloutStatus::new(plan);
    rollout.started_by = Some(who);
    s.status.rollout = Some(rollout);
    (StatusCode::ACCEPTED, Json(s.snapshot())).into_response()
}

/// Approves or vetoes window `window` for `who` on the gate's clock and
/// hands the event to the gate: the event, or why nothing changed.
fn decide(
    state: &ApiState,
    window: Option<&str>,
    who: &str,
    approve: bool,
) -> Result<GateEvent, (StatusCode, String)> {
    let decided = {
        let mut s = lock(&state.shared);
        let now = s.now_ms();
        if approve {
            s.machine.approve(window, who, now)
        } else {
            s.machine.veto(window, who)
        }
    };
    let event = decided.map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
    state.events.send(event.clone()).map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the gate is stopping".to_owned(),
        )
    })?;
    Ok(event)
}

/// `POST /slack/interactions`: a button click, verified as Slack signs it
/// (401, nothing changed, when it does not verify), taken once, from an
/// approver only; the clicker hears the outcome, and a decision replaces
/// the window's message so its buttons cannot be pressed twice.
async fn slack_interaction(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(slack) = state.slack.clone() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Slack interactions are off (no --slack-signing-secret)".into(),
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now_s = crate::app::now_ms() / 1000;
    let click = match slack.click(
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        now_s,
    ) {
        Ok(click) => click,
        Err(e) => {
            tracing::warn!(error = %e, "a Slack interaction was refused");
            return refused(StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    if !slack.first_time(&click, now_s) {
        tracing::warn!(trigger = %click.trigger_id, "a Slack interaction was sent again; not taken twice");
        return StatusCode::OK.into_response();
    }
    tokio::spawn(async move {
        let answer = match slack.may_decide(&click.user_id).await {
            Ok(true) => {
                let who = click.who();
                let approve = click.decision == Decision::Approve;
                match decide(&state, Some(&click.window), &who, approve) {
                    Ok(_) => {
                        let text = format!(
                            "{} window {} ({}): {} by {who}.",
                            if approve {
                                ":rotating_light:"
                            } else {
                                ":no_entry:"
                            },
                            click.window,
                            crate::render::format::utc(crate::app::now_ms()),
                            if approve {
                                "rollback approved"
                            } else {
                                "vetoed"
                            },
                        );
                        slack.answer(&click.response_url, &text, true).await;
                        return;
                    }
                    Err((_, why)) => format!("Nothing changed: {why}."),
                }
            }
            Ok(false) => "Nothing changed: you are not one of the gate's approvers.".to_owned(),
            Err(e) => format!("Nothing changed: the approvers could not be checked ({e})."),
        };
        slack.answer(&click.response_url, &answer, false).await;
    });
    StatusCode::OK.into_response()
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

/// The API's routes over the gate's shared state; with `slack`, `POST
/// /slack/interactions` takes decisions from Slack's buttons through it.
pub fn router(
    shared: SharedGate,
    events: mpsc::UnboundedSender<GateEvent>,
    token: Option<String>,
    approvers: Vec<(String, String)>,
    slack: Option<Arc<SlackDecisions>>,
) -> axum::Router {
    axum::Router::new()
        .route("/", get(page))
        .route("/v1/gate", get(status))
        .route("/v1/gate/approve", post(approve))
        .route("/v1/gate/veto", post(veto))
        .route("/v1/gate/rollout", post(start_rollout))
        .route("/slack/interactions", post(slack_interaction))
        .with_state(ApiState {
            shared,
            events,
            token: token.map(Arc::from),
            approvers: approvers.into(),
            slack,
        })
}
