//! Harness for end-to-end tests: the workspace's binaries, a real
//! `redis-server`, a real `prometheus`, free loopback ports, HTTP helpers.
//! Every wait here is a bounded poll for a condition, never a sleep standing
//! in for one.

#![forbid(unsafe_code)]

pub mod arm_batch;
pub mod billing_budget_api;
pub mod cloud_run_api;
pub mod distributions;
pub mod fleet_load;
pub mod google_series;
pub mod google_stand_in;
pub mod ingest_stand_in;
pub mod json_client;
pub mod otlp_receiver;
pub mod prometheus_backfill;
pub mod promql_refs;
pub mod sidecar_http;
pub mod slack_api;
pub mod slack_webhook;
pub mod webdriver;
pub mod workload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The wall clock, Unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_owned()
}

/// Path of a workspace binary, built (once per test process) with the same
/// cargo that runs the tests.
pub fn binary(name: &str) -> PathBuf {
    static BINS: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let bins = BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--message-format=json-render-diagnostics",
                "-p",
                "lumen-sidecar",
                "-p",
                "lumen-examples",
                "--bins",
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building the workspace's binaries failed"
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let exe = v["executable"].as_str()?.to_owned();
                Some((v["target"]["name"].as_str()?.to_owned(), PathBuf::from(exe)))
            })
            .collect()
    });
    bins.get(name)
        .unwrap_or_else(|| panic!("no binary {name} in {bins:?}"))
        .clone()
}

/// A free loopback port (bound, then released for a child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Finds `name` on `PATH` (or in /usr/sbin, where Debian puts some servers).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    /// What it is, for messages.
    pub name: String,
    /// The file its stdout and stderr go to.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr sent to a log file in the temp dir.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let log = std::env::temp_dir().join(format!(
            "lumen-e2e-{}-{name}-{}.log",
            std::process::id(),
            free_port()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} failed to start: {e}"));
        Self {
            child: Some(child),
            name: format!("{name} (log {})", log.display()),
            log,
        }
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit; returns the code.
    pub fn terminate(mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {}", self.name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 20 s of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// GETs `url`: status and body, or `None` without an answer.
pub async fn try_get(url: &str) -> Option<(u16, String)> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse().ok()?))
        .await
        .ok()?
        .ok()?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// GETs `url` and expects 200.
pub async fn get_ok(url: &str) -> String {
    let (status, body) = try_get(url)
        .await
        .unwrap_or_else(|| panic!("no answer from {url}"));
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// Polls until `probe` returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `GET base/path` answers 200.
pub async fn wait_ready(base: &str, path: &str) {
    let url = format!("{base}{path}");
    eventually(&url, Duration::from_secs(60), || async {
        try_get(&url).await.filter(|(s, _)| *s == 200).map(|_| ())
    })
    .await;
}

/// A `lumen-sidecar serve` process.
#[derive(Debug)]
pub struct SidecarProc {
    /// The process.
    pub proc: Proc,
    /// Its address.
    pub addr: SocketAddr,
}

impl SidecarProc {
    /// Starts a sidecar on `port` with extra environment, waits for `/healthz`.
    pub async fn start(port: u16, env: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(binary("lumen-sidecar"));
        // A state directory of its own (serve is durable by default, and a
        // later test on the same port must not replay this one's log),
        // unless the test names one.
        let state = std::env::temp_dir().join(format!(
            "lumen-test-state/{port}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        cmd.arg("serve")
            .env("LUMEN_LISTEN", addr.to_string())
            .env("LUMEN_STATE_DIR", &state)
            .envs(env.iter().copied());
        let proc = Proc::spawn("sidecar", cmd);
        wait_ready(&format!("http://{addr}"), "/healthz").await;
        Self { proc, addr }
    }

    /// Starts a sidecar exporting over OTLP/HTTP to the receiver at
    /// `receiver` only when it stops (an hour's interval), with `extra`.
    pub async fn exporting_to(receiver: SocketAddr, extra: &[(&str, &str)]) -> Self {
        let endpoint = format!("http://{receiver}");
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ];
        env.extend_from_slice(extra);
        Self::start(free_port(), &env).await
    }

    /// `http://addr`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `/v1/slo` document.
    pub async fn slo(&self, window: &str) -> serde_json::Value {
        let body = get_ok(&format!("{}/v1/slo?window={window}", self.base())).await;
        serde_json::from_str(&body).expect("JSON document")
    }
}

/// A `mentoring-api` process.
#[derive(Debug)]
pub struct ApiProc {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:port`.
    pub base: String,
}

impl ApiProc {
    /// Starts the API shipping to `sidecar`, with extra environment.
    pub async fn start(sidecar: SocketAddr, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(binary("mentoring-api"));
        cmd.env("PORT", port.to_string())
            .env("LUMEN_SIDECAR_URL", format!("http://{sidecar}/v1/ingest"))
            .env("LUMEN_SERVICE", "ion-mentoring-api")
            .env("LUMEN_REVISION", "ion-mentoring-api-00001-e2e")
            .env("LUMEN_INTERVAL", "200ms")
            .env("BACKEND_ERROR_RATE", "0")
            .env("BACKEND_MEDIAN_MS", "3")
            .env("BACKEND_SLOW_MS", "250")
            .envs(env.iter().copied());
        let proc = Proc::spawn("mentoring-api", cmd);
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base, "/health").await;
        Self { proc, base }
    }
}

/// A `redis-server` on a free port, nothing persisted.
#[derive(Debug)]
pub struct RedisProc {
    /// The process.
    pub proc: Proc,
    /// `redis://127.0.0.1:port` (with the password, if one is required).
    pub url: String,
}

impl RedisProc {
    /// Starts it and waits for PING.
    pub async fn start() -> Self {
        Self::start_on(free_port(), &[]).await
    }

    /// Starts it on `port` with extra arguments (such as `--requirepass`),
    /// and waits until it answers (PING, or AUTH's refusal).
    pub async fn start_on(port: u16, extra: &[&str]) -> Self {
        let program = find_program("redis-server")
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let mut cmd = Command::new(program);
        cmd.args(extra);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let proc = Proc::spawn("redis-server", cmd);
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1));
        let url = match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        };
        let client = redis::Client::open(url.as_str()).expect("valid url");
        eventually("redis PING", Duration::from_secs(30), || {
            let client = client.clone();
            async move {
                let mut con = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .ok()
            }
        })
        .await;
        Self { proc, url }
    }
}

/// Runs a command to its end.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("command runs")
}

/// A size-limited tmpfs mounted for a test (a full disk made on purpose),
/// unmounted when dropped. Mounting needs root: `None` otherwise.
#[derive(Debug)]
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at a fresh directory named after `name`.
    pub fn mount(name: &str, bytes: u64) -> Option<Self> {
        let path = std::env::temp_dir().join(format!("lumen-tmpfs-{name}-{}", std::process::id()));
        let _ = Command::new("umount").arg(&path).output();
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "cannot mount a tmpfs (root is needed): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir(&path);
            return None;
        }
        Some(Self { path })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).output();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Availability's `(events, bad)` in a `/v1/budget` document.
pub fn availability_events(budget: &serde_json::Value) -> (u64, u64) {
    let slo = budget["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|s| s["name"] == "availability")
        .expect("availability");
    (
        slo["events"].as_u64().expect("events"),
        slo["bad"].as_u64().expect("bad"),
    )
}
