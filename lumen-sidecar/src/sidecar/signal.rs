//! The process's stop signal.

/// Resolves on SIGTERM (Cloud Run scaling an instance down) or SIGINT
/// (Ctrl-C), and logs which.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; draining"),
        () = term => tracing::info!("SIGTERM received; draining"),
    }
}
