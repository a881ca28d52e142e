//! What the handlers share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lumen_middleware::wire::DecodedBatch;
use tokio::sync::mpsc;

use crate::alerts::SlackStats;
use crate::config::SidecarConfig;
use crate::eval::{
    BudgetReport, HealthReport, MaturityInputs, SloReport, budget_report, health, maturity,
    maturity_inputs, roi,
};
use crate::export::{ExportStats, LatencyFeed};
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

/// Cumulative finished requests by (route, status class) since start.
pub type RequestTotals = BTreeMap<(Option<String>, &'static str), u64>;

/// The shared state behind every handler.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: SidecarConfig,
    /// The window store; every critical section is short and never awaits.
    pub store: Mutex<WindowStore>,
    /// Counters.
    pub stats: IngestStats,
    /// Counters of the OTLP export.
    pub export_stats: Arc<ExportStats>,
    /// Counters of the Slack alerter.
    pub slack_stats: Arc<SlackStats>,
    totals: Mutex<RequestTotals>,
    histogram_feed: OnceLock<mpsc::Sender<LatencyFeed>>,
    evaluation_cache: Mutex<Option<(Instant, Arc<Evaluation>)>>,
}

/// One evaluation of a window: the SLO report and the health report.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The SLOs.
    pub slo: SloReport,
    /// Maturity, ROI and health.
    pub health: HealthReport,
    /// What the maturity metrics were measured from.
    pub inputs: MaturityInputs,
    /// App instances that sent a batch in the window.
    pub active_instances: u64,
    /// Error budgets and burn rates.
    pub budget: BudgetReport,
}

/// Status classes as counter labels, by [`crate::store::Counts::status`] index, then inner failures.
pub const CLASS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

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
            export_stats: Arc::default(),
            slack_stats: Arc::default(),
            totals: Mutex::new(BTreeMap::new()),
            histogram_feed: OnceLock::new(),
            evaluation_cache: Mutex::new(None),
        }
    }

    /// Adds a stored batch to the cumulative totals and queues its latency
    /// for the exported histogram (when an export runs).
    pub fn note_exported(&self, batch: &DecodedBatch) {
        {
            let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            for series in &batch.series {
                let counts = series.status.as_array().into_iter().chain([series.errors]);
                for (class, n) in CLASS_LABELS.iter().zip(counts) {
                    if n > 0 {
                        *totals.entry((series.route.clone(), *class)).or_insert(0) += n;
                    }
                }
            }
        }
        let Some(feed) = self.histogram_feed.get() else {
            return;
        };
        for series in &batch.series {
            // Each bucket's midpoint: unbiased for the exported sum; a value
            // within 0.1 % of an OTLP bucket boundary may land on either side.
            let layout = series.latency.layout();
            let item = LatencyFeed {
                route: series.route.clone(),
                buckets: series
                    .latency
                    .buckets()
                    .iter()
                    .map(|(i, n)| {
                        let (low, high) = (
                            layout.lowest_equivalent(*i as usize),
                            layout.highest_equivalent(*i as usize),
                        );
                        ((low + high) as f64 / 2e6, *n)
                    })
                    .collect(),
            };
            if feed.try_send(item).is_err() {
                self.export_stats
                    .histogram_feed_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The cumulative totals, for the exported counter.
    pub fn request_totals(&self) -> RequestTotals {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Connects the exported histogram's queue.
    pub fn attach_histogram_feed(&self, feed: mpsc::Sender<LatencyFeed>) {
        let _ = self.histogram_feed.set(feed);
    }

    /// The configured window's evaluation, recomputed when older than
    /// `max_age` (the export's gauges share one evaluation per collection).
    pub fn cached_evaluation(&self, max_age: Duration) -> Arc<Evaluation> {
        let mut cache = self
            .evaluation_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, evaluation)) = cache.as_ref()
            && at.elapsed() < max_age
        {
            return Arc::clone(evaluation);
        }
        let evaluation = Arc::new(self.evaluate(self.config.window));
        *cache = Some((Instant::now(), Arc::clone(&evaluation)));
        evaluation
    }

    /// Evaluates `window` ending now: SLOs, then maturity, ROI and health.
    pub fn evaluate(&self, window: Duration) -> Evaluation {
        let now = now_ms();
        let (slo, inputs, active_instances) = {
            let store = self.store();
            let data = store.window(now, window);
            let slo =
                SloReport::evaluate(&data, &self.config.slo, self.config.service.as_deref(), now);
            let inputs = maturity_inputs(&slo, &store, now, window);
            let since = now.saturating_sub(window.as_millis() as u64);
            let active = store.ledger().active_since(since).count() as u64;
            let budget = budget_report(
                store.budget(),
                &self.config.slo,
                self.config.budget_period,
                self.config.budget_min_events,
                now,
            );
            (slo, inputs, (active, budget))
        };
        let (active_instances, budget) = active_instances;
        let roi = roi(
            slo.cache.hits,
            slo.cache.misses,
            slo.requests,
            window.as_secs_f64(),
            &self.config.roi,
        );
        let health = health(&slo, maturity(&inputs), roi);
        Evaluation {
            slo,
            health,
            inputs,
            active_instances,
            budget,
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
