//! Slack: Block Kit messages for alert events, and a sender that posts them
//! to an incoming webhook at most once a second, honours `429 Retry-After`,
//! drops what Slack refuses for good and retries what failed in passing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::engine::AlertEvent;
use crate::app::SlackStats;
use crate::eval::ReportScope;
use crate::eval::alert_rules::runbook_mrkdwn;

/// Slack takes about one message a second per webhook.
pub const MIN_SPACING: Duration = Duration::from_secs(1);
/// A section's text limit.
pub const SECTION_TEXT_LIMIT: usize = 3000;
/// Attempts for a message that fails in passing (5xx, transport).
pub const MAX_ATTEMPTS: u32 = 4;

fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(limit - 1).collect();
    out.push('…');
    out
}

/// `text` from data (a service, route, revision or person's name) made
/// safe to put into a Slack message: `&`, `<` and `>` escaped as Slack
/// documents, so `<!channel>` or `<https://…|label>` in a name shows as
/// written instead of notifying a channel or hiding a link. The one place
/// Lumen escapes Slack text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A Block Kit `mrkdwn` section, its text cut to Slack's limit.
pub fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(text, SECTION_TEXT_LIMIT) } })
}

/// The Block Kit message for `event` of `service`, saying whose traffic it
/// is about: one sidecar's instance, or the whole fleet.
pub fn message(event: &AlertEvent, service: &str, scope: &ReportScope) -> Value {
    let whose = escape(&scope.describe());
    let service = escape(service);
    let (text, blocks) = match event {
        AlertEvent::Firing { rule, value } => {
            let head = format!(
                ":rotating_light: *{}* [{}] on `{service}`, {whose}",
                rule.name, rule.severity
            );
            let fields = format!(
                "*Value:* {value:.2}{u}   *Threshold:* below {}{u} for {} min",
                rule.threshold,
                rule.for_.as_secs() / 60,
                u = rule.watched.unit()
            );
            (
                format!(
                    "FIRING: {} on {service} ({whose}): {value:.2}{} (threshold {})",
                    rule.name,
                    rule.watched.unit(),
                    rule.threshold
                ),
                vec![
                    section(&head),
                    section(&fields),
                    section(&runbook_mrkdwn(rule)),
                ],
            )
        }
        AlertEvent::Resolved { rule, value } => {
            let now = value.map_or_else(
                || "no data".to_owned(),
                |v| format!("{v:.2}{}", rule.watched.unit()),
            );
            (
                format!("RESOLVED: {} on {service} ({whose}): {now}", rule.name),
                vec![section(&format!(
                    ":white_check_mark: *{}* resolved on `{service}`, {whose}: now {now}",
                    rule.name
                ))],
            )
        }
        AlertEvent::Budget {
            slo,
            severity,
            long_window,
            short_window,
            factor,
            firing,
        } => {
            let (icon, verb) = if *firing {
                (":fire:", "burning")
            } else {
                (":white_check_mark:", "stopped burning")
            };
            let text = format!(
                "{} {}: {slo} error budget {verb} at {factor:.1}x over {long_window} and {short_window} on {service} ({whose})",
                if *firing { "FIRING" } else { "RESOLVED" },
                severity.to_uppercase()
            );
            let detail = format!(
                "{icon} *{}* `{service}`, {whose}: the *{slo}* error budget is {verb} at {factor:.1}× or more over both {long_window} and {short_window}. `lumen-sidecar check --verbose` shows the SLOs and burn rates.",
                severity.to_uppercase()
            );
            (text, vec![section(&detail)])
        }
        AlertEvent::StatusChanged { from, to } => {
            let from = from.map_or("unknown", |s| s.as_str());
            (
                format!(
                    "SLO status of {service} ({whose}): {from} -> {}",
                    to.as_str()
                ),
                vec![section(&format!(
                    ":bar_chart: SLO status of `{service}`, {whose}, is *{}* (was {from}) for a minute now. `lumen-sidecar check --verbose` shows why.",
                    to.as_str()
                ))],
            )
        }
    };
    json!({ "text": cut(&text, SECTION_TEXT_LIMIT), "blocks": blocks })
}

/// Posts queued messages to one webhook.
#[derive(Debug, Clone)]
pub struct SlackSender {
    client: crate::http_client::HttpsClient,
    webhook: http::Uri,
    timeout: Option<Duration>,
    stats: Arc<SlackStats>,
}

enum Outcome {
    Sent,
    RetryAfter(Duration),
    Retry,
    GiveUp(String),
}

impl SlackSender {
    /// A sender to `webhook`; `timeout` bounds each POST.
    pub fn new(webhook: http::Uri, timeout: Option<Duration>, stats: Arc<SlackStats>) -> Self {
        Self {
            client: crate::http_client::https_client(),
            webhook,
            timeout,
            stats,
        }
    }

    async fn post(&self, body: &Value) -> Outcome {
        let request = http::Request::post(self.webhook.clone())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a request from a valid URI");
        let result = crate::http_client::exchange(&self.client, request, self.timeout, 64 * 1024)
            .await
            .map(|answer| {
                let retry_after = answer
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                (answer.status, retry_after, answer.text(4096))
            });
        match result {
            Ok((status, _, _)) if status.is_success() => Outcome::Sent,
            Ok((status, retry_after, _)) if status.as_u16() == 429 => {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                Outcome::RetryAfter(Duration::from_secs(retry_after.unwrap_or(1)))
            }
            Ok((status, _, text)) if status.is_client_error() => {
                Outcome::GiveUp(format!("{status}: {text}"))
            }
            Ok((status, _, _)) => {
                tracing::warn!(%status, "Slack answered with a server error; will retry");
                Outcome::Retry
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Slack; will retry");
                Outcome::Retry
            }
        }
    }

    /// Sends what arrives on `queue`, one at a time, until it closes.
    pub async fn run(self, mut queue: mpsc::Receiver<Value>) {
        let mut next_allowed = Instant::now();
        while let Some(body) = queue.recv().await {
            let mut attempt = 0;
            loop {
                tokio::time::sleep_until(next_allowed).await;
                attempt += 1;
                let outcome = self.post(&body).await;
                next_allowed = Instant::now() + MIN_SPACING;
                match outcome {
                    Outcome::Sent => {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Outcome::RetryAfter(wait) => {
                        next_allowed = Instant::now() + wait.max(MIN_SPACING);
                    }
                    Outcome::Retry if attempt < MAX_ATTEMPTS => {
                        next_allowed = Instant::now() + MIN_SPACING * 2_u32.pow(attempt);
                    }
                    Outcome::Retry => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            attempts = attempt,
                            "Slack message dropped after repeated failures"
                        );
                        break;
                    }
                    Outcome::GiveUp(why) => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(answer = %why, "Slack refused the message; not retrying");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::alert_rules::threshold_rules;

    #[test]
    fn names_from_data_cannot_mention_a_channel_or_hide_a_link() {
        let event = AlertEvent::StatusChanged {
            from: None,
            to: crate::eval::Status::Critical,
        };
        let scope = ReportScope::FleetStore {
            instances: 2,
            unreadable: vec!["<https://evil.example|click-here>".into()],
        };
        let m = message(&event, "api <!channel> & co", &scope).to_string();
        assert!(!m.contains("<!channel>"), "{m}");
        assert!(!m.contains("<https://"), "{m}");
        assert!(m.contains("&lt;!channel&gt; &amp; co"), "{m}");
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn messages_fit_slack_limits() {
        let mut rule = threshold_rules().remove(0);
        let long: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
        rule.runbook = Box::leak(vec![long].into_boxed_slice());
        let m = message(
            &AlertEvent::Firing { rule, value: 120.0 },
            "api",
            &ReportScope::Instance,
        );
        let blocks = m["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= 50);
        for b in blocks {
            assert!(
                b["text"]["text"].as_str().expect("text").chars().count() <= SECTION_TEXT_LIMIT
            );
        }
        assert!(
            m["text"]
                .as_str()
                .expect("fallback")
                .starts_with("FIRING: ROI Gate Critical on api (this instance only): 120.00%")
        );
        assert!(m.to_string().len() < 40_000);
    }

    #[test]
    fn messages_use_slack_mrkdwn_not_commonmark() {
        for rule in threshold_rules() {
            let name = rule.name;
            let m = message(
                &AlertEvent::Firing { rule, value: 1.0 },
                "api",
                &ReportScope::Fleet { instances: 3 },
            );
            assert!(
                m["blocks"][0]["text"]["text"]
                    .as_str()
                    .expect("head")
                    .ends_with("on `api`, the whole fleet (3 instances)"),
                "{m}"
            );
            for b in m["blocks"].as_array().expect("blocks") {
                let text = b["text"]["text"].as_str().expect("text");
                assert_eq!(b["text"]["type"], "mrkdwn");
                assert!(!text.contains("**"), "CommonMark bold in {text}");
            }
            let runbook = m["blocks"][2]["text"]["text"].as_str().expect("runbook");
            assert!(runbook.starts_with(&format!("*{name}*:")), "{runbook}");
        }
    }
}
