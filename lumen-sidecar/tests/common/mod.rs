//! Helpers shared by the sidecar's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lumen_middleware::wire::{self, Batch, CacheCounts, Series, StatusCounts};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// One series: `ok` 2xx at `ok_us`, `c4` 4xx and `c5` 5xx at `slow_us`.
pub fn series(route: Option<&str>, ok: u64, ok_us: u64, c4: u64, c5: u64, slow_us: u64) -> Series {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
    h.record_n(ok_us, ok).expect("in range");
    h.record_n(slow_us, c4 + c5).expect("in range");
    Series {
        grpc_codes: Default::default(),
        route: route.map(str::to_owned),
        latency_us: wire::encode_histogram(&h),
        keys: None,
        tiers: None,
        variant: None,
        assignments: None,
        status: StatusCounts {
            success: ok,
            client_error: c4,
            server_error: c5,
            ..Default::default()
        },
        errors: 0,
        cancelled: 0,
        cache: CacheCounts {
            hits: ok / 2,
            misses: ok - ok / 2,
        },
        methods: [(
            "GET".to_owned(),
            wire::MethodCounts {
                status: StatusCounts {
                    success: ok,
                    client_error: c4,
                    server_error: c5,
                    ..Default::default()
                },
                errors: 0,
            },
        )]
        .into(),
    }
}

pub fn batch(instance: &str, seq: u64, series: Vec<Series>) -> Batch {
    let end_ms = now_ms();
    Batch {
        version: wire::WIRE_VERSION,
        instance: instance.to_owned(),
        seq,
        service: "ion-mentoring-api".to_owned(),
        revision: Some("ion-mentoring-api-00042-abc".to_owned()),
        start_ms: end_ms - 10_000,
        end_ms,
        process: None,
        series,
    }
}

/// POSTs `body` with `content_type` and optional bearer token; returns status and body.
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

pub async fn post_batch(addr: SocketAddr, batch: &Batch) -> (u16, String) {
    post(
        addr,
        serde_json::to_vec(batch).expect("serializes"),
        "application/json",
        None,
    )
    .await
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .get(format!("http://{addr}{path}").parse().expect("uri"))
        .await
        .expect("sidecar answers");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn slo(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = get(addr, "/v1/slo").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

/// A free loopback port (bound, then released for a child process to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `/healthz` until it answers 200 (a readiness probe, bounded).
pub async fn wait_healthy(addr: SocketAddr) {
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://{addr}/healthz").parse().expect("uri");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client.get(uri.clone()).await
            && res.status() == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecar at {addr} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("sidecar answers");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
