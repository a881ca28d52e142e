//! A stand-in for Slack's Web API `chat.postMessage` (Slack cannot run
//! here). It checks each request as Slack documents it — `POST
//! /api/chat.postMessage`, `Authorization: Bearer xoxb-…`, a JSON body
//! with `channel`, a `text` string, `blocks` of `mrkdwn` sections, and a
//! `thread_ts` only of a message it posted — and answers `{"ok": true,
//! "channel", "ts", "message"}`; it can answer 5xx, 429 with
//! `Retry-After`, or `{"ok": false, "error"}` as Slack does.

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

/// Starts the stand-in on a loopback port.
pub async fn slack_api() -> SlackApi {
    let state = Arc::new(Mutex::new(SlackState::default()));
    let (tx, rx) = watch::channel(0);
    let app = axum::Router::new()
        .route("/api/chat.postMessage", axum::routing::post(post))
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
