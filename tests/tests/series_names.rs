//! Every query an artefact or the fleet reader sends names series that its
//! data path writes, with labels those series carry.
//!
//! One real sidecar is fed a busy quarter hour (64 routes, lognormal latencies,
//! cache lookups, every status class) and exports over OTLP/HTTP to a real
//! receiver; what Cloud Monitoring would store for those requests is
//! derived as Google's Telemetry API documents it ([`GoogleSeries`]). Its
//! `/metrics` is what a Prometheus scraping it stores. Then:
//! - the Cloud Monitoring dashboard, policies, SLO filters and burn-rate
//!   policies, and the fleet reader's queries on the OTLP path, name only
//!   OTLP series and labels;
//! - the Grafana dashboard, the Prometheus rule file and the fleet reader's
//!   queries on the `/metrics` path name only `/metrics` series and labels.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lumen_sidecar::config::{DataPath, SidecarConfig};
use lumen_sidecar::fleet::{FleetReader, QueryApi};
use lumen_tests::google_series::GoogleSeries;
use lumen_tests::otlp_receiver::Receiver;
use lumen_tests::promql_refs::references;
use lumen_tests::workload::Workload;
use lumen_tests::*;
use serde_json::Value;

const SERVICE: &str = "ion-mentoring-api";

/// Series name → label keys.
type Store = BTreeMap<String, BTreeSet<String>>;

/// Checks that `expr` reads only series of `store`, with labels they carry.
fn check_promql(expr: &str, store: &Store, what: &str, recorded: &BTreeSet<String>) {
    let refs = references(expr).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut labels_here = BTreeSet::new();
    for metric in &refs.metrics {
        if recorded.contains(metric) {
            continue;
        }
        let labels = store.get(metric).unwrap_or_else(|| {
            panic!(
                "{what}: {expr}\nreads {metric}, which this data path never writes; it has {:?}",
                store.keys().collect::<Vec<_>>()
            )
        });
        labels_here.extend(labels.iter().cloned());
    }
    for label in &refs.labels {
        assert!(
            labels_here.contains(label) || refs.metrics.iter().all(|m| recorded.contains(m)),
            "{what}: {expr}\nuses label {label}, which none of its series carries ({labels_here:?})"
        );
    }
}

/// The Cloud Monitoring filter's metric type and label keys, checked.
fn check_filter(filter: &str, types: &Store, what: &str) {
    let kind = filter
        .split("metric.type=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or_else(|| panic!("{what}: no metric.type in {filter}"));
    let labels = types.get(kind).unwrap_or_else(|| {
        panic!(
            "{what}: {filter}\nnames {kind}, which OTLP never writes; it has {:?}",
            types.keys().collect::<Vec<_>>()
        )
    });
    for part in filter.split("metric.labels.").skip(1) {
        let key: String = part
            .chars()
            .take_while(|c| *c != '=' && !c.is_whitespace())
            .collect();
        assert!(
            labels.contains(&key),
            "{what}: {filter}\nlabel {key} not on {kind} ({labels:?})"
        );
    }
}

/// Every string under a key named `field` in `v`.
fn strings_at(v: &Value, field: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match x {
                    Value::String(s) if k == field => out.push(s.clone()),
                    _ => strings_at(x, field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| strings_at(x, field, out)),
        _ => {}
    }
}

/// The `/metrics` exposition's series: name → label keys (plus the
/// `job` and `instance` a scrape adds).
fn exposition_series(text: &str) -> Store {
    let mut out = Store::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line.split_whitespace().next().unwrap_or(""), ""),
        };
        let labels = out.entry(name.to_owned()).or_default();
        labels.extend(["job".to_owned(), "instance".to_owned()]);
        let mut in_value = false;
        let mut key = String::new();
        let mut escaped = false;
        for c in rest.chars() {
            match (in_value, c) {
                (false, '}') => break,
                (false, '=') => {
                    labels.insert(std::mem::take(&mut key).trim_start_matches(',').to_owned());
                }
                (false, '"') => in_value = true,
                (false, c) => key.push(c),
                (true, '\\') if !escaped => escaped = true,
                (true, '"') if !escaped => in_value = false,
                (true, _) => escaped = false,
            }
        }
    }
    out
}

/// A query API that records what it is asked and answers empty vectors.
async fn recording_query_api() -> (String, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
            let log = Arc::clone(&log);
            async move {
                let q = q.unwrap_or_default();
                let query = q
                    .split('&')
                    .find_map(|p| p.strip_prefix("query="))
                    .map(percent_decode)
                    .unwrap_or_default();
                log.lock().expect("lock").push(query);
                axum::Json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), asked)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// What the fleet reader asks on `path`.
async fn fleet_queries(path: DataPath) -> Vec<String> {
    let (url, asked) = recording_query_api().await;
    let mut config = SidecarConfig::default();
    config.export.data_path = Some(path);
    let reader = FleetReader {
        api: QueryApi::new(&url, None),
        service: SERVICE.into(),
        revision: Some("rev-1".into()),
        config,
    };
    let now = lumen_sidecar::app::now_ms();
    let slo = reader
        .slo_report(Duration::from_secs(300), now)
        .await
        .expect("an empty fleet still reports");
    reader
        .health_of(&slo, Duration::from_secs(300), now)
        .await
        .expect("health");
    reader.budget(now).await.expect("budget");
    let q = asked.lock().expect("lock").clone();
    assert!(q.len() >= 10, "{q:?}");
    q
}

fn sidecar_cli(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(binary("lumen-sidecar"))
        .args(args)
        .env("LUMEN_SERVICE", SERVICE)
        .env_remove("LUMEN_CONFIG")
        .env_remove("LUMEN_DATA_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `WHAT render --format FORMAT --project p1` as JSON.
fn rendered(what: &str, format: &str, env: &[(&str, &str)]) -> Value {
    let text = sidecar_cli(
        &[what, "render", "--format", format, "--project", "p1"],
        env,
    );
    serde_json::from_str(&text).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_names_series_its_data_path_writes() {
    let mut receiver = Receiver::http(Vec::new()).await;
    let sidecar = SidecarProc::exporting_to(receiver.addr, &[("OTEL_SERVICE_NAME", SERVICE)]).await;
    // A busy quarter hour of a production-shaped service, in minute batches.
    let workload = Workload::day().ending_now(15);
    // A window kept off the budget (an hour before), so its series is
    // exported too.
    let (from, to) = (workload.start_ms - 3_600_000, workload.start_ms - 3_000_000);
    sidecar_cli(
        &[
            "slo",
            "exclude",
            "--url",
            &sidecar.base(),
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--reason",
            "planned maintenance",
        ],
        &[],
    );
    let client = lumen_tests::json_client::JsonClient::default();
    let ingest = format!("{}/v1/ingest", sidecar.base());
    for minute in 0..15 {
        let body = workload.batch_with_process(SERVICE, "inst-1", minute + 1, minute);
        let (status, answer) = client.post(&ingest, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let exposition = get_ok(&format!("{}/metrics", sidecar.base())).await;
    // SIGTERM: the sidecar exports once more before it exits.
    assert_eq!(sidecar.proc.terminate(), Some(0));
    receiver.wait_for(1, Duration::from_secs(30)).await;
    let requests: Vec<_> = receiver.received().into_iter().map(|r| r.request).collect();
    let google = GoogleSeries::of(&requests);
    assert!(
        google.rejected.is_empty(),
        "Google would reject: {:?}",
        google.rejected
    );
    assert!(
        google
            .promql
            .contains_key(lumen_sidecar::metrics::OTLP_DURATION_BUCKETS),
        "the latency histogram was exported: {:?}",
        google.promql.keys().collect::<Vec<_>>()
    );
    let none = BTreeSet::new();

    // OTLP into Cloud Monitoring.
    let dashboard = rendered("dashboard", "cloud-monitoring", &[]);
    let alerts = rendered("alerts", "cloud-monitoring", &[]);
    let mut queries = Vec::new();
    strings_at(&dashboard, "prometheusQuery", &mut queries);
    strings_at(&alerts, "query", &mut queries);
    assert!(queries.len() >= 15, "{queries:?}");
    assert!(
        queries
            .iter()
            .any(|q| q.contains("http.server.request.duration_bucket")),
        "the latency panels read the OTLP histogram"
    );
    for q in &queries {
        check_promql(q, &google.promql, "Cloud Monitoring artefact", &none);
    }
    let mut filters = Vec::new();
    for field in [
        "goodServiceFilter",
        "badServiceFilter",
        "totalServiceFilter",
    ] {
        strings_at(&alerts, field, &mut filters);
    }
    assert!(filters.len() >= 8, "{filters:?}");
    for f in &filters {
        check_filter(f, &google.types, "Cloud Monitoring SLO");
    }
    for q in fleet_queries(DataPath::Otlp).await {
        check_promql(&q, &google.promql, "fleet reader (OTLP)", &none);
    }

    // A Prometheus scraping /metrics.
    let scraped = exposition_series(&exposition);
    assert!(scraped.contains_key("http_server_request_duration_seconds_bucket"));
    let grafana = rendered("dashboard", "grafana", &[]);
    let mut queries = Vec::new();
    strings_at(&grafana, "expr", &mut queries);
    assert!(queries.len() >= 12, "{queries:?}");
    for q in &queries {
        check_promql(q, &scraped, "Grafana dashboard", &none);
    }
    let rules = sidecar_cli(&["alerts", "render", "--format", "prometheus"], &[]);
    let recorded: BTreeSet<String> = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- record: "))
        .map(str::to_owned)
        .collect();
    let mut n = 0;
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        let expr: String =
            serde_json::from_str(line.trim_start().trim_start_matches("expr:").trim())
                .expect("quoted");
        check_promql(&expr, &scraped, "Prometheus rule", &recorded);
        n += 1;
    }
    assert!(n >= 60, "{n} rules");
    for q in fleet_queries(DataPath::Prometheus).await {
        check_promql(&q, &scraped, "fleet reader (/metrics)", &none);
    }

    // A user who scrapes /metrics into Managed Prometheus says so, and the
    // Cloud Monitoring dashboard follows.
    let dashboard = rendered(
        "dashboard",
        "cloud-monitoring",
        &[("LUMEN_DATA_PATH", "prometheus")],
    );
    let mut queries = Vec::new();
    strings_at(&dashboard, "prometheusQuery", &mut queries);
    for q in &queries {
        check_promql(q, &scraped, "Cloud Monitoring dashboard on /metrics", &none);
    }
}
