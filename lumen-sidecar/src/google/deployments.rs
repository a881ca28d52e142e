//! Deployment frequency from its source of truth: the revisions of the
//! service that the Cloud Run Admin API lists as created in the last 7
//! days. On Cloud Run each instance's sidecar sees only its own revision, so
//! its own count is kept only as a labelled fallback.
//!
//! `GET {api}/v2/projects/{project}/locations/{region}/services/{service}/revisions`
//! with the metadata server's token, every page, once an hour.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use crate::app::{AppState, Shutdown, now_ms};
use crate::eval::calendar::days_from_civil;
use crate::eval::{DeploymentSource, Deployments};
use crate::google::{MetadataClient, TokenSource, identify};
use crate::http_client::{exchange, https_client};

/// The Cloud Run Admin API.
pub const CLOUD_RUN_API: &str = "https://run.googleapis.com";
/// How often the revisions are listed again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// The window the frequency counts.
pub const WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;

#[derive(Deserialize)]
struct RevisionPage {
    #[serde(default)]
    revisions: Vec<Revision>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Revision {
    #[serde(default, rename = "createTime")]
    create_time: Option<String>,
}

/// Unix ms of an RFC 3339 UTC timestamp (`2026-11-30T12:00:00.123456Z`).
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day) = (
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<u32>().ok()?,
        d.next()?.parse::<u32>().ok()?,
    );
    let time = time.strip_suffix('Z')?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':');
    let (h, min, s) = (
        t.next()?.parse::<u64>().ok()?,
        t.next()?.parse::<u64>().ok()?,
        t.next()?.parse::<u64>().ok()?,
    );
    let ms_digits: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms: u64 = ms_digits.parse().ok()?;
    let days = u64::try_from(days_from_civil(y, m, day)).ok()?;
    Some(((days * 86_400 + h * 3600 + min * 60 + s) * 1000) + ms)
}

/// Counts the revisions of `service` created since `since_ms`, every page.
pub async fn count_revisions(
    api: &str,
    project: &str,
    region: &str,
    service: &str,
    token: &str,
    since_ms: u64,
) -> Result<u32, String> {
    let client = https_client();
    let base = format!(
        "{}/v2/projects/{project}/locations/{region}/services/{service}/revisions?pageSize=100",
        api.trim_end_matches('/')
    );
    let mut count = 0_u32;
    let mut page_token: Option<String> = None;
    for _ in 0..100 {
        let url = match &page_token {
            Some(t) => format!("{base}&pageToken={}", crate::http_client::percent_encode(t)),
            None => base.clone(),
        };
        let request = http::Request::get(&url)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let answer = exchange(&client, request, Some(Duration::from_secs(30)), 8 << 20)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !answer.status.is_success() {
            return Err(format!(
                "GET {url}: HTTP {}: {}",
                answer.status,
                answer.text(300)
            ));
        }
        let page: RevisionPage = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("GET {url}: not a revision list: {e}"))?;
        count += page
            .revisions
            .iter()
            .filter_map(|r| r.create_time.as_deref().and_then(parse_rfc3339_ms))
            .filter(|created| *created >= since_ms)
            .count() as u32;
        match page.next_page_token.filter(|t| !t.is_empty()) {
            Some(t) => page_token = Some(t),
            None => return Ok(count),
        }
    }
    Err("more than 100 pages of revisions".into())
}

/// Lists the revisions now and every hour until `stop`, storing the count
/// in the application state. Runs only on Cloud Run (`K_SERVICE`).
pub async fn run(state: Arc<AppState>, api: String, tokens: Arc<TokenSource>, mut stop: Shutdown) {
    let Some(run) = state.config.export.cloud_run.clone() else {
        return;
    };
    let metadata = MetadataClient::new(&state.config.export.metadata_host);
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    loop {
        tokio::select! {
            () = stop.fired() => return,
            _ = tick.tick() => {}
        }
        let identity = identify(&metadata).await;
        let (Some(project), Some(region)) = (identity.project_id, identity.region) else {
            tracing::warn!(
                "no project or region from the metadata server; deployment frequency falls back to the revisions this sidecar saw"
            );
            continue;
        };
        let token = match tokens.token().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "no access token for the Cloud Run Admin API");
                continue;
            }
        };
        let since = now_ms().saturating_sub(WINDOW_MS);
        match count_revisions(&api, &project, &region, &run.service, &token, since).await {
            Ok(count) => {
                tracing::info!(count, service = %run.service, "revisions created in the last 7 days");
                state.set_deployments(Deployments {
                    count_7d: count,
                    source: DeploymentSource::CloudRunApi,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the service's revisions; keeping the last count")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_as_google_writes_them() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T12:00:00.123456Z"),
            Some((days_from_civil(2026, 11, 30) as u64 * 86_400 + 12 * 3600) * 1000 + 123)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-30 12:00:00"), None);
    }
}
