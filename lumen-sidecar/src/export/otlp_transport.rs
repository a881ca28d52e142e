//! The HTTP client the OTLP exporter sends with: hyper over rustls, adding
//! the Google access token (and quota project) to every request when asked.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use opentelemetry_http::{HttpClient, HttpError};

use super::answers::note_answer;
use crate::app::ExportStats;
use crate::google::TokenSource;

/// Largest answer read from an OTLP endpoint.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Sends OTLP/HTTP requests.
#[derive(Debug, Clone)]
pub struct OtlpHttpClient {
    client: crate::http_client::HttpsClient,
    token: Option<Arc<TokenSource>>,
    quota_project: Option<String>,
    timeout: Duration,
    stats: Arc<ExportStats>,
}

impl OtlpHttpClient {
    /// A client for http:// and https:// endpoints (webpki roots); sends
    /// `x-goog-user-project` only when a quota project is given.
    pub fn new(
        token: Option<Arc<TokenSource>>,
        quota_project: Option<String>,
        timeout: Duration,
        stats: Arc<ExportStats>,
    ) -> Self {
        Self {
            client: crate::http_client::https_client(),
            token,
            quota_project,
            timeout,
            stats,
        }
    }
}

#[async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut parts, body) = request.into_parts();
        if let Some(token) = &self.token {
            let value = token.token().await?;
            parts.headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {value}"))?,
            );
        }
        if let Some(project) = &self.quota_project {
            parts
                .headers
                .insert("x-goog-user-project", HeaderValue::from_str(project)?);
        }
        let request = Request::from_parts(parts, Full::new(body.clone()));
        let answer = crate::http_client::exchange(
            &self.client,
            request,
            Some(self.timeout),
            MAX_ANSWER_BYTES,
        )
        .await?;
        note_answer(&self.stats, &body, answer.status, &answer.body);
        let mut response = Response::new(answer.body);
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers;
        Ok(response)
    }
}
