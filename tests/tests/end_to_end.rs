//! Lumen end to end with real processes: redis-server, lumen-sidecar, the
//! mentoring API, the load generator over HTTP, Prometheus scraping.

use std::process::Command;
use std::time::Duration;

use lumen_examples::load::{LoadOutcome, LoadPlan, run_plan};
use lumen_tests::*;

fn plan(requests: u64, seed: u64) -> LoadPlan {
    LoadPlan {
        requests,
        concurrency: 8,
        error_share: 0.05,
        slow_share: 0.05,
        repeat_share: 0.40,
        invalid_share: 0.02,
        seed,
    }
}

fn route<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["route"] == name)
        .unwrap_or_else(|| panic!("no route {name} in {doc}"))
}

/// The load's requests all went to the ask route; the harness's readiness
/// probe is the one request to `/health`.
fn assert_counts_match(doc: &serde_json::Value, outcome: &LoadOutcome) {
    assert_eq!(outcome.transport_errors, 0, "every request was answered");
    assert_eq!(route(doc, "/health")["requests"], 1, "{doc}");
    assert_eq!(doc["requests"], outcome.answered + 1, "{doc}");
    let ask = route(doc, "/api/v1/mentor/ask");
    assert_eq!(ask["requests"], outcome.answered, "{doc}");
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        assert_eq!(ask["counts"][class], outcome.status[i], "{class} in {doc}");
    }
    // The field says what it counts: failures without a response (none
    // here), not the error rate's errors.
    assert_eq!(ask["counts"]["inner_failures"], 0, "{doc}");
    assert!(ask["counts"].get("errors").is_none(), "{doc}");
    assert_eq!(doc["cache"]["hits"], outcome.expected_hits, "hits in {doc}");
    assert_eq!(
        doc["cache"]["misses"], outcome.expected_misses,
        "misses in {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_load_through_redis_is_counted_exactly() {
    let redis = RedisProc::start().await;
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let api = ApiProc::start(sidecar.addr, &[("REDIS_URL", &redis.url)]).await;

    let outcome = run_plan(&api.base, &plan(600, 11)).await;
    // The plan's shape: 12 invalid (400), 240 repeats (hits), 348 new of
    // which 30 fail (503) and 30 are slow.
    assert_eq!(outcome.status[3], 12);
    assert_eq!(outcome.status[4], 30);
    assert_eq!((outcome.expected_hits, outcome.expected_misses), (240, 348));

    // SIGTERM: the API ships its last interval before it exits.
    assert_eq!(api.proc.terminate(), Some(0));
    let doc = sidecar.slo("5m").await;
    assert_counts_match(&doc, &outcome);
    assert_eq!(doc["service"], "ion-mentoring-api");
    assert_eq!(doc["revision"], "ion-mentoring-api-00001-e2e");
    // 30 slow answers of 600 (5 %): P99 is at least the slow backend's 250 ms.
    let p99 = doc["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|s| s["name"] == "latency_p99")
        .expect("p99")["current"]
        .as_f64()
        .expect("value");
    assert!(p99 >= 250.0, "p99 {p99}");

    // Redis holds one answer per question answered (the 318 new ones that succeeded).
    let client = redis::Client::open(redis.url.as_str()).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: u64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(keys, 318);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_restart_mid_load_loses_and_doubles_nothing() {
    let dir = std::env::temp_dir().join(format!("lumen-e2e-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let snapshot = dir.join("snapshot.json");
    let env = [("LUMEN_SNAPSHOT_PATH", snapshot.to_str().expect("utf-8"))];
    let port = free_port();
    let sidecar = SidecarProc::start(port, &env).await;
    let api = ApiProc::start(sidecar.addr, &[]).await;

    let base = api.base.clone();
    let load = tokio::spawn(async move {
        let mut p = plan(900, 23);
        p.concurrency = 3;
        run_plan(&base, &p).await
    });
    // Restart once some batches have landed and while the load still runs.
    let first = sidecar.base();
    eventually("first batches applied", Duration::from_secs(60), || {
        let url = format!("{first}/v1/slo?window=5m");
        async move {
            let (_, body) = try_get(&url).await?;
            let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
            (doc["requests"].as_u64()? > 50).then_some(())
        }
    })
    .await;
    assert!(
        !load.is_finished(),
        "the load must still be running at the restart"
    );
    assert_eq!(sidecar.proc.terminate(), Some(0));
    let sidecar = SidecarProc::start(port, &env).await;

    let outcome = load.await.expect("load finished");
    assert_eq!(api.proc.terminate(), Some(0));
    let doc = sidecar.slo("5m").await;
    assert_counts_match(&doc, &outcome);
    let (_, metrics) = try_get(&format!("{}/metrics", sidecar.base()))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("lumen_snapshots_written_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_slo_gauges_with_their_labels() {
    let program =
        find_program("prometheus").expect("prometheus is installed (scripts/test.sh installs it)");
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let api = ApiProc::start(sidecar.addr, &[]).await;
    let outcome = run_plan(
        &api.base,
        &LoadPlan {
            error_share: 0.0,
            slow_share: 0.0,
            invalid_share: 0.0,
            ..plan(200, 5)
        },
    )
    .await;
    assert_eq!(api.proc.terminate(), Some(0));
    assert_eq!(
        sidecar.slo("1h").await["requests"],
        outcome.answered + 1,
        "the load and one readiness probe"
    );

    // The exposition is lint-clean as Prometheus's own tool reads it.
    let exposition = get_ok(&format!("{}/metrics", sidecar.base())).await;
    assert!(exposition.contains("# TYPE http_server_requests_total counter"));
    let promtool = find_program("promtool").expect("promtool comes with prometheus");
    let mut lint = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    std::io::Write::write_all(
        &mut lint.stdin.take().expect("piped"),
        exposition.as_bytes(),
    )
    .expect("promtool reads the exposition");
    let linted = lint.wait_with_output().expect("promtool ends");
    assert!(
        linted.status.success() && linted.stdout.is_empty() && linted.stderr.is_empty(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );

    let dir = std::env::temp_dir().join(format!("lumen-e2e-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lumen\n    static_configs:\n      - targets: ['{}']\n",
            sidecar.addr
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
    let _prometheus = Proc::spawn("prometheus", cmd);
    let api_base = format!("http://127.0.0.1:{port}");
    wait_ready(&api_base, "/-/ready").await;

    let query = |q: &str| format!("{api_base}/api/v1/query?query={q}");
    let result = eventually(
        "slo_compliance in Prometheus",
        Duration::from_secs(60),
        || {
            let url = query("slo_compliance");
            async move {
                let (_, body) = try_get(&url).await?;
                let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
                let result = doc["data"]["result"].as_array()?.clone();
                (result.len() == 5).then_some(result)
            }
        },
    )
    .await;
    let mut names: Vec<String> = result
        .iter()
        .map(|r| {
            r["metric"]["slo_name"]
                .as_str()
                .expect("slo_name")
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "availability",
            "error_rate",
            "latency_p95",
            "latency_p99",
            "overall"
        ]
    );
    for r in &result {
        assert_eq!(r["metric"]["service_name"], "ion-mentoring-api");
        assert_eq!(r["metric"]["revision_name"], "ion-mentoring-api-00001-e2e");
        assert_eq!(r["metric"]["job"], "lumen");
        assert_eq!(r["value"][1], "100", "all met: {r}");
    }
    let body = get_ok(&query("sli_requests")).await;
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        doc["data"]["result"][0]["value"][1],
        (outcome.answered + 1).to_string()
    );
}

#[test]
fn the_demo_runs_and_prints_the_seven_phases() {
    let out = run(Command::new(binary("lumen-demo")).args(["--duration", "3s", "--rate", "20"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for phase in [
        "[1/7]", "[2/7]", "[3/7]", "[4/7]", "[5/7]", "[6/7]", "[7/7]",
    ] {
        assert!(stdout.contains(phase), "missing {phase} in\n{stdout}");
    }
    assert!(stdout.contains("/v1/report"), "{stdout}");
    assert!(stdout.contains("/metrics"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requests ("), "progress line: {stderr}");
}
