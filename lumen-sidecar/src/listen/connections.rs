//! Serving a router with bounds no client can stretch: at most
//! `max_connections` connections at once (the next are closed at accept,
//! counted and logged at most once a minute, so a flood of slow clients
//! cannot take every file descriptor), and a header-read timeout (a client
//! that has not sent a whole request head within it, a first request or the
//! next one on a kept-alive connection, is disconnected). On shutdown the
//! listener closes and the open connections finish their requests.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The bounds of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's head.
    pub header_read_timeout: Duration,
}

impl ListenerLimits {
    /// The limits `config` sets.
    pub fn of(config: &crate::config::SidecarConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            header_read_timeout: config.header_read_timeout,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`
/// resolves; then stops accepting and waits for the open connections'
/// requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut last_warned = None::<tokio::time::Instant>;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait a little, go on.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            crate::app::CONNECTIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
            if last_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                last_warned = Some(tokio::time::Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached: new connections are closed until others end (lumen_connections_refused_total)"
                );
            }
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that errs or times out only ends its own connection.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
