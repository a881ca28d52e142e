//! The gate's Slack messages: the approval window's one message, and the
//! outcome in its thread. Threads need Slack's Web API (`chat.postMessage`
//! with a bot token, which answers the message's `ts`); an incoming
//! webhook cannot thread, so with one the follow-ups are separate messages
//! that name the window.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::http_client::OffClock;
use crate::http_client::{HttpsClient, exchange, https_client};

/// Slack's Web API.
pub const DEFAULT_SLACK_API_BASE: &str = "https://slack.com/api";
/// Attempts of one message that fails in passing (429, 5xx, no answer).
pub const MAX_ATTEMPTS: u32 = 4;
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gate's messages go.
#[derive(Debug, Clone)]
pub enum SlackTarget {
    /// Nowhere (the messages are only logged).
    Off,
    /// `chat.postMessage` on `base` with a bot `token` into `channel`: threads.
    WebApi {
        /// `https://slack.com/api`, or a stand-in's URL.
        base: String,
        /// The bot token (`xoxb-…`).
        token: String,
        /// The channel id or name.
        channel: String,
    },
    /// An incoming webhook: no threads.
    Webhook {
        /// Its URL.
        url: String,
    },
}

/// A message that could not be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// Try again after this long.
    Passing(Duration, String),
    /// Slack refused it for good.
    Final(String),
}

/// Posts the gate's messages.
#[derive(Debug, Clone)]
pub struct GateSlack {
    target: SlackTarget,
    client: HttpsClient,
}

impl GateSlack {
    /// Messages to `target`.
    pub fn new(target: SlackTarget) -> Self {
        Self {
            target,
            client: https_client(),
        }
    }

    /// Whether messages go anywhere.
    pub fn is_on(&self) -> bool {
        !matches!(self.target, SlackTarget::Off)
    }

    /// Posts `text` (and `blocks`), in the thread of `thread_ts` when given
    /// and the target can thread, retrying failures in passing on the
    /// gate's clock: the message's `ts` (Web API), or why it failed.
    pub async fn post(
        &self,
        io: &OffClock,
        text: &str,
        blocks: &[Value],
        thread_ts: Option<&str>,
    ) -> Result<Option<String>, String> {
        if !self.is_on() {
            tracing::info!(message = text, "gate message (Slack off)");
            return Ok(None);
        }
        let mut attempt = 1;
        loop {
            let (me, text, blocks, thread) = (
                self.clone(),
                text.to_owned(),
                blocks.to_vec(),
                thread_ts.map(str::to_owned),
            );
            let sent = io
                .run(async move { me.post_once(&text, &blocks, thread.as_deref()).await })
                .await;
            match sent {
                Ok(ts) => return Ok(ts),
                Err(Failure::Passing(wait, why)) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(reason = %why, attempt, "Slack post failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(Failure::Passing(_, why) | Failure::Final(why)) => return Err(why),
            }
        }
    }

    async fn post_once(
        &self,
        text: &str,
        blocks: &[Value],
        thread_ts: Option<&str>,
    ) -> Result<Option<String>, Failure> {
        let (url, token, mut body) = match &self.target {
            SlackTarget::Off => return Ok(None),
            SlackTarget::WebApi {
                base,
                token,
                channel,
            } => (
                format!("{}/chat.postMessage", base.trim_end_matches('/')),
                Some(token.as_str()),
                json!({ "channel": channel, "text": text }),
            ),
            SlackTarget::Webhook { url } => (url.clone(), None, json!({ "text": text })),
        };
        if !blocks.is_empty() {
            body["blocks"] = Value::Array(blocks.to_vec());
        }
        if let (Some(ts), Some(_)) = (thread_ts, token) {
            body["thread_ts"] = json!(ts);
        }
        let mut request =
            http::Request::post(&url).header("content-type", "application/json; charset=utf-8");
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Failure::Final(format!("bad request: {e}")))?;
        let answer = exchange(&self.client, request, Some(POST_TIMEOUT), 1024 * 1024)
            .await
            .map_err(|e| Failure::Passing(Duration::from_secs(2), e.to_string()))?;
        let status = answer.status.as_u16();
        if status == 429 {
            let wait = answer
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(Failure::Passing(
                Duration::from_secs(wait.clamp(1, 60)),
                "HTTP 429 rate limited".into(),
            ));
        }
        if status >= 500 {
            return Err(Failure::Passing(
                Duration::from_secs(2),
                format!("HTTP {status}: {}", answer.text(200)),
            ));
        }
        if status != 200 {
            return Err(Failure::Final(format!(
                "HTTP {status}: {}",
                answer.text(200)
            )));
        }
        if token.is_none() {
            return Ok(None); // a webhook answers `ok`
        }
        let v: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| Failure::Final(format!("not JSON: {e}")))?;
        if v["ok"] == true {
            Ok(v["ts"].as_str().map(str::to_owned))
        } else {
            Err(Failure::Final(format!(
                "Slack refused it: {}",
                v["error"].as_str().unwrap_or("no error given")
            )))
        }
    }
}
