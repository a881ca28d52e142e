//! Where the gate's I/O runs. In production: right where it is awaited.
//! Under a paused tokio clock (the gate's scenario tests), a request that
//! waits on a real process would let the clock jump past its own timeout;
//! such I/O instead runs on a second, real-time runtime, awaited through
//! `spawn_blocking`, which holds the paused clock still until it is done.

use tokio::runtime::Handle;

/// Runs the gate's I/O (see the module's notes).
#[derive(Debug, Clone, Default)]
pub struct OffClock {
    real_time: Option<Handle>,
}

impl OffClock {
    /// I/O awaited where it is called (production).
    pub fn inline() -> Self {
        Self::default()
    }

    /// I/O run to completion on `real_time` while the caller's clock holds.
    pub fn on(real_time: Handle) -> Self {
        Self {
            real_time: Some(real_time),
        }
    }

    /// Runs `io`.
    pub async fn run<F>(&self, io: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.real_time {
            None => io.await,
            Some(handle) => {
                let handle = handle.clone();
                tokio::task::spawn_blocking(move || handle.block_on(io))
                    .await
                    .expect("the gate's I/O task does not panic")
            }
        }
    }
}
