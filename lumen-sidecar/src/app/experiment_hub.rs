//! The sidecar's experiments as one part of its state: their data under
//! one lock ([`Experiments`]), where a fleet shares them (the fleet store),
//! and what of the configuration they are judged with. Built whole by the
//! composition root; the state holds it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lumen_middleware::wire::{DecodedBatch, ExperimentArms};

use super::experiments::{
    ArmData, ExperimentCommand, ExperimentError, ExperimentReport, Experiments, ExperimentsReport,
};
use crate::config::{FeedbackMode, SidecarConfig};
use crate::eval::CostConfig;
use crate::eval::ExperimentSpec;
use crate::store::BudgetRules;

/// A command's answer being computed: the experiment, the refusal, or
/// (outer `Err`) why the shared state could not be reached.
pub type CommandFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Result<ExperimentReport, ExperimentError>, String>>
            + Send
            + 'a,
    >,
>;

/// Where a fleet's experiments are shared (the fleet store): commands are
/// run on the shared state, so every sidecar runs the same experiment.
pub trait SharedExperiments: Send + Sync + std::fmt::Debug {
    /// Runs `command` on the shared experiments through `hub`, for the
    /// service `service` (none before the first batch: `hub` alone).
    fn run<'a>(
        &'a self,
        hub: &'a ExperimentsHub,
        service: Option<String>,
        command: ExperimentCommand,
    ) -> CommandFuture<'a>;
}

/// The experiments and what they are judged with.
#[derive(Debug)]
pub struct ExperimentsHub {
    experiments: Mutex<Experiments>,
    shared: Option<Arc<dyn SharedExperiments>>,
    mode: FeedbackMode,
    cost: CostConfig,
    cost_per_miss_usd: f64,
    on_cloud_run: bool,
    configured: Option<ExperimentSpec>,
}

impl ExperimentsHub {
    /// The experiments of a sidecar configured by `config`, shared through
    /// `shared` when a fleet store shares them (commands then run there,
    /// counts become the fleet's sums).
    pub fn new(config: &SidecarConfig, shared: Option<Arc<dyn SharedExperiments>>) -> Self {
        let mut experiments = Experiments::default();
        experiments.set_shared(shared.is_some());
        Self {
            experiments: Mutex::new(experiments),
            shared,
            mode: config.feedback.mode,
            cost: config.cost,
            cost_per_miss_usd: config.roi.cost_per_miss_usd,
            on_cloud_run: config.export.cloud_run.is_some(),
            configured: config.experiment.spec(),
        }
    }

    /// Counts a stored batch's series into the arms they were assigned to.
    pub fn note(&self, batch: &DecodedBatch, rules: &BudgetRules) {
        if batch.series.iter().any(|s| s.variant.is_some()) {
            let mut x = self.lock();
            for series in &batch.series {
                x.note(series, rules);
            }
        }
    }

    /// What the tuning channel carries of the experiments: its version, the
    /// fixed values, the running experiment's arms.
    pub fn channel(&self) -> (u64, BTreeMap<String, u64>, Option<ExperimentArms>) {
        self.lock().channel()
    }

    /// Takes the experiments a checkpoint kept.
    pub fn restore(&self, kept: Experiments) {
        let shared = self.shared.is_some();
        let mut x = self.lock();
        *x = kept;
        x.set_shared(shared);
    }

    /// Starts an experiment at `now_ms` (logged; kept at the next checkpoint).
    pub fn start(
        &self,
        spec: crate::eval::ExperimentSpec,
        now_ms: u64,
    ) -> Result<ExperimentReport, ExperimentError> {
        let mut x = self.lock();
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
        if self.shared.is_none() && self.on_cloud_run {
            tracing::warn!(
                "experiments are analysed per instance without a fleet store: each sidecar judges its own app's requests and, in apply mode, sets its own app's value; set LUMEN_FLEET_REDIS_URL for one experiment over the fleet"
            );
        }
        let id = e.id;
        Ok(self.kept_report(&x, id, now_ms))
    }

    /// The report of experiment `id`, which was just started or stopped
    /// (so it is kept), at `now_ms`.
    fn kept_report(&self, x: &Experiments, id: u32, now_ms: u64) -> ExperimentReport {
        x.report_of(id, now_ms, &self.cost, self.cost_per_miss_usd)
            .expect("the experiment just started or stopped is kept")
    }

    /// Starts the configured experiment (`[experiment]`) unless one with
    /// its parameter and arms runs or ran already (a restart does not
    /// start it again).
    pub fn start_configured(&self, now_ms: u64) {
        let Some(spec) = self.configured.clone() else {
            return;
        };
        let ran = {
            let x = self.lock();
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
        if let Err(e) = self.start(spec, now_ms) {
            tracing::warn!(error = %e, "the configured experiment was not started");
        }
    }

    /// Stops the running experiment at `now_ms` (A stays; logged).
    pub fn stop(&self, now_ms: u64) -> Result<ExperimentReport, ExperimentError> {
        let mut x = self.lock();
        let e = x.stop(now_ms, self.mode)?;
        tracing::info!(
            id = e.id,
            param = e.spec.param,
            kept = e.kept_value(),
            "experiment stopped by an operator; A stays"
        );
        let id = e.id;
        Ok(self.kept_report(&x, id, now_ms))
    }

    /// One look at the running experiment at `now_ms`; a verdict that ends
    /// it is logged.
    pub fn look(&self, now_ms: u64) -> Option<crate::eval::Verdict> {
        let mut x = self.lock();
        let verdict = x.look(now_ms, self.mode)?;
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

    /// Where the experiments are shared, if they are.
    pub fn share(&self) -> Option<&Arc<dyn SharedExperiments>> {
        self.shared.as_ref()
    }

    /// The experiments, locked while the guard lives.
    pub fn lock(&self) -> MutexGuard<'_, Experiments> {
        self.experiments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `command` here (on this sidecar's state) at `now_ms`.
    pub fn run_command(
        &self,
        command: ExperimentCommand,
        now_ms: u64,
    ) -> Result<ExperimentReport, ExperimentError> {
        match command {
            ExperimentCommand::Start(spec) => self.start(spec, now_ms),
            ExperimentCommand::Stop => self.stop(now_ms),
        }
    }

    /// The state a fleet shares (all but this instance's own counts).
    pub fn shared_state(&self) -> Experiments {
        self.lock().to_shared()
    }

    /// Takes the fleet's shared state, keeping this instance's own counts.
    pub fn adopt(&self, shared: Experiments) {
        self.lock().adopt(shared);
    }

    /// This instance's own experiment counts, by id (its fleet-store info).
    pub fn own_counts(&self) -> std::collections::BTreeMap<u32, ArmData> {
        self.lock().own().clone()
    }

    /// Sets the experiments' counts to the fleet's sums and their compute
    /// cost to `fleet_cost(from_ms, to_ms)` (every instance's) at `now_ms`.
    pub fn set_fleet_counts(
        &self,
        sums: &std::collections::BTreeMap<u32, ArmData>,
        fleet_cost: impl Fn(u64, u64) -> Option<f64>,
        now_ms: u64,
    ) {
        self.lock().set_counts(sums, fleet_cost, now_ms);
    }

    /// Whether the fleet's experiment counts are due to be summed.
    pub fn counts_due(&self, every: std::time::Duration, now_ms: u64) -> bool {
        self.lock().counts_due(every, now_ms)
    }

    /// Whether a look at the running experiment is due at `now_ms`.
    pub fn look_due(&self, every: std::time::Duration, now_ms: u64) -> bool {
        self.lock().look_due(every, now_ms)
    }

    /// The experiments as the checkpoint keeps them (call under the
    /// store's lock, as the totals are taken).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.lock()).expect("the experiments serialise")
    }

    /// `GET /v1/experiments` at `now_ms`.
    pub fn report(&self, now_ms: u64) -> ExperimentsReport {
        self.lock()
            .report(now_ms, self.mode, &self.cost, self.cost_per_miss_usd)
    }
}
