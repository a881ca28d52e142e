//! What every part of the running sidecar shares: the configuration, the
//! window store, the cumulative totals and the counters.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use lumen_middleware::wire::DecodedBatch;
use tokio::sync::mpsc;

use super::evaluation::Evaluation;
use super::stats::{ExportStats, IngestStats, SlackStats};
use super::totals::{CumulativeTotals, LatencyBoundaries};
use super::wal_writer::WalHandle;
use crate::config::SidecarConfig;
use crate::store::{Applied, BudgetRules, StoreError, WindowStore};

/// Why a batch was not taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The store refused it (another service, from the future).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// It could not be made durable: nothing was applied; send it again later.
    #[error("{0}")]
    Unavailable(String),
}

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
    histogram_feed: OnceLock<mpsc::Sender<LatencyFeed>>,
    wal: OnceLock<WalHandle>,
    memory_cap: OnceLock<usize>,
    deployments: Mutex<Option<crate::eval::Deployments>>,
    fleet_view: OnceLock<Arc<dyn super::FleetView>>,
    pub(super) evaluation_cache: Mutex<Option<(Instant, Arc<Evaluation>)>>,
    started_ms: u64,
    tuning: Mutex<super::tuning::TuningState>,
    key_samples: Mutex<std::collections::BTreeMap<String, crate::eval::mrc::ShardsSample>>,
    /// Each route's cache lookups timed by tier, since the sidecar started.
    tier_times: Mutex<std::collections::BTreeMap<String, lumen_middleware::wire::TierTimes>>,
    experiments: Mutex<super::experiments::Experiments>,
    shared_experiments: OnceLock<Arc<dyn super::experiments::SharedExperiments>>,
}

impl AppState {
    /// A state over `store`.
    pub fn new(config: SidecarConfig, store: WindowStore) -> Self {
        let budget_rules = config.budget_rules();
        let boundaries = LatencyBoundaries::with_targets(&[
            config.slo.latency_p95_ms,
            config.slo.latency_p99_ms,
        ]);
        Self {
            budget_rules,
            boundaries,
            config,
            experiments: Mutex::default(),
            shared_experiments: OnceLock::new(),
            store: Mutex::new(store),
            stats: IngestStats::default(),
            export_stats: Arc::default(),
            slack_stats: Arc::default(),
            totals: Mutex::new(CumulativeTotals::default()),
            started_ms: super::clock::now_ms(),
            tuning: Mutex::default(),
            key_samples: Mutex::default(),
            tier_times: Mutex::default(),
            histogram_feed: OnceLock::new(),
            wal: OnceLock::new(),
            memory_cap: OnceLock::new(),
            deployments: Mutex::new(None),
            fleet_view: OnceLock::new(),
            evaluation_cache: Mutex::new(None),
        }
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
        match self.wal.get() {
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
                self.note_exported(batch);
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

    /// Sets the window store's memory cap (bytes).
    pub fn set_memory_cap(&self, bytes: usize) {
        let _ = self.memory_cap.set(bytes);
    }

    /// The window store's memory cap, when there is one.
    pub fn memory_cap(&self) -> Option<usize> {
        self.memory_cap.get().copied()
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

    /// Connects the write-ahead log's writer.
    pub fn attach_wal(&self, wal: WalHandle) {
        let _ = self.wal.set(wal);
    }

    /// The write-ahead log, when one is kept.
    pub fn wal(&self) -> Option<&WalHandle> {
        self.wal.get()
    }

    /// Adds a stored batch to the cumulative totals and queues its latency
    /// for the exported histogram (when an export runs).
    pub fn note_exported(&self, batch: &DecodedBatch) {
        if self.config.feedback.mode != crate::config::FeedbackMode::Off {
            self.note_key_samples(batch);
            self.note_tier_times(batch);
        }
        if batch.series.iter().any(|s| s.variant.is_some()) {
            let mut x = self.experiments();
            for series in &batch.series {
                x.note(series, &self.budget_rules);
            }
        }
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
                totals.add(series, &self.budget_rules, &self.boundaries);
            }
            totals
                .revision
                .clone()
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let Some(feed) = self.histogram_feed.get() else {
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
        self.decide_tuning_on(&self.cache_lookups_by_route(), now_ms)
    }

    /// One decision at `now_ms` on `cumulative` lookups by cache (this
    /// sidecar's, or the fleet's sums).
    pub fn decide_tuning_on(
        &self,
        cumulative: &std::collections::BTreeMap<String, [u64; 2]>,
        now_ms: u64,
    ) -> Vec<super::tuning::TtlChange> {
        let f = &self.config.feedback;
        let mut advice: std::collections::BTreeMap<String, super::tuning::CacheAdvice> =
            self.key_samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter_map(|(route, sample)| {
                    super::tuning::recommend_l1(sample, f.ttl.target_hit_rate, f.l1_entry_bytes)
                        .map(|r| {
                            let advice = super::tuning::CacheAdvice {
                                l1: Some(r),
                                tiers: None,
                            };
                            (route.clone(), advice)
                        })
                })
                .collect();
        for (route, times) in self
            .tier_times
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let Some([hits, misses]) = cumulative.get(route).copied() else {
                continue;
            };
            if hits + misses == 0 {
                continue;
            }
            let entry = advice.entry(route.clone()).or_default();
            // The L1 at the size the curve recommends; without a curve, the
            // L1 in force as measured (its misses are the L2's lookups).
            let l1_hit_ratio = entry.l1.as_ref().and_then(|r| r.hit_ratio).or_else(|| {
                (times.l1.lookups > 0 && times.l2.lookups > 0).then(|| {
                    1.0 - times.l2.lookups.min(times.l1.lookups) as f64 / times.l1.lookups as f64
                })
            });
            entry.tiers = Some(crate::eval::choose_tiers(
                times,
                hits as f64 / (hits + misses) as f64,
                l1_hit_ratio,
            ));
        }
        let made = self
            .tuning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .decide(cumulative, &advice, &f.ttl, f.mode, now_ms);
        for c in &made {
            tracing::info!(
                applied = c.applied,
                from_s = c.from_s,
                to_s = c.to_s,
                hit_rate = c.hit_rate_before,
                lookups = c.lookups_before,
                "cache TTL {}: {}",
                if c.applied { "changed" } else { "recommended" },
                c.why
            );
        }
        made
    }

    /// Adds a batch's sampled cache keys to each route's miss-ratio sample.
    fn note_key_samples(&self, batch: &DecodedBatch) {
        use super::tuning::{SAMPLE_ACCESSES, SAMPLE_KEYS};
        use crate::eval::mrc::{MODULUS, ShardsSample};
        let mut samples = self
            .key_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for series in &batch.series {
            let (Some(route), Some(keys)) = (&series.route, &series.keys) else {
                continue;
            };
            let sample = samples
                .entry(route.clone())
                .or_insert_with(|| ShardsSample::new(MODULUS, SAMPLE_KEYS, SAMPLE_ACCESSES));
            sample.add_interval(keys);
        }
    }

    /// Adds a batch's per-tier lookup timings to each route's sums.
    fn note_tier_times(&self, batch: &DecodedBatch) {
        let mut sums = self
            .tier_times
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for series in &batch.series {
            let (Some(route), Some(tiers)) = (&series.route, &series.tiers) else {
                continue;
            };
            let sum = sums.entry(route.clone()).or_default();
            *sum = lumen_middleware::wire::TierTimes::from_array(std::array::from_fn(|i| {
                sum.as_array()[i].saturating_add(&tiers.as_array()[i])
            }));
        }
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
        self.start_tuning_on(&self.cache_lookups_by_route(), now_ms);
    }

    /// Starts the feedback loop at `now_ms` from `cumulative` lookups.
    pub fn start_tuning_on(
        &self,
        cumulative: &std::collections::BTreeMap<String, [u64; 2]>,
        now_ms: u64,
    ) {
        self.tuning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .start(cumulative, now_ms);
    }

    /// The feedback loop's whole state (to share it through the fleet store).
    pub fn tuning_state(&self) -> super::tuning::TuningState {
        self.tuning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes `shared` as the feedback loop's state (the fleet's decider's).
    pub fn replace_tuning_state(&self, shared: super::tuning::TuningState) {
        *self.tuning.lock().unwrap_or_else(PoisonError::into_inner) = shared;
    }

    /// The tuning parameters the ingest answers carry, if any.
    pub fn tuning_answer(&self) -> Option<lumen_middleware::wire::TuningAnswer> {
        let loop_answer = self
            .tuning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answer()
            .cloned();
        let (version, params, experiment) = self.experiments().channel();
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

    /// Starts an experiment at `now_ms` (logged; kept at the next checkpoint).
    pub fn start_experiment(
        &self,
        spec: crate::eval::ExperimentSpec,
        now_ms: u64,
    ) -> Result<super::experiments::ExperimentReport, super::experiments::ExperimentError> {
        let mut x = self.experiments();
        let e = x.start(spec, now_ms)?;
        tracing::info!(
            id = e.id,
            param = e.spec.param,
            a = e.spec.a,
            b = e.spec.b,
            share_b_percent = e.spec.share_b_percent,
            duration_s = e.spec.duration.as_secs(),
            primary = e.spec.primary.as_str(),
            "experiment started"
        );
        if self.shared_experiments.get().is_none() && self.config.export.cloud_run.is_some() {
            tracing::warn!(
                "experiments are analysed per instance without a fleet store: each sidecar judges its own app's requests and, in apply mode, sets its own app's value; set LUMEN_FLEET_REDIS_URL for one experiment over the fleet"
            );
        }
        let id = e.id;
        Ok(self.kept_experiment_report(&x, id, now_ms))
    }

    /// The report of experiment `id`, which was just started or stopped
    /// (so it is kept), at `now_ms`.
    fn kept_experiment_report(
        &self,
        x: &super::experiments::Experiments,
        id: u32,
        now_ms: u64,
    ) -> super::experiments::ExperimentReport {
        x.report_of(
            id,
            now_ms,
            &self.config.cost,
            self.config.roi.cost_per_miss_usd,
        )
        .expect("the experiment just started or stopped is kept")
    }

    /// Starts the configured experiment (`[experiment]`) unless one with
    /// its parameter and arms runs or ran already (a restart does not
    /// start it again).
    pub fn start_configured_experiment(&self, now_ms: u64) {
        let Some(spec) = self.config.experiment.spec() else {
            return;
        };
        let ran = {
            let x = self.experiments();
            x.current()
                .into_iter()
                .chain(x.history())
                .any(|e| e.spec.param == spec.param && e.spec.a == spec.a && e.spec.b == spec.b)
        };
        if ran {
            tracing::info!(
                param = spec.param,
                "the configured experiment runs or ran already; not started again"
            );
            return;
        }
        if let Err(e) = self.start_experiment(spec, now_ms) {
            tracing::warn!(error = %e, "the configured experiment was not started");
        }
    }

    /// Stops the running experiment at `now_ms` (A stays; logged).
    pub fn stop_experiment(
        &self,
        now_ms: u64,
    ) -> Result<super::experiments::ExperimentReport, super::experiments::ExperimentError> {
        let mut x = self.experiments();
        let e = x.stop(now_ms, self.config.feedback.mode)?;
        tracing::info!(
            id = e.id,
            param = e.spec.param,
            kept = e.kept_value(),
            "experiment stopped by an operator; A stays"
        );
        let id = e.id;
        Ok(self.kept_experiment_report(&x, id, now_ms))
    }

    /// One look at the running experiment at `now_ms`; a verdict that ends
    /// it is logged.
    pub fn look_at_experiment(&self, now_ms: u64) -> Option<crate::eval::Verdict> {
        let mut x = self.experiments();
        let verdict = x.look(now_ms, self.config.feedback.mode)?;
        if verdict.outcome.is_final() {
            let e = x
                .history()
                .last()
                .expect("a final look keeps the experiment");
            tracing::info!(
                id = e.id,
                param = e.spec.param,
                kept = e.kept_value(),
                applied = e.applied,
                "experiment decided: {}",
                verdict.why
            );
        }
        Some(verdict)
    }

    /// Shares the experiments through `shared` (the fleet store): commands
    /// run there, counts become the fleet's sums.
    pub fn share_experiments(&self, shared: Arc<dyn super::experiments::SharedExperiments>) {
        self.experiments().set_shared(true);
        let _ = self.shared_experiments.set(shared);
    }

    /// Where the experiments are shared, if they are.
    pub fn experiments_share(&self) -> Option<&Arc<dyn super::experiments::SharedExperiments>> {
        self.shared_experiments.get()
    }

    /// The experiments, locked while the guard lives.
    fn experiments(&self) -> MutexGuard<'_, super::experiments::Experiments> {
        self.experiments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `command` here (on this sidecar's state) at `now_ms`.
    pub fn run_experiment_command(
        &self,
        command: super::experiments::ExperimentCommand,
        now_ms: u64,
    ) -> Result<super::experiments::ExperimentReport, super::experiments::ExperimentError> {
        match command {
            super::experiments::ExperimentCommand::Start(spec) => {
                self.start_experiment(spec, now_ms)
            }
            super::experiments::ExperimentCommand::Stop => self.stop_experiment(now_ms),
        }
    }

    /// The state a fleet shares (all but this instance's own counts).
    pub fn shared_experiments(&self) -> super::experiments::Experiments {
        self.experiments().to_shared()
    }

    /// Takes the fleet's shared state, keeping this instance's own counts.
    pub fn adopt_experiments(&self, shared: super::experiments::Experiments) {
        self.experiments().adopt(shared);
    }

    /// This instance's own experiment counts, by id (its fleet-store info).
    pub fn own_experiment_counts(
        &self,
    ) -> std::collections::BTreeMap<u32, super::experiments::ArmData> {
        self.experiments().own().clone()
    }

    /// Sets the experiments' counts to the fleet's sums and their compute
    /// cost to `fleet_cost(from_ms, to_ms)` (every instance's) at `now_ms`.
    pub fn set_fleet_experiment_counts(
        &self,
        sums: &std::collections::BTreeMap<u32, super::experiments::ArmData>,
        fleet_cost: impl Fn(u64, u64) -> Option<f64>,
        now_ms: u64,
    ) {
        self.experiments().set_counts(sums, fleet_cost, now_ms);
    }

    /// Whether the fleet's experiment counts are due to be summed.
    pub fn experiment_counts_due(&self, every: std::time::Duration, now_ms: u64) -> bool {
        self.experiments().counts_due(every, now_ms)
    }

    /// Whether a look at the running experiment is due at `now_ms`.
    pub fn experiment_look_due(&self, every: std::time::Duration, now_ms: u64) -> bool {
        self.experiments().look_due(every, now_ms)
    }

    /// The experiments as the checkpoint keeps them (call under the
    /// store's lock, as the totals are taken).
    pub fn experiments_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.experiments()).expect("the experiments serialise")
    }

    /// `GET /v1/experiments` at `now_ms`.
    pub fn experiments_report(&self, now_ms: u64) -> super::experiments::ExperimentsReport {
        self.experiments().report(
            now_ms,
            self.config.feedback.mode,
            &self.config.cost,
            self.config.roi.cost_per_miss_usd,
        )
    }

    /// `GET /v1/tuning`.
    pub fn tuning_report(&self) -> super::tuning::TuningReport {
        let f = &self.config.feedback;
        self.tuning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .report(f.mode, &f.ttl)
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
    pub fn restore_totals(&self, kept: Option<serde_json::Value>) {
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
                    *self.experiments() = x;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the checkpoint's experiments are unreadable; none restored")
                }
            }
        }
        if let Some(t) = kept.get("tuning") {
            match serde_json::from_value::<super::tuning::TuningState>(t.clone()) {
                Ok(t) => self.replace_tuning_state(t),
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

    /// Connects the exported histogram's queue.
    pub fn attach_histogram_feed(&self, feed: mpsc::Sender<LatencyFeed>) {
        let _ = self.histogram_feed.set(feed);
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

    /// Installs the fleet's view (once; later calls are ignored).
    pub fn set_fleet_view(&self, view: Arc<dyn super::FleetView>) {
        let _ = self.fleet_view.set(view);
    }

    /// The fleet's view, when one is installed.
    pub fn fleet_view(&self) -> Option<&Arc<dyn super::FleetView>> {
        self.fleet_view.get()
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
