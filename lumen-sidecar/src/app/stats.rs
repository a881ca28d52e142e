//! The sidecar's own counters: ingest, OTLP export, Slack. The peers that
//! do the work increment them; the metric catalogue reads them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Fleet-store values that did not read since this process started (each
/// left out of the figures it belonged to). Process-wide: the fleet
/// store's readers serve the sidecar and the command line alike.
pub static FLEET_STORE_UNREADABLE: AtomicU64 = AtomicU64::new(0);

/// Connections the HTTP listeners closed at accept because their
/// connection limit was reached.
pub static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);

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
    /// Another service's batch (409).
    OtherService,
    /// A wire version this sidecar does not read (409; the sender keeps it).
    Version,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 7] = [
        Self::Malformed,
        Self::Future,
        Self::TooLarge,
        Self::Unauthorized,
        Self::ContentType,
        Self::OtherService,
        Self::Version,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Future => "future",
            Self::TooLarge => "too_large",
            Self::Unauthorized => "unauthorized",
            Self::ContentType => "content_type",
            Self::OtherService => "other_service",
            Self::Version => "version",
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
    pub rejected: [AtomicU64; 7],
    /// Snapshots written.
    pub snapshots_written: AtomicU64,
    /// Snapshot writes that failed.
    pub snapshot_failures: AtomicU64,
    /// Batches written to the write-ahead log (and synced) before their answer.
    pub wal_appended: AtomicU64,
    /// Log writes that failed (their batches answered 503, nothing applied).
    pub wal_failures: AtomicU64,
    /// Log groups refused because the next checkpoint would not have fit
    /// in the state volume beside them (answered 503, a checkpoint asked for).
    pub wal_no_room: AtomicU64,
    /// Log records replayed at start.
    pub wal_replayed: AtomicU64,
    /// Series whose route was folded into `other` (the route cap was reached).
    pub routes_folded: AtomicU64,
    /// Minute slots merged into coarser blocks to keep the memory cap.
    pub store_merged_slots: AtomicU64,
    /// Minute slots dropped (oldest first) to keep the memory cap.
    pub store_dropped_minutes: AtomicU64,
    /// Late batches' fields written to the fleet store (one per closed
    /// block a late batch belongs to).
    pub fleet_late_fields: AtomicU64,
    /// Fleet-store blocks this sidecar compacted.
    pub fleet_compacted_blocks: AtomicU64,
    /// Fields those compactions merged.
    pub fleet_compacted_fields: AtomicU64,
    /// When another service's refusals were last logged.
    pub other_service_log: LogGate,
}

/// A log line at most once a minute: the first now, then one a minute with
/// how many were held back.
#[derive(Debug, Default)]
pub struct LogGate {
    last_ms: AtomicU64,
    held_back: AtomicU64,
}

impl LogGate {
    /// How often a gated line is written at most.
    pub const EVERY_MS: u64 = 60_000;

    /// `Some(lines held back since the last one)` when a line is due at
    /// `now_ms`; else counts this one as held back.
    pub fn due(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= Self::EVERY_MS;
        if due
            && self
                .last_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
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

/// Counters of the OTLP export.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Exports the endpoint accepted whole.
    pub sent: AtomicU64,
    /// Exports the endpoint accepted with some points rejected (partial success).
    pub partial: AtomicU64,
    /// Exports that failed after the exporter's retries.
    pub failed: AtomicU64,
    /// Data points in failed exports (lost for gauges; counters and
    /// histograms are cumulative, so the next export carries them again).
    pub points_dropped: AtomicU64,
    /// Ingested series whose latency could not be queued for the histogram.
    pub histogram_feed_dropped: AtomicU64,
    /// Data points the endpoint refused: a partial success's
    /// `rejected_data_points`, or every point of a request answered 4xx.
    pub points_rejected: AtomicU64,
    /// Series queued for the histogram and not yet recorded.
    pub histogram_feed_pending: AtomicU64,
    /// Signalled when the histogram feed has recorded all it was given.
    pub histogram_fed: tokio::sync::Notify,
}

/// Counters of the Slack sender.
#[derive(Debug, Default)]
pub struct SlackStats {
    /// Messages Slack accepted.
    pub sent: AtomicU64,
    /// Messages given up (refused for good, or failing too often).
    pub dropped: AtomicU64,
    /// 429 answers received.
    pub throttled: AtomicU64,
}
