//! One POST of a batch to the sidecar.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

/// Most bytes of an answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a POST did not get an acknowledgement.
#[derive(Debug, Error)]
pub(crate) enum SendError {
    /// No answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or talking to the sidecar failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The sidecar answered with an error status.
    #[error("sidecar answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Start of the answer's body.
        body: String,
    },
    /// A 200 whose body is not `{"applied_seq": N}`.
    #[error("unreadable acknowledgement: {0}")]
    BadAck(String),
}

impl SendError {
    /// An answer that says the app is set up wrong (wrong URL: 404/405;
    /// wrong token: 401/403; another service's sidecar, or one that does
    /// not read this wire version: 409). Nothing is wrong with the batch: it
    /// is kept and sent again once that is fixed.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if matches!(status.as_u16(), 401 | 403 | 404 | 405 | 409))
    }

    /// What to fix, for a configuration error.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Status { status, body } => match status.as_u16() {
                401 | 403 => "LUMEN_SIDECAR_TOKEN must equal the sidecar's LUMEN_AUTH_TOKEN",
                404 | 405 => {
                    "LUMEN_SIDECAR_URL must be the sidecar's base URL (http://127.0.0.1:9464) or its /v1/ingest URL"
                }
                409 if body.contains("wire version") => {
                    "the sidecar does not read this middleware's wire version: upgrade the sidecar (or pin the middleware to a version it reads); batches are kept meanwhile"
                }
                409 => "this sidecar serves another service: give each service its own sidecar",
                _ => "",
            },
            _ => "",
        }
    }

    /// A refusal that resending the same bytes cannot change (400, 413, 422).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if matches!(status.as_u16(), 400 | 413 | 422))
    }
}

#[derive(serde::Deserialize)]
struct Ack {
    applied_seq: u64,
    /// Read apart: a tuning field this version cannot read never costs
    /// the acknowledgement.
    #[serde(default)]
    tuning: Option<serde_json::Value>,
}

/// POSTs JSON batches to one URL.
#[derive(Clone)]
pub(crate) struct SidecarClient {
    client: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
    timeout: Duration,
    authorization: Option<String>,
}

impl SidecarClient {
    /// The URL batches go to.
    pub(crate) fn url(&self) -> &Uri {
        &self.url
    }

    pub(crate) fn new(url: Uri, timeout: Duration, token: Option<&str>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url,
            timeout,
            authorization: token.map(|t| format!("Bearer {t}")),
        }
    }

    /// Sends `body`; on 200 returns the instance's highest applied seq.
    pub(crate) async fn post(&self, body: Bytes) -> Result<u64, SendError> {
        tokio::time::timeout(self.timeout, self.exchange(body))
            .await
            .map_err(|_| SendError::Timeout(self.timeout))?
    }

    async fn exchange(&self, body: Bytes) -> Result<u64, SendError> {
        let mut request =
            Request::post(self.url.clone()).header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = &self.authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SendError::Transport(format!("{e:#}")))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&bytes);
            return Err(SendError::Status {
                status,
                body: text.chars().take(200).collect(),
            });
        }
        let ack =
            serde_json::from_slice::<Ack>(&bytes).map_err(|e| SendError::BadAck(e.to_string()))?;
        if let Some(t) = ack.tuning {
            match serde_json::from_value::<crate::wire::TuningAnswer>(t) {
                Ok(t) => {
                    crate::tuning::tuning().apply(&t);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignored a tuning answer this version cannot read")
                }
            }
        }
        Ok(ack.applied_seq)
    }
}
