//! A client of the Prometheus HTTP query API (`GET /api/v1/query`), as a
//! self-hosted Prometheus, Thanos, Mimir and Google Cloud Managed Service
//! for Prometheus serve it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use thiserror::Error;

use crate::google::AccessTokens;
use crate::http_client::{ExchangeError, HttpsClient, exchange, https_client, percent_encode};

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// A query that brought no usable answer.
#[derive(Debug, Clone, Error)]
pub enum QueryError {
    /// No answer (connection refused, timeout, TLS).
    #[error("query API unreachable at {url}: {reason}")]
    Unreachable {
        /// The API's base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The API refused the query or failed (its own error text).
    #[error("query API at {url} answered HTTP {status}: {reason}")]
    Refused {
        /// The API's base URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The API's error, or the start of its body.
        reason: String,
    },
    /// An answer that is not a query result.
    #[error("query API at {url}: not a query result: {reason}")]
    BadAnswer {
        /// The API's base URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// One series of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    /// Label names and values (without `__name__` once aggregated).
    pub labels: BTreeMap<String, String>,
    /// The value (`NaN` and `±Inf` as Prometheus writes them).
    pub value: f64,
}

impl QuerySample {
    /// The value of label `name`, empty when absent (as PromQL treats it).
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct AnswerData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// A Prometheus-compatible query API.
#[derive(Debug, Clone)]
pub struct QueryApi {
    base: String,
    tokens: Option<Arc<AccessTokens>>,
    client: HttpsClient,
}

impl QueryApi {
    /// The API at `base` (the URL before `/api/v1/query`), sending a bearer
    /// token from `tokens` when given (renewed once on a 401).
    pub fn new(base: &str, tokens: Option<Arc<AccessTokens>>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            client: https_client(),
        }
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Evaluates `query` at `at_ms` (Unix ms): an instant vector.
    pub async fn instant(&self, query: &str, at_ms: u64) -> Result<Vec<QuerySample>, QueryError> {
        let url = format!(
            "{}/api/v1/query?query={}&time={}.{:03}",
            self.base,
            percent_encode(query),
            at_ms / 1000,
            at_ms % 1000
        );
        let uri: http::Uri = url.parse().map_err(|e| QueryError::Unreachable {
            url: self.base.clone(),
            reason: format!("not a URL: {e}"),
        })?;
        let no_token = |e: crate::google::GcpError| QueryError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let mut token = match &self.tokens {
            Some(t) => Some(t.token().await.map_err(no_token)?),
            None => None,
        };
        let mut renewed = false;
        let answer = loop {
            let mut request = http::Request::get(uri.clone());
            if let Some(t) = &token {
                request = request.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let request = request
                .body(http_body_util::Full::new(Bytes::new()))
                .map_err(|e| QueryError::Unreachable {
                    url: self.base.clone(),
                    reason: e.to_string(),
                })?;
            let answer = exchange(&self.client, request, Some(QUERY_TIMEOUT), MAX_ANSWER_BYTES)
                .await
                .map_err(|e| match e {
                    ExchangeError::Send(_) | ExchangeError::Timeout(_) => QueryError::Unreachable {
                        url: self.base.clone(),
                        reason: e.to_string(),
                    },
                    ExchangeError::TooLarge(_) | ExchangeError::Body(_) => QueryError::BadAnswer {
                        url: self.base.clone(),
                        reason: e.to_string(),
                    },
                })?;
            // An expired token: renew once and ask again.
            if answer.status == http::StatusCode::UNAUTHORIZED
                && !renewed
                && let (Some(tokens), Some(rejected)) = (&self.tokens, &token)
            {
                renewed = true;
                if let Some(fresh) = tokens.renew(rejected).await.map_err(no_token)? {
                    tracing::info!(url = %self.base, "token refused (401): renewed it, asking again");
                    token = Some(fresh);
                    continue;
                }
            }
            break answer;
        };
        let parsed = parse_answer(&self.base, answer.status.as_u16(), &answer.body);
        match (parsed, &self.tokens) {
            (
                Err(QueryError::Refused {
                    url,
                    status: 401,
                    reason,
                }),
                Some(tokens),
            ) => Err(QueryError::Refused {
                url,
                status: 401,
                reason: format!(
                    "{reason} (the token from {} was refused; no other to try)",
                    tokens.origin()
                ),
            }),
            (other, _) => other,
        }
    }
}

/// Reads a query API answer: the instant vector, or the API's error.
pub fn parse_answer(base: &str, status: u16, body: &[u8]) -> Result<Vec<QuerySample>, QueryError> {
    let parsed: Result<Answer, _> = serde_json::from_slice(body);
    let answer = match parsed {
        Ok(a) => a,
        Err(e) if (200..300).contains(&status) => {
            return Err(QueryError::BadAnswer {
                url: base.to_owned(),
                reason: e.to_string(),
            });
        }
        Err(_) => {
            return Err(QueryError::Refused {
                url: base.to_owned(),
                status,
                reason: String::from_utf8_lossy(body).chars().take(300).collect(),
            });
        }
    };
    if answer.status != "success" || !(200..300).contains(&status) {
        return Err(QueryError::Refused {
            url: base.to_owned(),
            status,
            reason: format!(
                "{}: {}",
                answer.error_type.as_deref().unwrap_or("error"),
                answer.error.as_deref().unwrap_or("(no error text)")
            ),
        });
    }
    let data = answer.data.ok_or_else(|| QueryError::BadAnswer {
        url: base.to_owned(),
        reason: "no data".to_owned(),
    })?;
    if data.result_type != "vector" {
        return Err(QueryError::BadAnswer {
            url: base.to_owned(),
            reason: format!(
                "a {} where an instant vector was expected",
                data.result_type
            ),
        });
    }
    data.result
        .into_iter()
        .map(|s| {
            let value = match s.value.1.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                v => v.parse::<f64>(),
            }
            .map_err(|e| QueryError::BadAnswer {
                url: base.to_owned(),
                reason: format!("value {:?}: {e}", s.value.1),
            })?;
            Ok(QuerySample {
                labels: s.metric,
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_read_with_their_labels() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"status_class":"5xx"},"value":[1700000000.1,"12"]},
            {"metric":{},"value":[1700000000.1,"NaN"]}]}}"#;
        let v = parse_answer("http://p", 200, body).expect("a vector");
        assert_eq!(v[0].label("status_class"), "5xx");
        assert_eq!(v[0].label("http_route"), "");
        assert_eq!(v[0].value, 12.0);
        assert!(v[1].value.is_nan());
    }

    #[test]
    fn errors_carry_the_apis_words() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        let e = parse_answer("http://p", 400, body).expect_err("an error");
        assert_eq!(
            e.to_string(),
            "query API at http://p answered HTTP 400: bad_data: parse error at char 4"
        );
        let e = parse_answer("http://p", 502, b"<html>bad gateway</html>").expect_err("an error");
        assert!(e.to_string().contains("HTTP 502: <html>bad gateway"), "{e}");
        let e = parse_answer(
            "http://p",
            200,
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        )
        .expect_err("not a vector");
        assert!(e.to_string().contains("a matrix where"), "{e}");
        let e = parse_answer("http://p", 200, b"{").expect_err("not JSON");
        assert!(matches!(e, QueryError::BadAnswer { .. }));
    }
}
