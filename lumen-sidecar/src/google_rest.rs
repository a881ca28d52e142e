//! One authenticated client of Google's JSON REST APIs (Cloud Monitoring,
//! Cloud Run Admin v2, Cloud Billing Budgets): bearer token, JSON in and
//! out, errors that name the call, paginated lists.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use thiserror::Error;

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
    /// An error status.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Start of the answer.
        body: String,
    },
}

impl ApiError {
    /// The HTTP status of a refused call.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Transport { .. } => None,
        }
    }

    /// Whether trying again later may succeed (no answer, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// A client of one API host with one bearer token.
#[derive(Debug, Clone)]
pub struct GoogleRest {
    client: crate::https::HttpsClient,
    base: String,
    token: String,
}

impl GoogleRest {
    /// A client of `base` (`https://run.googleapis.com`, or a stand-in's URL)
    /// with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            client: crate::https::https_client(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
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
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| transport(e.to_string()))?;
        let answer =
            crate::https::exchange(&self.client, request, Some(CALL_TIMEOUT), 16 * 1024 * 1024)
                .await
                .map_err(|e| transport(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(ApiError::Status {
                method: method.to_owned(),
                url: url.clone(),
                status: answer.status.as_u16(),
                body: answer.text(300),
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
                    crate::https::percent_encode(t)
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
        assert_eq!(crate::https::percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(crate::https::percent_encode("Ab-9._~"), "Ab-9._~");
    }

    #[test]
    fn conflicts_are_not_transient_but_overload_is() {
        let status = |status| ApiError::Status {
            method: "PATCH".into(),
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(!status(409).is_transient());
        assert!(status(429).is_transient() && status(503).is_transient());
        assert_eq!(status(409).status(), Some(409));
    }
}
