//! Ingest and the read API over real HTTP against an in-process sidecar.

use std::net::SocketAddr;
use std::sync::Arc;

use lumen_sidecar::Sidecar;
use lumen_sidecar::app::AppState;
use lumen_sidecar::config::SidecarConfig;
use lumen_tests::now_ms;
use lumen_tests::sidecar_http::*;
use serde_json::{Value, json};

async fn start(config: SidecarConfig) -> (SocketAddr, Arc<AppState>) {
    let config = SidecarConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..config
    };
    let sidecar = Sidecar::bind(config).await.expect("binds");
    let addr = sidecar.local_addr();
    let state = sidecar.state();
    tokio::spawn(sidecar.run(std::future::pending()));
    wait_healthy(addr).await;
    (addr, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_then_read_the_slo_document() {
    let (addr, _) = start(SidecarConfig::default()).await;
    let b = batch(
        "i1",
        1,
        vec![
            series(Some("/ask"), 990, 20_000, 5, 5, 300_000),
            series(Some("/mentors"), 100, 2_000, 0, 0, 1),
        ],
    );
    assert_eq!(
        post_batch(addr, &b).await,
        (200, r#"{"applied_seq":1}"#.to_owned())
    );
    let doc = slo(addr).await;
    assert_eq!(doc["service"], "ion-mentoring-api");
    assert_eq!(doc["revision"], "ion-mentoring-api-00042-abc");
    assert_eq!(doc["window_s"], 3600);
    assert_eq!(doc["requests"], 1100);
    assert_eq!(doc["counts"]["2xx"], 1090);
    assert_eq!(doc["counts"]["5xx"], 5);
    let by_name = |n: &str| {
        doc["slos"]
            .as_array()
            .expect("slos")
            .iter()
            .find(|s| s["name"] == n)
            .expect(n)
            .clone()
    };
    // 5 of 1100 are 5xx: availability 99.545 % (met); errors 10/1100 = 0.91 % (not met).
    assert_eq!(by_name("availability")["met"], true);
    assert_eq!(by_name("error_rate")["met"], false);
    assert_eq!(by_name("latency_p95")["unit"], "ms");
    assert_eq!(doc["status"], "WARNING");
    assert_eq!(doc["compliance_rate"], 75.0);
    let routes: Vec<&str> = doc["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["route"].as_str().expect("named"))
        .collect();
    assert_eq!(routes, ["/ask", "/mentors"]);
    assert_eq!(doc["routes"][1]["status"], "HEALTHY");
    assert_eq!(doc["cache"]["hits"], 495 + 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_batch_is_acknowledged_and_counted_once() {
    let (addr, state) = start(SidecarConfig::default()).await;
    let b = batch("i1", 7, vec![series(None, 10, 1_000, 0, 0, 1)]);
    assert_eq!(post_batch(addr, &b).await.0, 200);
    assert_eq!(
        post_batch(addr, &b).await,
        (200, r#"{"applied_seq":7}"#.to_owned())
    );
    let older = batch("i1", 3, vec![series(None, 10, 1_000, 0, 0, 1)]);
    assert_eq!(
        post_batch(addr, &older).await,
        (200, r#"{"applied_seq":7}"#.to_owned())
    );
    assert_eq!(slo(addr).await["requests"], 10);
    assert_eq!(
        state
            .stats
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_batch_is_refused_and_changes_nothing() {
    let config = SidecarConfig {
        max_body_bytes: 64 * 1024,
        ..SidecarConfig::default()
    };
    let (addr, _) = start(config).await;
    let good = batch("i1", 1, vec![series(Some("/r"), 10, 1_000, 0, 0, 1)]);
    assert_eq!(post_batch(addr, &good).await.0, 200);
    let before = slo(addr).await;
    let good_json = serde_json::to_value(&good).expect("json");
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good_json.clone();
        v["seq"] = json!(2);
        f(&mut v);
        serde_json::to_vec(&v).expect("json")
    };
    let full = edit(&|_| {});
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            full[..full.len() / 2].to_vec(),
            "application/json",
            400,
            "EOF while parsing",
        ),
        (
            edit(&|v| v["version"] = json!(9)),
            "application/json",
            // Distinct from a malformed batch: the sender keeps it.
            409,
            "version: unsupported wire version 9",
        ),
        (
            edit(&|v| v["series"][0]["status"]["2xx"] = json!(-10)),
            "application/json",
            400,
            "series[0].status.2xx",
        ),
        (
            edit(&|v| v["series"][0]["status"]["2xx"] = json!(2.5)),
            "application/json",
            400,
            "series[0].status.2xx: invalid type: floating point",
        ),
        (
            edit(&|v| v["series"][0]["status"]["2xx"] = json!(11)),
            "application/json",
            400,
            "histogram holds 10 values but status counts plus errors are 11",
        ),
        (
            edit(&|v| v["end_ms"] = json!(1)),
            "application/json",
            400,
            "end_ms: 1 is before start_ms",
        ),
        (
            edit(&|v| {
                v["start_ms"] = json!(now_ms() + 3_600_000);
                v["end_ms"] = json!(now_ms() + 3_600_000);
            }),
            "application/json",
            400,
            "end_ms: ",
        ),
        (
            edit(&|v| v["series"][0]["latency_us"] = json!("%%%")),
            "application/json",
            400,
            "series[0].latency_us: not a compressed HdrHistogram",
        ),
        (
            vec![b' '; 70 * 1024],
            "application/json",
            413,
            "over the limit of 65536 bytes",
        ),
        (full.clone(), "text/plain", 415, "content-type"),
    ];
    for (body, content_type, status, message) in cases {
        let (got, text) = post(addr, body, content_type, None).await;
        assert_eq!(got, status, "{message}: {text}");
        assert!(text.contains(message), "expected `{message}` in {text}");
        assert!(!text.trim_end().contains('\n'), "one line: {text}");
    }
    let mut after = slo(addr).await;
    after["evaluated_at_ms"] = before["evaluated_at_ms"].clone();
    assert_eq!(after, before, "nothing was applied");
    // seq 2 was never applied: a valid seq 2 is stored now.
    let (status, ack) = post(addr, full, "application/json", None).await;
    assert_eq!((status, ack.as_str()), (200, r#"{"applied_seq":2}"#));
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("lumen_batches_rejected_total{reason=\"malformed\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("lumen_batches_rejected_total{reason=\"version\"} 1"));
    assert!(metrics.contains("lumen_batches_rejected_total{reason=\"too_large\"} 1"));
    assert!(metrics.contains("lumen_batches_rejected_total{reason=\"future\"} 1"));
    assert!(metrics.contains("lumen_batches_rejected_total{reason=\"content_type\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_guards_ingest() {
    let config = SidecarConfig {
        auth_token: Some("s3cret".into()),
        ..SidecarConfig::default()
    };
    let (addr, _) = start(config).await;
    let body = serde_json::to_vec(&batch("i", 1, vec![])).expect("json");
    assert_eq!(
        post(addr, body.clone(), "application/json", None).await.0,
        401
    );
    assert_eq!(
        post(addr, body.clone(), "application/json", Some("wrong!"))
            .await
            .0,
        401
    );
    assert_eq!(
        post(addr, body, "application/json", Some("s3cret")).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_status_page_and_window_errors() {
    let (addr, _) = start(SidecarConfig::default()).await;
    let (_, empty) = get(addr, "/metrics").await;
    assert!(
        empty.contains("slo_status{service_name=\"unknown_service\",revision_name=\"unknown\"} 3"),
        "{empty}"
    );
    assert!(
        !empty.contains("slo_compliance{"),
        "no compliance without data"
    );
    post_batch(
        addr,
        &batch("i", 1, vec![series(Some("/r"), 1000, 5_000, 0, 0, 1)]),
    )
    .await;
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "slo_compliance{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\",slo_name=\"overall\"} 100",
        "slo_compliance{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\",slo_name=\"latency_p95\"} 100",
        "slo_target{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\",slo_name=\"availability\"} 99.5",
        "slo_status{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\"} 0",
        "sli_requests{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\"} 1000",
        "cache_hit_rate{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\"} 50",
        "lumen_batches_applied_total 1",
        "lumen_requests_ingested_total 1000",
        "slo_target{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\",slo_name=\"latency_p95\"} 0.2",
        "http_server_requests_total{service_name=\"ion-mentoring-api\",revision_name=\"ion-mentoring-api-00042-abc\",http_route=\"/r\",http_request_method=\"GET\",status_class=\"2xx\"} 1000",
        "# TYPE http_server_requests_total counter",
        "# HELP slo_compliance 100 when the SLO",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    let (status, md) = get(addr, "/v1/report?window=5m").await;
    assert_eq!(status, 200);
    assert!(md.starts_with("# SLO report: ion-mentoring-api"), "{md}");
    assert!(md.contains("**Status: HEALTHY**"));
    assert!(md.contains("| /r | 1000 |"));
    assert!(md.contains("All SLOs are meeting targets. Continue monitoring."));
    let (status, html) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<span id=\"status\" class=\"badge HEALTHY\">HEALTHY</span>"));
    for bad in [
        "/v1/slo?window=30s",
        "/v1/slo?window=2d",
        "/v1/slo?window=90s",
        "/v1/report?window=soon",
    ] {
        let (status, body) = get(addr, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains("window: "), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_cuts_the_window_into_steps_and_refuses_what_it_cannot_cut() {
    let (addr, _) = start(SidecarConfig::default()).await;
    post_batch(
        addr,
        &batch(
            "i",
            1,
            vec![
                series(Some("/ask"), 990, 20_000, 5, 5, 300_000),
                series(Some("/<img src=x>"), 100, 2_000, 0, 0, 1),
            ],
        ),
    )
    .await;
    let (status, body) = get(addr, "/v1/series?window=5m&step=1m").await;
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["window_s"], 300);
    assert_eq!(doc["step_s"], 60);
    let points = doc["points"].as_array().expect("points");
    assert_eq!(points.len(), 5);
    let starts: Vec<u64> = points
        .iter()
        .map(|p| p["start_ms"].as_u64().expect("ms"))
        .collect();
    assert!(
        starts.windows(2).all(|w| w[1] == w[0] + 60_000),
        "{starts:?}"
    );
    let total: u64 = points
        .iter()
        .map(|p| p["requests"].as_u64().expect("n"))
        .sum();
    assert_eq!(total, 1100, "every request in exactly one step");
    let busy = points
        .iter()
        .find(|p| p["requests"] == 1100)
        .expect("the batch's minute");
    let p50 = busy["latency"]["p50_ms"].as_f64().expect("p50");
    assert!((p50 - 20.0).abs() <= 0.02, "{p50}: the 20 ms bucket's top");
    assert_eq!(
        busy["error_rate_percent"]
            .as_f64()
            .map(|e| (e * 100.0).round()),
        Some(91.0)
    );
    let dist = doc["distribution"].as_array().expect("curve");
    assert_eq!(dist.len(), 10);
    assert_eq!(dist[9]["percentile"], 99.99);

    let (status, body) = get(addr, "/v1/series?window=5m&route=/ask").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["route"], "/ask");
    let total: u64 = doc["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["requests"].as_u64().expect("n"))
        .sum();
    assert_eq!(total, 1000);
    let (_, body) = get(addr, "/v1/series?window=24h").await;
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["step_s"], 240, "at most 360 steps by default");

    for (bad, says) in [
        ("/v1/series?window=5m&step=30s", "whole minutes"),
        ("/v1/series?window=5m&step=2m", "does not divide"),
        ("/v1/series?window=5m&step=10m", "does not divide"),
        ("/v1/series?window=2d", "window: "),
        ("/v1/series?window=1h&step=soon", "step: "),
    ] {
        let (status, body) = get(addr, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains(says), "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_experiments_api_names_what_it_refuses_and_counts_each_arm() {
    use lumen_middleware::wire::{Arm, Assignments, Variant};
    let config = SidecarConfig {
        auth_token: Some("s3cret".into()),
        ..SidecarConfig::default()
    };
    let (addr, _) = start(config).await;
    let start_with = |body: &str, token: Option<&'static str>| {
        let body = body.as_bytes().to_vec();
        async move { post_to(addr, "/v1/experiments", body, "application/json", token).await }
    };
    let good = r#"{"param": "ttl", "a": 60, "b": 600}"#;
    assert_eq!(start_with(good, None).await.0, 401);
    for (body, error) in [
        (r#"{"param": "ttl", "a": 1}"#, "missing field `b`"),
        (
            r#"{"param": "ttl", "a": 1, "b": 2, "colour": 1}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"param": "ttl", "a": 1, "b": 2, "duration": "7 days"}"#,
            "duration: ",
        ),
        (
            r#"{"param": "ttl", "a": 1, "b": 2, "primary": "p95"}"#,
            "primary: unknown variant `p95`",
        ),
        (
            r#"{"param": "ttl", "a": 1, "b": 2, "share_b_percent": 0}"#,
            "share: 0 is not a percent",
        ),
        (
            r#"{"param": "ttl", "a": 1, "b": 1}"#,
            "the arms must differ",
        ),
    ] {
        let (status, answer) = start_with(body, Some("s3cret")).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(error), "{body}: {answer}");
    }
    let (status, answer) = start_with(good, Some("s3cret")).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = start_with(good, Some("s3cret")).await;
    assert_eq!(status, 409, "{answer}");

    // The arms' series count in their arms; another experiment's do not.
    let arm = |arm: Arm, experiment: u32, ok: u64| {
        let mut s = series(Some("/ask"), ok, 2_000, 0, 0, 1);
        s.variant = Some(Variant { experiment, arm });
        s.assignments = Some(Assignments {
            random: ok,
            by_key: 0,
        });
        s
    };
    let b = batch(
        "i1",
        1,
        vec![
            series(Some("/ask"), 5, 2_000, 0, 0, 1),
            arm(Arm::A, 1, 40),
            arm(Arm::B, 1, 45),
            arm(Arm::B, 9, 1_000),
        ],
    );
    let body = serde_json::to_vec(&b).expect("json");
    let (status, answer) = post(addr, body, "application/json", Some("s3cret")).await;
    assert_eq!(status, 200, "{answer}");
    let ack: Value = serde_json::from_str(&answer).expect("JSON");
    let arms = &ack["tuning"]["experiment"];
    let first_version = ack["tuning"]["version"].as_u64().expect("a version");
    assert_eq!(
        (
            arms["id"].as_u64(),
            arms["param"].as_str(),
            arms["share_b_percent"].as_u64()
        ),
        (Some(1), Some("ttl"), Some(50)),
        "{ack}"
    );
    let running = &serde_json::from_str::<Value>(&get(addr, "/v1/experiments").await.1)
        .expect("JSON")["running"];
    let requests = |i: usize| running["arms"][i]["counts"]["requests"].as_u64();
    assert_eq!((requests(0), requests(1)), (Some(40), Some(45)));
    assert_eq!(
        get(addr, "/v1/experiments?format=xml").await.0,
        400,
        "an unknown format"
    );

    let stop = || async {
        post_to(
            addr,
            "/v1/experiments/stop",
            Vec::new(),
            "application/json",
            Some("s3cret"),
        )
        .await
    };
    assert_eq!(stop().await.0, 200);
    let (status, answer) = stop().await;
    assert_eq!(
        (status, answer.contains("no experiment is running")),
        (409, true)
    );
    // The next answer says it stopped: no arms, a newer version.
    let body = serde_json::to_vec(&batch("i1", 2, vec![])).expect("json");
    let ack: Value =
        serde_json::from_str(&post(addr, body, "application/json", Some("s3cret")).await.1)
            .expect("JSON");
    assert!(ack["tuning"]["experiment"].is_null(), "{ack}");
    assert!(
        ack["tuning"]["version"].as_u64() > Some(first_version),
        "{ack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_counts_and_seqs_are_refused_by_field_and_change_nothing() {
    let (addr, state) = start(SidecarConfig::default()).await;
    assert_eq!(
        post_batch(
            addr,
            &batch("i1", 1, vec![series(None, 10, 1_000, 0, 0, 1)])
        )
        .await
        .0,
        200
    );
    // Three batches of 2^63 − 1 requests in different buckets were once
    // acknowledged and saturated the merged histogram.
    let huge = (1_u64 << 63) - 1;
    for (seq, us) in [(2, 1_000), (3, 50_000), (4, 900_000)] {
        let (status, body) = post_batch(
            addr,
            &batch("i1", seq, vec![series(None, huge, us, 0, 0, 1)]),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("series[0].status"), "{body}");
    }
    // A seq of 2^64 − 1 once made every later batch of its instance a
    // "duplicate".
    let (status, body) = post_batch(
        addr,
        &batch("i1", u64::MAX, vec![series(None, 1, 1_000, 0, 0, 1)]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"error\":\"seq"), "{body}");
    let (status, body) =
        post_batch(addr, &batch("i1", 2, vec![series(None, 5, 1_000, 0, 0, 1)])).await;
    assert_eq!((status, body.as_str()), (200, r#"{"applied_seq":2}"#));
    assert_eq!(slo(addr).await["requests"], 15);
    assert_eq!(state.store().ledger().applied_seq("i1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_can_neither_start_an_experiment_nor_read_through_a_rebound_name() {
    let (addr, _) = start(SidecarConfig::default()).await;
    let body = br#"{"param":"answer_ttl_s","a":300,"b":900}"#.to_vec();
    // What a page can send without asking first: text/plain or a form…
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, answer) = request_with(
            addr,
            "POST",
            "/v1/experiments",
            &[
                ("content-type", content_type),
                ("origin", "http://evil.example"),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {answer}");
    }
    // …and JSON from another site, stop included.
    for path in ["/v1/experiments", "/v1/experiments/stop"] {
        let (status, answer) = request_with(
            addr,
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("origin", "http://evil.example"),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(status, 403, "{path}: {answer}");
    }
    let (_, list) = get(addr, "/v1/experiments").await;
    let list: Value = serde_json::from_str(&list).expect("JSON");
    assert!(list["running"].is_null(), "nothing started: {list}");
    // The CLI's request (JSON, no Origin) is taken.
    let (status, answer) = request_with(
        addr,
        "POST",
        "/v1/experiments",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    // A page whose name was rebound to 127.0.0.1 reads nothing.
    let port = addr.port();
    let rebound = format!("evil.example:{port}");
    let (status, answer) = request_with(
        addr,
        "GET",
        "/v1/slo",
        &[("host", rebound.as_str())],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 421, "{answer}");
    let local = format!("localhost:{port}");
    let (status, _) = request_with(
        addr,
        "GET",
        "/v1/slo",
        &[("host", local.as_str())],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200);
}
