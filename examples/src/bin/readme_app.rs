//! The README's "Add the layer to your app", as a binary: a test runs it.

use axum::{Router, routing::get};
use lumen_middleware::{LumenConfig, pair, shutdown_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Lumen logs through `tracing`: without a subscriber its errors are
    // silent. `RUST_LOG=info` shows the shipper's lifecycle.
    tracing_subscriber::fmt::init();

    // LUMEN_SIDECAR_URL (default http://127.0.0.1:9464), LUMEN_SERVICE (else
    // K_SERVICE, else this executable's name), LUMEN_INTERVAL (default 10s)
    // are read here.
    let (layer, shipper) = pair(LumenConfig::from_env()?)?;
    let mut shipper = shipper.spawn();

    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(layer.with_matched_path());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await?;
    // SIGTERM (Cloud Run scaling an instance down) or Ctrl-C stops serving…
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    // …and the last interval is shipped before the process ends (Cloud Run
    // gives 10 s after SIGTERM).
    let report = shipper.shutdown(std::time::Duration::from_secs(8)).await?;
    tracing::info!(
        unsent_requests = report.unsent_requests,
        acknowledged = shipper.stats().requests_acknowledged,
        "Lumen shipper stopped"
    );
    Ok(())
}
