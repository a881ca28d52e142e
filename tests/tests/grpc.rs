//! gRPC through a real tonic server: failed calls come back as HTTP 200 with
//! a `grpc-status`, and the layer counts them by that status, all the way to
//! a real sidecar.

use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_tests::otlp_receiver::Receiver;
use lumen_tests::{SidecarProc, free_port};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::net::TcpListener;

/// Answers by the `outcome` resource attribute of the request; `hang`
/// never answers.
#[derive(Default)]
struct Scripted;

#[tonic::async_trait]
impl MetricsService for Scripted {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let outcome = request
            .get_ref()
            .resource_metrics
            .first()
            .and_then(|r| r.resource.as_ref())
            .and_then(|r| r.attributes.first())
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        match outcome.as_str() {
            "hang" => std::future::pending().await,
            "unavailable" => Err(tonic::Status::unavailable("backend down")),
            "not_found" => Err(tonic::Status::not_found("no such thing")),
            "internal" => Err(tonic::Status::internal("bug")),
            _ => Ok(tonic::Response::new(ExportMetricsServiceResponse::default())),
        }
    }
}

fn request(outcome: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "outcome".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(outcome.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_failures_are_counted_by_grpc_status_not_http_200() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let mut config = LumenConfig::default();
    config.service = "grpc-api".into();
    config.sidecar_url = format!("{}/v1/ingest", sidecar.base());
    let (layer, shipper) = pair(config).expect("valid config");
    let mut shipper = shipper.spawn();

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer.classify_grpc())
            .add_service(MetricsServiceServer::new(Scripted))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut client = MetricsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("client connects");
    let plan = [
        ("ok", 7),
        ("unavailable", 3),
        ("internal", 2),
        ("not_found", 4),
    ];
    for (outcome, times) in plan {
        for _ in 0..times {
            let answer = client.export(request(outcome)).await;
            assert_eq!(answer.is_ok(), outcome == "ok", "{outcome}: {answer:?}");
        }
    }
    let report = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0, "{report:?}");
    server.abort();

    let doc = sidecar.slo("5m").await;
    assert_eq!(doc["requests"], 16, "{doc}");
    let counts = &doc["routes"][0]["counts"];
    assert_eq!(counts["2xx"], 7, "{doc}");
    assert_eq!(counts["4xx"], 4, "NOT_FOUND is a client error: {doc}");
    assert_eq!(
        counts["5xx"], 5,
        "UNAVAILABLE and INTERNAL are server errors: {doc}"
    );
    let availability = doc["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|s| s["name"] == "availability")
        .expect("availability");
    let expected = 11.0 / 16.0 * 100.0;
    assert!(
        (availability["current"].as_f64().expect("a value") - expected).abs() < 1e-9,
        "{availability}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_their_deadline_count_as_server_timeouts_not_cancellations() {
    let mut receiver = Receiver::http(Vec::new()).await;
    let sidecar = SidecarProc::exporting_to(receiver.addr, &[]).await;
    let mut config = LumenConfig::default();
    config.service = "grpc-deadlines".into();
    config.sidecar_url = sidecar.base();
    config.interval = Duration::from_secs(3600);
    let (layer, shipper) = pair(config).expect("valid config");
    let mut shipper = shipper.spawn();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // tonic's own timeout wraps the layers: it drops the handler (and the
    // layer's future) and answers DEADLINE_EXCEEDED itself.
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .timeout(Duration::from_millis(300))
            .layer(layer.classify_grpc())
            .add_service(MetricsServiceServer::new(Scripted))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut client = MetricsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("client connects");
    for _ in 0..3 {
        client.export(request("ok")).await.expect("ok");
    }
    // Five calls the server never answers within their 300 ms.
    for _ in 0..5 {
        let mut call = tonic::Request::new(request("hang"));
        call.set_timeout(Duration::from_millis(300));
        let answer = client.export(call).await.expect_err("timed out");
        assert!(
            matches!(
                answer.code(),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ),
            "{answer:?}"
        );
    }
    drop(client);
    // The client may see its deadline pass a moment before the server drops
    // the last call: ship until the sidecar holds all eight.
    let doc = lumen_tests::eventually(
        "the eight calls at the sidecar",
        Duration::from_secs(20),
        || {
            let (shipper, sidecar) = (&shipper, &sidecar);
            async move {
                let flushed = shipper.flush().await.expect("the shipper runs");
                let doc = sidecar.slo("5m").await;
                (flushed.unsent_requests == 0 && doc["requests"] == 8).then_some(doc)
            }
        },
    )
    .await;
    let report = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0, "{report:?}");
    server.abort();
    assert_eq!(doc["requests"], 8, "the timeouts are requests: {doc}");
    let counts = &doc["routes"][0]["counts"];
    assert_eq!(counts["2xx"], 3, "{doc}");
    assert_eq!(
        counts["5xx"], 5,
        "DEADLINE_EXCEEDED is the server's failure: {doc}"
    );
    assert_eq!(counts["cancelled"], 0, "none was the client's doing: {doc}");
    // Each code counted apart, beside its class: JSON, /metrics, OTLP.
    assert_eq!(
        counts["grpc_codes"],
        serde_json::json!({"OK": 3, "DEADLINE_EXCEEDED": 5}),
        "{doc}"
    );
    let metrics = lumen_tests::get_ok(&format!("{}/metrics", sidecar.base())).await;
    for (code, n) in [("0", 3), ("4", 5)] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("lumen_grpc_calls_total{")
                    && l.contains(&format!("rpc_grpc_status_code=\"{code}\""))
                    && l.ends_with(&format!(" {n}"))),
            "code {code}: {metrics}"
        );
    }
    assert_eq!(sidecar.proc.terminate(), Some(0));
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let got = receiver.received().pop().expect("an export");
    let calls = lumen_tests::otlp_receiver::metrics(&got.request, "lumen_grpc_calls_total");
    let points: Vec<(String, u64)> = calls
        .iter()
        .flat_map(|m| match &m.data {
            Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) => sum
                .data_points
                .iter()
                .map(|p| {
                    let code = lumen_tests::otlp_receiver::attribute(&p.attributes, "rpc.grpc.status_code")
                        .unwrap_or_default();
                    let n = match p.value {
                        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i as u64,
                        _ => 0,
                    };
                    (code, n)
                })
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert!(
        points.contains(&("4".to_owned(), 5)) && points.contains(&("0".to_owned(), 3)),
        "{points:?}"
    );
}
