//! A stand-in for Slack's Web API `chat.postMessage` (Slack cannot run
//! here). It checks each request as Slack documents it — `POST
//! /api/chat.postMessage`, `Authorization: Bearer xoxb-…`, a JSON body
//! with `channel`, a `text` string, `blocks` of `mrkdwn` sections, and a
//! `thread_ts` only of a message it posted — and answers `{"ok": true,
//! "channel", "ts", "message"}`; it can answer 5xx, 429 with
//! `Retry-After`, or `{"ok": false, "error"}` as Slack does. It also
//! answers `usergroups.users.list`, takes what an app posts to an
//! interaction's `response_url`, and clicks a message's buttons as Slack
//! does: a form with the `block_actions` payload, signed with the app's
//! signing secret (`X-Slack-Signature`, v0 HMAC-SHA256).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The bot token the stand-in accepts.
pub const BOT_TOKEN: &str = "xoxb-0000-stand-in";
/// The channel it knows.
pub const CHANNEL: &str = "C0LUMENGATE";

/// One posted message.
#[derive(Debug, Clone)]
pub struct PostedMessage {
    /// Its `ts`.
    pub ts: String,
    /// The thread it was posted in.
    pub thread_ts: Option<String>,
    /// Its `text`.
    pub text: String,
    /// Its blocks' text, joined.
    pub blocks_text: String,
}

/// What the stand-in saw.
#[derive(Debug, Default)]
pub struct SlackState {
    /// Accepted messages, in order.
    pub messages: Vec<PostedMessage>,
    /// Requests refused as not what Slack documents (a test that sees any has found a bug).
    pub violations: Vec<String>,
    /// Answer 500 to this many posts.
    pub fail_next: u32,
    /// Answer 429 (`Retry-After: 1`) to this many posts.
    pub rate_limit_next: u32,
    /// Answer `{"ok": false, "error": "channel_not_found"}` to every post.
    pub refuse_all: bool,
    /// Posts answered with an error.
    pub failed_posts: u32,
    /// User groups and their members, for `usergroups.users.list`.
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// What apps posted to interactions' `response_url`s, in order.
    pub responses: Vec<Value>,
    /// The buttons of accepted messages: `(message ts, action_id, value)`.
    pub buttons: Vec<(String, String, String)>,
}

/// A running stand-in.
#[derive(Debug, Clone)]
pub struct SlackApi {
    /// Its base URL (as `--slack-api-base` takes it).
    pub base: String,
    state: Arc<Mutex<SlackState>>,
    posted: watch::Receiver<usize>,
}

impl SlackApi {
    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, SlackState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until at least `n` messages were accepted.
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.posted.clone();
        rx.wait_for(|posted| *posted >= n)
            .await
            .expect("the stand-in runs");
    }
}

fn check(headers: &HeaderMap, body: &[u8], known_ts: &[String]) -> Result<Value, String> {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {BOT_TOKEN}"))
    {
        return Err("no bot token".into());
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err("content-type is not application/json".into());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["channel"] != CHANNEL {
        return Err(format!("channel {}", v["channel"]));
    }
    if !v["text"].is_string() {
        return Err("no text".into());
    }
    if let Some(blocks) = v.get("blocks") {
        let blocks = blocks.as_array().ok_or("blocks is not a list")?;
        if blocks.len() > 50 {
            return Err("more than 50 blocks".into());
        }
        for b in blocks {
            if b["type"] == "actions" {
                let elements = b["elements"].as_array().ok_or("actions without elements")?;
                if elements.is_empty() || elements.len() > 25 {
                    return Err("an actions block holds 1 to 25 elements".into());
                }
                for e in elements {
                    let ok = e["type"] == "button"
                        && e["text"]["type"] == "plain_text"
                        && e["text"]["text"]
                            .as_str()
                            .is_some_and(|t| t.chars().count() <= 75)
                        && e["action_id"].as_str().is_some_and(|a| a.len() <= 255)
                        && e["value"].as_str().is_some_and(|v| v.len() <= 2000)
                        && e.get("style")
                            .is_none_or(|s| s == "primary" || s == "danger");
                    if !ok {
                        return Err(format!("button {e}"));
                    }
                }
                continue;
            }
            if b["type"] != "section" || b["text"]["type"] != "mrkdwn" {
                return Err(format!("block {b}"));
            }
            if b["text"]["text"]
                .as_str()
                .is_none_or(|t| t.chars().count() > 3000)
            {
                return Err("a section's text is missing or over 3000 characters".into());
            }
        }
    }
    if let Some(ts) = v.get("thread_ts") {
        let ts = ts.as_str().ok_or("thread_ts is not a string")?;
        if !known_ts.iter().any(|k| k == ts) {
            return Err(format!("thread_ts {ts} is no message's ts"));
        }
    }
    Ok(v)
}

/// The stand-in's shared state and the count of accepted messages.
type Shared = (Arc<Mutex<SlackState>>, Arc<watch::Sender<usize>>);

async fn post(State((state, tx)): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    if s.fail_next > 0 {
        s.fail_next -= 1;
        s.failed_posts += 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "rollup_error").into_response();
    }
    if s.rate_limit_next > 0 {
        s.rate_limit_next -= 1;
        s.failed_posts += 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
    }
    let known: Vec<String> = s.messages.iter().map(|m| m.ts.clone()).collect();
    let v = match check(&headers, &body, &known) {
        Ok(v) => v,
        Err(why) => {
            s.violations.push(why.clone());
            return axum::Json(json!({"ok": false, "error": "invalid_arguments", "detail": why}))
                .into_response();
        }
    };
    if s.refuse_all {
        s.failed_posts += 1;
        return axum::Json(json!({"ok": false, "error": "channel_not_found"})).into_response();
    }
    let ts = format!("1796190000.{:06}", s.messages.len() + 1);
    let blocks_text = v["blocks"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .filter_map(|b| b["text"]["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    for b in v["blocks"].as_array().into_iter().flatten() {
        for e in b["elements"].as_array().into_iter().flatten() {
            s.buttons.push((
                ts.clone(),
                e["action_id"].as_str().unwrap_or_default().to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    s.messages.push(PostedMessage {
        ts: ts.clone(),
        thread_ts: v["thread_ts"].as_str().map(str::to_owned),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
        blocks_text,
    });
    let n = s.messages.len();
    drop(s);
    tx.send_replace(n);
    axum::Json(json!({
        "ok": true,
        "channel": CHANNEL,
        "ts": ts,
        "message": {"type": "message", "text": v["text"], "ts": ts},
    }))
    .into_response()
}

/// `usergroups.users.list?usergroup=S…` with the bot token.
async fn group_users(
    State((state, _)): State<Shared>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {BOT_TOKEN}"))
    {
        return axum::Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    let group = query
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("usergroup=").map(str::to_owned));
    let s = state.lock().unwrap_or_else(PoisonError::into_inner);
    match group.and_then(|g| s.groups.get(&g).cloned()) {
        Some(users) => axum::Json(json!({"ok": true, "users": users})).into_response(),
        None => axum::Json(json!({"ok": false, "error": "no_such_subteam"})).into_response(),
    }
}

/// What an app posts to an interaction's `response_url`.
async fn response_url(
    State((state, tx)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if json && v["text"].is_string() => {
            s.responses.push(v);
            // The count of messages stays; the change wakes who waits.
            let n = s.messages.len();
            drop(s);
            tx.send_replace(n);
            StatusCode::OK.into_response()
        }
        _ => {
            s.violations
                .push("a response_url post that is not a JSON message".into());
            (StatusCode::BAD_REQUEST, "invalid_payload").into_response()
        }
    }
}

/// One button click as Slack sends it.
#[derive(Debug, Clone)]
pub struct Click {
    /// The button's `action_id`.
    pub action_id: String,
    /// Its `value`.
    pub value: String,
    /// Who clicked (a Slack user id).
    pub user: String,
    /// The interaction's id (Slack's retries repeat it).
    pub trigger_id: String,
    /// When it was sent, Unix seconds.
    pub timestamp_s: u64,
}

impl SlackApi {
    /// The form body Slack sends for `click`, with the `response_url` of
    /// this stand-in.
    pub fn click_body(&self, click: &Click) -> String {
        let payload = json!({
            "type": "block_actions",
            "user": { "id": click.user, "username": click.user.to_lowercase() },
            "team": { "id": "T0LUMEN" },
            "trigger_id": click.trigger_id,
            "response_url": format!("{}/actions/T0LUMEN/1/{}", self.base.trim_end_matches("/api"), click.trigger_id),
            "actions": [{ "type": "button", "action_id": click.action_id, "value": click.value }],
        });
        let mut encoded = String::new();
        for b in payload.to_string().bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("payload={encoded}")
    }

    /// Sends `body` to the app's interactivity URL `url` as Slack does,
    /// signed with `secret` at `timestamp_s` (or with `signature` as
    /// given): the app's status.
    pub async fn send_interaction(
        url: &str,
        secret: &[u8],
        timestamp_s: u64,
        body: &str,
        signature: Option<&str>,
    ) -> u16 {
        let ts = timestamp_s.to_string();
        let signature = signature.map_or_else(|| slack_signature(secret, &ts, body), str::to_owned);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let request = http::Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature)
            .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
            .expect("a request");
        client
            .request(request)
            .await
            .expect("the app answers")
            .status()
            .as_u16()
    }

    /// Waits until messages and `response_url` posts number at least `n`.
    pub async fn wait_for_total(&self, n: usize) {
        let mut rx = self.posted.clone();
        rx.wait_for(|_| {
            let s = self.state();
            s.messages.len() + s.responses.len() >= n
        })
        .await
        .expect("the stand-in runs");
    }
}

/// Slack's signature of `body` at `timestamp` (`v0=` and the hex of the
/// HMAC-SHA256 of `v0:TIMESTAMP:BODY` under the signing secret), computed
/// here as Slack documents it.
pub fn slack_signature(secret: &[u8], timestamp: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Starts the stand-in on a loopback port.
pub async fn slack_api() -> SlackApi {
    let state = Arc::new(Mutex::new(SlackState::default()));
    let (tx, rx) = watch::channel(0);
    let app = axum::Router::new()
        .route("/api/chat.postMessage", axum::routing::post(post))
        .route(
            "/api/usergroups.users.list",
            axum::routing::get(group_users),
        )
        .route(
            "/actions/{team}/{n}/{id}",
            axum::routing::post(response_url),
        )
        .with_state((Arc::clone(&state), Arc::new(tx)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    SlackApi {
        base: format!("http://{addr}/api"),
        state,
        posted: rx,
    }
}
