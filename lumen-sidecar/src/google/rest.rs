//! One authenticated client of Google's JSON REST APIs (Cloud Monitoring,
//! Cloud Run Admin v2, Cloud Billing Budgets): a bearer token renewed
//! before it expires (and once more on a 401), the quota project when one
//! is named, JSON in and out, errors that name the call, paginated lists.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use thiserror::Error;

use crate::google::AccessTokens;

/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A call that failed.
#[derive(Debug, Clone, Error)]
pub enum ApiError {
    /// No answer.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No token to send.
    #[error("{method} {url}: {reason}")]
    Token {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Why there is none.
        reason: String,
    },
    /// An error status.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Google's canonical code (`error.status`: `ABORTED`,
        /// `FAILED_PRECONDITION`), when the answer says.
        code: Option<String>,
        /// Start of the answer.
        body: String,
    },
}

impl ApiError {
    /// The HTTP status of a refused call.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Transport { .. } | Self::Token { .. } => None,
        }
    }

    /// Google's canonical code of a refused call (`ABORTED`, `FAILED_PRECONDITION`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => code.as_deref(),
            Self::Transport { .. } | Self::Token { .. } => None,
        }
    }

    /// Whether the call was refused because what it changes changed since it
    /// was read (a stale etag): 409 `ABORTED`, 412, or 400
    /// `FAILED_PRECONDITION` as AIP-154 allows. A 400 `FAILED_PRECONDITION`
    /// has other causes too: read again and decide again, which finds them.
    pub fn is_stale(&self) -> bool {
        match self.status() {
            Some(409 | 412) => true,
            Some(400) => self.code() == Some("FAILED_PRECONDITION"),
            _ => false,
        }
    }

    /// Whether trying again later may succeed (no answer, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Token { .. } => false,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// A client of one API host with renewed bearer tokens.
#[derive(Debug, Clone)]
pub struct GoogleRest {
    client: crate::http_client::HttpsClient,
    base: String,
    tokens: Arc<AccessTokens>,
    quota_project: Option<String>,
}

impl GoogleRest {
    /// A client of `base` (`https://run.googleapis.com`, or a stand-in's URL)
    /// with tokens from `tokens`.
    pub fn new(base: &str, tokens: Arc<AccessTokens>) -> Self {
        Self {
            client: crate::http_client::https_client(),
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            quota_project: None,
        }
    }

    /// Bills the calls' quota to `project` (`x-goog-user-project`): what a
    /// person's credentials need for APIs that are not the caller's own
    /// project's; the caller then needs `serviceusage.services.use` there.
    pub fn with_quota_project(mut self, project: Option<String>) -> Self {
        self.quota_project = project.filter(|p| !p.is_empty());
        self
    }

    /// The quota project sent, if any.
    pub fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `method path` with `body` as JSON; the answer's JSON (`{}` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let transport = |reason: String| ApiError::Transport {
            method: method.to_owned(),
            url: url.clone(),
            reason,
        };
        let no_token = |e: crate::google::GcpError| ApiError::Token {
            method: method.to_owned(),
            url: url.clone(),
            reason: e.to_string(),
        };
        let body = Bytes::from(body.map(Value::to_string).unwrap_or_default());
        let mut token = self.tokens.token().await.map_err(no_token)?;
        let mut renewed = false;
        let answer = loop {
            let mut request = http::Request::builder()
                .method(method)
                .uri(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json");
            if let Some(project) = &self.quota_project {
                request = request.header("x-goog-user-project", project.as_str());
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|e| transport(e.to_string()))?;
            let answer = crate::http_client::exchange(
                &self.client,
                request,
                Some(CALL_TIMEOUT),
                16 * 1024 * 1024,
            )
            .await
            .map_err(|e| transport(e.to_string()))?;
            // An expired or revoked token: renew once and try again.
            if answer.status == http::StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                if let Some(fresh) = self.tokens.renew(&token).await.map_err(no_token)? {
                    tracing::info!(%method, %url, "token refused (401): renewed it, trying again");
                    token = fresh;
                    continue;
                }
            }
            break answer;
        };
        if !answer.status.is_success() {
            let mut body = answer.text(300);
            if answer.status == http::StatusCode::UNAUTHORIZED {
                body.push_str(&format!(
                    " (the token from {} was refused; no other to try)",
                    self.tokens.origin()
                ));
            }
            let code = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|v| v["error"]["status"].as_str().map(str::to_owned));
            return Err(ApiError::Status {
                method: method.to_owned(),
                url: url.clone(),
                status: answer.status.as_u16(),
                code,
                body,
            });
        }
        Ok(if answer.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&answer.body).map_err(|e| transport(format!("not JSON: {e}")))?
        })
    }

    /// Every item (in `field`) of a paginated list at `path`.
    pub async fn list(&self, path: &str, field: &str) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        let joiner = if path.contains('?') { '&' } else { '?' };
        loop {
            let page = match &token {
                Some(t) => format!(
                    "{path}{joiner}pageToken={}",
                    crate::http_client::percent_encode(t)
                ),
                None => path.to_owned(),
            };
            let answer = self.call("GET", &page, None).await?;
            items.extend(answer[field].as_array().cloned().unwrap_or_default());
            match answer["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(items),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_are_percent_encoded() {
        assert_eq!(
            crate::http_client::percent_encode("a+b/c=="),
            "a%2Bb%2Fc%3D%3D"
        );
        assert_eq!(crate::http_client::percent_encode("Ab-9._~"), "Ab-9._~");
    }

    #[test]
    fn conflicts_are_not_transient_but_overload_is() {
        let status = |status| ApiError::Status {
            method: "PATCH".into(),
            url: "u".into(),
            status,
            code: None,
            body: String::new(),
        };
        assert!(!status(409).is_transient());
        assert!(status(409).is_stale() && status(412).is_stale() && !status(400).is_stale());
        let precondition = ApiError::Status {
            method: "PATCH".into(),
            url: "u".into(),
            status: 400,
            code: Some("FAILED_PRECONDITION".into()),
            body: String::new(),
        };
        assert!(precondition.is_stale());
        assert!(status(429).is_transient() && status(503).is_transient());
        assert_eq!(status(409).status(), Some(409));
    }
}
