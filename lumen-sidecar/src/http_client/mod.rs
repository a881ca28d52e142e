//! The one way the sidecar speaks HTTP as a client: one client setup
//! (hyper over rustls with the webpki roots) and one [`exchange`] with a
//! timeout and a size-limited answer, shared by the OTLP exporter, the
//! Slack sender, the Google APIs, the metadata server and the CLI.

mod off_clock;
pub use off_clock::OffClock;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

/// A client for `http://` and `https://` URLs.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A new client (HTTP/1.1, TLS 1.2+ with rustls, Mozilla's roots).
pub fn https_client() -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A whole answer: status, headers and the body read to its end.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpAnswer {
    /// The body as text (lossy), cut to `max_chars` for messages.
    pub fn text(&self, max_chars: usize) -> String {
        String::from_utf8_lossy(&self.body)
            .trim()
            .chars()
            .take(max_chars)
            .collect()
    }
}

/// An exchange that brought no whole answer.
#[derive(Debug, Clone, Error)]
pub enum ExchangeError {
    /// The request could not be sent (no connection, TLS, reset).
    #[error("{0}")]
    Send(String),
    /// No whole answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body is over the limit.
    #[error("answer over {0} bytes")]
    TooLarge(usize),
    /// The answer's body could not be read.
    #[error("answer unreadable: {0}")]
    Body(String),
}

/// Sends `request` and reads the answer: at most `limit` body bytes, all
/// within `timeout` (no limit in time when `None`).
pub async fn exchange(
    client: &HttpsClient,
    request: Request<Full<Bytes>>,
    timeout: Option<Duration>,
    limit: usize,
) -> Result<HttpAnswer, ExchangeError> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| ExchangeError::Send(format!("{e:#}")))?;
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ExchangeError::TooLarge(limit));
            }
            Err(e) => return Err(ExchangeError::Body(e.to_string())),
        };
        Ok(HttpAnswer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| ExchangeError::Timeout(t))?,
        None => exchange.await,
    }
}

/// `value` percent-encoded for a query string: every byte but the unreserved
/// ones (`A-Z a-z 0-9 - . _ ~`, RFC 3986) as `%XX`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
