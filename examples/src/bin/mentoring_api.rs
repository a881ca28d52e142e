//! The mentoring API as a process: `PORT`, `REDIS_URL`, `CACHE_TTL`,
//! `BACKEND_*` and the `LUMEN_*` variables of the middleware.

use std::process::ExitCode;
use std::time::Duration;

use lumen_examples::app::{RunningApi, connect_cache};
use lumen_examples::settings::ApiSettings;
use lumen_examples::shutdown_signal;
use lumen_middleware::LumenConfig;

/// Time to finish and ship after SIGTERM (Cloud Run allows 10 s).
const GRACE: Duration = Duration::from_secs(8);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUMEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match ApiSettings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let lumen = match LumenConfig::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let cache = match connect_cache(&settings).await {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot connect to Redis: {e}")),
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", settings.listen)),
    };
    let api = match RunningApi::start(listener, settings, cache, lumen) {
        Ok(api) => api,
        Err(e) => return fail(&e),
    };
    tracing::info!(addr = %api.addr, instance = api.shipper.instance(), "mentoring API listening");
    shutdown_signal().await;
    match api.stop(GRACE).await {
        Ok(report) => {
            tracing::info!(?report, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(3)
}
