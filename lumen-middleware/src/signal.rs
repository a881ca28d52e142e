//! The signal an app waits for before it ships its last interval.

/// Resolves on SIGTERM (what Cloud Run, Kubernetes and systemd send before
/// stopping a process) or Ctrl-C, whichever comes first, and logs which.
///
/// Serve with it as the graceful-shutdown future, then call
/// [`ShipperHandle::shutdown`](crate::ShipperHandle::shutdown): what the
/// last interval recorded is sent before the process ends.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}
