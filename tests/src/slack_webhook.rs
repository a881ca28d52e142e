//! A stand-in for a Slack incoming webhook (Slack cannot run here). It
//! checks each request as Slack documents it — `POST`, a JSON body with a
//! `text` string and, when present, `blocks` of `mrkdwn` sections — answers
//! `200 ok` as Slack does, and keeps what was posted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// What the webhook received: each accepted message, and each refusal.
#[derive(Debug, Default)]
pub struct Posted {
    /// Accepted messages, in order.
    pub messages: Vec<Value>,
    /// Why requests were refused (a test that sees any has found a bug).
    pub refused: Vec<String>,
}

fn check(method: &http::Method, content_type: Option<&str>, body: &[u8]) -> Result<Value, String> {
    if method != http::Method::POST {
        return Err(format!("{method}: Slack webhooks take POST"));
    }
    if !content_type.is_some_and(|c| c.starts_with("application/json")) {
        return Err(format!("content-type {content_type:?}"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if !v["text"].is_string() {
        return Err(format!("no text: {v}"));
    }
    if let Some(blocks) = v.get("blocks") {
        for b in blocks.as_array().ok_or("blocks is not a list")? {
            if b["type"] != "section" || b["text"]["type"] != "mrkdwn" {
                return Err(format!("block {b}"));
            }
        }
    }
    Ok(v)
}

/// Starts the stand-in on a loopback port: its URL and what it received.
pub async fn slack_webhook() -> (String, Arc<Mutex<Posted>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let posted = Arc::new(Mutex::new(Posted::default()));
    let shared = Arc::clone(&posted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let shared = Arc::clone(&shared);
                        async move {
                            let method = req.method().clone();
                            let content_type = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = req.into_body().collect().await?.to_bytes();
                            let mut p = shared.lock().expect("lock");
                            let (status, answer) =
                                match check(&method, content_type.as_deref(), &body) {
                                    Ok(v) => {
                                        p.messages.push(v);
                                        (200, "ok")
                                    }
                                    Err(e) => {
                                        p.refused.push(e);
                                        (400, "invalid_payload")
                                    }
                                };
                            Ok::<_, hyper::Error>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(answer.as_bytes())))
                                    .expect("a response"),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/services/T000/B000/XXXX"), posted)
}
