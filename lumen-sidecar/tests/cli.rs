//! The `lumen-sidecar` binary as a real process: serve, check exit codes for
//! every status, config check/show, SIGTERM drain with a snapshot, restart.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lumen-sidecar");

struct Served {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Served {
    async fn start(env: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(BIN)
            .arg("serve")
            .env("LUMEN_LISTEN", addr.to_string())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_a_snapshot_that_a_restart_restores() {
    let dir = temp_dir("restart");
    let snapshot = dir.join("lumen.snapshot.json");
    let env = [("LUMEN_SNAPSHOT_PATH", snapshot.to_str().expect("utf-8"))];
    let served = Served::start(&env).await;
    post_batch(
        served.addr,
        &batch("i", 1, vec![series(Some("/r"), 40, 1_000, 1, 0, 2_000)]),
    )
    .await;
    let before = slo(served.addr).await;
    let done = served.terminate();
    assert_eq!(done.status.code(), Some(0));
    assert!(snapshot.exists(), "snapshot written on SIGTERM");

    let served = Served::start(&env).await;
    let mut after = slo(served.addr).await;
    after["evaluated_at_ms"] = before["evaluated_at_ms"].clone();
    assert_eq!(after, before, "restored exactly");
    // The dedup ledger came back too: seq 1 is a duplicate.
    let (_, ack) = post_batch(
        served.addr,
        &batch("i", 1, vec![series(None, 5, 1, 0, 0, 1)]),
    )
    .await;
    assert_eq!(ack, r#"{"applied_seq":1}"#);
    assert_eq!(slo(served.addr).await["requests"], 41);
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
        text(&out.stderr).contains("slo.availability = 140: a percent above 0, at most 100"),
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
    assert!(stdout.contains("http_server_requests{http_route=\"/r\",status_class=\"2xx\"} 100 {request} sum Cumulative"), "{stdout}");
    assert!(
        stdout.contains("http.server.request.duration{http.route=\"/r\"} count=100"),
        "{stdout}"
    );
}
