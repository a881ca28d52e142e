//! Version skew never loses data: a batch of an unread wire version gets a
//! distinct 409 naming the versions read, which the middleware keeps its
//! batch on; unknown fields within version 1 are ignored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lumen_middleware::wire::{self, Batch, Series, StatusCounts, WIRE_VERSIONS_HEADER};
use lumen_middleware::{LumenConfig, pair};
use lumen_tests::*;

fn batch_json(seq: u64, requests: u64) -> serde_json::Value {
    let mut latency =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    latency.record_n(2_500, requests).expect("in range");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let batch = Batch::new("skew-1", seq, "skew-api", now - 1_000, now).with_series([Series::new(
        Some("/x"),
        &latency,
        StatusCounts {
            success: requests,
            ..Default::default()
        },
    )]);
    serde_json::to_value(&batch).expect("serializes")
}

async fn post(sidecar: &SidecarProc, body: &serde_json::Value) -> (u16, Option<String>, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("{}/v1/ingest", sidecar.base()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response = client.request(request).await.expect("an answer");
    let status = response.status().as_u16();
    let versions = response
        .headers()
        .get(WIRE_VERSIONS_HEADER)
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        versions,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_wire_version_is_a_409_the_sender_keeps_and_new_fields_are_ignored() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let mut v2 = batch_json(1, 10);
    v2["version"] = 2.into();
    let (status, versions, body) = post(&sidecar, &v2).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(versions.as_deref(), Some("1"));
    assert!(body.contains("unsupported wire version 2"), "{body}");
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    assert!(
        metrics.contains("lumen_batches_rejected_total{reason=\"version\"} 1"),
        "{metrics}"
    );

    // Fields a newer sender adds within version 1 are ignored, the rest kept.
    let mut v1 = batch_json(1, 10);
    v1["sampling"] = serde_json::json!({ "rate": 1.0 });
    v1["series"][0]["p999_hint_us"] = 12_345.into();
    let (status, _, body) = post(&sidecar, &v1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sidecar.slo("1h").await["requests"], 10);
}

/// A sidecar stand-in that refuses the first `refuse` batches as an older
/// sidecar refuses a newer wire version, then acknowledges; counts what it
/// acknowledged.
async fn older_then_upgraded_sidecar(refuse: u64) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&acknowledged);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, counted) = (Arc::clone(&seen), Arc::clone(&counted));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let (seen, counted) = (Arc::clone(&seen), Arc::clone(&counted));
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let batch = wire::decode(&body).expect("a valid batch");
                            let response = if seen.fetch_add(1, Ordering::SeqCst) < refuse {
                                http::Response::builder()
                                    .status(409)
                                    .header(WIRE_VERSIONS_HEADER, "0")
                                    .body(Full::new(Bytes::from_static(
                                        br#"{"error":"version: unsupported wire version 1 (this sidecar reads version 0)"}"#,
                                    )))
                            } else {
                                let n: u64 = batch.series.iter().map(|s| s.latency.len()).sum();
                                counted.fetch_add(n, Ordering::SeqCst);
                                http::Response::builder()
                                    .status(200)
                                    .body(Full::new(Bytes::from(format!(
                                        "{{\"applied_seq\":{}}}",
                                        batch.seq
                                    ))))
                            };
                            Ok::<_, hyper::Error>(response.expect("a response"))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, acknowledged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_keeps_its_batches_until_the_sidecar_reads_its_version() {
    let (addr, acknowledged) = older_then_upgraded_sidecar(2).await;
    let (layer, shipper) = pair({
        let mut c = LumenConfig::default();
        c.service = "skew-api".into();
        c.sidecar_url = format!("http://{addr}/v1/ingest");
        c.interval = Duration::from_secs(3600);
        c
    })
    .expect("valid config");
    let mut shipper = shipper.spawn();
    let recorder = layer.recorder();
    for i in 0..300 {
        recorder.record_response(Some("/x"), 1_000 + i, 200);
    }
    // Refused twice (kept, retried), then read.
    let first = shipper.flush().await.expect("the shipper runs");
    assert_eq!(first.unsent_requests, 300, "kept after the 409");
    eventually(
        "the batch delivered once the sidecar reads it",
        Duration::from_secs(30),
        || {
            let acknowledged = Arc::clone(&acknowledged);
            async move { (acknowledged.load(Ordering::SeqCst) == 300).then_some(()) }
        },
    )
    .await;
    let stats = shipper.stats();
    assert_eq!(stats.configuration_errors, 2, "{stats:?}");
    let report = shipper
        .shutdown(Duration::from_secs(2))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0);
}
