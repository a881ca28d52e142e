//! The fleet view end to end: three sidecars (three instances of one
//! service) fed an uneven load through the middleware's real shipper, a
//! real Prometheus scraping them, and `lumen-sidecar check --prometheus`
//! against one more sidecar fed the whole load.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use lumen_tests::fleet_load::{InstanceLoad, ship, sidecar_cli};
use lumen_tests::*;

const SERVICE: &str = "fleet-api";

fn start_prometheus(targets: &[SocketAddr]) -> (Proc, String, std::path::PathBuf) {
    let program =
        find_program("prometheus").expect("prometheus is installed (scripts/test.sh installs it)");
    let dir = std::env::temp_dir().join(format!("lumen-fleet-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("prometheus.yml");
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lumen\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        ),
    )
    .expect("config");
    let port = free_port();
    let mut cmd = Command::new(program);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    (
        Proc::spawn("prometheus", cmd),
        format!("http://127.0.0.1:{port}"),
        dir,
    )
}

/// The value of a one-sample instant query, once Prometheus has it.
async fn query_value(api: &str, q: &str) -> Option<f64> {
    let url = format!(
        "{api}/api/v1/query?query={}",
        lumen_sidecar::http_client::percent_encode(q)
    );
    let (_, body) = try_get(&url).await?;
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    doc["data"]["result"][0]["value"][1]
        .as_str()?
        .parse::<f64>()
        .ok()
}

fn check(args: &[&str]) -> (Option<i32>, String, String) {
    cli("check", args)
}

fn cli(command: &str, args: &[&str]) -> (Option<i32>, String, String) {
    sidecar_cli(command, args)
}

/// `command --prometheus api --service SERVICE --window 10m --json`: the
/// exit code and the document.
fn fleet_json(command: &str, api: &str) -> (Option<i32>, serde_json::Value) {
    let (code, out, err) = cli(
        command,
        &[
            "--prometheus",
            api,
            "--service",
            SERVICE,
            "--window",
            "10m",
            "--json",
        ],
    );
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, doc)
}

fn slo<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

/// Uneven: the first instance takes most requests, the second most of the
/// 5xx, the third almost nothing.
const LOADS: [InstanceLoad; 3] = [
    InstanceLoad {
        requests: 3000,
        fail_every: 500,
        cancelled: 4,
        seed: 1,
    },
    InstanceLoad {
        requests: 1200,
        fail_every: 9,
        cancelled: 0,
        seed: 2,
    },
    InstanceLoad {
        requests: 6,
        fail_every: 1000,
        cancelled: 1,
        seed: 3,
    },
];

/// Three sidecars fed [`LOADS`] (and, when asked, one more fed all of it),
/// scraped by a real Prometheus that holds every instance's final counts.
struct Fleet {
    _instances: Vec<SidecarProc>,
    reference: Option<SidecarProc>,
    _prometheus: Proc,
    api: String,
    _dir: std::path::PathBuf,
}

impl Fleet {
    async fn start(with_reference: bool) -> Self {
        let mut instances = Vec::new();
        for _ in 0..3 {
            instances.push(SidecarProc::start(free_port(), &[]).await);
        }
        let reference = if with_reference {
            Some(SidecarProc::start(free_port(), &[]).await)
        } else {
            None
        };
        for (sidecar, load) in instances.iter().zip(LOADS) {
            let mut to = vec![sidecar.addr];
            to.extend(reference.as_ref().map(|r| r.addr));
            ship(SERVICE, load, &to).await;
        }
        let total: u64 = LOADS.iter().map(|l| l.requests).sum();
        let (prometheus, api, dir) =
            start_prometheus(&instances.iter().map(|s| s.addr).collect::<Vec<_>>());
        wait_ready(&api, "/-/ready").await;
        let summed = format!("sum(http_server_requests_total{{service_name=\"{SERVICE}\"}})");
        let scraped = "count(up{job=\"lumen\"} == 1)".to_owned();
        eventually(
            "Prometheus holds every instance's counts",
            Duration::from_secs(60),
            || {
                let (api, summed, scraped) = (api.clone(), summed.clone(), scraped.clone());
                async move {
                    let n = query_value(&api, &summed).await?;
                    let up = query_value(&api, &scraped).await?;
                    (n == total as f64 && up == 3.0).then_some(())
                }
            },
        )
        .await;
        Self {
            _instances: instances,
            reference,
            _prometheus: prometheus,
            api,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_check_reports_what_one_sidecar_fed_everything_reports() {
    let fleet = Fleet::start(true).await;
    let reference = fleet.reference.as_ref().expect("a reference");
    let api = fleet.api.clone();
    let total: u64 = LOADS.iter().map(|l| l.requests).sum();
    let whole = reference.slo("10m").await;
    assert_eq!(whole["requests"], total, "{whole}");

    let (code, fleet) = fleet_json("check", &api);
    assert_eq!(fleet["scope"]["kind"], "fleet", "{fleet}");

    // A sidecar given the query API serves the same fleet, and its page says so.
    let viewer = SidecarProc::start(
        free_port(),
        &[
            ("LUMEN_FLEET_PROMETHEUS_URL", api.as_str()),
            ("LUMEN_SERVICE", SERVICE),
        ],
    )
    .await;
    let served: serde_json::Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/fleet/slo?window=10m", viewer.base())).await)
            .expect("JSON");
    for key in ["requests", "counts", "cache", "status", "scope"] {
        assert_eq!(served[key], fleet[key], "{key}");
    }
    assert!(
        get_ok(&viewer.base())
            .await
            .contains("Scope: the whole fleet (3 instances)")
    );
    assert_eq!(fleet["scope"]["instances"], 3, "{fleet}");
    for key in ["requests", "counts", "cache", "status", "compliance_rate"] {
        assert_eq!(
            fleet[key], whole[key],
            "{key}: fleet {fleet}\nwhole {whole}"
        );
    }
    assert_eq!(
        code,
        Some(i32::from(match whole["status"].as_str() {
            Some("HEALTHY") => 0_u8,
            Some("WARNING") => 1,
            Some("CRITICAL") => 2,
            _ => 3,
        })),
        "the exit code is the status's: {fleet}"
    );
    let met: Vec<&serde_json::Value> = whole["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .map(|s| &s["met"])
        .collect();
    assert!(
        met.contains(&&serde_json::json!(true)) && met.contains(&&serde_json::json!(false)),
        "the load meets some SLOs and misses others: {whole}"
    );
    for name in ["availability", "error_rate", "latency_p95", "latency_p99"] {
        let (f, w) = (slo(&fleet, name), slo(&whole, name));
        assert_eq!(f["met"], w["met"], "{name}: {f} vs {w}");
        assert_eq!(f["target"], w["target"], "{name}");
    }
    for name in ["availability", "error_rate"] {
        assert_eq!(slo(&fleet, name)["current"], slo(&whole, name)["current"]);
    }
    for name in ["latency_p95", "latency_p99"] {
        let exact = slo(&whole, name)["current"].as_f64().expect("a quantile");
        let estimate = &slo(&fleet, name)["estimate"];
        let low = estimate["low_ms"].as_f64().expect("bounds");
        let high = estimate["high_ms"].as_f64().unwrap_or(f64::INFINITY);
        assert!(
            low <= exact && exact < high,
            "{name}: exact {exact} ms outside the bucket [{low}, {high}): {estimate}"
        );
        let value = slo(&fleet, name)["current"].as_f64().expect("an estimate");
        assert!(low <= value && value <= high, "{name}: {value}");
    }
    // Per route too.
    for route in ["/ask", "/health"] {
        let pick = |doc: &serde_json::Value| {
            doc["routes"]
                .as_array()
                .expect("routes")
                .iter()
                .find(|r| r["route"] == route)
                .cloned()
                .unwrap_or_else(|| panic!("no {route}"))
        };
        let (f, w) = (pick(&fleet), pick(&whole));
        assert_eq!(f["counts"], w["counts"], "{route}");
        assert_eq!(f["cache"], w["cache"], "{route}");
        assert_eq!(f["status"], w["status"], "{route}");
    }

    // The error budgets: the same events and bad events as the ledger's.
    let reader = lumen_sidecar::cli::sources::fleet_reader(&api, Some(SERVICE), None, None)
        .await
        .expect("a reader");
    let budget = reader
        .budget(lumen_sidecar::app::now_ms())
        .await
        .expect("the fleet's budget");
    let whole_budget: serde_json::Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/budget", reference.base())).await)
            .expect("JSON");
    for (f, w) in budget
        .slos
        .iter()
        .zip(whole_budget["slos"].as_array().expect("slos"))
    {
        assert_eq!(serde_json::json!(f.name), w["name"]);
        assert_eq!(f.events, w["events"].as_u64().expect("events"), "{w}");
        assert_eq!(f.bad, w["bad"].as_u64().expect("bad"), "{w}");
    }

    // Health over the fleet: the same SLO verdicts, the ROI of every
    // instance's hits against the whole cache's cost, charged once.
    let (code, health) = fleet_json("health", &api);
    assert_eq!(
        health["slo"]["compliance_rate"], whole["compliance_rate"],
        "{health}"
    );
    assert_eq!(health["slo"]["status"], whole["status"]);
    assert_eq!(health["roi"]["hits"], whole["cache"]["hits"]);
    assert_eq!(health["roi"]["cost_share"], 1.0);
    let band_code = match health["band"].as_str() {
        Some("EXCELLENT" | "GOOD") => 0,
        Some("FAIR") => 1,
        Some("POOR") => 2,
        _ => 3,
    };
    assert_eq!(code, Some(band_code), "{health}");

    // The text names its scope and the estimates' nature.
    let (_, text, _) = check(&[
        "--prometheus",
        &api,
        "--service",
        SERVICE,
        "--window",
        "10m",
    ]);
    assert!(text.contains("the whole fleet (3 instances)"), "{text}");
    assert!(text.contains("a bucket estimate in ["), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_without_data_or_without_prometheus_is_exit_3_with_the_reason() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let (_prometheus, api, _dir) = start_prometheus(&[sidecar.addr]);
    wait_ready(&api, "/-/ready").await;
    eventually("the sidecar is scraped", Duration::from_secs(60), || {
        let api = api.clone();
        async move { (query_value(&api, "up{job=\"lumen\"}").await? == 1.0).then_some(()) }
    })
    .await;
    let (code, out, err) = check(&["--prometheus", &api, "--service", "nobody", "--json"]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(err.contains("no data") && err.contains("nobody"), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON even without data");
    assert_eq!(doc["status"], "NO_DATA");

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = check(&["--prometheus", &closed, "--service", SERVICE]);
    assert_eq!(code, Some(3));
    assert!(err.contains("query API unreachable"), "{err}");

    let (code, _, err) = check(&["--prometheus", &format!("{api}/nope"), "--service", SERVICE]);
    assert_eq!(code, Some(3));
    assert!(err.contains("HTTP 404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_watch_posts_each_fleet_state_change_once() {
    let fleet = Fleet::start(false).await;
    let (webhook, posted) = lumen_tests::slack_webhook::slack_webhook().await;
    // What the fleet's budgets say fires now (the counts no longer move).
    let reader = lumen_sidecar::cli::sources::fleet_reader(&fleet.api, Some(SERVICE), None, None)
        .await
        .expect("a reader");
    let budget = reader
        .budget(lumen_sidecar::app::now_ms())
        .await
        .expect("the fleet's budget");
    let mut firing: Vec<String> = budget
        .slos
        .iter()
        .flat_map(|s| {
            s.alerts.iter().filter(|a| a.firing).map(move |a| {
                format!(
                    "{}: {} error budget burning at {:.1}x over {} and {}",
                    a.severity.to_uppercase(),
                    s.name.as_str(),
                    a.factor,
                    a.long_window,
                    a.short_window
                )
            })
        })
        .collect();
    firing.sort();
    assert!(!firing.is_empty(), "the load burns some budget: {budget:?}");

    // Three evaluations, one second apart, by one process for the fleet.
    let out = Command::new(binary("lumen-sidecar"))
        .args([
            "alerts",
            "watch",
            "--prometheus",
            &fleet.api,
            "--service",
            SERVICE,
            "--every",
            "1s",
            "--ticks",
            "3",
        ])
        .env("SLACK_WEBHOOK_URL", &webhook)
        .env_remove("LUMEN_CONFIG")
        .env_remove("LUMEN_SERVICE")
        .output()
        .expect("lumen-sidecar runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(log.matches("fleet evaluated").count(), 3, "{log}");

    let p = posted.lock().expect("lock");
    assert!(p.refused.is_empty(), "{:?}", p.refused);
    let mut texts: Vec<String> = p
        .messages
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_owned())
        .collect();
    texts.sort();
    let expected: Vec<String> = firing
        .iter()
        .map(|f| format!("FIRING {f} on {SERVICE} (the whole fleet (3 instances))"))
        .collect();
    assert_eq!(
        texts, expected,
        "each burning budget once, said of the fleet"
    );
}

/// A query API that answers only `Bearer tok-7` (as Managed Service for
/// Prometheus answers only a Google token), with an empty vector.
async fn query_api_with_auth() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let authorized = req.headers().get("authorization").map(|v| v.as_bytes())
                            == Some(b"Bearer tok-7");
                        let ok = req.uri().path()
                            == "/v1/projects/p1/location/global/prometheus/api/v1/query";
                        let (status, body) = match (ok, authorized) {
                            (true, true) => (
                                200,
                                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                            ),
                            (true, false) => (
                                401,
                                r#"{"status":"error","errorType":"unauthorized","error":"request had invalid authentication credentials"}"#,
                            ),
                            (false, _) => (404, "not found"),
                        };
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .expect("a response"),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/v1/projects/p1/location/global/prometheus")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_api_that_needs_a_token_gets_it_from_the_file_or_the_environment() {
    let url = query_api_with_auth().await;
    let dir = std::env::temp_dir().join(format!("lumen-fleet-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    std::fs::write(&token, "tok-7\n").expect("token");
    let token = token.to_str().expect("utf-8");

    let (code, _, err) = check(&["--prometheus", &url, "--service", SERVICE]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("HTTP 401: unauthorized: request had invalid authentication credentials"),
        "{err}"
    );
    let (code, _, err) = check(&[
        "--prometheus",
        &url,
        "--service",
        SERVICE,
        "--access-token-file",
        token,
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("no data"),
        "authenticated, and nothing there: {err}"
    );
    let out = Command::new(binary("lumen-sidecar"))
        .args(["check", "--prometheus", &url, "--service", SERVICE])
        .env_remove("LUMEN_CONFIG")
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", "tok-7")
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no data"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
