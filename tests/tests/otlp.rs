//! The sidecar's OTLP export end to end: the `lumen-sidecar` binary exports
//! to real OTLP receivers (HTTP/protobuf decoded with `opentelemetry-proto`,
//! and gRPC served by its generated server), with a metadata-server
//! stand-in for the Cloud Run case.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use lumen_middleware::{LumenConfig, pair};
use lumen_tests::otlp_receiver::{Answer, Receiver, attribute, gauge_value, metrics};
use lumen_tests::*;
use opentelemetry_proto::tonic::metrics::v1::metric;
use tokio::sync::watch;

/// Ships 990 fast (9 ms) 200s and 10 slow (300 ms) 503s on `/ask`, 600 cache hits and 400
/// misses, through the middleware's real shipper.
async fn ship_known_load(sidecar: SocketAddr) {
    let (layer, shipper) = pair({
        let mut c = LumenConfig::default();
        c.service = "ion-mentoring-api".into();
        c.revision = Some("rev-1".into());
        c.sidecar_url = format!("http://{sidecar}/v1/ingest");
        c.interval = Duration::from_secs(3600);
        c
    })
    .expect("valid");
    let mut shipper = shipper.spawn();
    let r = layer.recorder();
    for i in 0..1000 {
        if i < 990 {
            r.record_request(Some("/ask"), &http::Method::GET, 9_000, 200);
        } else {
            r.record_request(Some("/ask"), &http::Method::POST, 300_000, 503);
        }
        r.record_cache(Some("/ask"), i % 10 < 6);
    }
    assert_eq!(
        shipper
            .flush()
            .await
            .expect("the shipper runs")
            .unsent_requests,
        0
    );
    assert_eq!(
        shipper
            .shutdown(Duration::from_secs(2))
            .await
            .expect("the shipper runs")
            .unsent_requests,
        0
    );
}

fn resource_attr(received: &lumen_tests::otlp_receiver::Received, key: &str) -> Option<String> {
    received.request.resource_metrics[0]
        .resource
        .as_ref()
        .and_then(|r| attribute(&r.attributes, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_carries_every_metric_right() {
    let mut receiver = Receiver::http(Vec::new()).await;
    let endpoint = format!("http://{}", receiver.addr);
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
            ("OTEL_SERVICE_NAME", "ion-mentoring-api"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            // The instance's compute priced at 0 $/s, so the ROI below is
            // the cache's arithmetic; the cost counter is still exported.
            ("LUMEN_COST_VCPU_SECOND_USD", "0"),
            ("LUMEN_COST_GIB_SECOND_USD", "0"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    // SIGTERM: the sidecar exports once more before it exits.
    assert_eq!(sidecar.proc.terminate(), Some(0));
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let got = receiver.received().pop().expect("one export");
    assert_eq!(
        got.headers
            .get("content-type")
            .map(|v| v.to_str().expect("ascii")),
        Some("application/x-protobuf")
    );
    assert_eq!(
        resource_attr(&got, "service.name").as_deref(),
        Some("ion-mentoring-api")
    );
    assert_eq!(
        resource_attr(&got, "deployment.environment").as_deref(),
        Some("test")
    );
    assert!(resource_attr(&got, "service.instance.id").is_some());

    let r = &got.request;
    let labels = [
        ("service_name", "ion-mentoring-api"),
        ("revision_name", "rev-1"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        labels.iter().chain(extra).copied().collect()
    };
    // 1 % 5xx: availability 99 % (fails 99.5), error rate 1 % (fails 0.1),
    // both latencies met: 2 of 4, CRITICAL.
    assert_eq!(
        gauge_value(r, "slo_compliance", &with(&[("slo_name", "overall")])),
        Some(50.0)
    );
    assert_eq!(
        gauge_value(r, "slo_compliance", &with(&[("slo_name", "availability")])),
        Some(0.0)
    );
    assert_eq!(
        gauge_value(r, "slo_compliance", &with(&[("slo_name", "latency_p95")])),
        Some(100.0)
    );
    assert_eq!(
        gauge_value(r, "sli_availability_percent", &labels),
        Some(99.0)
    );
    assert_eq!(gauge_value(r, "sli_error_rate_percent", &labels), Some(1.0));
    assert_eq!(gauge_value(r, "cache_hit_rate", &labels), Some(60.0));
    assert_eq!(gauge_value(r, "slo_status", &labels), Some(2.0));
    assert_eq!(gauge_value(r, "sli_requests", &labels), Some(1000.0));
    let p99 = gauge_value(r, "sli_latency_p99_seconds", &labels).expect("p99");
    assert!((0.009..=0.00901).contains(&p99), "{p99}");
    assert_eq!(metrics(r, "sli_latency_p99_seconds")[0].unit, "s");
    // Default ROI: 600 hits × $0.002 against $50 a month prorated to 1 h.
    let cost = 50.0 * 3600.0 / (30.0 * 86_400.0);
    let roi = gauge_value(r, "roi_percentage", &labels).expect("roi");
    assert!((roi - (1.2 - cost) / cost * 100.0).abs() < 1e-6, "{roi}");
    // The cost counter: a monotonic cumulative sum of doubles in USD.
    let spent = metrics(r, "lumen_instance_cost_usd_total");
    assert_eq!(spent[0].unit, "USD");
    let Some(metric::Data::Sum(spent)) = &spent[0].data else {
        panic!("a sum: {spent:?}")
    };
    assert!(spent.is_monotonic && spent.aggregation_temporality == 2);
    assert!(matches!(
        spent.data_points[0].value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v)) if v == 0.0
    ));
    assert_eq!(
        attribute(&spent.data_points[0].attributes, "revision_name").as_deref(),
        Some("rev-1")
    );
    assert!(gauge_value(r, "maturity_score", &labels).is_some());
    assert!(gauge_value(r, "health_score", &labels).is_some());
    assert_eq!(metrics(r, "slo_compliance")[0].unit, "%");

    let counter = metrics(r, "http_server_requests_total");
    let Some(metric::Data::Sum(sum)) = &counter[0].data else {
        panic!("a sum: {counter:?}")
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, 2, "cumulative");
    let count_of = |method: &str, class: &str| {
        sum.data_points
            .iter()
            .find(|p| {
                attribute(&p.attributes, "status_class").as_deref() == Some(class)
                    && attribute(&p.attributes, "http.route").as_deref() == Some("/ask")
                    && attribute(&p.attributes, "http.request.method").as_deref() == Some(method)
                    && attribute(&p.attributes, "service_name").as_deref()
                        == Some("ion-mentoring-api")
            })
            .map(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    i,
                )) => i,
                _ => -1,
            })
    };
    assert_eq!(count_of("GET", "2xx"), Some(990));
    assert_eq!(count_of("POST", "5xx"), Some(10));
    assert_eq!(count_of("GET", "5xx"), None, "no GET failed");

    let histogram = metrics(r, "http.server.request.duration");
    assert_eq!(histogram[0].unit, "s");
    let Some(metric::Data::Histogram(h)) = &histogram[0].data else {
        panic!("a histogram")
    };
    assert_eq!(h.aggregation_temporality, 2, "cumulative");
    let point = &h.data_points[0];
    assert_eq!(
        attribute(&point.attributes, "http.route").as_deref(),
        Some("/ask")
    );
    assert_eq!(point.count, 1000);
    let sum_s = point.sum.expect("a sum");
    assert!((sum_s - 11.91).abs() / 11.91 < 0.001, "{sum_s}");
    // The advised bounds plus the P95 target (0.2 s; 0.5 s, the P99
    // target, is advised already), so the count under each target is exact.
    assert_eq!(
        point.explicit_bounds,
        [
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
        ]
    );
    // 990 at 9 ms fall in (0.005, 0.01]; 10 at 300 ms in (0.25, 0.5].
    assert_eq!(point.bucket_counts[1], 990);
    assert_eq!(point.bucket_counts[8], 10);
    let under = |bound: f64| -> u64 {
        let i = point
            .explicit_bounds
            .iter()
            .position(|b| *b == bound)
            .expect("a bound");
        point.bucket_counts[..=i].iter().sum()
    };
    assert_eq!(under(0.2), 990, "under the P95 target");

    // Each SLO's good and bad events, addable over instances.
    let events = metrics(r, "lumen_slo_events_total");
    let Some(metric::Data::Sum(events)) = &events[0].data else {
        panic!("a sum: {events:?}")
    };
    assert!(events.is_monotonic);
    assert_eq!(events.aggregation_temporality, 2, "cumulative");
    let event_count = |slo: &str, result: &str| {
        events
            .data_points
            .iter()
            .find(|p| {
                attribute(&p.attributes, "slo_name").as_deref() == Some(slo)
                    && attribute(&p.attributes, "result").as_deref() == Some(result)
                    && attribute(&p.attributes, "http.route").as_deref() == Some("/ask")
                    && attribute(&p.attributes, "service_name").as_deref()
                        == Some("ion-mentoring-api")
            })
            .and_then(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    i,
                )) => Some(i),
                _ => None,
            })
    };
    for (slo, good, bad) in [
        ("availability", 990, 10),
        ("error_rate", 990, 10),
        ("latency_p95", 990, 10),
        ("latency_p99", 1000, 0),
    ] {
        assert_eq!(event_count(slo, "good"), Some(good), "{slo}");
        assert_eq!(event_count(slo, "bad"), Some(bad), "{slo}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_reaches_a_grpc_receiver() {
    let mut receiver = Receiver::grpc().await;
    let endpoint = format!("http://{}", receiver.addr);
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=lumen"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    assert_eq!(sidecar.proc.terminate(), Some(0));
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let got = receiver.received().pop().expect("one export");
    assert_eq!(
        got.headers
            .get("x-tenant")
            .map(|v| v.to_str().expect("ascii")),
        Some("lumen")
    );
    let labels = [
        ("service_name", "ion-mentoring-api"),
        ("revision_name", "rev-1"),
    ];
    assert_eq!(
        gauge_value(&got.request, "sli_availability_percent", &labels),
        Some(99.0)
    );
    assert!(!metrics(&got.request, "http.server.request.duration").is_empty());
}

/// A metadata-server stand-in: requires `Metadata-Flavor: Google`, counts
/// token requests, answers a token that expires in `expires_in` seconds.
async fn metadata_server(expires_in: u64) -> (SocketAddr, Arc<AtomicU64>) {
    metadata_server_failing_region(expires_in, 0).await.0
}

/// A metadata server whose region lookup fails (503) the first
/// `region_failures` times; also returns how often the region was asked.
async fn metadata_server_failing_region(
    expires_in: u64,
    region_failures: u64,
) -> ((SocketAddr, Arc<AtomicU64>), Arc<AtomicU64>) {
    let region_asked = Arc::new(AtomicU64::new(0));
    let asked = Arc::clone(&region_asked);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tokens = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&tokens);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            let asked = Arc::clone(&asked);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let counter = Arc::clone(&counter);
                        let asked = Arc::clone(&asked);
                        async move {
                            let flavoured =
                                req.headers().get("metadata-flavor").map(|v| v.as_bytes())
                                    == Some(b"Google");
                            let (status, body) = match (flavoured, req.uri().path()) {
                                (false, _) => (403, String::from("missing Metadata-Flavor")),
                                (
                                    true,
                                    "/computeMetadata/v1/instance/service-accounts/default/token",
                                ) => {
                                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                                    (
                                        200,
                                        format!(
                                            r#"{{"access_token":"tok-{n}","expires_in":{expires_in},"token_type":"Bearer"}}"#
                                        ),
                                    )
                                }
                                (true, "/computeMetadata/v1/project/project-id") => {
                                    (200, "lumen-proj".into())
                                }
                                (true, "/computeMetadata/v1/instance/region") => {
                                    if asked.fetch_add(1, Ordering::SeqCst) < region_failures {
                                        (503, "try again".into())
                                    } else {
                                        (200, "projects/123/regions/europe-west1".into())
                                    }
                                }
                                (true, "/computeMetadata/v1/instance/id") => {
                                    (200, "inst-42".into())
                                }
                                (true, _) => (404, "not found".into()),
                            };
                            let mut response = http::Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() =
                                http::StatusCode::from_u16(status).expect("valid");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    ((addr, tokens), region_asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cloud_run_the_export_is_authenticated_and_described() {
    let (metadata, tokens) = metadata_server(3600).await;
    let mut receiver = Receiver::http(Vec::new()).await;
    let (endpoint, metadata_host) = (format!("http://{}", receiver.addr), metadata.to_string());
    let cloud_run_api = format!("http://{metadata}");
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("K_SERVICE", "ion-mentoring-api"),
            // The revisions are listed from a loopback stand-in, never Google.
            ("LUMEN_CLOUD_RUN_API", cloud_run_api.as_str()),
            ("K_REVISION", "ion-mentoring-api-00007-xyz"),
            ("K_CONFIGURATION", "ion-mentoring-api"),
            ("GCE_METADATA_HOST", metadata_host.as_str()),
            ("LUMEN_GOOGLE_AUTH", "1"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    assert_eq!(sidecar.proc.terminate(), Some(0));
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let got = receiver.received().pop().expect("one export");
    let header = |k: &str| {
        got.headers
            .get(k)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer tok-1"));
    assert_eq!(
        header("x-goog-user-project"),
        None,
        "a service account's token bills its own project; the header would need serviceusage.services.use"
    );
    for (key, value) in [
        ("service.name", "ion-mentoring-api"),
        ("service.version", "ion-mentoring-api-00007-xyz"),
        ("service.instance.id", "inst-42"),
        ("cloud.provider", "gcp"),
        ("cloud.platform", "gcp_cloud_run"),
        ("cloud.region", "europe-west1"),
        ("faas.name", "ion-mentoring-api"),
        ("faas.version", "ion-mentoring-api-00007-xyz"),
        ("faas.instance", "inst-42"),
        ("gcp.project_id", "lumen-proj"),
    ] {
        assert_eq!(resource_attr(&got, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        1,
        "the token was fetched once and cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_then_refreshed_before_they_expire() {
    use lumen_sidecar::google::{MetadataClient, TokenSource};
    let (metadata, tokens) = metadata_server(120).await;
    let source = TokenSource::new(MetadataClient::new(&metadata.to_string()));
    let now = Instant::now();
    assert_eq!(source.token_at(now).await.expect("token"), "tok-1");
    assert_eq!(
        source
            .token_at(now + Duration::from_secs(59))
            .await
            .expect("cached"),
        "tok-1"
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    // 120 s of life, refreshed 60 s before it ends.
    assert_eq!(
        source
            .token_at(now + Duration::from_secs(61))
            .await
            .expect("refreshed"),
        "tok-2"
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    assert_eq!(source.latest().as_deref(), Some("tok-2"));
    let nowhere = TokenSource::new(MetadataClient::new(&format!("127.0.0.1:{}", free_port())));
    assert!(
        nowhere
            .token()
            .await
            .expect_err("no server")
            .to_string()
            .contains("metadata server")
    );
}

async fn export_counter(sidecar: &SidecarProc, result: &str) -> Option<u64> {
    let (_, body) = try_get(&format!("{}/metrics", sidecar.base())).await?;
    let prefix = format!("lumen_otlp_exports_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_and_a_stuck_export_blocks_nothing() {
    let (gate, gated) = watch::channel(false);
    let mut receiver = Receiver::http(vec![
        Answer::Hold(gated, Box::new(Answer::Status(503, Some("1")))),
        Answer::Accept,
    ])
    .await;
    let endpoint = format!("http://{}", receiver.addr);
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "10000"),
        ],
    )
    .await;
    // The first periodic export arrives and is held unanswered.
    eventually(
        "the first export to arrive",
        Duration::from_secs(30),
        || async { (receiver.arrived() >= 1).then_some(()) },
    )
    .await;
    // Meanwhile ingest and reads go on.
    let load = tokio::time::timeout(Duration::from_secs(10), ship_known_load(sidecar.addr));
    load.await.expect("ingest is not blocked by a stuck export");
    assert_eq!(sidecar.slo("5m").await["requests"], 1000);
    gate.send_replace(true);
    receiver.wait_for(2, Duration::from_secs(30)).await;
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 200], "retried after the 503");
    let received = receiver.received();
    let waited = received[1].at.duration_since(received[0].at);
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    eventually(
        "the export counted as sent",
        Duration::from_secs(10),
        || async { (export_counter(&sidecar, "sent").await? == 1).then_some(()) },
    )
    .await;
    assert_eq!(export_counter(&sidecar, "failed").await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried_and_the_drop_is_counted() {
    let mut receiver = Receiver::http(vec![Answer::Status(400, None)]).await;
    let endpoint = format!("http://{}", receiver.addr);
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "10000"),
        ],
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(30)).await;
    eventually("the failure counted", Duration::from_secs(10), || async {
        (export_counter(&sidecar, "failed").await? == 1).then_some(())
    })
    .await;
    assert_eq!(receiver.arrived(), 1, "no retry after a 400");
    let (_, body) = try_get(&format!("{}/metrics", sidecar.base()))
        .await
        .expect("metrics");
    let dropped: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("lumen_otlp_points_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("counter present");
    assert!(dropped > 0, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_quota_project_is_sent_as_x_goog_user_project() {
    let (metadata, _) = metadata_server(3600).await;
    let mut receiver = Receiver::http(Vec::new()).await;
    let (endpoint, metadata_host) = (format!("http://{}", receiver.addr), metadata.to_string());
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("GCE_METADATA_HOST", metadata_host.as_str()),
            ("LUMEN_GOOGLE_AUTH", "1"),
            ("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-proj"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    assert_eq!(sidecar.proc.terminate(), Some(0));
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let got = receiver.received().pop().expect("one export");
    assert_eq!(
        got.headers
            .get("x-goog-user-project")
            .and_then(|v| v.to_str().ok()),
        Some("billing-proj")
    );
    assert_eq!(
        got.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer tok-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_region_nothing_is_exported_until_the_metadata_server_says() {
    let ((metadata, _), region_asked) = metadata_server_failing_region(3600, 3).await;
    let mut receiver = Receiver::http(Vec::new()).await;
    let (endpoint, metadata_host) = (format!("http://{}", receiver.addr), metadata.to_string());
    let cloud_run_api = format!("http://{metadata}");
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("K_SERVICE", "ion-mentoring-api"),
            // The revisions are listed from a loopback stand-in, never Google.
            ("LUMEN_CLOUD_RUN_API", cloud_run_api.as_str()),
            ("GCE_METADATA_HOST", metadata_host.as_str()),
            ("LUMEN_GOOGLE_AUTH", "1"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "10000"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    receiver.wait_for(1, Duration::from_secs(60)).await;
    assert!(
        region_asked.load(Ordering::SeqCst) >= 4,
        "the region was asked again after three failures"
    );
    assert_eq!(sidecar.proc.terminate(), Some(0));
    for got in receiver.received() {
        assert_eq!(
            resource_attr(&got, "cloud.region").as_deref(),
            Some("europe-west1"),
            "no point ever left without its location"
        );
    }
}

async fn counter_value(sidecar: &SidecarProc, name: &str) -> Option<u64> {
    let (_, body) = try_get(&format!("{}/metrics", sidecar.base())).await?;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_points_are_counted_never_taken_for_sent() {
    let mut receiver = Receiver::http(vec![
        Answer::Partial(3, "points must have a location"),
        Answer::Refuse(400, "Invalid metric name"),
    ])
    .await;
    let endpoint = format!("http://{}", receiver.addr);
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "10000"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    receiver.wait_for(2, Duration::from_secs(40)).await;
    let refused = &receiver.received()[1];
    let points_in_refused: u64 = refused
        .request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        })
        .sum::<usize>() as u64;
    assert!(points_in_refused > 0);
    let rejected = eventually("rejections counted", Duration::from_secs(10), || async {
        let n = counter_value(&sidecar, "lumen_otlp_points_rejected_total").await?;
        (n == 3 + points_in_refused).then_some(n)
    })
    .await;
    assert_eq!(rejected, 3 + points_in_refused);
    assert_eq!(export_counter(&sidecar, "partial").await, Some(1));
    assert_eq!(export_counter(&sidecar, "failed").await, Some(1));
    assert_eq!(
        export_counter(&sidecar, "sent").await,
        Some(0),
        "nothing was accepted whole"
    );
}

/// The resident memory of a process, from /proc.
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_for_several_exports_costs_bounded_memory_and_loses_no_count() {
    let (gate, gated) = watch::channel(false);
    let held = || Answer::Hold(gated.clone(), Box::new(Answer::Accept));
    let receiver = Receiver::http(vec![held(), held(), held(), held()]).await;
    let endpoint = format!("http://{}", receiver.addr);
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "10000"),
        ],
    )
    .await;
    ship_known_load(sidecar.addr).await;
    // Exports time out one after another against the hung endpoint…
    eventually(
        "a first export given up",
        Duration::from_secs(60),
        || async { (export_counter(&sidecar, "failed").await? >= 1).then_some(()) },
    )
    .await;
    let rss_first = rss_of(sidecar.proc.id());
    eventually(
        "a second export given up",
        Duration::from_secs(60),
        || async { (export_counter(&sidecar, "failed").await? >= 2).then_some(()) },
    )
    .await;
    // …costing no memory that grows with them, and ingest goes on.
    let rss_second = rss_of(sidecar.proc.id());
    assert!(
        rss_second <= rss_first + 8 * 1024 * 1024,
        "RSS {rss_first} → {rss_second} over one more hung export"
    );
    assert_eq!(sidecar.slo("5m").await["requests"], 1000);
    let metrics_text = get_ok(&format!("{}/metrics", sidecar.base())).await;
    let dropped = metrics_text
        .lines()
        .find_map(|l| l.strip_prefix("lumen_otlp_points_dropped_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        dropped > 0,
        "the failed exports' points are counted: {metrics_text}"
    );
    // When the endpoint answers again, the cumulative counters carry every
    // request: nothing was lost with the failed exports.
    gate.send_replace(true);
    eventually(
        "an export accepted again",
        Duration::from_secs(60),
        || async { (export_counter(&sidecar, "sent").await? >= 1).then_some(()) },
    )
    .await;
    let last = receiver
        .received()
        .into_iter()
        .rev()
        .find(|r| r.status == 200)
        .expect("an accepted export");
    let counter = metrics(&last.request, "http_server_requests_total");
    let Some(metric::Data::Sum(sum)) = &counter[0].data else {
        panic!("a sum")
    };
    let total: i64 = sum
        .data_points
        .iter()
        .filter_map(|p| match p.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => {
                Some(i)
            }
            _ => None,
        })
        .sum();
    assert_eq!(total, 1000);
}
