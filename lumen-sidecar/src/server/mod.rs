//! The HTTP side: ingest and the read API on one listener, housekeeping
//! (eviction, snapshots) beside them, and a graceful drain.

mod ingest;
pub mod prometheus;
mod read;
mod state;

pub use read::window_param;
pub use state::{
    AppState, CLASS_LABELS, Evaluation, IngestStats, RejectReason, RequestTotals, now_ms,
};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::SidecarConfig;
use crate::export::{ExportError, MetricsExport};
use crate::snapshot::{self, SnapshotError};
use crate::store::WindowStore;

/// How often old minutes are evicted.
pub const EVICT_EVERY: Duration = Duration::from_secs(60);

/// Why the sidecar cannot serve.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
    /// The metrics export cannot start.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// The routes, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ingest", post(ingest::ingest))
        .route("/v1/slo", get(read::slo))
        .route("/v1/report", get(read::report))
        .route("/v1/health", get(read::health))
        .route("/v1/budget", get(read::budget))
        .route("/metrics", get(read::metrics))
        .route("/healthz", get(read::healthz))
        .route("/", get(read::status_page))
        .with_state(state)
}

/// Reads the snapshot if there is one; a bad one is logged, set aside and
/// replaced by an empty store.
pub fn restore_store(config: &SidecarConfig) -> WindowStore {
    let empty = || {
        let mut store = WindowStore::new(config.retention);
        store.set_budget_rules(config.budget_rules());
        store
    };
    let Some(path) = &config.snapshot_path else {
        return empty();
    };
    match snapshot::read(path) {
        Ok(Some(mut store)) => {
            store.set_retention(config.retention);
            store.set_budget_rules(config.budget_rules());
            store.evict(now_ms());
            tracing::info!(path = %path.display(), minutes = store.minutes_held(), instances = store.ledger().len(), "restored the snapshot");
            store
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no snapshot yet; starting empty");
            empty()
        }
        Err(e @ (SnapshotError::Corrupt { .. } | SnapshotError::Foreign { .. })) => {
            match snapshot::set_aside(path, now_ms()) {
                Ok(aside) => {
                    tracing::error!(error = %e, set_aside = %aside.display(), "snapshot not trusted; starting empty")
                }
                Err(e2) => {
                    tracing::error!(error = %e, rename_error = %e2, "snapshot not trusted and could not be set aside; starting empty")
                }
            }
            empty()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the snapshot; starting empty");
            empty()
        }
    }
}

/// Writes the snapshot now, if one is configured.
pub fn save_snapshot(state: &AppState) {
    let Some(path) = &state.config.snapshot_path else {
        return;
    };
    // Copy under the lock, encode outside it: ingest waits for a clone, not
    // for JSON.
    let copy = state.store().clone();
    let bytes = snapshot::encode(&copy, now_ms());
    match snapshot::write(path, &bytes) {
        Ok(()) => {
            state
                .stats
                .snapshots_written
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path = %path.display(), bytes = bytes.len(), "snapshot written");
        }
        Err(e) => {
            state
                .stats
                .snapshot_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "snapshot write failed");
        }
    }
}

/// A bound sidecar, ready to run.
#[derive(Debug)]
pub struct Sidecar {
    state: Arc<AppState>,
    listener: TcpListener,
    export: Option<MetricsExport>,
}

impl Sidecar {
    /// Restores the store, binds the listen address, starts the export.
    pub async fn bind(config: SidecarConfig) -> Result<Self, ServeError> {
        let store = restore_store(&config);
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let state = Arc::new(AppState::new(config, store));
        let export = MetricsExport::start(&state.config, &state).await?;
        if let Some(url) = &state.config.slack_webhook_url {
            let webhook = url.parse().expect("validated with the config");
            crate::alerts::spawn(Arc::clone(&state), webhook, Arc::clone(&state.slack_stats));
            tracing::info!("Slack alerts on");
        }
        Ok(Self {
            state,
            listener,
            export,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` resolves, then drains for at most the grace
    /// period and writes a last snapshot.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state;
        let grace = state.config.grace_period;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let housekeeping = tokio::spawn(housekeeping(Arc::clone(&state), stop_rx.clone()));
        tracing::info!(addr = %self.listener.local_addr().map_err(ServeError::Serve)?, "lumen-sidecar serving");
        let mut graceful_rx = stop_rx.clone();
        let serve = axum::serve(self.listener, router(Arc::clone(&state)))
            .with_graceful_shutdown(async move {
                let _ = graceful_rx.wait_for(|stop| *stop).await;
            })
            .into_future();
        let mut deadline_rx = stop_rx;
        let result = tokio::select! {
            r = serve => r.map_err(ServeError::Serve),
            () = async move {
                let _ = deadline_rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "grace period over with connections still open");
                Ok(())
            }
        };
        housekeeping.abort();
        if let Some(export) = self.export {
            export.shutdown(grace).await;
        }
        save_snapshot(&state);
        tracing::info!("lumen-sidecar stopped");
        result
    }
}

async fn housekeeping(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut evict = tokio::time::interval(EVICT_EVERY);
    let mut snap = tokio::time::interval(state.config.snapshot_interval);
    evict.tick().await;
    snap.tick().await;
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = evict.tick() => state.store().evict(now_ms()),
            _ = snap.tick() => {
                let s = Arc::clone(&state);
                let _ = tokio::task::spawn_blocking(move || save_snapshot(&s)).await;
            }
        }
    }
}
