//! The local demo: a sidecar and the mentoring API on loopback, traffic,
//! then the seven-phase SLO check.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lumen_middleware::LumenConfig;
use lumen_sidecar::Sidecar;
use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::render::check_text;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::answer_cache::AnswerCache;
use crate::app::RunningApi;
use crate::load::{Progress, run_for};
use crate::settings::ApiSettings;

/// How long the demo drives traffic by default.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// Requests per second by default.
pub const DEFAULT_RATE: u32 = 40;

/// Why the demo could not run.
#[derive(Debug, Error)]
pub enum DemoError {
    /// A port could not be bound.
    #[error("cannot listen on loopback: {0}")]
    Bind(std::io::Error),
    /// The sidecar could not start.
    #[error("sidecar: {0}")]
    Sidecar(#[from] lumen_sidecar::ServeError),
    /// The middleware config was refused.
    #[error("middleware: {0}")]
    Middleware(#[from] lumen_middleware::ConfigError),
    /// The final check could not read the sidecar.
    #[error("check: {0}")]
    Check(#[from] lumen_sidecar::cli::sources::CheckError),
    /// The API's shipper stopped before the demo ended.
    #[error("shipper: {0}")]
    Shipper(#[from] lumen_middleware::ShipperGone),
}

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Traffic duration.
    pub duration: Duration,
    /// Requests per second.
    pub rate: u32,
    /// Keep serving after the report until Ctrl-C.
    pub keep_running: bool,
}

/// A `redis-server` the demo started, stopped when dropped.
struct RedisChild(Child);

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// `REDIS_URL` if set; else a `redis-server` started on a free port if one
/// is installed; else the in-process cache.
async fn demo_cache() -> (AnswerCache, String, Option<RedisChild>) {
    if let Ok(url) = std::env::var("REDIS_URL") {
        match AnswerCache::redis(&url).await {
            Ok(c) => return (c, format!("Redis at {url}"), None),
            Err(e) => eprintln!("REDIS_URL={url} unusable ({e}); trying a local redis-server"),
        }
    }
    let Some(server) = find_on_path("redis-server") else {
        return (
            AnswerCache::in_process(),
            "in-process cache (no redis-server installed)".into(),
            None,
        );
    };
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(_) => return (AnswerCache::in_process(), "in-process cache".into(), None),
    };
    let child = Command::new(server)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        return (
            AnswerCache::in_process(),
            "in-process cache (redis-server failed to start)".into(),
            None,
        );
    };
    let child = RedisChild(child);
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(cache) = AnswerCache::redis(&url).await {
            return (
                cache,
                format!("Redis at {url} (started for the demo)"),
                Some(child),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (
        AnswerCache::in_process(),
        "in-process cache (redis-server did not answer)".into(),
        None,
    )
}

fn progress_line(p: &Progress, elapsed: Duration, total: Duration) -> String {
    let s: Vec<u64> = p.status.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let answered = p.answered.load(Ordering::Relaxed);
    format!(
        "[{:>3}s/{}s] {answered} requests ({:.0}/s)  2xx {}  4xx {}  5xx {}  no answer {}",
        elapsed.as_secs(),
        total.as_secs(),
        answered as f64 / elapsed.as_secs_f64().max(0.001),
        s[1],
        s[3],
        s[4],
        p.failed.load(Ordering::Relaxed)
    )
}

/// Runs the demo; prints to stdout (the progress line to stderr).
pub async fn run_demo(options: DemoOptions) -> Result<(), DemoError> {
    let (cache, cache_note, _redis) = demo_cache().await;
    let sidecar_config = SidecarConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..SidecarConfig::default()
    };
    let sidecar = Sidecar::bind(sidecar_config).await?;
    let sidecar_addr = sidecar.local_addr();
    let (stop_sidecar, sidecar_stopped) = oneshot::channel::<()>();
    let sidecar_task = tokio::spawn(sidecar.run(async {
        let _ = sidecar_stopped.await;
    }));

    let lumen = {
        let mut c = LumenConfig::default();
        c.service = "ion-mentoring-api".into();
        c.revision = Some("ion-mentoring-api-demo".into());
        c.sidecar_url = format!("http://{sidecar_addr}/v1/ingest");
        c.interval = Duration::from_secs(2);
        c
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Bind)?;
    let settings = ApiSettings {
        listen: listener.local_addr().map_err(DemoError::Bind)?,
        ..ApiSettings::from_lookup(|_| None).expect("defaults are valid")
    };
    let api = RunningApi::start(listener, settings, cache, lumen)?;
    let base = format!("http://{}", api.addr);
    let sidecar_url = format!("http://{sidecar_addr}");

    println!("Lumen demo");
    println!("  mentoring API  {base}  (answers cached in {cache_note})");
    println!("  sidecar        {sidecar_url}");
    println!(
        "  traffic        {} requests/s for {}s\n",
        options.rate,
        options.duration.as_secs()
    );

    let progress = Arc::new(Progress::default());
    let load = {
        let (base, progress) = (base.clone(), Arc::clone(&progress));
        tokio::spawn(async move { run_for(&base, options.duration, options.rate, progress).await })
    };
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    });
    let mut load = load;
    loop {
        tokio::select! {
            _ = &mut load => break,
            _ = ticker.tick() => {
                let line = progress_line(&progress, started.elapsed(), options.duration);
                if tty { eprint!("\r{line}  "); } else { eprintln!("{line}"); }
                let _ = std::io::stderr().flush();
            }
        }
    }
    eprintln!(
        "\r{}  ",
        progress_line(&progress, started.elapsed(), options.duration)
    );

    let flushed = api.shipper.flush().await?;
    if flushed.unsent_requests > 0 {
        eprintln!(
            "warning: {} requests not yet delivered to the sidecar",
            flushed.unsent_requests
        );
    }
    let (report, _) = lumen_sidecar::cli::sources::fetch_report(&sidecar_url, Some("5m")).await?;
    println!();
    print!("{}", check_text(&report, true));
    if options.keep_running {
        println!("\nSee for yourself:");
    } else {
        println!("\nWith --keep-running these stay up to look at:");
    }
    println!("  {sidecar_url}/v1/report   Markdown report");
    println!("  {sidecar_url}/metrics     Prometheus metrics");
    println!("  {sidecar_url}/v1/slo      JSON");
    println!("  {sidecar_url}/            status page");
    println!("  lumen-sidecar check --url {sidecar_url}");

    if options.keep_running {
        println!("\nServing until Ctrl-C (send traffic to {base}).");
        crate::shutdown_signal().await;
    }
    let stopped = api.stop(Duration::from_secs(5)).await?;
    tracing::info!(
        unsent_batches = stopped.unsent_batches,
        unsent_requests = stopped.unsent_requests,
        "the API's shipper stopped"
    );
    let _ = stop_sidecar.send(());
    let _ = sidecar_task.await;
    Ok(())
}
