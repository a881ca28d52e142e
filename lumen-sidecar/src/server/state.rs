//! What the handlers share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::SidecarConfig;
use crate::eval::SloReport;
use crate::store::WindowStore;

/// Why an ingest was refused, as a `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Not a valid batch (400).
    Malformed,
    /// Interval end ahead of the clock (400).
    Future,
    /// Body over the limit (413).
    TooLarge,
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// Not `application/json` (415).
    ContentType,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 5] = [
        Self::Malformed,
        Self::Future,
        Self::TooLarge,
        Self::Unauthorized,
        Self::ContentType,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Future => "future",
            Self::TooLarge => "too_large",
            Self::Unauthorized => "unauthorized",
            Self::ContentType => "content_type",
        }
    }
}

/// The sidecar's own health counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Batches stored.
    pub applied: AtomicU64,
    /// Batches already applied, acknowledged again.
    pub duplicates: AtomicU64,
    /// Batches older than the retention, acknowledged and dropped.
    pub expired: AtomicU64,
    /// Finished requests in stored batches.
    pub requests: AtomicU64,
    /// Refusals by reason, in [`RejectReason::ALL`] order.
    pub rejected: [AtomicU64; 5],
    /// Snapshots written.
    pub snapshots_written: AtomicU64,
    /// Snapshot writes that failed.
    pub snapshot_failures: AtomicU64,
}

impl IngestStats {
    /// Counts a refusal.
    pub fn reject(&self, reason: RejectReason) {
        let i = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("every reason is in ALL");
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// The shared state behind every handler.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: SidecarConfig,
    /// The window store; every critical section is short and never awaits.
    pub store: Mutex<WindowStore>,
    /// Counters.
    pub stats: IngestStats,
}

/// Now, Unix ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AppState {
    /// A state over `store`.
    pub fn new(config: SidecarConfig, store: WindowStore) -> Self {
        Self {
            config,
            store: Mutex::new(store),
            stats: IngestStats::default(),
        }
    }

    /// The store, even if a panic poisoned its lock (the store is only ever
    /// changed by `apply`/`evict`, which leave it consistent or untouched).
    pub fn store(&self) -> MutexGuard<'_, WindowStore> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Evaluates `window` ending now.
    pub fn report(&self, window: Duration) -> SloReport {
        let now = now_ms();
        let data = self.store().window(now, window);
        SloReport::evaluate(&data, &self.config.slo, self.config.service.as_deref(), now)
    }
}
