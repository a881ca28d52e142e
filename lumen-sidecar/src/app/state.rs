//! What every part of the running sidecar shares: the configuration, the
//! window store, the cumulative totals and the counters.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lumen_middleware::wire::DecodedBatch;
use tokio::sync::mpsc;

use super::experiment_hub::{ExperimentsHub, SharedExperiments};
use super::stats::{ExportStats, IngestStats, SlackStats};
use super::totals::{CumulativeTotals, LatencyBoundaries};
use super::tuning_hub::TuningHub;
use super::wal_handle::{IngestError, WalHandle};
use crate::config::SidecarConfig;
use crate::store::{Applied, BudgetRules, StoreError, WindowStore};

/// One ingested series' latency, for the exported histogram.
#[derive(Debug, Clone)]
pub struct LatencyFeed {
    /// Its service (the configured one, else the batch's).
    pub service: String,
    /// The revision the sidecar's counters are of (`unknown` when none is known).
    pub revision: String,
    /// Its route.
    pub route: Option<String>,
    /// `(seconds, count)` per latency bucket.
    pub buckets: Vec<(f64, u64)>,
}

/// The shared state behind every handler and peer.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: SidecarConfig,
    /// The window store; every critical section is short and never awaits.
    pub store: Mutex<WindowStore>,
    /// Counters of ingest and snapshots.
    pub stats: IngestStats,
    /// Counters of the OTLP export.
    pub export_stats: Arc<ExportStats>,
    /// Counters of the Slack alerter.
    pub slack_stats: Arc<SlackStats>,
    totals: Mutex<CumulativeTotals>,
    budget_rules: BudgetRules,
    boundaries: LatencyBoundaries,
    histogram_feed: Option<mpsc::Sender<LatencyFeed>>,
    wal: Option<WalHandle>,
    memory_cap: Option<usize>,
    deployments: Mutex<Option<crate::eval::Deployments>>,
    fleet_view: Option<Arc<dyn super::FleetView>>,
    started_ms: u64,
    /// The feedback loop: its state, the key samples and tier timings.
    pub tuning: TuningHub,
    /// The A/B experiments.
    pub experiments: ExperimentsHub,
}

/// What the composition root builds the state from: the configuration and
/// the restored store, and each part that is there from the start (or not
/// at all). Everything the state holds is given here; nothing is attached
/// later.
#[derive(Debug)]
pub struct StateParts {
    /// The effective configuration.
    pub config: SidecarConfig,
    /// The window store as the checkpoint left it.
    pub store: WindowStore,
    /// What the checkpoint kept beside the store: the cumulative totals,
    /// the experiments, the feedback loop's state.
    pub kept: Option<serde_json::Value>,
    /// The window store's memory cap, bytes.
    pub memory_cap: Option<usize>,
    /// The write-ahead log's handle (its writer starts after the replay).
    pub wal: Option<WalHandle>,
    /// The exported histogram's queue, when an export runs.
    pub histogram_feed: Option<mpsc::Sender<LatencyFeed>>,
    /// The fleet's view (the fleet store's, or a query API's).
    pub fleet_view: Option<Arc<dyn super::FleetView>>,
    /// Where the fleet shares its experiments (the fleet store).
    pub shared_experiments: Option<Arc<dyn SharedExperiments>>,
}

impl StateParts {
    /// The parts of a state with only `config` and `store` (no log, no cap,
    /// no export, no fleet).
    pub fn new(config: SidecarConfig, store: WindowStore) -> Self {
        Self {
            config,
            store,
            kept: None,
            memory_cap: None,
            wal: None,
            histogram_feed: None,
            fleet_view: None,
            shared_experiments: None,
        }
    }
}

impl AppState {
    /// A state over `store` with nothing else (see [`StateParts::new`]).
    pub fn new(config: SidecarConfig, store: WindowStore) -> Self {
        Self::from_parts(StateParts::new(config, store))
    }

    /// The state built whole from `parts`; what the checkpoint kept is
    /// taken before any batch.
    pub fn from_parts(parts: StateParts) -> Self {
        let StateParts {
            config,
            store,
            kept,
            memory_cap,
            wal,
            histogram_feed,
            fleet_view,
            shared_experiments,
        } = parts;
        let budget_rules = config.budget_rules();
        let boundaries = LatencyBoundaries::with_targets(&[
            config.slo.latency_p95_ms,
            config.slo.latency_p99_ms,
        ]);
        let experiments = ExperimentsHub::new(&config, shared_experiments);
        let tuning = TuningHub::new(&config.feedback);
        let state = Self {
            experiments,
            tuning,
            budget_rules,
            boundaries,
            config,
            store: Mutex::new(store),
            stats: IngestStats::default(),
            export_stats: Arc::default(),
            slack_stats: Arc::default(),
            totals: Mutex::new(CumulativeTotals::default()),
            started_ms: super::clock::now_ms(),
            histogram_feed,
            wal,
            memory_cap,
            deployments: Mutex::new(None),
            fleet_view,
        };
        state.restore_kept(kept);
        state
    }

    /// Takes a decoded batch (`body` as it arrived) accepted at
    /// `accepted_ms`: through the write-ahead log when there is one (the
    /// batch is durable before this returns), else straight into the store.
    pub async fn ingest(
        &self,
        batch: DecodedBatch,
        body: bytes::Bytes,
        accepted_ms: u64,
    ) -> Result<Applied, IngestError> {
        match &self.wal {
            Some(wal) => wal.submit(batch, body, accepted_ms).await,
            None => {
                let mut store = self.store();
                Ok(self.apply_locked(&mut store, &batch, accepted_ms)?)
            }
        }
    }

    /// Applies `batch` to the locked `store` at `at_ms` and counts it: the
    /// ingest counters, and the cumulative totals under the same lock, so a
    /// checkpoint's store and totals always agree.
    pub fn apply_locked(
        &self,
        store: &mut WindowStore,
        batch: &DecodedBatch,
        at_ms: u64,
    ) -> Result<Applied, StoreError> {
        let folded = store.fold_routes(batch);
        let batch = match &folded {
            Some((folded_batch, n)) => {
                let before = self.stats.routes_folded.fetch_add(*n, Ordering::Relaxed);
                if before == 0 {
                    tracing::warn!(
                        max_routes = self.config.max_routes,
                        "more distinct routes than the route cap: new ones are counted under \"other\" (lumen_routes_folded_total)"
                    );
                }
                folded_batch
            }
            None => batch,
        };
        let applied = store.apply(batch, at_ms)?;
        match applied {
            Applied::Stored { requests, .. } => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                self.stats.requests.fetch_add(requests, Ordering::Relaxed);
                self.note_exported(batch, store.keeps_off_budget(batch));
                // The memory cap holds during ingest, not only at the
                // minute's housekeeping: a burst of batches cannot take
                // the store past it.
                self.fit_locked(store, at_ms);
            }
            Applied::Duplicate { .. } => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(instance = %batch.instance, seq = batch.seq, "duplicate batch acknowledged again");
            }
            Applied::Expired { .. } => {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                tracing::info!(instance = %batch.instance, seq = batch.seq, "batch older than the retention acknowledged and dropped");
            }
        }
        Ok(applied)
    }

    /// The window store's memory cap, when there is one.
    pub fn memory_cap(&self) -> Option<usize> {
        self.memory_cap
    }

    /// Keeps the store within its budget (see
    /// [`WindowStore::fit_memory_cap`]); counts and logs what it merged or dropped.
    pub fn fit_memory_cap(&self, now_ms: u64) {
        if self.memory_cap().is_some() {
            self.fit_locked(&mut self.store(), now_ms);
        }
    }

    /// [`fit_memory_cap`](Self::fit_memory_cap) with the store's lock held.
    fn fit_locked(&self, store: &mut WindowStore, now_ms: u64) {
        let Some(budget) = self.memory_cap() else {
            return;
        };
        let fit = store.fit_memory_cap(budget, now_ms);
        if fit.merged_slots + fit.dropped_minutes == 0 {
            return;
        }
        self.stats
            .store_merged_slots
            .fetch_add(fit.merged_slots as u64, Ordering::Relaxed);
        self.stats
            .store_dropped_minutes
            .fetch_add(fit.dropped_minutes as u64, Ordering::Relaxed);
        if fit.dropped_minutes > 0 {
            tracing::error!(
                cap_bytes = budget,
                before_bytes = fit.before_bytes,
                after_bytes = fit.after_bytes,
                dropped_minutes = fit.dropped_minutes,
                "the store was over its memory cap even merged: its oldest hours were dropped"
            );
        } else {
            tracing::warn!(
                cap_bytes = budget,
                before_bytes = fit.before_bytes,
                after_bytes = fit.after_bytes,
                merged_slots = fit.merged_slots,
                "the store was over its memory cap: old minutes merged into 10-minute and hour blocks"
            );
        }
    }

    /// The write-ahead log, when one is kept.
    pub fn wal(&self) -> Option<&WalHandle> {
        self.wal.as_ref()
    }

    /// Adds a stored batch to the cumulative totals (its SLO events only
    /// when its minute counts on the budget: `off_budget` says it is kept
    /// off) and queues its latency for the exported histogram (when an
    /// export runs).
    pub fn note_exported(&self, batch: &DecodedBatch, off_budget: bool) {
        self.tuning.note(batch);
        self.experiments.note(batch, &self.budget_rules);
        let revision = {
            let mut totals = self.totals();
            if totals.revision.is_none() {
                totals.revision = self
                    .config
                    .export
                    .cloud_run
                    .as_ref()
                    .and_then(|r| r.revision.clone())
                    .or_else(|| batch.revision.clone());
            }
            for series in &batch.series {
                totals.add(series, &self.budget_rules, &self.boundaries, off_budget);
            }
            totals
                .revision
                .clone()
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let Some(feed) = &self.histogram_feed else {
            return;
        };
        for series in &batch.series {
            // Each bucket's recorded value (its top, µs) plus half a µs: an
            // OTLP bucket (upper bound inclusive) then counts the requests
            // below its bound, as `/metrics` and the SLO events do.
            let item = LatencyFeed {
                service: self
                    .config
                    .service
                    .clone()
                    .unwrap_or_else(|| batch.service.clone()),
                revision: revision.clone(),
                route: series.route.clone(),
                buckets: series
                    .latency
                    .values()
                    .map(|(us, n)| ((us as f64 + 0.5) / 1e6, n))
                    .collect(),
            };
            // Counted before it is queued: the feed never sees it uncounted.
            let stats = &self.export_stats;
            stats.histogram_feed_pending.fetch_add(1, Ordering::SeqCst);
            if feed.try_send(item).is_err() {
                stats.histogram_feed_pending.fetch_sub(1, Ordering::SeqCst);
                stats.histogram_feed_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One feedback-loop decision at `now_ms` on the cache lookups since
    /// the last one (each route's lookups are one cache's); the changes
    /// made (or, in `recommend` mode, recommended), each logged.
    pub fn decide_tuning(&self, now_ms: u64) -> Vec<super::tuning::TtlChange> {
        self.tuning.decide(&self.cache_lookups_by_route(), now_ms)
    }

    /// The cumulative cache lookups by route, `[hits, misses]`.
    pub fn cache_lookups_by_route(&self) -> std::collections::BTreeMap<String, [u64; 2]> {
        self.totals()
            .cache
            .iter()
            .filter_map(|(route, c)| route.clone().map(|r| (r, *c)))
            .collect()
    }

    /// Starts the feedback loop at `now_ms`: its first decision counts the
    /// lookups after this.
    pub fn start_tuning(&self, now_ms: u64) {
        self.tuning.start(&self.cache_lookups_by_route(), now_ms);
    }

    /// The tuning parameters the ingest answers carry, if any.
    pub fn tuning_answer(&self) -> Option<lumen_middleware::wire::TuningAnswer> {
        let loop_answer = self.tuning.loop_answer();
        let (version, params, experiment) = self.experiments.channel();
        if version == 0 && loop_answer.is_none() {
            return None;
        }
        // Both versions only rise, so their sum does; a restart is a new
        // epoch, whose versions count afresh.
        let mut answer = loop_answer.unwrap_or_default();
        answer.version += version;
        answer.epoch = self.started_ms;
        answer.params = params;
        answer.experiment = experiment;
        Some(answer)
    }

    /// When this sidecar started, Unix ms: its instance's lifetime, for
    /// the cost it has accrued.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// What this sidecar's instance has cost since it started, USD (its
    /// limits times the configured prices times its lifetime).
    pub fn accrued_cost_usd(&self, now_ms: u64) -> f64 {
        self.config
            .cost
            .accrued_usd(now_ms.saturating_sub(self.started_ms) as f64 / 1000.0)
    }

    /// The cumulative counts, for the exported counters (the lock is held
    /// while the guard lives: build the samples, then drop it).
    pub fn totals(&self) -> MutexGuard<'_, CumulativeTotals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Continues the cumulative totals, the experiments and the feedback
    /// loop from a checkpoint's (before any batch is taken); unreadable
    /// ones are logged and start afresh.
    fn restore_kept(&self, kept: Option<serde_json::Value>) {
        let Some(kept) = kept else {
            return;
        };
        if let Some(x) = kept.get("experiments") {
            match serde_json::from_value::<super::experiments::Experiments>(x.clone()) {
                Ok(x) => {
                    if let Some(e) = x.current() {
                        tracing::info!(
                            id = e.id,
                            param = e.spec.param,
                            "experiment restored from the checkpoint; it keeps running"
                        );
                    }
                    self.experiments.restore(x);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the checkpoint's experiments are unreadable; none restored")
                }
            }
        }
        if let Some(t) = kept.get("tuning") {
            match serde_json::from_value::<super::tuning::TuningState>(t.clone()) {
                Ok(t) => self.tuning.replace(t),
                Err(e) => {
                    tracing::error!(error = %e, "the checkpoint's feedback loop state is unreadable; the loop starts afresh")
                }
            }
        }
        match CumulativeTotals::from_json(&kept, &self.boundaries) {
            Some(totals) => *self.totals() = totals,
            None => tracing::warn!(
                "the checkpoint's totals are unreadable; the exported counters start from zero"
            ),
        }
    }

    /// The exported latency histogram's boundaries.
    pub fn latency_boundaries(&self) -> &LatencyBoundaries {
        &self.boundaries
    }

    /// Records the service's deployment count from its source of truth.
    pub fn set_deployments(&self, deployments: crate::eval::Deployments) {
        *self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(deployments);
    }

    /// The service's deployment count from its source of truth, if known.
    pub fn deployments(&self) -> Option<crate::eval::Deployments> {
        *self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The fleet's view, when one is installed.
    pub fn fleet_view(&self) -> Option<&Arc<dyn super::FleetView>> {
        self.fleet_view.as_ref()
    }

    /// The service's name: the configured one, else the batches'.
    pub fn service_name(&self) -> Option<String> {
        self.config
            .service
            .clone()
            .or_else(|| self.store().service().map(str::to_owned))
    }

    /// The store, even if a panic poisoned its lock (the store is only ever
    /// changed by `apply`/`evict`, which leave it consistent or untouched).
    pub fn store(&self) -> MutexGuard<'_, WindowStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
