//! The Google Cloud metadata server: an OAuth access token (cached and
//! refreshed before it expires) and what this instance is (project, region,
//! instance id).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use thiserror::Error;

/// Path of the default service account's token.
pub const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// A token is refreshed this long before it expires (or at half its life, if shorter).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How long one metadata request may take.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A metadata request that failed.
#[derive(Debug, Clone, Error)]
pub enum GcpError {
    /// No answer.
    #[error("metadata server {host}: {reason}")]
    Unreachable {
        /// The host asked.
        host: String,
        /// Why.
        reason: String,
    },
    /// An answer that is not what was asked for.
    #[error("metadata server {host}{path}: {reason}")]
    BadAnswer {
        /// The host asked.
        host: String,
        /// The path asked.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// An access token file that cannot be used.
    #[error("access token file {path}: {reason}")]
    TokenFile {
        /// The file.
        path: String,
        /// What was wrong (never the file's content).
        reason: String,
    },
    /// No token where one was expected.
    #[error("no access token from {origin}")]
    NoToken {
        /// Where it was looked for.
        origin: String,
    },
}

/// Asks the metadata server (`Metadata-Flavor: Google`).
#[derive(Debug, Clone)]
pub struct MetadataClient {
    host: String,
    client: crate::http_client::HttpsClient,
}

impl MetadataClient {
    /// A client of the server at `host` (`metadata.google.internal`, or
    /// `127.0.0.1:PORT` for a stand-in).
    pub fn new(host: &str) -> Self {
        Self {
            host: host
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            client: crate::http_client::https_client(),
        }
    }

    /// The body of `path`.
    pub async fn get(&self, path: &str) -> Result<String, GcpError> {
        let unreachable = |reason: String| GcpError::Unreachable {
            host: self.host.clone(),
            reason,
        };
        let request = http::Request::get(format!("http://{}{path}", self.host))
            .header("metadata-flavor", "Google")
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let answer =
            crate::http_client::exchange(&self.client, request, Some(METADATA_TIMEOUT), 64 * 1024)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(GcpError::BadAnswer {
                host: self.host.clone(),
                path: path.to_owned(),
                reason: format!("HTTP {}", answer.status),
            });
        }
        Ok(String::from_utf8_lossy(&answer.body).trim().to_owned())
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    refresh_at: Instant,
}

/// The default service account's access token, fetched when first needed
/// and again shortly before it expires.
#[derive(Debug)]
pub struct TokenSource {
    metadata: MetadataClient,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
    latest: std::sync::RwLock<Option<String>>,
}

impl TokenSource {
    /// A source asking `metadata`.
    pub fn new(metadata: MetadataClient) -> Self {
        Self {
            metadata,
            cached: tokio::sync::Mutex::new(None),
            latest: std::sync::RwLock::new(None),
        }
    }

    /// A token valid now.
    pub async fn token(&self) -> Result<String, GcpError> {
        self.token_at(Instant::now()).await
    }

    /// A fresh token, whatever is cached (Google refused the cached one).
    pub async fn renew(&self) -> Result<String, GcpError> {
        self.fetch(&mut *self.cached.lock().await, Instant::now())
            .await
    }

    /// A token valid at `now` (tests pass a later instant to see a refresh).
    pub async fn token_at(&self, now: Instant) -> Result<String, GcpError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && now < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        self.fetch(&mut cached, now).await
    }

    async fn fetch(
        &self,
        cached: &mut Option<CachedToken>,
        now: Instant,
    ) -> Result<String, GcpError> {
        let body = self.metadata.get(TOKEN_PATH).await?;
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|e| GcpError::BadAnswer {
            host: self.metadata.host.clone(),
            path: TOKEN_PATH.to_owned(),
            reason: format!("not a token: {e}"),
        })?;
        let life = Duration::from_secs(answer.expires_in);
        let margin = REFRESH_MARGIN.min(life / 2);
        *cached = Some(CachedToken {
            value: answer.access_token.clone(),
            refresh_at: now + life - margin,
        });
        *self
            .latest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(answer.access_token.clone());
        tracing::debug!(
            expires_in = answer.expires_in,
            "fetched an access token from the metadata server"
        );
        Ok(answer.access_token)
    }

    /// The last token fetched, without asking (for gRPC interceptors, which
    /// cannot wait).
    pub fn latest(&self) -> Option<String> {
        self.latest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What the metadata server says this instance is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// The project id.
    pub project_id: Option<String>,
    /// The region (`us-central1`).
    pub region: Option<String>,
    /// The instance id.
    pub instance_id: Option<String>,
}

/// Asks for the project, region and instance id; what fails stays `None`
/// (and is logged).
pub async fn identify(metadata: &MetadataClient) -> InstanceIdentity {
    let ask = |path: &'static str| async move {
        match metadata.get(path).await {
            Ok(v) if !v.is_empty() => Some(v),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "metadata lookup failed");
                None
            }
        }
    };
    InstanceIdentity {
        project_id: ask("/computeMetadata/v1/project/project-id").await,
        // `projects/123456/regions/us-central1`: the last segment.
        region: ask("/computeMetadata/v1/instance/region")
            .await
            .map(|r| r.rsplit('/').next().unwrap_or(&r).to_owned()),
        instance_id: ask("/computeMetadata/v1/instance/id").await,
    }
}
