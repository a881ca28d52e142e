//! A sidecar over HTTP, as its own integration tests and the end-to-end
//! tests reach it: batches built with the wire's builders, posted, and
//! the read API's answers.

use std::net::SocketAddr;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lumen_middleware::wire::{Batch, MethodCounts, Series, StatusCounts};

use crate::{now_ms, wait_ready};

/// The service the batches of [`batch`] name.
pub const SERVICE: &str = "ion-mentoring-api";
/// The revision the batches of [`batch`] name.
pub const REVISION: &str = "ion-mentoring-api-00042-abc";

/// One series: `ok` 2xx at `ok_us`, `c4` 4xx and `c5` 5xx at `slow_us`,
/// half the 2xx answered from the cache, all of them GETs.
pub fn series(route: Option<&str>, ok: u64, ok_us: u64, c4: u64, c5: u64, slow_us: u64) -> Series {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    latency.record_n(ok_us, ok).expect("in range");
    latency.record_n(slow_us, c4 + c5).expect("in range");
    let status = StatusCounts {
        success: ok,
        client_error: c4,
        server_error: c5,
        ..Default::default()
    };
    Series::new(route, &latency, status)
        .with_cache(ok / 2, ok - ok / 2)
        .with_method("GET", MethodCounts { status, errors: 0 })
}

/// The `seq`-th batch of `instance` of [`SERVICE`] at [`REVISION`]: the
/// ten seconds ending now.
pub fn batch(instance: &str, seq: u64, series: Vec<Series>) -> Batch {
    let end_ms = now_ms();
    Batch::new(instance, seq, SERVICE, end_ms - 10_000, end_ms)
        .with_revision(REVISION)
        .with_series(series)
}

/// POSTs `body` to `/v1/ingest` with `content_type` and an optional bearer
/// token: status and body.
pub async fn post(
    addr: SocketAddr,
    body: Vec<u8>,
    content_type: &str,
    token: Option<&str>,
) -> (u16, String) {
    post_to(addr, "/v1/ingest", body, content_type, token).await
}

/// POSTs `body` to `path`: status and body.
pub async fn post_to(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
    token: Option<&str>,
) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", content_type)];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    request_with(addr, "POST", path, &headers, body).await
}

/// POSTs `batch` as JSON to `/v1/ingest`: status and body.
pub async fn post_batch(addr: SocketAddr, batch: &Batch) -> (u16, String) {
    post(
        addr,
        serde_json::to_vec(batch).expect("a batch serializes"),
        "application/json",
        None,
    )
    .await
}

/// GETs `path`: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request_with(addr, "GET", path, &[], Vec::new()).await
}

/// `/v1/slo`, which must answer 200.
pub async fn slo(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = get(addr, "/v1/slo").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("/v1/slo is JSON")
}

/// Waits until `/healthz` answers 200 (bounded).
pub async fn wait_healthy(addr: SocketAddr) {
    wait_ready(&format!("http://{addr}"), "/healthz").await;
}

/// Sends `method path` with `headers` and `body`: status and body.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let answer = client
        .request(
            request
                .body(Full::new(Bytes::from(body)))
                .expect("a request"),
        )
        .await
        .expect("the sidecar answers");
    let status = answer.status().as_u16();
    let body = answer
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
