//! Dashboards, alert policies and rule files: rendered from the sidecar's
//! own lists, checked by the real promtool, and deployed twice against a
//! stand-in of the Cloud Monitoring REST API that checks methods, paths,
//! required fields and etags.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lumen_sidecar::monitoring::exported_metric_names;
use lumen_tests::google_stand_in::{TokenAuthority, metadata_server};
use lumen_tests::*;
use serde_json::{Value, json};

/// The metric of each selector of `expr`, as often as it is selected.
fn promql_metrics(expr: &str) -> Vec<String> {
    lumen_tests::promql_refs::references(expr)
        .unwrap_or_else(|e| panic!("{e}"))
        .selections
}

/// The service every artefact here is rendered for.
const SERVICE: &str = "ion-mentoring-api";

fn sidecar(args: &[&str]) -> std::process::Output {
    run(Command::new(binary("lumen-sidecar"))
        .args(args)
        .env("LUMEN_SERVICE", SERVICE))
}

/// Reads only metrics the sidecar exports, and only the service's series:
/// every metric it names is selected with `service_name="ion-mentoring-api"`.
fn assert_exported(expr: &str) {
    let scoped = format!("{{service_name=\"{SERVICE}\"");
    let quoted_scoped = format!("\", service_name=\"{SERVICE}\"");
    let metrics = promql_metrics(expr).len();
    assert_eq!(
        expr.matches(&scoped).count() + expr.matches(&quoted_scoped).count(),
        metrics,
        "every selector of {expr} must pick the service's own series"
    );
    let exported = exported_metric_names();
    let names = promql_metrics(expr);
    assert!(!names.is_empty(), "{expr} reads no metric");
    for name in names {
        assert!(
            exported.contains(&name.as_str()),
            "{expr} reads {name}, which the sidecar does not export ({exported:?})"
        );
    }
}

#[test]
fn the_cloud_monitoring_dashboard_has_twelve_widgets_in_six_rows_on_exported_metrics() {
    let out = sidecar(&[
        "dashboard",
        "render",
        "--format",
        "cloud-monitoring",
        "--project",
        "p1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let d: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        d["displayName"],
        format!("Lumen System Dashboard: {SERVICE}")
    );
    let tiles = d["mosaicLayout"]["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 12);
    let mut rows: Vec<u64> = tiles
        .iter()
        .map(|t| t["yPos"].as_u64().expect("y"))
        .collect();
    rows.dedup();
    assert_eq!(rows.len(), 6);
    let columns = d["mosaicLayout"]["columns"].as_u64().expect("columns");
    for t in tiles {
        assert!(t["xPos"].as_u64().expect("x") + t["width"].as_u64().expect("w") <= columns);
    }
    let widgets: Vec<&Value> = tiles.iter().map(|t| &t["widget"]).collect();
    assert_eq!(
        widgets
            .iter()
            .filter(|w| w.get("scorecard").is_some())
            .count(),
        3
    );
    assert_eq!(
        widgets
            .iter()
            .filter(|w| w.get("logsPanel").is_some())
            .count(),
        1
    );
    let logs = widgets
        .iter()
        .find_map(|w| w.get("logsPanel"))
        .expect("logs");
    assert!(
        logs["filter"]
            .as_str()
            .expect("filter")
            .contains("severity>=ERROR")
    );
    assert_eq!(logs["resourceNames"][0], "projects/p1");
    let roi = widgets
        .iter()
        .find(|w| w["title"] == "ROI percentage")
        .expect("ROI scorecard");
    let values: Vec<f64> = roi["scorecard"]["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .map(|t| t["value"].as_f64().expect("v"))
        .collect();
    assert_eq!(values, [300.0, 500.0]);
    let latency = widgets
        .iter()
        .find(|w| w["title"].as_str().expect("t").starts_with("Latency"))
        .expect("latency");
    let lines: Vec<f64> = latency["xyChart"]["thresholds"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|t| t["value"].as_f64().expect("v"))
        .collect();
    assert_eq!(lines, [0.2, 0.5], "the SLO targets in seconds");
    let logs = widgets
        .iter()
        .find(|w| w.get("logsPanel").is_some())
        .expect("a logs panel");
    assert_eq!(
        logs["logsPanel"]["filter"],
        format!(
            "resource.type=\"cloud_run_revision\" resource.labels.service_name=\"{SERVICE}\" severity>=ERROR"
        )
    );
    assert_eq!(logs["logsPanel"]["resourceNames"][0], "projects/p1");
    let compliance = widgets
        .iter()
        .find(|w| w["title"] == "SLO compliance")
        .expect("compliance scorecard");
    let yellow = compliance["scorecard"]["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .find(|t| t["color"] == "YELLOW")
        .expect("a yellow band");
    assert!(
        yellow["direction"] == "BELOW" && yellow["value"].as_f64().expect("v") < 100.0,
        "100 % compliance is never yellow: {yellow}"
    );
    let mut queries = 0;
    for w in &widgets {
        let sets = w["xyChart"]["dataSets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for q in sets
            .iter()
            .map(|s| &s["timeSeriesQuery"]["prometheusQuery"])
            .chain([&w["scorecard"]["timeSeriesQuery"]["prometheusQuery"]])
        {
            if let Some(q) = q.as_str() {
                assert_exported(q);
                queries += 1;
            }
        }
    }
    assert!(queries >= 14, "{queries}");
}

#[test]
fn the_grafana_dashboard_queries_exported_metrics() {
    let out = sidecar(&["dashboard", "render", "--format", "grafana"]);
    assert_eq!(out.status.code(), Some(0));
    let d: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let panels = d["panels"].as_array().expect("panels");
    assert_eq!(panels.len(), 12);
    for p in panels {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            assert_exported(t["expr"].as_str().expect("expr"));
        }
    }
    let panel = |title: &str| {
        panels
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("a {title} panel"))
    };
    let steps = |p: &Value| -> Vec<(String, Option<f64>)> {
        p["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["color"].as_str().expect("colour").to_owned(),
                    s["value"].as_f64(),
                )
            })
            .collect()
    };
    // Higher is better: red below 50, yellow from 50, green from 70.
    assert_eq!(
        steps(panel("Maturity score")),
        [
            ("red".to_owned(), None),
            ("yellow".to_owned(), Some(50.0)),
            ("green".to_owned(), Some(70.0))
        ]
    );
    assert_eq!(
        steps(panel("ROI percentage")),
        [
            ("red".to_owned(), None),
            ("yellow".to_owned(), Some(300.0)),
            ("green".to_owned(), Some(500.0))
        ]
    );
    // Chart thresholds are drawn as lines, at the targets, in order.
    let latency = panel(
        "Latency P95 and P99, s (bucket estimates); requests under the P95 target, % (exact, right axis)",
    );
    assert_eq!(
        latency["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"],
        "line"
    );
    let values: Vec<Option<f64>> = steps(latency).into_iter().map(|s| s.1).collect();
    assert_eq!(values, [None, Some(0.2), Some(0.5)]);
    // The availability chart plots what its title names: the 5xx share.
    let availability = panel("Availability (success rate) and 5xx share, %");
    let exprs: Vec<&str> = availability["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["expr"].as_str().expect("expr"))
        .collect();
    assert!(
        exprs[1].contains("status_class=~\"5xx|error\""),
        "{exprs:?}"
    );
    assert!(
        !exprs
            .iter()
            .any(|e| e.contains("4xx") || e.contains("error_rate")),
        "{exprs:?}"
    );
}

#[test]
fn the_prometheus_rule_file_passes_promtool() {
    let out = sidecar(&["alerts", "render", "--format", "prometheus"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = std::env::temp_dir().join(format!("lumen-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("lumen.rules.yml");
    std::fs::write(&file, &out.stdout).expect("write");
    let promtool =
        find_program("promtool").expect("promtool is installed (Debian's prometheus package)");
    let check = run(Command::new(promtool).arg("check").arg("rules").arg(&file));
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("SUCCESS: 64 rules found"), "{said}");
    let text = String::from_utf8_lossy(&out.stdout);
    for alert in [
        "RoiGateCritical",
        "SloComplianceWarning",
        "MaturityScorePoor",
        "CacheHitRateLow",
    ] {
        assert!(text.contains(&format!("alert: {alert}")), "{text}");
    }
    let recorded: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- record: "))
        .collect();
    let exported = exported_metric_names();
    for line in text.lines().filter(|l| l.trim_start().starts_with("expr:")) {
        let expr =
            serde_json::from_str::<String>(line.trim_start().trim_start_matches("expr:").trim())
                .expect("quoted");
        let names = promql_metrics(&expr);
        for name in &names {
            assert!(
                exported.contains(&name.as_str()) || recorded.contains(&name.as_str()),
                "{expr} reads {name}"
            );
        }
        // Raw series are the service's own; recorded ones were scoped when recorded.
        let raw = names
            .iter()
            .filter(|n| exported.contains(&n.as_str()))
            .count();
        assert_eq!(
            expr.matches(&format!("{{service_name=\"{SERVICE}\""))
                .count(),
            raw,
            "{expr}"
        );
    }
    // The SRE workbook's rows for a 30-day period, availability allowed 0.5 %.
    assert!(
        text.contains("lumen:availability_bad:ratio_rate1h > (14.4 * 0.005) and lumen:availability_bad:ratio_rate5m > (14.4 * 0.005)"),
        "{text}"
    );
    assert!(
        text.contains("lumen:latency_p95_bad:ratio_rate3d > (1 * 0.05) and lumen:latency_p95_bad:ratio_rate6h > (1 * 0.05)"),
        "{text}"
    );
}

/// The Cloud Monitoring REST stand-in's state.
#[derive(Default)]
struct Api {
    /// A policy whose display name contains this is refused (500).
    poison: Option<String>,
    dashboards: HashMap<String, Value>,
    channels: HashMap<String, Value>,
    policies: HashMap<String, Value>,
    services: HashMap<String, Value>,
    slos: HashMap<String, Value>,
    calls: Vec<String>,
    next: u64,
    /// Calls without a token Google issued (a test that sees any has found a bug).
    violations: Vec<String>,
}

fn reply(status: u16, body: Value) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = http::StatusCode::from_u16(status).expect("valid");
    r
}

fn handle(
    api: &mut Api,
    method: &str,
    path: &str,
    query: &str,
    body: Value,
) -> http::Response<Full<Bytes>> {
    api.calls.push(format!("{method} {path}"));
    if method == "POST" && path == "/v3/projects/p1/services" {
        let Some(id) = query.strip_prefix("serviceId=") else {
            return reply(400, json!({ "error": "serviceId required" }));
        };
        if body["displayName"].as_str().is_none() || body.get("custom").is_none() {
            return reply(400, json!({ "error": "displayName and custom required" }));
        }
        let name = format!("projects/p1/services/{id}");
        let mut stored = body;
        stored["name"] = json!(name);
        api.services.insert(name, stored.clone());
        return reply(200, stored);
    }
    if method == "POST" && path.ends_with("/serviceLevelObjectives") {
        let Some(id) = query.strip_prefix("serviceLevelObjectiveId=") else {
            return reply(400, json!({ "error": "id required" }));
        };
        let service = path
            .trim_start_matches("/v3/")
            .trim_end_matches("/serviceLevelObjectives")
            .to_owned();
        let goal = body["goal"].as_f64().unwrap_or(0.0);
        let period = body.get("rollingPeriod").is_some() || body.get("calendarPeriod").is_some();
        let valid = api.services.contains_key(&service)
            && goal > 0.0
            && goal <= 0.9999
            && period
            && !body["serviceLevelIndicator"]["requestBased"].is_null();
        if !valid {
            return reply(
                400,
                json!({ "error": "an existing service, 0 < goal <= 0.9999, a period and a request-based SLI" }),
            );
        }
        let name = format!("{service}/serviceLevelObjectives/{id}");
        let mut stored = body;
        stored["name"] = json!(name);
        api.slos.insert(name, stored.clone());
        return reply(200, stored);
    }
    let base = "/v1/projects/p1/dashboards";
    let v3 = "/v3/projects/p1";
    api.next += 1;
    let id = api.next;
    match (method, path) {
        ("GET", p) if p.starts_with(base) => reply(
            200,
            json!({ "dashboards": api.dashboards.values().collect::<Vec<_>>() }),
        ),
        ("POST", p) if p == base => {
            if body["displayName"].as_str().is_none()
                || body.get("mosaicLayout").is_none()
                || body.get("etag").is_some()
            {
                return reply(
                    400,
                    json!({ "error": "displayName and a layout required; no etag on create" }),
                );
            }
            let name = format!("projects/p1/dashboards/d{id}");
            let mut stored = body;
            stored["name"] = json!(name);
            stored["etag"] = json!(format!("etag-{id}"));
            api.dashboards.insert(name, stored.clone());
            reply(200, stored)
        }
        ("PATCH", p) if p.starts_with("/v1/projects/p1/dashboards/") => {
            let name = p.trim_start_matches("/v1/").to_owned();
            let Some(current) = api.dashboards.get(&name) else {
                return reply(404, json!({}));
            };
            if body["etag"] != current["etag"] || body["name"] != json!(name) {
                return reply(409, json!({ "error": "etag mismatch" }));
            }
            let mut stored = body;
            stored["etag"] = json!(format!("etag-{id}"));
            api.dashboards.insert(name, stored.clone());
            reply(200, stored)
        }
        ("GET", p) if p.starts_with(&format!("{v3}/notificationChannels")) => reply(
            200,
            json!({ "notificationChannels": api.channels.values().collect::<Vec<_>>() }),
        ),
        ("POST", p) if p == format!("{v3}/notificationChannels") => {
            if body["type"] != "slack"
                || body["labels"]["auth_token"].as_str().is_none()
                || body["labels"]["channel_name"].as_str().is_none()
            {
                return reply(
                    400,
                    json!({ "error": "slack channels need channel_name and auth_token" }),
                );
            }
            let name = format!("projects/p1/notificationChannels/c{id}");
            let mut stored = body;
            stored["name"] = json!(name);
            api.channels.insert(name, stored.clone());
            reply(200, stored)
        }
        ("GET", p) if p.starts_with(&format!("{v3}/alertPolicies")) => {
            // Two pages, with a token that must come back percent-encoded.
            let mut all: Vec<&Value> = api.policies.values().collect();
            all.sort_by_key(|p| p["name"].as_str().unwrap_or_default().to_owned());
            let half = all.len() / 2;
            match query {
                "" => reply(
                    200,
                    json!({ "alertPolicies": all[..half], "nextPageToken": "p+1/2=" }),
                ),
                "pageToken=p%2B1%2F2%3D" => reply(200, json!({ "alertPolicies": all[half..] })),
                other => reply(
                    400,
                    json!({ "error": format!("bad page token in {other}") }),
                ),
            }
        }
        ("POST" | "PATCH", p) if p.starts_with(&format!("{v3}/alertPolicies")) => {
            let ok = body["displayName"].is_string()
                && body["combiner"].is_string()
                && body["enabled"] == true
                && body["documentation"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty() && c.len() <= 8192)
                && body["conditions"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty() && c.len() <= 6);
            if !ok {
                return reply(400, json!({ "error": "policy missing required fields" }));
            }
            // PromQL conditions are validated against existing metrics
            // unless told not to; none exist in this project yet.
            let promql = &body["conditions"][0]["conditionPrometheusQueryLanguage"];
            if !promql.is_null() && promql["disableMetricValidation"] != true {
                return reply(
                    400,
                    json!({ "error": { "code": 400, "message": "metric validation failed: no such metric" } }),
                );
            }
            if let Some(poison) = &api.poison
                && body["displayName"]
                    .as_str()
                    .is_some_and(|n| n.contains(poison.as_str()))
            {
                return reply(
                    500,
                    json!({ "error": { "code": 500, "message": "backend error" } }),
                );
            }
            let name = if method == "POST" {
                format!("projects/p1/alertPolicies/a{id}")
            } else {
                let n = p.trim_start_matches("/v3/").to_owned();
                if !api.policies.contains_key(&n) {
                    return reply(404, json!({}));
                }
                n
            };
            let mut stored = body;
            stored["name"] = json!(name);
            api.policies.insert(name, stored.clone());
            reply(200, stored)
        }
        ("GET", p) if p.starts_with(&format!("{v3}/services/")) => {
            let name = p.trim_start_matches("/v3/").to_owned();
            match api.services.get(&name).or_else(|| api.slos.get(&name)) {
                Some(found) => reply(200, found.clone()),
                None => reply(404, json!({ "error": "not found" })),
            }
        }
        ("POST", p) if p == format!("{v3}/services") => {
            // The service id comes in the query (?serviceId=…), see below.
            reply(400, json!({ "error": "serviceId required" }))
        }
        ("PATCH", p) if p.contains("/serviceLevelObjectives/") => {
            let name = p.trim_start_matches("/v3/").to_owned();
            if !api.slos.contains_key(&name) {
                return reply(404, json!({}));
            }
            let mut stored = body;
            stored["name"] = json!(name);
            api.slos.insert(name, stored.clone());
            reply(200, stored)
        }
        _ => reply(404, json!({ "error": format!("no route {method} {path}") })),
    }
}

async fn monitoring_api(authority: TokenAuthority) -> (SocketAddr, Arc<Mutex<Api>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(Mutex::new(Api::default()));
    let shared = Arc::clone(&state);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (shared, authority) = (Arc::clone(&shared), authority.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (shared, authority) = (Arc::clone(&shared), authority.clone());
                        async move {
                            // Tokens as Google's: issued by the metadata
                            // server, refused (401) once expired.
                            let refused =
                                authority.check(req.method(), req.uri().path(), req.headers());
                            let (method, path) =
                                (req.method().to_string(), req.uri().path().to_owned());
                            let query = req.uri().query().unwrap_or_default().to_owned();
                            let bytes = req.into_body().collect().await?.to_bytes();
                            if let Some((answer, violation)) = refused {
                                if let Some(v) = violation {
                                    shared.lock().expect("lock").violations.push(v);
                                }
                                let (parts, body) = answer.into_parts();
                                let body = axum::body::to_bytes(body, 1 << 20)
                                    .await
                                    .unwrap_or_default();
                                return Ok::<_, hyper::Error>(http::Response::from_parts(
                                    parts,
                                    Full::new(body),
                                ));
                            }
                            let body: Value = if bytes.is_empty() {
                                Value::Null
                            } else {
                                serde_json::from_slice(&bytes).expect("JSON body")
                            };
                            Ok(handle(
                                &mut shared.lock().expect("lock"),
                                &method,
                                &path,
                                &query,
                                body,
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_apply_create_then_update_and_never_duplicate() {
    let authority = TokenAuthority::new();
    let (addr, api) = monitoring_api(authority.clone()).await;
    let metadata = metadata_server(authority.clone(), "p1").await;
    let base = format!("http://{addr}");
    let base2 = base.clone();
    let again = move |args: Vec<&'static str>| {
        let out = Command::new(binary("lumen-sidecar"))
            .args(&args)
            .env("LUMEN_MONITORING_API", &base2)
            .env_remove("GOOGLE_OAUTH_ACCESS_TOKEN")
            .env("GCE_METADATA_HOST", &metadata)
            .env("SLACK_BOT_TOKEN", "xoxb-test")
            .env("LUMEN_SERVICE", "ion-mentoring-api")
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let a = again.clone();
    let (code, out) =
        tokio::task::spawn_blocking(move || a(vec!["dashboard", "deploy", "--project", "p1"]))
            .await
            .expect("ran");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("created projects/p1/dashboards/"), "{out}");
    assert!(
        out.contains("https://console.cloud.google.com/monitoring/dashboards/builder/"),
        "{out}"
    );
    let a = again.clone();
    let (code, out) =
        tokio::task::spawn_blocking(move || a(vec!["dashboard", "deploy", "--project", "p1"]))
            .await
            .expect("ran");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("updated projects/p1/dashboards/"), "{out}");
    let a = again.clone();
    let (code, out) = tokio::task::spawn_blocking(move || {
        a(vec!["dashboard", "deploy", "--project", "p1", "--dry-run"])
    })
    .await
    .expect("ran");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("dry run: would update"), "{out}");

    let a = again.clone();
    let (code, out) = tokio::task::spawn_blocking(move || {
        a(vec![
            "alerts",
            "apply",
            "--project",
            "p1",
            "--slack-channel",
            "#lumen-alerts",
        ])
    })
    .await
    .expect("ran");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.matches(": projects/p1/alertPolicies/").count(),
        4 + 16,
        "{out}"
    );
    assert_eq!(out.matches("created SLO ").count(), 4, "{out}");
    assert!(
        out.contains("created channel: projects/p1/notificationChannels/"),
        "{out}"
    );
    // The hour passes in the middle of the run: its token expires after
    // ten calls, the 401 renews it from the metadata server, and the run
    // completes as if nothing happened.
    authority.expire_after(10);
    let issued = authority.issued();
    let a = again.clone();
    let (code, out) = tokio::task::spawn_blocking(move || {
        a(vec![
            "alerts",
            "apply",
            "--project",
            "p1",
            "--slack-channel",
            "#lumen-alerts",
        ])
    })
    .await
    .expect("ran");
    assert_eq!(code, Some(0), "{out}");
    assert!(authority.expired_refusals() >= 1, "a token expired mid-run");
    assert!(authority.issued() >= issued + 2, "and was renewed");
    assert_eq!(
        out.matches("updated policy ").count(),
        4 + 16,
        "every policy found again across both pages: {out}"
    );
    assert_eq!(out.matches("updated SLO ").count(), 4, "{out}");
    assert!(out.contains("exists"), "{out}");

    // One policy failing does not stop the others; the run says which and exits 3.
    api.lock().expect("lock").poison = Some("Maturity Score Poor".into());
    let a = again.clone();
    let (code, out) =
        tokio::task::spawn_blocking(move || a(vec!["alerts", "apply", "--project", "p1"]))
            .await
            .expect("ran");
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(out.matches("FAILED policy").count(), 1, "{out}");
    assert!(
        out.contains("backend error"),
        "Google's message is shown: {out}"
    );
    assert_eq!(out.matches("updated policy ").count(), 4 + 16 - 1, "{out}");
    assert!(out.contains("1 of the objects above failed"), "{out}");
    api.lock().expect("lock").poison = None;

    // --only chooses what is applied, and the output says what it touched.
    let a = again.clone();
    let (code, out) = tokio::task::spawn_blocking(move || {
        a(vec![
            "alerts",
            "apply",
            "--project",
            "p1",
            "--only",
            "thresholds",
        ])
    })
    .await
    .expect("ran");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("updated policy \"Lumen: ").count(), 4, "{out}");
    assert!(
        !out.lines().any(|l| l.contains("serviceLevelObjectives")
            || l.starts_with("service")
            || l.contains("Lumen budget")),
        "{out}"
    );

    let api = api.lock().expect("lock");
    assert_eq!(api.dashboards.len(), 1);
    assert_eq!(api.channels.len(), 1);
    assert_eq!(api.policies.len(), 4 + 16, "nothing duplicated");
    assert_eq!(api.services.len(), 1);
    assert_eq!(api.slos.len(), 4);
    let availability = &api.slos["projects/p1/services/lumen-ion-mentoring-api/serviceLevelObjectives/availability"];
    assert_eq!(availability["goal"], 0.995);
    assert_eq!(availability["rollingPeriod"], "2592000s");
    // Good over good + bad events of every instance: the fleet's ratio.
    let ratio = |slo: &Value, name: &str| {
        let sli = &slo["serviceLevelIndicator"]["requestBased"]["goodTotalRatio"];
        assert!(
            sli.get("totalServiceFilter").is_none(),
            "exactly two filters: {sli}"
        );
        for result in ["good", "bad"] {
            assert_eq!(
                sli[format!("{result}ServiceFilter")],
                format!(
                    "metric.type=\"prometheus.googleapis.com/lumen_slo_events_total/counter\" resource.type=\"prometheus_target\" metric.labels.service_name=\"ion-mentoring-api\" metric.labels.slo_name=\"{name}\" metric.labels.result=\"{result}\""
                ),
                "{sli}"
            );
        }
    };
    ratio(availability, "availability");
    let p95 = &api.slos["projects/p1/services/lumen-ion-mentoring-api/serviceLevelObjectives/latency-p95"];
    ratio(p95, "latency_p95");
    assert_eq!(p95["goal"], 0.95);
    assert_eq!(
        p95["displayName"],
        "Latency P95 < 200 ms (95.0000% of requests under it)"
    );
    let errors =
        &api.slos["projects/p1/services/lumen-ion-mentoring-api/serviceLevelObjectives/error-rate"];
    ratio(errors, "error_rate");
    assert_eq!(errors["goal"], 0.999);
    let burn: Vec<&Value> = api
        .policies
        .values()
        .filter(|p| {
            p["displayName"]
                .as_str()
                .expect("name")
                .starts_with("Lumen budget:")
        })
        .collect();
    assert_eq!(burn.len(), 16);
    for p in &burn {
        assert_eq!(p["combiner"], "AND");
        let conditions = p["conditions"].as_array().expect("two conditions");
        assert_eq!(conditions.len(), 2);
        for c in conditions {
            let filter = c["conditionThreshold"]["filter"].as_str().expect("filter");
            assert!(filter.starts_with("select_slo_burn_rate(\"projects/p1/services/lumen-ion-mentoring-api/serviceLevelObjectives/"), "{filter}");
            let seconds: u64 = filter
                .rsplit(", \"")
                .next()
                .expect("lookback")
                .trim_end_matches("s\")")
                .parse()
                .expect("seconds");
            assert!(
                seconds <= 86_400,
                "Cloud Monitoring looks back at most 24 h: {filter}"
            );
        }
    }
    let slowest = burn
        .iter()
        .find(|p| {
            p["displayName"]
                == "Lumen budget: Availability ticket (1440 min / 360 min) (ion-mentoring-api)"
        })
        .expect("the 3 d row, capped");
    assert_eq!(
        slowest["conditions"][0]["conditionThreshold"]["thresholdValue"],
        1.0
    );
    let channel = api.channels.keys().next().expect("one").clone();
    for p in api.policies.values() {
        assert_eq!(p["notificationChannels"][0], json!(channel));
        if let Some(q) = p["conditions"][0]["conditionPrometheusQueryLanguage"]["query"].as_str() {
            assert_exported(q);
        }
    }
    let names: Vec<&str> = api
        .policies
        .values()
        .map(|p| p["displayName"].as_str().expect("name"))
        .collect();
    for expected in [
        "Lumen: ROI Gate Critical (ion-mentoring-api)",
        "Lumen: SLO Compliance Warning (ion-mentoring-api)",
        "Lumen: Maturity Score Poor (ion-mentoring-api)",
        "Lumen: Cache Hit Rate Low (ion-mentoring-api)",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    assert!(
        api.calls
            .iter()
            .any(|c| c.starts_with("PATCH /v1/projects/p1/dashboards/"))
    );
    let violations = api.violations.clone();
    assert!(
        violations.is_empty(),
        "calls without a token Google issued: {violations:?}"
    );
}

#[test]
fn without_a_token_deploy_fails_with_code_3() {
    let out = Command::new(binary("lumen-sidecar"))
        .args(["dashboard", "deploy", "--project", "p1", "--service", "api"])
        .env_remove("GOOGLE_OAUTH_ACCESS_TOKEN")
        .env("GCE_METADATA_HOST", format!("127.0.0.1:{}", free_port()))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no access token"));
}

fn lumen(args: &[&str], config: Option<&std::path::Path>) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(binary("lumen-sidecar"));
    cmd.args(args)
        .env_remove("LUMEN_SERVICE")
        .env_remove("K_SERVICE")
        .env_remove("LUMEN_CONFIG");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = run(&mut cmd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_config_file_and_project_reach_every_artefact() {
    let dir = std::env::temp_dir().join(format!("lumen-artefacts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("lumen.toml");
    std::fs::write(
        &file,
        "service = \"checkout\"\n[slo]\navailability = 99.9\nlatency_p95_ms = 150\n",
    )
    .expect("write");

    let (code, out, err) = lumen(
        &[
            "alerts",
            "render",
            "--format",
            "cloud-monitoring",
            "--project",
            "shop-prod",
        ],
        Some(&file),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !out.contains("PROJECT_ID"),
        "the project reaches the output: {out}"
    );
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    for p in doc["alertPolicies"].as_array().expect("policies") {
        assert!(
            p["displayName"]
                .as_str()
                .expect("name")
                .ends_with("(checkout)")
        );
        assert_eq!(
            p["notificationChannels"][0],
            "projects/shop-prod/notificationChannels/CHANNEL_ID"
        );
        let q = &p["conditions"][0]["conditionPrometheusQueryLanguage"];
        assert_eq!(q["disableMetricValidation"], true, "{p}");
        assert!(
            q["query"]
                .as_str()
                .expect("query")
                .contains("service_name=\"checkout\""),
            "{p}"
        );
        let runbook = p["documentation"]["content"].as_str().expect("runbook");
        for internal in ["CACHE_TTL", "REDIS_URL", "redis GET failed"] {
            assert!(
                !runbook.contains(internal),
                "the example app's internals: {runbook}"
            );
        }
    }
    let slos = doc["serviceLevelObjectives"].as_array().expect("slos");
    let by_id = |id: &str| &slos.iter().find(|s| s["id"] == id).expect("slo")["body"];
    assert_eq!(by_id("availability")["goal"], 0.999);
    assert_eq!(
        by_id("latency-p95")["displayName"],
        "Latency P95 < 150 ms (95.0000% of requests under it)"
    );
    assert!(
        by_id("latency-p95")["serviceLevelIndicator"]["requestBased"]["goodTotalRatio"]["goodServiceFilter"]
            .as_str()
            .expect("filter")
            .contains("metric.labels.service_name=\"checkout\"")
    );
    for p in doc["burnRatePolicies"].as_array().expect("burn") {
        let f = p["conditions"][0]["conditionThreshold"]["filter"]
            .as_str()
            .expect("f");
        assert!(
            f.starts_with("select_slo_burn_rate(\"projects/shop-prod/services/lumen-checkout/"),
            "{f}"
        );
    }

    let (code, rules, err) = lumen(&["alerts", "render", "--format", "prometheus"], Some(&file));
    assert_eq!(code, Some(0), "{err}");
    assert!(rules.contains("for service checkout"), "{rules}");
    assert!(!rules.contains("ion-mentoring-api"), "{rules}");
    assert_eq!(
        rules.matches("service_name=\\\"checkout\\\"").count(),
        rules.matches("service_name=").count(),
        "{rules}"
    );
    // The file's 99.9 % availability: 0.1 % allowed.
    assert!(rules.contains("(14.4 * 0.0009999999999999432)"), "{rules}");

    let (code, out, err) = lumen(
        &["dashboard", "render", "--project", "shop-prod"],
        Some(&file),
    );
    assert_eq!(code, Some(0), "{err}");
    let d: Value = serde_json::from_str(&out).expect("JSON");
    let text = d.to_string();
    assert!(
        text.contains("99.9") && text.contains("0.15"),
        "the targets: {text}"
    );
    assert!(
        !text.contains("$SERVICE") && !text.contains("$SLO"),
        "{text}"
    );
}

#[test]
fn two_services_in_one_project_never_share_a_policy_or_a_series() {
    let render = |service: &str| {
        let (code, out, err) = lumen(
            &["alerts", "render", "--project", "p1", "--service", service],
            None,
        );
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<Value>(&out).expect("JSON")
    };
    let (a, b) = (render("cart"), render("search"));
    let names = |d: &Value| -> Vec<String> {
        d["alertPolicies"]
            .as_array()
            .into_iter()
            .chain(d["burnRatePolicies"].as_array())
            .flatten()
            .map(|p| p["displayName"].as_str().expect("name").to_owned())
            .collect()
    };
    let (na, nb) = (names(&a), names(&b));
    assert_eq!(na.len(), 20);
    assert!(na.iter().all(|n| !nb.contains(n)), "{na:?} vs {nb:?}");
    assert_ne!(a["service"]["id"], b["service"]["id"]);
    assert!(!a.to_string().contains("search") && !b.to_string().contains("\"cart\""));
}

#[test]
fn artefacts_without_a_service_say_how_to_name_one() {
    let (code, _, err) = lumen(&["alerts", "render"], None);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("which service? set --service, LUMEN_SERVICE"),
        "{err}"
    );
}

#[test]
fn the_cloud_monitoring_policies_query_exactly_what_promtool_tests() {
    // tests/tests/fleet_rules.rs proves the rule file's expressions on
    // several instances; Cloud Monitoring must get the very same PromQL.
    // On the /metrics path the PromQL is the rule file's, character for
    // character; on the OTLP path (the default) only the latency histogram's
    // selector differs.
    let policies: Value = serde_json::from_slice(
        &run(Command::new(binary("lumen-sidecar"))
            .args(["alerts", "render", "--format", "cloud-monitoring"])
            .env("LUMEN_SERVICE", SERVICE)
            .env("LUMEN_DATA_PATH", "prometheus"))
        .stdout,
    )
    .expect("JSON");
    let otlp: Value = serde_json::from_slice(
        &sidecar(&["alerts", "render", "--format", "cloud-monitoring"]).stdout,
    )
    .expect("JSON");
    let rules = String::from_utf8(sidecar(&["alerts", "render", "--format", "prometheus"]).stdout)
        .expect("UTF-8");
    let rule_expr = |alert: &str| -> String {
        let at = rules
            .find(&format!("alert: {alert}\n"))
            .unwrap_or_else(|| panic!("no {alert}"));
        let line = rules[at..]
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("expr: "))
            .expect("expr");
        serde_json::from_str(line).expect("quoted")
    };
    let list = policies["alertPolicies"].as_array().expect("policies");
    assert_eq!(list.len(), 4);
    for (alert, threshold, seconds) in [
        ("RoiGateCritical", "300", 300),
        ("SloComplianceWarning", "98", 180),
        ("MaturityScorePoor", "50", 600),
        ("CacheHitRateLow", "60", 300),
    ] {
        let p = list
            .iter()
            .find(|p| p["conditions"][0]["conditionPrometheusQueryLanguage"]["alertRule"] == alert)
            .unwrap_or_else(|| panic!("no {alert} policy"));
        let c = &p["conditions"][0]["conditionPrometheusQueryLanguage"];
        let query = c["query"].as_str().expect("query");
        assert_eq!(query, rule_expr(alert), "{alert}");
        let over_otlp = otlp["alertPolicies"]
            .as_array()
            .expect("policies")
            .iter()
            .find(|p| p["conditions"][0]["conditionPrometheusQueryLanguage"]["alertRule"] == alert)
            .and_then(|p| p["conditions"][0]["conditionPrometheusQueryLanguage"]["query"].as_str())
            .expect("the OTLP policy");
        assert_eq!(
            over_otlp,
            rule_expr(alert).replace(
                "http_server_request_duration_seconds_bucket{",
                "{\"http.server.request.duration_bucket\", "
            ),
            "{alert}"
        );
        assert!(query.ends_with(&format!(") < {threshold}")), "{query}");
        assert_eq!(c["duration"], format!("{seconds}s"));
        assert_eq!(c["disableMetricValidation"], true);
        // A fleet figure: no per-instance gauge aggregated with min/max/avg.
        for gauge in [
            "slo_compliance{",
            "maturity_score{",
            "cache_hit_rate{",
            "roi_percentage{",
        ] {
            assert!(
                !query.contains(gauge),
                "{alert} reads the gauge {gauge}: {query}"
            );
        }
        assert!(
            query.contains(&format!("service_name=\"{SERVICE}\"")),
            "{query}"
        );
    }
}
