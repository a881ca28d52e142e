//! A new user's first hour: the README's app keeps every request across
//! SIGTERM, a wrong sidecar URL or token is loud and loses nothing, and one
//! sidecar refuses a second service instead of merging it.

use std::process::Command;
use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_tests::*;

fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let section = readme
        .split("## Add the layer to your app")
        .nth(1)
        .expect("the section");
    let start = section.find("```rust,no_run\n").expect("a rust block") + "```rust,no_run\n".len();
    let end = section[start..].find("```\n").expect("its end");
    section[start..start + end].to_owned()
}

async fn get_hello(base: &str, n: usize) {
    for _ in 0..n {
        let (status, body) = try_get(&format!("{base}/hello")).await.expect("an answer");
        assert_eq!((status, body.as_str()), (200, "hello"));
    }
}

/// The README's `[dependencies]` block for the app.
fn readme_dependencies() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let section = readme
        .split("## Add the layer to your app")
        .nth(1)
        .expect("the section");
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = section[start..].find("```\n").expect("its end");
    section[start..start + end].to_owned()
}

#[test]
fn the_readme_app_builds_in_a_new_crate_from_the_readme_alone() {
    // A new crate: the README's dependency lines (the path pointed at this
    // checkout) and its snippet as main.rs, nothing else. The workspace's
    // lock file pins the versions already fetched, so it builds offline.
    let dependencies = readme_dependencies();
    assert!(
        !dependencies.contains("OWNER")
            && dependencies.contains("path = \"../lumen/lumen-middleware\""),
        "{dependencies}"
    );
    let checkout = workspace_root().join("lumen-middleware");
    let dir = workspace_root().join("target/readme-crate");
    std::fs::create_dir_all(dir.join("src")).expect("dir");
    let manifest = format!(
        "[package]\nname = \"readme-app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n{}\n[workspace]\n",
        dependencies.replace("../lumen/lumen-middleware", &checkout.display().to_string())
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("src/main.rs"), readme_snippet()).expect("main.rs");
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // No debug info: this build only has to succeed, and disk is short on CI.
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the README's app does not build as written:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("target/debug/readme-app").exists());
}

#[test]
fn the_readme_snippet_is_the_example_binary() {
    let file = std::fs::read_to_string(workspace_root().join("examples/src/bin/readme_app.rs"))
        .expect("the example");
    let code: String = file
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(readme_snippet(), code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_app_keeps_every_request_across_sigterm() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let port = free_port();
    let mut cmd = Command::new(binary("readme_app"));
    cmd.env("PORT", port.to_string())
        // The base URL, as `check --url` takes it.
        .env("LUMEN_SIDECAR_URL", sidecar.base())
        .env("LUMEN_SERVICE", "readme-app")
        // No interval closes before the SIGTERM: everything rides on shutdown.
        .env("LUMEN_INTERVAL", "1h")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let app = Proc::spawn("readme-app", cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "/hello").await;
    get_hello(&base, 1000).await;
    assert_eq!(
        sidecar.slo("5m").await["requests"],
        0,
        "nothing shipped yet"
    );
    let log = app.log.clone();
    assert_eq!(app.terminate(), Some(0), "a clean exit on SIGTERM");
    let doc = sidecar.slo("5m").await;
    assert_eq!(
        doc["requests"], 1001,
        "the load and the readiness probe: {doc}"
    );
    assert_eq!(doc["service"], "readme-app");
    let said = std::fs::read_to_string(log).expect("log");
    assert!(said.contains("SIGTERM received"), "{said}");
    assert!(
        said.contains("Lumen shipper stopped") && said.contains("unsent_requests=0"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sidecar_url_is_loud_and_keeps_the_batches() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let port = free_port();
    let mut cmd = Command::new(binary("readme_app"));
    cmd.env("PORT", port.to_string())
        .env("LUMEN_SIDECAR_URL", format!("{}/v2/ingest", sidecar.base()))
        .env("LUMEN_INTERVAL", "200ms")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let app = Proc::spawn("readme-app-wrong-url", cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "/hello").await;
    get_hello(&base, 5).await;
    let logged = eventually(
        "a configuration error in the app's log",
        Duration::from_secs(20),
        || async {
            let text = app.log_text();
            text.contains("ERROR").then_some(text)
        },
    )
    .await;
    assert!(logged.contains("configuration error"), "{logged}");
    assert!(
        logged.contains("LUMEN_SIDECAR_URL must be"),
        "says what to fix: {logged}"
    );
    assert_eq!(sidecar.slo("5m").await["requests"], 0);

    // In process: counted, and every request still held for delivery.
    let mut config = LumenConfig::default();
    config.sidecar_url = format!("{}/nowhere", sidecar.base());
    config.interval = Duration::from_millis(100);
    let (layer, shipper) = pair(config).expect("valid");
    let mut shipper = shipper.spawn();
    for _ in 0..7 {
        layer.recorder().record_response(Some("/r"), 1_000, 200);
    }
    eventually(
        "configuration errors counted",
        Duration::from_secs(20),
        || async { (shipper.stats().configuration_errors >= 2).then_some(()) },
    )
    .await;
    let report = shipper
        .shutdown(Duration::from_millis(300))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_requests, 7, "kept, not dropped");
    assert_eq!(shipper.stats().batches_refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_is_not_there_is_named_in_the_warning() {
    // A port nothing listens on.
    let closed = free_port();
    let port = free_port();
    let mut cmd = Command::new(binary("readme_app"));
    cmd.env("PORT", port.to_string())
        .env("LUMEN_SIDECAR_URL", format!("http://127.0.0.1:{closed}"))
        .env("LUMEN_INTERVAL", "200ms")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let app = Proc::spawn("readme-app-no-sidecar", cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "/hello").await;
    let logged = eventually(
        "a delivery warning in the app's log",
        Duration::from_secs(20),
        || async {
            let text = app.log_text();
            text.contains("cannot deliver").then_some(text)
        },
    )
    .await;
    assert!(
        logged.contains(&format!("http://127.0.0.1:{closed}/v1/ingest")),
        "the warning says which URL it tried: {logged}"
    );
    assert!(logged.contains("LUMEN_SIDECAR_URL"), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sidecar_refuses_a_second_service_instead_of_merging_it() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let start = |service: &str| {
        let mut config = LumenConfig::default();
        config.service = service.to_owned();
        config.sidecar_url = sidecar.base();
        config.interval = Duration::from_secs(3600);
        let (layer, shipper) = pair(config).expect("valid");
        (layer, shipper.spawn())
    };
    // An idle app's empty batch does not claim the sidecar.
    let (_idle, idle_shipper) = start("idle-admin");
    let idle = idle_shipper.flush().await.expect("the shipper runs");
    assert_eq!(idle.unsent_batches, 0, "its empty batch was taken");
    assert_eq!(idle_shipper.stats().configuration_errors, 0, "accepted");
    let (cart, mut cart_shipper) = start("cart");
    for _ in 0..5 {
        cart.recorder().record_response(Some("/hello"), 1_000, 200);
    }
    assert_eq!(
        cart_shipper
            .flush()
            .await
            .expect("the shipper runs")
            .unsent_requests,
        0
    );
    let (search, mut search_shipper) = start("search");
    for _ in 0..7 {
        search
            .recorder()
            .record_response(Some("/hello"), 1_000, 200);
    }
    let mut report = search_shipper.flush().await.expect("the shipper runs");
    for _ in 0..4 {
        report = search_shipper.flush().await.expect("the shipper runs");
    }
    assert_eq!(report.unsent_requests, 7, "refused, and kept");
    assert!(search_shipper.stats().configuration_errors >= 5);
    // One clear line in the sidecar's log, not one per refusal.
    let said = sidecar.proc.log_text();
    assert_eq!(
        said.matches("batch of another service refused").count(),
        1,
        "{said}"
    );
    assert!(said.contains("give each service its own sidecar"), "{said}");
    let doc = sidecar.slo("5m").await;
    assert_eq!(doc["service"], "cart");
    assert_eq!(doc["requests"], 5, "nothing of search merged in: {doc}");
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("lumen_batches_rejected_total{reason=\"other_service\"} ")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    let _ = cart_shipper
        .shutdown(Duration::from_secs(1))
        .await
        .expect("the shipper runs");
    let _ = search_shipper
        .shutdown(Duration::from_millis(100))
        .await
        .expect("the shipper runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_settings_a_restart_keeps_what_was_acknowledged() {
    // Only the listen address is set: no LUMEN_STATE_DIR. HOME points to a
    // fresh directory, as a new user's would hold nothing of Lumen's.
    let home = std::env::temp_dir().join(format!("lumen-home-{}", now_ms()));
    std::fs::create_dir_all(&home).expect("home");
    let port = free_port();
    let start = || {
        let mut cmd = Command::new(binary("lumen-sidecar"));
        cmd.arg("serve")
            .env("LUMEN_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOME", &home)
            .env_remove("XDG_STATE_HOME")
            .env_remove("LUMEN_STATE_DIR")
            .env_remove("LUMEN_SNAPSHOT_PATH")
            .env_remove("LUMEN_CONFIG");
        Proc::spawn("sidecar-defaults", cmd)
    };
    let first = start();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "/healthz").await;
    let mut config = LumenConfig::default();
    config.service = "defaults-app".into();
    config.sidecar_url = base.clone();
    config.interval = Duration::from_secs(3600);
    let (layer, shipper) = pair(config).expect("valid");
    let mut shipper = shipper.spawn();
    for i in 0..300 {
        layer.recorder().record_response(
            Some("/r"),
            1_000 + i,
            if i % 30 == 0 { 503 } else { 200 },
        );
    }
    let report = shipper.flush().await.expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0, "acknowledged");
    let expected_dir = home.join(format!(".local/state/lumen/sidecar-{port}"));
    let held = std::fs::read_dir(&expected_dir).map_or(0, Iterator::count);
    assert!(
        held > 0,
        "the log lives in the documented default directory {}: {}",
        expected_dir.display(),
        first.log_text()
    );
    // A crash (SIGKILL), not a clean stop: nothing is written at exit.
    drop(first);
    let second = start();
    wait_ready(&base, "/healthz").await;
    let doc: serde_json::Value =
        serde_json::from_str(&get_ok(&format!("{base}/v1/slo?window=5m")).await).expect("JSON");
    assert_eq!(doc["requests"], 300, "{doc}");
    assert_eq!(doc["service"], "defaults-app");
    let _ = shipper.shutdown(Duration::from_millis(100)).await;
    drop(second);
    std::fs::remove_dir_all(&home).ok();
}
