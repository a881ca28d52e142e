//! One shutdown path: the composition root trips a [`ShutdownTrigger`] once;
//! every peer holds a [`Shutdown`] and finishes its loop when it fires.

use tokio::sync::watch;

/// Trips every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A peer's view of the shutdown: cheap to clone, fires once.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A trigger and its first listener.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Fires the shutdown for every listener (idempotent).
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }

    /// A new listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Resolves once the shutdown has fired (at once if it already has, or
    /// if the trigger is gone).
    pub async fn fired(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }
}
