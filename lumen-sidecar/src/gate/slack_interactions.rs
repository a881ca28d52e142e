//! Approve and veto from Slack, by who Slack's signature proves. The
//! window's message carries Approve and Veto buttons ([`buttons`]); a
//! click reaches `POST /slack/interactions` as Slack sends it: a form with
//! one `payload` (JSON), signed `X-Slack-Signature: v0=HEX`, the HMAC-SHA256
//! of `v0:TIMESTAMP:BODY` under the app's signing secret, with the time in
//! `X-Slack-Request-Timestamp`. A request is taken only when the signature
//! verifies, its timestamp is within five minutes, its interaction was not
//! taken before (Slack retries; a replay is refused), and its user is an
//! approver (listed by Slack user id, or a member of the listed user
//! group, asked of the Web API). Anything else changes nothing; the clicker
//! is told why in a message only they see.
//!
//! Verifying and reading the request are pure ([`verify`], [`Click::read`]);
//! the user group and the answers to Slack go through [`SlackDecisions`].

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use thiserror::Error;

use crate::http_client::{HttpsClient, OffClock, exchange, https_client};

/// The Approve button's action id.
pub const APPROVE_ACTION: &str = "lumen_gate_approve";
/// The Veto button's action id.
pub const VETO_ACTION: &str = "lumen_gate_veto";
/// How far a request's timestamp may be from now (Slack's advice).
pub const MAX_SKEW_S: u64 = 300;
/// Interactions remembered against replays (each for [`MAX_SKEW_S`]).
pub const SEEN_KEPT: usize = 4096;
/// Largest interaction body taken.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a user group's members are trusted before asking again.
const GROUP_TTL: Duration = Duration::from_secs(60);
/// How long one call to Slack may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an interaction request was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InteractionError {
    /// A header Slack always sends is missing or not text.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The timestamp is not a number of seconds.
    #[error("X-Slack-Request-Timestamp: not a Unix time")]
    BadTimestamp,
    /// The timestamp is too far from now: an old request replayed.
    #[error("X-Slack-Request-Timestamp: {age_s} s from now, more than {MAX_SKEW_S} s")]
    Stale {
        /// How far from now, seconds.
        age_s: u64,
    },
    /// The signature does not verify under the signing secret.
    #[error("X-Slack-Signature does not verify")]
    BadSignature,
    /// The body is not a form with a JSON `payload` of a button click.
    #[error("not a Slack button click: {0}")]
    NotAClick(String),
}

/// Checks a request as Slack signs it: `signature` (`v0=HEX`) is the
/// HMAC-SHA256 of `v0:{timestamp}:{body}` under `secret`, and `timestamp`
/// is within [`MAX_SKEW_S`] of `now_s`. Constant time in the signature.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_s: u64,
) -> Result<(), InteractionError> {
    let at: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| InteractionError::BadTimestamp)?;
    let age_s = now_s.abs_diff(at);
    if age_s > MAX_SKEW_S {
        return Err(InteractionError::Stale { age_s });
    }
    let tag = signature
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or(InteractionError::BadSignature)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut signed = format!("v0:{}:", timestamp.trim()).into_bytes();
    signed.extend_from_slice(body);
    ring::hmac::verify(&key, &signed, &tag).map_err(|_| InteractionError::BadSignature)
}

/// Slack's signature of `body` at `timestamp` under `secret` (`v0=HEX`):
/// what [`verify`] checks, for stand-ins that sign as Slack does.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut signed = format!("v0:{timestamp}:").into_bytes();
    signed.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &signed);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The buttons of window `window_id`'s message.
pub fn buttons(window_id: &str) -> Value {
    json!({
        "type": "actions",
        "block_id": "lumen_gate_decision",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "style": "danger",
                "text": { "type": "plain_text", "text": "Approve rollback" },
                "value": window_id,
            },
            {
                "type": "button",
                "action_id": VETO_ACTION,
                "text": { "type": "plain_text", "text": "Veto" },
                "value": window_id,
            },
        ],
    })
}

/// What a click asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Roll back now.
    Approve,
    /// Leave the revision alone.
    Veto,
}

/// One button click, as the payload says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// Approve or veto.
    pub decision: Decision,
    /// The window the button belongs to.
    pub window: String,
    /// Who clicked: their Slack user id…
    pub user_id: String,
    /// …and name, for the record.
    pub user_name: String,
    /// Unique per interaction: what a replay repeats.
    pub trigger_id: String,
    /// Where to answer the clicker (and update the message).
    pub response_url: String,
}

impl Click {
    /// Reads a form body `payload=JSON` of a `block_actions` interaction
    /// with one of the gate's buttons.
    pub fn read(body: &[u8]) -> Result<Self, InteractionError> {
        let not = |why: &str| InteractionError::NotAClick(why.to_owned());
        let body = std::str::from_utf8(body).map_err(|_| not("the body is not UTF-8"))?;
        let payload = body
            .split('&')
            .find_map(|pair| pair.strip_prefix("payload="))
            .ok_or_else(|| not("no payload field"))?;
        let payload = form_decode(payload).ok_or_else(|| not("payload: bad percent-encoding"))?;
        let v: Value = serde_json::from_str(&payload).map_err(|e| not(&format!("payload: {e}")))?;
        if v["type"] != "block_actions" {
            return Err(not("payload.type: not block_actions"));
        }
        let text = |v: &Value, what: &str| -> Result<String, InteractionError> {
            v.as_str()
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .map(str::to_owned)
                .ok_or_else(|| not(&format!("payload.{what}: missing")))
        };
        let action = &v["actions"][0];
        let decision = match action["action_id"].as_str() {
            Some(APPROVE_ACTION) => Decision::Approve,
            Some(VETO_ACTION) => Decision::Veto,
            _ => return Err(not("actions[0].action_id: not the gate's")),
        };
        Ok(Self {
            decision,
            window: text(&action["value"], "actions[0].value")?,
            user_id: text(&v["user"]["id"], "user.id")?,
            user_name: v["user"]["username"]
                .as_str()
                .or(v["user"]["name"].as_str())
                .unwrap_or("")
                .chars()
                .take(64)
                .collect(),
            trigger_id: text(&v["trigger_id"], "trigger_id")?,
            response_url: text(&v["response_url"], "response_url")?,
        })
    }

    /// Who decided, for the gate's record and thread.
    pub fn who(&self) -> String {
        if self.user_name.is_empty() {
            format!("Slack user {}", self.user_id)
        } else {
            format!("{} (Slack user {})", self.user_name, self.user_id)
        }
    }
}

/// `application/x-www-form-urlencoded` value decoding (`+` is a space).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Who may decide from Slack: user ids, and the members of a user group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlackApprovers {
    /// Slack user ids (`U…`).
    pub users: BTreeSet<String>,
    /// A user group id (`S…`) whose members may decide.
    pub group: Option<String>,
}

impl SlackApprovers {
    /// Reads `--slack-approvers U1,U2` and `--slack-approver-group S1`.
    pub fn parse(users: Option<&str>, group: Option<&str>) -> Result<Self, String> {
        let id = |s: &str, first: char| {
            s.starts_with(first)
                && s.len() <= 32
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        };
        let users: BTreeSet<String> = users
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                id(s, 'U')
                    .then(|| s.to_owned())
                    .ok_or_else(|| format!("--slack-approvers: {s:?} is not a Slack user id (U…)"))
            })
            .collect::<Result<_, _>>()?;
        let group = match group.map(str::trim).filter(|s| !s.is_empty()) {
            Some(g) if id(g, 'S') => Some(g.to_owned()),
            Some(g) => {
                return Err(format!(
                    "--slack-approver-group: {g:?} is not a Slack user group id (S…)"
                ));
            }
            None => None,
        };
        Ok(Self { users, group })
    }

    /// Whether no one may decide from Slack.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.group.is_none()
    }
}

/// Slack's side of the decisions: the signing secret, the approvers, the
/// interactions seen, and the calls back to Slack.
pub struct SlackDecisions {
    secret: Vec<u8>,
    approvers: SlackApprovers,
    /// The Web API (base, bot token) for the user group's members.
    web_api: Option<(String, String)>,
    /// Where `response_url`s may point: Slack's hooks, or the Web API's
    /// host (a stand-in's, in tests).
    response_hosts: Vec<String>,
    seen: Mutex<VecDeque<(String, u64)>>,
    group_members: Mutex<Option<(std::time::Instant, BTreeSet<String>)>>,
    client: HttpsClient,
    io: OffClock,
}

impl std::fmt::Debug for SlackDecisions {
    // Never the signing secret, nor the bot token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackDecisions")
            .field("approvers", &self.approvers)
            .field("web_api", &self.web_api.as_ref().map(|(base, _)| base))
            .finish_non_exhaustive()
    }
}

impl SlackDecisions {
    /// Decisions signed with `secret`, taken from `approvers`; the user
    /// group is asked of the Web API at `web_api` (base, bot token); the
    /// calls to Slack run on `io` (the gate's).
    pub fn new(
        secret: &[u8],
        approvers: SlackApprovers,
        web_api: Option<(String, String)>,
        io: OffClock,
    ) -> Self {
        let mut response_hosts = vec!["hooks.slack.com".to_owned()];
        if let Some(host) = web_api
            .as_ref()
            .and_then(|(base, _)| base.parse::<http::Uri>().ok())
            .and_then(|u| u.authority().map(|a| a.to_string()))
        {
            response_hosts.push(host);
        }
        Self {
            secret: secret.to_vec(),
            approvers,
            web_api,
            response_hosts,
            seen: Mutex::new(VecDeque::new()),
            group_members: Mutex::new(None),
            client: https_client(),
            io,
        }
    }

    /// Verifies a request's headers and body at `now_s`, then reads it.
    pub fn click(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_s: u64,
    ) -> Result<Click, InteractionError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(InteractionError::NotAClick("the body is too large".into()));
        }
        let timestamp =
            timestamp.ok_or(InteractionError::MissingHeader("X-Slack-Request-Timestamp"))?;
        let signature = signature.ok_or(InteractionError::MissingHeader("X-Slack-Signature"))?;
        verify(&self.secret, timestamp, signature, body, now_s)?;
        Click::read(body)
    }

    /// Takes `click`'s interaction at `now_s` unless it was taken before
    /// (a replay, or Slack's retry): `false` then.
    pub fn first_time(&self, click: &Click, now_s: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while seen
            .front()
            .is_some_and(|(_, at)| now_s.saturating_sub(*at) > 2 * MAX_SKEW_S)
        {
            seen.pop_front();
        }
        if seen.iter().any(|(id, _)| *id == click.trigger_id) {
            return false;
        }
        if seen.len() >= SEEN_KEPT {
            seen.pop_front();
        }
        seen.push_back((click.trigger_id.clone(), now_s));
        true
    }

    /// Whether `user_id` may decide: listed, or a member of the group.
    pub async fn may_decide(&self, user_id: &str) -> Result<bool, String> {
        if self.approvers.users.contains(user_id) {
            return Ok(true);
        }
        let Some(group) = &self.approvers.group else {
            return Ok(false);
        };
        let cached = self
            .group_members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < GROUP_TTL)
            .map(|(_, members)| members.contains(user_id));
        if let Some(known) = cached {
            return Ok(known);
        }
        let members = self.group_members(group).await?;
        let member = members.contains(user_id);
        *self.group_members.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), members));
        Ok(member)
    }

    async fn group_members(&self, group: &str) -> Result<BTreeSet<String>, String> {
        let Some((base, token)) = &self.web_api else {
            return Err("the approver group needs the bot token (--slack-token)".into());
        };
        let url = format!(
            "{}/usergroups.users.list?usergroup={}",
            base.trim_end_matches('/'),
            crate::http_client::percent_encode(group)
        );
        let request = http::Request::get(&url)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("usergroups.users.list: {e}"))?;
        let client = self.client.clone();
        let answer = self
            .io
            .run(async move { exchange(&client, request, Some(CALL_TIMEOUT), 1 << 20).await })
            .await
            .map_err(|e| format!("usergroups.users.list: {e}"))?;
        let v: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("usergroups.users.list: not JSON: {e}"))?;
        if v["ok"] != true {
            return Err(format!(
                "usergroups.users.list: {}",
                v["error"].as_str().unwrap_or("refused")
            ));
        }
        Ok(v["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect())
    }

    /// Answers the clicker at `response_url`: `text` only they see, or,
    /// with `replace`, the window's message replaced by `text` (its buttons
    /// gone, so they cannot be pressed twice).
    pub async fn answer(&self, response_url: &str, text: &str, replace: bool) {
        let allowed = response_url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .is_some_and(|host| self.response_hosts.contains(&host));
        if !allowed {
            tracing::warn!("a Slack response_url outside Slack's hosts was not answered");
            return;
        }
        let body = if replace {
            json!({
                "replace_original": true,
                "text": text,
                "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": text } }],
            })
        } else {
            json!({ "response_type": "ephemeral", "replace_original": false, "text": text })
        };
        let request = match http::Request::post(response_url)
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body.to_string())))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer Slack");
                return;
            }
        };
        let client = self.client.clone();
        let sent = self
            .io
            .run(async move { exchange(&client, request, Some(CALL_TIMEOUT), 64 * 1024).await })
            .await;
        match sent {
            Ok(a) if a.status.is_success() => {}
            Ok(a) => tracing::warn!(status = %a.status, "Slack refused the answer to a click"),
            Err(e) => tracing::warn!(error = %e, "cannot answer Slack"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    fn body(action: &str, user: &str) -> String {
        let payload = json!({
            "type": "block_actions",
            "user": { "id": user, "username": "ana" },
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
            "actions": [{ "action_id": action, "value": "api-00042-abc-w1" }],
        });
        format!(
            "payload={}",
            crate::http_client::percent_encode(&payload.to_string())
        )
    }

    #[test]
    fn slack_documents_example_signature_verifies() {
        // Slack's "Verifying requests from Slack" example.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, "1531420618", body), signature);
        assert_eq!(
            verify(secret, "1531420618", signature, body, 1_531_420_618),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_an_old_time_is_refused() {
        let b = body(APPROVE_ACTION, "U1");
        let sig = sign(SECRET, "1000", b.as_bytes());
        assert_eq!(verify(SECRET, "1000", &sig, b.as_bytes(), 1_200), Ok(()));
        let changed = b.replace("U1", "U2");
        assert_eq!(
            verify(SECRET, "1000", &sig, changed.as_bytes(), 1_200),
            Err(InteractionError::BadSignature)
        );
        assert_eq!(
            verify(b"another secret", "1000", &sig, b.as_bytes(), 1_200),
            Err(InteractionError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, "1000", &sig, b.as_bytes(), 1_301),
            Err(InteractionError::Stale { age_s: 301 })
        );
        assert_eq!(
            verify(SECRET, "1000", "v1=00", b.as_bytes(), 1_000),
            Err(InteractionError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, "soon", &sig, b.as_bytes(), 1_000),
            Err(InteractionError::BadTimestamp)
        );
    }

    #[test]
    fn a_click_reads_its_decision_window_and_user() {
        let click = Click::read(body(VETO_ACTION, "U0ANA").as_bytes()).expect("a click");
        assert_eq!(click.decision, Decision::Veto);
        assert_eq!(click.window, "api-00042-abc-w1");
        assert_eq!(click.user_id, "U0ANA");
        assert_eq!(click.who(), "ana (Slack user U0ANA)");
        assert!(matches!(
            Click::read(body("something_else", "U1").as_bytes()),
            Err(InteractionError::NotAClick(_))
        ));
        assert!(Click::read(b"payload=%ZZ").is_err());
    }

    #[test]
    fn an_interaction_is_taken_once() {
        let decisions =
            SlackDecisions::new(SECRET, SlackApprovers::default(), None, OffClock::inline());
        let click = Click::read(body(APPROVE_ACTION, "U1").as_bytes()).expect("a click");
        assert!(decisions.first_time(&click, 1_000));
        assert!(!decisions.first_time(&click, 1_001), "a replay");
        assert!(!decisions.first_time(&click, 1_500), "still remembered");
    }

    #[test]
    fn its_debug_shows_neither_secret_nor_token() {
        let d = SlackDecisions::new(
            b"signing-secret-123",
            SlackApprovers::default(),
            Some(("https://slack.com/api".into(), "xoxb-token-456".into())),
            OffClock::inline(),
        );
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("signing-secret-123") && !shown.contains("xoxb-token-456"),
            "{shown}"
        );
        assert!(shown.contains("https://slack.com/api"), "{shown}");
    }

    #[test]
    fn approvers_are_user_and_group_ids() {
        let a = SlackApprovers::parse(Some("U0ANA, U0BEN"), Some("S0OPS")).expect("valid");
        assert!(a.users.contains("U0BEN") && a.group.as_deref() == Some("S0OPS"));
        assert!(SlackApprovers::parse(Some("ana"), None).is_err());
        assert!(SlackApprovers::parse(None, Some("U0ANA")).is_err());
        assert!(SlackApprovers::parse(None, None).expect("none").is_empty());
    }
}
