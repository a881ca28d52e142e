//! `lumen-sidecar check`: fetch `/v1/slo` and judge it, with exit codes
//! automation can trust.

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use super::CliError;
use crate::config::{SidecarConfig, window_is_valid};
use crate::eval::SloReport;
use crate::fleet::store::{FleetStoreReader, connection, open_client};
use crate::fleet::{FleetReader, QueryApi, needs_google_token};
use crate::google::access_tokens::command_tokens;
use crate::http_client::{ExchangeError, exchange, https_client};
use crate::monitoring::scope::Scope;

/// Default sidecar URL for the CLI.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9464";
/// How long the CLI waits for an answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a check could not judge the service (exit code 3).
#[derive(Debug, Error)]
pub enum CheckError {
    /// No answer from the sidecar.
    #[error("sidecar unreachable at {url}: {reason}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// An answer that is not a report.
    #[error("bad answer from {url}: {reason}")]
    BadAnswer {
        /// What was asked.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// GETs `path` (with query) from the sidecar at `base` and returns the body.
pub async fn get(base: &str, path_and_query: &str) -> Result<Bytes, CheckError> {
    // The app's LUMEN_SIDECAR_URL may name the ingest URL: the base is before it.
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/v1/ingest").unwrap_or(base);
    let url = format!("{base}{path_and_query}");
    let uri: http::Uri = url.parse().map_err(|e| CheckError::Unreachable {
        url: url.clone(),
        reason: format!("not a URL: {e}"),
    })?;
    let request = http::Request::get(uri)
        .body(http_body_util::Full::new(Bytes::new()))
        .map_err(|e| CheckError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let answer = exchange(
        &https_client(),
        request,
        Some(CHECK_TIMEOUT),
        16 * 1024 * 1024,
    )
    .await
    .map_err(|e| match e {
        ExchangeError::Send(_) | ExchangeError::Timeout(_) => CheckError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        },
        ExchangeError::TooLarge(_) | ExchangeError::Body(_) => CheckError::BadAnswer {
            url: url.clone(),
            reason: e.to_string(),
        },
    })?;
    if !answer.status.is_success() {
        return Err(CheckError::BadAnswer {
            url: url.clone(),
            reason: format!("HTTP {}: {}", answer.status, answer.text(500)),
        });
    }
    Ok(answer.body)
}

/// Fetches and parses the report for `window` (such as `1h`).
pub async fn fetch_report(
    base: &str,
    window: Option<&str>,
) -> Result<(SloReport, Bytes), CheckError> {
    let query = window.map(|w| format!("?window={w}")).unwrap_or_default();
    let body = get(base, &format!("/v1/slo{query}")).await?;
    let report = serde_json::from_slice(&body).map_err(|e| CheckError::BadAnswer {
        url: format!("{base}/v1/slo{query}"),
        reason: format!("not an SLO report: {e}"),
    })?;
    Ok((report, body))
}

/// Fetches and parses the health report for `window`.
pub async fn fetch_health(
    base: &str,
    window: Option<&str>,
) -> Result<(crate::eval::HealthReport, Bytes), CheckError> {
    let query = window.map(|w| format!("?window={w}")).unwrap_or_default();
    let body = get(base, &format!("/v1/health{query}")).await?;
    let report = serde_json::from_slice(&body).map_err(|e| CheckError::BadAnswer {
        url: format!("{base}/v1/health{query}"),
        reason: format!("not a health report: {e}"),
    })?;
    Ok((report, body))
}

/// Fetches the error budgets.
pub async fn fetch_budget(base: &str) -> Result<crate::eval::BudgetReport, CheckError> {
    let body = get(base, "/v1/budget").await?;
    serde_json::from_slice(&body).map_err(|e| CheckError::BadAnswer {
        url: format!("{base}/v1/budget"),
        reason: format!("not a budget report: {e}"),
    })
}

/// A reader of the fleet behind the query API at `url`: the service from
/// `service` (else the config's), the targets from the config file; a
/// bearer token when one is given or the API is Google's.
pub async fn fleet_reader(
    url: &str,
    service: Option<&str>,
    config_file: Option<&std::path::Path>,
    token_file: Option<&std::path::Path>,
) -> Result<FleetReader, CliError> {
    let config = SidecarConfig::load(config_file)?;
    let service = Scope::from_config(&config, "", service)
        .map_err(CliError::Usage)?
        .service;
    let has_env_token =
        std::env::var("GOOGLE_OAUTH_ACCESS_TOKEN").is_ok_and(|t| !t.trim().is_empty());
    let tokens = if token_file.is_some() || has_env_token || needs_google_token(url) {
        Some(command_tokens(token_file).await.map_err(CliError::Read)?)
    } else {
        None
    };
    Ok(FleetReader {
        api: QueryApi::new(url, tokens),
        service,
        revision: None,
        config,
    })
}

/// A reader of the fleet store at `url` (the CA in `ca_file` for TLS):
/// the service from `service` (else the config's), the targets from the
/// config file.
pub fn fleet_store_reader(
    url: &str,
    ca_file: Option<&std::path::Path>,
    service: Option<&str>,
    config_file: Option<&std::path::Path>,
) -> Result<FleetStoreReader, CliError> {
    let config = SidecarConfig::load(config_file)?;
    let service = Scope::from_config(&config, "", service)
        .map_err(CliError::Usage)?
        .service;
    let read_error = |e: crate::fleet::store::FleetStoreError| CliError::Read(e.to_string());
    let con = connection(open_client(url, ca_file).map_err(read_error)?).map_err(read_error)?;
    Ok(FleetStoreReader::new(con, service, config))
}

/// Sends a JSON command (`method` `url`, `body`, the bearer `token` when
/// given) to `who` (the sidecar, the gate) and returns its answer's text;
/// a refusal is [`CliError::Change`] with the answer's `error`.
pub async fn send_command(
    who: &str,
    method: &str,
    url: &str,
    body: String,
    token: Option<&str>,
) -> Result<String, CliError> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let request = request
        .body(http_body_util::Full::new(Bytes::from(body)))
        .map_err(|e| CliError::Usage(format!("{url}: {e}")))?;
    let answer = exchange(&https_client(), request, Some(CHECK_TIMEOUT), 16 << 20)
        .await
        .map_err(|e| CliError::Read(format!("{who} did not answer: {e}")))?;
    let text = answer.text(16 << 20);
    if !answer.status.is_success() {
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(CliError::Change(format!(
            "{who} refused ({}): {why}",
            answer.status
        )));
    }
    Ok(text)
}

/// The `--window` of a command (whole minutes from 1m to 24h), else `default`.
pub fn window_arg(text: Option<&str>, default: Duration) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    let w = lumen_middleware::units::parse_duration(text).map_err(|e| format!("--window: {e}"))?;
    if !window_is_valid(w) {
        return Err(format!("--window {text}: not whole minutes from 1m to 24h"));
    }
    Ok(w)
}

/// Who a command is from, for the record: `--by`, else `$USER`, else
/// `someone`.
pub fn asker(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "someone".into())
}
