//! The `lumen-sidecar` binary as a real process: serve, check exit codes for
//! every status, config check/show, SIGTERM drain with a snapshot, restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use lumen_tests::free_port;
use lumen_tests::sidecar_http::*;

const BIN: &str = env!("CARGO_BIN_EXE_lumen-sidecar");

struct Served {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Served {
    async fn start(env: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        // A state directory of its own: serve is durable by default, and a
        // later test on the same port must not replay this one's log.
        let state = std::env::temp_dir().join(format!(
            "lumen-cli-state/{}-{}",
            addr.port(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let child = Command::new(BIN)
            .arg("serve")
            .env("LUMEN_LISTEN", addr.to_string())
            .env("LUMEN_STATE_DIR", &state)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sidecar starts");
        wait_healthy(addr).await;
        Self {
            child: Some(child),
            addr,
        }
    }

    /// SIGTERM, then the exit status and what it logged.
    fn terminate(mut self) -> Output {
        let child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        child.wait_with_output().expect("sidecar exits")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn check(addr: SocketAddr, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["check", "--url", &format!("http://{addr}")])
        .args(extra)
        .output()
        .expect("check runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lumen-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exit_codes_follow_the_status() {
    let served = Served::start(&[]).await;
    let addr = served.addr;

    let out = check(addr, &[]);
    assert_eq!(out.status.code(), Some(3), "no data");
    assert!(
        text(&out.stderr).contains("no data"),
        "{}",
        text(&out.stderr)
    );

    // 1000 fast successes: every SLO met.
    post_batch(
        addr,
        &batch("i", 1, vec![series(Some("/ask"), 1000, 10_000, 0, 0, 1)]),
    )
    .await;
    let out = check(addr, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    for phase in [
        "[1/7] SLO targets",
        "[2/7] Availability",
        "[3/7] Latency",
        "[4/7] Error rate",
        "[5/7] Overall status",
        "[6/7] Summary",
        "[7/7] Report and action items",
    ] {
        assert!(stdout.contains(phase), "missing {phase} in\n{stdout}");
    }
    assert!(stdout.contains("All SLOs are meeting targets. Continue monitoring."));
    assert!(stdout.contains("Status: HEALTHY, 4 of 4 SLOs met, compliance rate 100%"));

    // 2 4xx of 1002: error rate 0.2 % fails alone → 75 % → WARNING.
    post_batch(
        addr,
        &batch("i", 2, vec![series(Some("/ask"), 0, 1, 2, 0, 10_000)]),
    )
    .await;
    let out = check(addr, &["--verbose"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Error rate is 0.2% against a target of < 0.1%."),
        "{stdout}"
    );
    assert!(stdout.contains("Routes"), "verbose adds the route table");
    assert!(
        stdout.contains("Error budgets (30d period)"),
        "verbose adds the budgets: {stdout}"
    );

    // Slow 5xx: availability, P99 and error rate fail → 25 % → CRITICAL.
    post_batch(
        addr,
        &batch("i", 3, vec![series(Some("/ask"), 0, 1, 0, 30, 900_000)]),
    )
    .await;
    let out = check(addr, &["--window", "5m"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));

    let out = check(addr, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["status"], "CRITICAL");
    assert_eq!(doc["requests"], 1032);

    let out = check(addr, &["--window", "90s"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("window: 90s is not whole minutes"),
        "{}",
        text(&out.stderr)
    );

    let done = served.terminate();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));

    let out = check(addr, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("sidecar unreachable"),
        "{}",
        text(&out.stderr)
    );
}

async fn budget(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = get(addr, "/v1/budget").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["slos"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_a_snapshot_that_a_restart_restores() {
    let dir = temp_dir("restart");
    let snapshot = dir.join("lumen.snapshot.json");
    let env = [("LUMEN_SNAPSHOT_PATH", snapshot.to_str().expect("utf-8"))];
    let served = Served::start(&env).await;
    post_batch(
        served.addr,
        &batch("i", 1, vec![series(Some("/r"), 40, 1_000, 1, 1, 300_000)]),
    )
    .await;
    let before = slo(served.addr).await;
    let budget_before = budget(served.addr).await;
    // 1 5xx of 42 requests is availability's one bad event.
    assert_eq!(budget_before[0]["name"], "availability");
    assert_eq!(
        (
            budget_before[0]["bad"].clone(),
            budget_before[0]["events"].clone()
        ),
        (1.into(), 42.into())
    );
    let (_, metrics) = get(served.addr, "/metrics").await;
    assert!(
        metrics.contains("error_budget_remaining{") && metrics.contains("burn_rate{"),
        "{metrics}"
    );
    let done = served.terminate();
    assert_eq!(done.status.code(), Some(0));
    assert!(snapshot.exists(), "snapshot written on SIGTERM");

    let served = Served::start(&env).await;
    let mut after = slo(served.addr).await;
    after["evaluated_at_ms"] = before["evaluated_at_ms"].clone();
    assert_eq!(after, before, "restored exactly");
    assert_eq!(
        budget(served.addr).await,
        budget_before,
        "the budget is restored exactly"
    );
    // The dedup ledger came back too: seq 1 is a duplicate.
    let (_, ack) = post_batch(
        served.addr,
        &batch("i", 1, vec![series(None, 5, 1, 0, 0, 1)]),
    )
    .await;
    assert_eq!(ack, r#"{"applied_seq":1}"#);
    assert_eq!(slo(served.addr).await["requests"], 42);
    served.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_snapshot_is_set_aside_and_the_sidecar_starts_empty() {
    let dir = temp_dir("corrupt");
    let snapshot = dir.join("lumen.snapshot.json");
    std::fs::write(
        &snapshot,
        br#"{"format":"lumen-sidecar-snapshot","version":1,"store":{"reten"#,
    )
    .expect("write");
    let served = Served::start(&[("LUMEN_SNAPSHOT_PATH", snapshot.to_str().expect("utf-8"))]).await;
    assert_eq!(slo(served.addr).await["requests"], 0);
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lumen.snapshot.json.rejected-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let done = served.terminate();
    let log = text(&done.stderr);
    assert!(
        log.contains("snapshot not trusted; starting empty"),
        "{log}"
    );
}

fn config(args: &[&str], file: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("config").args(args);
    if let Some(f) = file {
        cmd.arg("--config").arg(f);
    }
    cmd.output().expect("runs")
}

#[test]
fn config_check_and_show() {
    let dir = temp_dir("config");
    let good = dir.join("good.toml");
    std::fs::write(&good, "service = \"api\"\n[slo]\nlatency_p95_ms = 150\n").expect("write");
    let out = config(&["check"], Some(&good));
    assert_eq!(out.status.code(), Some(0));
    let out = config(&["show"], Some(&good));
    assert_eq!(out.status.code(), Some(0));
    let shown = text(&out.stdout);
    assert!(shown.contains("latency_p95_ms = 150.0"), "{shown}");
    assert!(shown.contains("listen = \"127.0.0.1:9464\""), "{shown}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[slo]\navailability = 140\n").expect("write");
    let out = config(&["check"], Some(&bad));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr)
            .contains("slo.availability in bad.toml = 140: a percent above 0, at most 100"),
        "{}",
        text(&out.stderr)
    );

    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "serve refuses a bad config");

    let out = Command::new(BIN).arg("--help").output().expect("runs");
    let help = text(&out.stdout);
    for word in ["serve", "check", "config"] {
        assert!(help.contains(word), "{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_stdout_prints_the_gauges_on_sigterm() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut child = Command::new(BIN)
        .args(["serve", "--export", "stdout"])
        .env("LUMEN_STATE_DIR", "none")
        .env("LUMEN_LISTEN", addr.to_string())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    wait_healthy(addr).await;
    post_batch(
        addr,
        &batch("i", 1, vec![series(Some("/r"), 100, 1_000, 0, 0, 1)]),
    )
    .await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut stdout)
        .expect("read");
    assert_eq!(child.wait().expect("exits").code(), Some(0));
    assert!(
        stdout.contains("slo_compliance{revision_name=\"ion-mentoring-api-00042-abc\",service_name=\"ion-mentoring-api\",slo_name=\"overall\"} 100 % gauge"),
        "{stdout}"
    );
    assert!(stdout.contains("http_server_requests_total{http.request.method=\"GET\",http.route=\"/r\",revision_name=\"ion-mentoring-api-00042-abc\",service_name=\"ion-mentoring-api\",status_class=\"2xx\"} 100 {request} sum Cumulative"), "{stdout}");
    assert!(
        stdout.contains("http.server.request.duration{http.route=\"/r\",revision_name=\"ion-mentoring-api-00042-abc\",service_name=\"ion-mentoring-api\"} count=100"),
        "{stdout}"
    );
}

/// Batches of 1000 requests shaped for one health band: `(2xx fast, 4xx,
/// 5xx slow, cache hits, cache misses)`.
fn band_batch(
    ok: u64,
    c4: u64,
    c5_slow: u64,
    hits: u64,
    misses: u64,
) -> lumen_middleware::wire::Batch {
    let mut s = series(Some("/ask"), ok, 1_000, c4, c5_slow, 900_000);
    s.cache = lumen_middleware::wire::CacheCounts { hits, misses };
    batch("i", 1, vec![s])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exit_codes_follow_the_band() {
    // ROI: a hit saves $0.001; Redis costs $72 a month, $0.10 an hour.
    // Compute cost off: these cases check the cache's arithmetic (the
    // compute part is checked in tests/tests/cost_budget.rs).
    let env = [
        ("LUMEN_ROI_COST_PER_MISS_USD", "0.001"),
        ("LUMEN_ROI_REDIS_MONTHLY_COST_USD", "72"),
        ("LUMEN_COST_INSTANCE_VCPU", "0"),
        ("LUMEN_COST_INSTANCE_MEMORY_GIB", "0"),
    ];
    // (batch, band, exit code). One revision seen: deployment score 14.3.
    let cases = [
        // All SLOs met, 90 % hits (ROI 800 %), four revisions (deployment
        // score 57, so no maturity action): health 97.4.
        (Some(band_batch(1000, 0, 0, 900, 100)), "EXCELLENT", 0),
        // All met, 45 % hits (ROI 350 %, WARN): health 82.9.
        (Some(band_batch(1000, 0, 0, 450, 550)), "GOOD", 0),
        // 0.5 % 4xx fails the error rate (75 %), 45 % hits: health 66.9.
        (Some(band_batch(995, 5, 0, 450, 550)), "FAIR", 1),
        // 10 % slow 5xx: every SLO fails, 10 % hits (ROI 0 %): health 0.9.
        (Some(band_batch(900, 0, 100, 100, 900)), "POOR", 2),
        (None, "NO_DATA", 3),
    ];
    for (shaped, band, code) in cases {
        let served = Served::start(&env).await;
        if let Some(b) = &shaped {
            assert_eq!(post_batch(served.addr, b).await.0, 200);
            if band == "EXCELLENT" {
                for seq in 2..=4 {
                    let mut empty = batch("i", seq, vec![]);
                    empty.revision = Some(format!("ion-mentoring-api-0000{seq}-abc"));
                    assert_eq!(post_batch(served.addr, &empty).await.0, 200);
                }
            }
        }
        let url = format!("http://{}", served.addr);
        let out = Command::new(BIN)
            .args(["health", "--url", &url])
            .output()
            .expect("runs");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{band}: {stdout}");
        for section in [
            "[1/6] Maturity",
            "[2/6] ROI gate",
            "[3/6] SLO compliance",
            "[4/6] Summary",
            "[5/6] Overall",
            "[6/6] Recommended actions",
        ] {
            assert!(
                stdout.contains(section),
                "{band}: missing {section} in\n{stdout}"
            );
        }
        assert!(
            stdout.contains(&format!("\n  Overall Health: {band} (")),
            "{band}:\n{stdout}"
        );
        // Section 3 lists the four SLOs; the summary has its rows.
        for line in [
            "availability",
            "latency_p95",
            "latency_p99",
            "error_rate",
            "Maturity score",
            "Maturity level",
            "ROI gate status",
            "SLO overall status",
        ] {
            assert!(stdout.contains(line), "{band}: {line} in\n{stdout}");
        }
        let json = Command::new(BIN)
            .args(["health", "--url", &url, "--json"])
            .output()
            .expect("runs");
        let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
        assert_eq!(doc["band"], band);
        match band {
            "EXCELLENT" => {
                assert!(
                    stdout.contains("No immediate actions required. System is healthy!"),
                    "{stdout}"
                );
                assert_eq!(doc["slo"]["slos"].as_array().map(Vec::len), Some(4));
                assert_eq!(doc["slo"]["slos"][0]["name"], "availability");
                assert_eq!(doc["roi"]["gate"], "PASS");
                assert!((doc["roi"]["roi_percent"].as_f64().expect("roi") - 800.0).abs() < 1e-6);
                assert_eq!(doc["maturity"]["level_name"], "Level 5 - Optimizing");
                let (_, metrics) = get(served.addr, "/metrics").await;
                for name in [
                    "maturity_score{",
                    "roi_percentage{",
                    "health_score{",
                    "cache_hit_rate{",
                ] {
                    assert!(metrics.contains(name), "{name} in {metrics}");
                }
                let (_, md) = get(served.addr, "/v1/report").await;
                assert!(
                    md.contains("## Health")
                        && md.contains("**Overall Health: EXCELLENT (")
                        && md.contains("| ROI gate status | PASS |")
                        && md.contains("System is healthy!"),
                    "{md}"
                );
            }
            "FAIR" => {
                let actions = doc["actions"].as_array().expect("actions");
                assert_eq!(actions[0]["priority"], "HIGH");
                assert_eq!(actions[0]["category"], "slo");
                assert_eq!(actions[0]["metric"], "error_rate");
                // Numbers, not text: renderers format them.
                assert!(actions[0]["value"].is_f64(), "{doc}");
                assert_eq!(actions[0]["unit"], "%");
                assert_eq!(actions[0]["threshold"]["comparison"], "<");
                assert_eq!(actions[0]["threshold"]["value"], 0.1);
                assert!(
                    actions
                        .iter()
                        .any(|a| a["category"] == "roi" && a["priority"] == "HIGH")
                );
            }
            "POOR" => {
                let actions = doc["actions"].as_array().expect("actions");
                assert_eq!(actions[0]["priority"], "CRITICAL");
                assert!(
                    actions
                        .iter()
                        .any(|a| a["category"] == "maturity" && a["metric"] == "cache_hit_rate")
                );
            }
            _ => {}
        }
        served.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_is_no_data_not_poor() {
    let served = Served::start(&[]).await;
    // Traffic two hours ago, nothing since; the process figures are recent.
    let mut old = batch("i", 1, vec![series(Some("/r"), 1000, 5_000, 0, 0, 1)]);
    old.end_ms -= 2 * 3600 * 1000;
    old.start_ms -= 2 * 3600 * 1000;
    assert_eq!(post_batch(served.addr, &old).await.0, 200);
    let url = format!("http://{}", served.addr);
    let out = Command::new(BIN)
        .args(["health", "--url", &url, "--window", "1h"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let said = text(&out.stderr);
    assert!(
        said.contains("no health score without maturity")
            && said.contains("slo_compliance (no request in the window)"),
        "{said}"
    );
    let out = Command::new(BIN)
        .args(["health", "--url", &url, "--window", "1h", "--json"])
        .output()
        .expect("runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["band"], "NO_DATA");
    assert!(doc["health_score"].is_null() && doc["maturity"]["score"].is_null());
    let components = doc["components"].as_array().expect("components");
    assert_eq!(components.len(), 3);
    assert!(components.iter().all(|c| c["score"].is_null()), "{doc}");
    let (_, metrics) = get(served.addr, "/metrics").await;
    for absent in [
        "maturity_score",
        "health_score",
        "roi_percentage",
        "slo_compliance{",
    ] {
        assert!(
            !metrics.lines().any(|l| l.starts_with(absent)),
            "{absent} must be absent, not a number that looks bad:\n{metrics}"
        );
    }
    // Over 24 h the traffic is in the window again: a score.
    let out = Command::new(BIN)
        .args(["health", "--url", &url, "--window", "24h", "--json"])
        .output()
        .expect("runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["health_score"].is_number(), "{doc}");
    served.terminate();
}

/// `name{…labels…} value` lines of `/metrics` whose labels include `with`, summed.
fn sum_of(metrics: &str, name: &str, with: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_each_carry_their_share_and_the_fleet_roi_is_one_bill() {
    // $72 a month is $0.10 an hour; a hit saves $0.001.
    let roi_env = [
        ("LUMEN_ROI_COST_PER_MISS_USD", "0.001"),
        ("LUMEN_ROI_REDIS_MONTHLY_COST_USD", "72"),
        ("LUMEN_ROI_INSTANCES", "2"),
        ("LUMEN_COST_INSTANCE_VCPU", "0"),
        ("LUMEN_COST_INSTANCE_MEMORY_GIB", "0"),
    ];
    let (a, b) = (Served::start(&roi_env).await, Served::start(&roi_env).await);
    // Each instance: 300 hits. The fleet: 600 hits = $0.60 against $0.10 = 500 %.
    for served in [&a, &b] {
        assert_eq!(
            post_batch(served.addr, &band_batch(1000, 0, 0, 300, 700))
                .await
                .0,
            200
        );
    }
    let mut fleet_hits = 0.0;
    for served in [&a, &b] {
        let (_, body) = get(served.addr, "/v1/health").await;
        let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let roi = doc["roi"]["roi_percent"].as_f64().expect("an ROI");
        assert!(
            (roi - 500.0).abs() < 1e-6,
            "each instance carries half the bill: {roi}"
        );
        assert_eq!(doc["roi"]["cost_share"], 0.5);
        let (_, metrics) = get(served.addr, "/metrics").await;
        fleet_hits += sum_of(&metrics, "lumen_cache_lookups_total", "result=\"hit\"");
    }
    // What the generated PromQL computes from the summed counters: one bill.
    let cost = 72.0 * 3600.0 / (30.0 * 86_400.0);
    let fleet = (fleet_hits * 0.001 - cost) / cost * 100.0;
    assert!((fleet - 500.0).abs() < 1e-6, "{fleet}");

    // On Cloud Run without a share, no per-instance ROI rather than the whole bill.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let api = format!("http://{nowhere}");
    let run = Served::start(&[
        ("K_SERVICE", "ion-mentoring-api"),
        ("LUMEN_EXPORT", "off"),
        ("GCE_METADATA_HOST", nowhere.as_str()),
        ("LUMEN_CLOUD_RUN_API", api.as_str()),
        ("LUMEN_ROI_COST_PER_MISS_USD", "0.001"),
        ("LUMEN_ROI_REDIS_MONTHLY_COST_USD", "72"),
    ])
    .await;
    assert_eq!(
        post_batch(run.addr, &band_batch(1000, 0, 0, 300, 700))
            .await
            .0,
        200
    );
    let (_, body) = get(run.addr, "/v1/health").await;
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(doc["roi"]["roi_percent"].is_null(), "{doc}");
    assert!(
        doc["roi"]["missing"]
            .as_str()
            .expect("why")
            .contains("roi.instances"),
        "{doc}"
    );
    let (_, metrics) = get(run.addr, "/metrics").await;
    assert!(!metrics.contains("roi_percentage{"), "{metrics}");
    for served in [a, b, run] {
        served.terminate();
    }
}

#[test]
fn the_cost_budget_command_answers_to_its_old_name_too() {
    let help = |name: &str| {
        let out = std::process::Command::new(BIN)
            .args([name, "apply", "--help"])
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{name}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8 help")
    };
    let canonical = help("cost-budget");
    assert!(canonical.contains("--billing-account"), "{canonical}");
    assert_eq!(help("budget"), canonical);
}
