//! The A/B experiments' state: the running experiment (at most one), its
//! arms' exact counts and latency, each look's verdict (the timeline), the
//! decided ones, and the values decided experiments fixed. The analysis
//! itself is [`crate::eval::judge`]; this holds its inputs and outputs.
//!
//! The state travels in the checkpoint beside the cumulative totals
//! (taken under the store's lock, so a restart's replay of the write-ahead
//! log never counts a batch twice).
//!
//! Counts come from the series the app labels with the experiment's
//! [`Variant`](lumen_middleware::wire::Variant), taken once per stored
//! batch, so an arm's counts are exact sums. They are this instance's:
//! each sidecar analyses its own app's requests.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use lumen_middleware::wire::{Arm, DecodedSeries, ExperimentArms};
use serde::{Deserialize, Serialize};

use crate::config::FeedbackMode;
use crate::eval::{ArmCounts, ExperimentSpec, Outcome, Verdict, judge};
use crate::store::BudgetRules;

/// Decided experiments kept.
pub const HISTORY_KEPT: usize = 20;
/// Looks kept per experiment (past it, every other old look is dropped).
pub const TIMELINE_KEPT: usize = 2_000;

/// Why an experiment command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    /// One runs already; one at a time.
    #[error("experiment {id} on {param} is running; stop it first (one at a time)")]
    AlreadyRunning {
        /// Its id.
        id: u32,
        /// Its parameter.
        param: String,
    },
    /// Nothing to stop.
    #[error("no experiment is running")]
    NoneRunning,
    /// The spec cannot run (the field named).
    #[error("{0}")]
    Invalid(String),
}

/// One look: the counts and the primary's interval at that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// When, Unix ms.
    pub at_ms: u64,
    /// Requests assigned to A and B.
    pub assigned: [u64; 2],
    /// The primary's `B − A`, points, with its always-valid interval.
    pub effect_points: Option<[f64; 3]>,
    /// The primary's always-valid p-value.
    pub p_value: Option<f64>,
    /// The outcome of the look.
    pub outcome: Outcome,
}

/// One experiment's arm counts and latency from one source: an instance,
/// or the fleet's sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmData {
    /// A's and B's exact counts.
    pub arms: [ArmCounts; 2],
    /// A's and B's latency, `(µs, requests)` per HDR bucket.
    pub latency: [BTreeMap<u64, u64>; 2],
}

impl ArmData {
    /// Adds `other`.
    pub fn add(&mut self, other: &Self) {
        for arm in 0..2 {
            self.arms[arm].add(&other.arms[arm]);
            for (value, n) in &other.latency[arm] {
                let slot = self.latency[arm].entry(*value).or_insert(0);
                *slot = slot.saturating_add(*n);
            }
        }
    }

    /// Adds one arm series' requests.
    fn add_series(&mut self, arm: usize, series: &DecodedSeries, rules: &BudgetRules) {
        let counts = rules.count(series);
        self.arms[arm].add(&ArmCounts {
            requests: counts.total,
            cancelled: series.cancelled,
            errors: counts.errors,
            lookups: series.cache.hits.saturating_add(series.cache.misses),
            hits: series.cache.hits,
            under_p95_target: counts.total.saturating_sub(counts.slow_p95),
            under_p99_target: counts.total.saturating_sub(counts.slow_p99),
            assigned_random: series.assignments.map_or(0, |a| a.random),
            assigned_by_key: series.assignments.map_or(0, |a| a.by_key),
        });
        for (value, n) in series.latency.values() {
            let slot = self.latency[arm].entry(value).or_insert(0);
            *slot = slot.saturating_add(n);
        }
    }
}

/// Experiments an instance keeps its own counts of (the newest ids).
pub const OWN_KEPT: usize = 4;
/// How long after a decision a fleet still sums the arms' counts: the
/// requests apps served in an arm before they heard of the decision.
pub const STRAGGLERS_MS: u64 = 10 * 60 * 1000;

/// A command on the experiments.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentCommand {
    /// Start one.
    Start(ExperimentSpec),
    /// Stop the running one (A stays).
    Stop,
}

/// One experiment with its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Its id (series name it).
    pub id: u32,
    /// What it varies and how it is judged.
    pub spec: ExperimentSpec,
    /// Started, Unix ms.
    pub started_ms: u64,
    /// Ends at the latest, Unix ms.
    pub ends_ms: u64,
    /// A's and B's exact counts.
    pub arms: [ArmCounts; 2],
    /// A's and B's latency, `(µs, requests)` per HDR bucket.
    pub latency: [BTreeMap<u64, u64>; 2],
    /// The looks, oldest first.
    pub timeline: Vec<Look>,
    /// The last look's verdict.
    pub verdict: Option<Verdict>,
    /// Running, or how it ended.
    pub outcome: Outcome,
    /// Decided (or stopped), Unix ms.
    pub decided_ms: Option<u64>,
    /// Whether the kept value went onto the tuning channel (`apply` mode).
    pub applied: bool,
    /// With a fleet store: what every instance cost from the start to the
    /// decision (or to the last count), USD, set with the fleet's sums.
    #[serde(default)]
    pub fleet_compute_usd: Option<f64>,
}

impl Experiment {
    /// Adds `data` to its counts.
    fn add_counts(&mut self, data: &ArmData) {
        let mut d = ArmData {
            arms: self.arms,
            latency: std::mem::take(&mut self.latency),
        };
        d.add(data);
        self.arms = d.arms;
        self.latency = d.latency;
    }

    /// The value it keeps (the winner's, else A's).
    pub fn kept_value(&self) -> u64 {
        self.spec.value(self.outcome.kept())
    }

    /// The latency `q`-quantile of `arm`, µs (nearest rank over the HDR
    /// buckets).
    pub fn quantile_us(&self, arm: Arm, q: f64) -> Option<u64> {
        let buckets = &self.latency[arm as usize];
        let total: u64 = buckets.values().sum();
        if total == 0 {
            return None;
        }
        let rank = crate::store::nearest_rank(q, total);
        let mut seen = 0;
        buckets.iter().find_map(|(v, n)| {
            seen += n;
            (seen >= rank).then_some(*v)
        })
    }
}

/// One arm as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// The arm.
    pub arm: Arm,
    /// Its value of the parameter.
    pub value: u64,
    /// Its exact counts.
    pub counts: ArmCounts,
    /// Cache hit rate, percent.
    pub hit_rate: Option<f64>,
    /// Error rate, percent.
    pub error_rate: Option<f64>,
    /// Requests under the P95 target, percent.
    pub under_p95_target: Option<f64>,
    /// Requests under the P99 target, percent.
    pub under_p99_target: Option<f64>,
    /// P95 latency, ms.
    pub p95_ms: Option<f64>,
    /// P99 latency, ms.
    pub p99_ms: Option<f64>,
    /// What a request cost: the instances' time shared over the requests
    /// they served (this instance's, or with a fleet store every
    /// instance's over the fleet's), plus the arm's cache misses at the
    /// ROI's cost per miss, USD.
    pub cost_per_request_usd: Option<f64>,
}

/// One experiment as reported (`/v1/experiments`, the decision report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// Its id.
    pub id: u32,
    /// What it varies and how it is judged.
    pub spec: ExperimentSpec,
    /// Started, Unix ms.
    pub started_ms: u64,
    /// Ends at the latest, Unix ms.
    pub ends_ms: u64,
    /// Decided or stopped, Unix ms.
    pub decided_ms: Option<u64>,
    /// Running, or how it ended.
    pub outcome: Outcome,
    /// The last look's reason.
    pub why: String,
    /// The value kept (the winner's, else A's) once decided.
    pub kept_value: Option<u64>,
    /// Whether the kept value went onto the tuning channel.
    pub applied: bool,
    /// A and B.
    pub arms: [ArmReport; 2],
    /// The last look's verdict: the primary and guardrails with their
    /// always-valid intervals, the sample-ratio test.
    pub verdict: Option<Verdict>,
    /// The looks, oldest first.
    pub timeline: Vec<Look>,
}

impl Experiment {
    /// The report at `now_ms`, costs from `cost` and `cost_per_miss_usd`.
    ///
    /// The compute share is the instances' cost over the requests they
    /// served: this instance's over its own, or, when a fleet shares the
    /// experiment (`fleet`), every instance's
    /// ([`fleet_compute_usd`](Self::fleet_compute_usd)) over the fleet's
    /// (none before the first count, or when no instance said its cost).
    pub fn report(
        &self,
        now_ms: u64,
        cost: &crate::eval::CostConfig,
        cost_per_miss_usd: f64,
        fleet: bool,
    ) -> ExperimentReport {
        let until = self.decided_ms.unwrap_or(now_ms).max(self.started_ms);
        let compute_usd = if fleet {
            self.fleet_compute_usd
        } else {
            Some(cost.instance_usd_per_s() * (until - self.started_ms) as f64 / 1000.0)
        };
        let assigned: u64 = self.arms.iter().map(ArmCounts::assigned).sum();
        let percent = |x: u64, n: u64| (n > 0).then(|| x as f64 * 100.0 / n as f64);
        let arms = Arm::BOTH.map(|arm| {
            let c = self.arms[arm as usize];
            ArmReport {
                arm,
                value: self.spec.value(arm),
                counts: c,
                hit_rate: percent(c.hits, c.lookups),
                error_rate: percent(c.errors, c.requests),
                under_p95_target: percent(c.under_p95_target, c.requests),
                under_p99_target: percent(c.under_p99_target, c.requests),
                p95_ms: self.quantile_us(arm, 0.95).map(|us| us as f64 / 1000.0),
                p99_ms: self.quantile_us(arm, 0.99).map(|us| us as f64 / 1000.0),
                cost_per_request_usd: compute_usd.filter(|_| c.requests > 0 && assigned > 0).map(
                    |compute_usd| {
                        compute_usd / assigned as f64
                            + (c.lookups - c.hits.min(c.lookups)) as f64 * cost_per_miss_usd
                                / c.requests as f64
                    },
                ),
            }
        });
        ExperimentReport {
            id: self.id,
            spec: self.spec.clone(),
            started_ms: self.started_ms,
            ends_ms: self.ends_ms,
            decided_ms: self.decided_ms,
            outcome: self.outcome,
            why: self
                .verdict
                .as_ref()
                .map_or_else(|| "no look yet".to_owned(), |v| v.why.clone()),
            kept_value: self.outcome.is_final().then(|| self.kept_value()),
            applied: self.applied,
            arms,
            verdict: self.verdict.clone(),
            timeline: self.timeline.clone(),
        }
    }
}

/// `GET /v1/experiments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentsReport {
    /// `"fleet"` (the experiments are shared through the fleet store and
    /// their counts are every instance's sums) or `"instance"` (this
    /// sidecar's app's requests only).
    pub scope: String,
    /// The feedback mode: in `apply` a decision's kept value goes onto
    /// the tuning channel; otherwise it is a recommendation.
    pub mode: FeedbackMode,
    /// The running experiment.
    pub running: Option<ExperimentReport>,
    /// Decided experiments, newest first.
    pub decided: Vec<ExperimentReport>,
    /// The values decided experiments fixed on the channel.
    pub fixed: BTreeMap<String, u64>,
}

/// Every experiment and the values decided ones fixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Experiments {
    version: u64,
    next_id: u32,
    current: Option<Experiment>,
    history: VecDeque<Experiment>,
    fixed: BTreeMap<String, u64>,
    /// When the last look was, Unix ms.
    #[serde(default)]
    last_look_ms: Option<u64>,
    /// When the counts were last set to a fleet's sums, Unix ms.
    #[serde(default)]
    last_counted_ms: Option<u64>,
    /// This instance's own counts by experiment id (a fleet's experiment
    /// counts are the sums of every instance's).
    #[serde(default)]
    own: BTreeMap<u32, ArmData>,
    /// Whether a fleet shares the experiments: then an experiment's counts
    /// are the fleet's sums, set at each look, not this instance's.
    #[serde(skip)]
    shared: bool,
}

impl Experiments {
    /// Starts `spec` at `now_ms`.
    pub fn start(
        &mut self,
        spec: ExperimentSpec,
        now_ms: u64,
    ) -> Result<&Experiment, ExperimentError> {
        spec.check().map_err(ExperimentError::Invalid)?;
        if let Some(e) = &self.current {
            return Err(ExperimentError::AlreadyRunning {
                id: e.id,
                param: e.spec.param.clone(),
            });
        }
        self.next_id = self.next_id.max(1);
        let id = self.next_id;
        self.next_id += 1;
        self.version += 1;
        let ends_ms = now_ms.saturating_add(spec.duration.as_millis() as u64);
        Ok(self.current.insert(Experiment {
            id,
            spec,
            started_ms: now_ms,
            ends_ms,
            arms: [ArmCounts::default(); 2],
            latency: Default::default(),
            timeline: Vec::new(),
            verdict: None,
            outcome: Outcome::Running,
            decided_ms: None,
            applied: false,
            fleet_compute_usd: None,
        }))
    }

    /// Stops the running experiment at `now_ms` (A stays) after a last look.
    pub fn stop(
        &mut self,
        now_ms: u64,
        mode: FeedbackMode,
    ) -> Result<&Experiment, ExperimentError> {
        let Some(e) = &mut self.current else {
            return Err(ExperimentError::NoneRunning);
        };
        look_at(e, now_ms);
        e.outcome = Outcome::Stopped;
        Ok(self.finish(now_ms, mode))
    }

    /// Adds a stored series, if it is one of an experiment's arms, to this
    /// instance's counts and (unless a fleet shares the experiments, whose
    /// counts are the fleet's sums) to the experiment's: the running one,
    /// or a decided one (requests the app served in an arm before it heard
    /// of the decision still count there, so the arms add up to every
    /// request served under the experiment; the verdict stays the one made).
    pub fn note(&mut self, series: &DecodedSeries, rules: &BudgetRules) {
        let Some(v) = series.variant else {
            return;
        };
        let arm = v.arm as usize;
        self.own
            .entry(v.experiment)
            .or_default()
            .add_series(arm, series, rules);
        while self.own.len() > OWN_KEPT {
            self.own.pop_first();
        }
        if self.shared {
            return;
        }
        if let Some(e) = self
            .current
            .iter_mut()
            .chain(self.history.iter_mut())
            .find(|e| e.id == v.experiment)
        {
            let mut one = ArmData::default();
            one.add_series(arm, series, rules);
            e.add_counts(&one);
        }
    }

    /// Shares the experiments with a fleet (or not).
    pub fn set_shared(&mut self, shared: bool) {
        self.shared = shared;
    }

    /// Experiment `id`'s report at `now_ms`, if it is kept.
    pub fn report_of(
        &self,
        id: u32,
        now_ms: u64,
        cost: &crate::eval::CostConfig,
        cost_per_miss_usd: f64,
    ) -> Option<ExperimentReport> {
        self.current
            .iter()
            .chain(self.history.iter())
            .find(|e| e.id == id)
            .map(|e| e.report(now_ms, cost, cost_per_miss_usd, self.shared))
    }

    /// This instance's own counts by experiment id.
    pub fn own(&self) -> &BTreeMap<u32, ArmData> {
        &self.own
    }

    /// Sets every kept experiment's counts to the fleet's `sums` at
    /// `now_ms`, and its compute cost to `fleet_cost(from_ms, to_ms)`
    /// (every instance's, USD) from its start to its decision or now.
    pub fn set_counts(
        &mut self,
        sums: &BTreeMap<u32, ArmData>,
        fleet_cost: impl Fn(u64, u64) -> Option<f64>,
        now_ms: u64,
    ) {
        self.last_counted_ms = Some(now_ms);
        for e in self.current.iter_mut().chain(self.history.iter_mut()) {
            if let Some(d) = sums.get(&e.id) {
                e.arms = d.arms;
                e.latency = d.latency.clone();
                let until = e.decided_ms.unwrap_or(now_ms).max(e.started_ms);
                e.fleet_compute_usd = fleet_cost(e.started_ms, until);
            }
        }
    }

    /// The state a fleet shares: all but this instance's own counts.
    pub fn to_shared(&self) -> Self {
        Self {
            own: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// Takes `shared` (the fleet's state), keeping this instance's own counts.
    pub fn adopt(&mut self, shared: Self) {
        let own = std::mem::take(&mut self.own);
        let is_shared = self.shared;
        *self = shared;
        self.own = own;
        self.shared = is_shared;
    }

    /// Whether a fleet's counts are due to be summed at `now_ms` (every
    /// `every`): while one runs, and for [`STRAGGLERS_MS`] after a decision.
    pub fn counts_due(&self, every: Duration, now_ms: u64) -> bool {
        let recent = self
            .history
            .back()
            .and_then(|e| e.decided_ms)
            .is_some_and(|d| now_ms.saturating_sub(d) <= STRAGGLERS_MS);
        (self.current.is_some() || recent) && due(self.last_counted_ms, every, now_ms)
    }

    /// Whether a look is due at `now_ms` (every `every`), an experiment
    /// running.
    pub fn look_due(&self, every: Duration, now_ms: u64) -> bool {
        self.current.is_some() && due(self.last_look_ms, every, now_ms)
    }

    /// One look at `now_ms`: the verdict, kept in the timeline; a final one
    /// ends the experiment (in `apply` mode its kept value goes onto the
    /// channel). `None` when nothing runs.
    pub fn look(&mut self, now_ms: u64, mode: FeedbackMode) -> Option<Verdict> {
        let e = self.current.as_mut()?;
        self.last_look_ms = Some(now_ms);
        let verdict = look_at(e, now_ms);
        if verdict.outcome.is_final() {
            e.outcome = verdict.outcome;
            self.finish(now_ms, mode);
        }
        Some(verdict)
    }

    fn finish(&mut self, now_ms: u64, mode: FeedbackMode) -> &Experiment {
        let mut e = self
            .current
            .take()
            .expect("finish is called with a running experiment");
        e.decided_ms = Some(now_ms);
        if mode == FeedbackMode::Apply {
            e.applied = true;
            self.fixed.insert(e.spec.param.clone(), e.kept_value());
        }
        self.version += 1;
        self.history.push_back(e);
        if self.history.len() > HISTORY_KEPT {
            self.history.pop_front();
        }
        self.history.back().expect("just pushed")
    }

    /// The running experiment.
    pub fn current(&self) -> Option<&Experiment> {
        self.current.as_ref()
    }

    /// The decided ones, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Experiment> {
        self.history.iter()
    }

    /// The values decided experiments fixed (`apply` mode).
    pub fn fixed(&self) -> &BTreeMap<String, u64> {
        &self.fixed
    }

    /// What the tuning channel carries: the version (rises with every
    /// start and end), the fixed values, the running arms.
    pub fn channel(&self) -> (u64, BTreeMap<String, u64>, Option<ExperimentArms>) {
        let arms = self.current.as_ref().map(|e| ExperimentArms {
            id: e.id,
            param: e.spec.param.clone(),
            a: e.spec.a,
            b: e.spec.b,
            share_b_percent: e.spec.share_b_percent,
        });
        (self.version, self.fixed.clone(), arms)
    }

    /// The report at `now_ms`.
    pub fn report(
        &self,
        now_ms: u64,
        mode: FeedbackMode,
        cost: &crate::eval::CostConfig,
        cost_per_miss_usd: f64,
    ) -> ExperimentsReport {
        ExperimentsReport {
            scope: if self.shared { "fleet" } else { "instance" }.to_owned(),
            mode,
            running: self
                .current
                .as_ref()
                .and_then(|e| self.report_of(e.id, now_ms, cost, cost_per_miss_usd)),
            decided: self
                .history
                .iter()
                .rev()
                .filter_map(|e| self.report_of(e.id, now_ms, cost, cost_per_miss_usd))
                .collect(),
            fixed: self.fixed.clone(),
        }
    }
}

fn look_at(e: &mut Experiment, now_ms: u64) -> Verdict {
    let verdict = judge(&e.spec, &e.arms, now_ms.saturating_sub(e.started_ms));
    e.timeline.push(Look {
        at_ms: now_ms,
        assigned: verdict.assigned,
        effect_points: verdict
            .primary
            .difference
            .map(|d| [d.effect * 100.0, d.low * 100.0, d.high * 100.0]),
        p_value: verdict.primary.difference.map(|d| d.p_value),
        outcome: verdict.outcome,
    });
    if e.timeline.len() > TIMELINE_KEPT {
        // Thin the older half: every other look, the newest kept whole.
        let half = e.timeline.len() / 2;
        let mut i = 0;
        e.timeline.retain(|_| {
            i += 1;
            i > half || i % 2 == 0
        });
    }
    e.verdict = Some(verdict.clone());
    verdict
}

/// Whether something last done at `last` (Unix ms; `None`: never) is due
/// again at `now_ms`, every `every`: after nine tenths of it, so a tick
/// that comes a little early does not skip a whole interval.
fn due(last: Option<u64>, every: Duration, now_ms: u64) -> bool {
    last.is_none_or(|last| now_ms.saturating_sub(last) >= every.as_millis() as u64 * 9 / 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lumen_middleware::wire::{LatencyCounts, StatusCounts, Variant};

    fn series(experiment: u32, arm: Arm, ok: u64, hits: u64, slow: u64) -> DecodedSeries {
        let mut h =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        h.record_n(1_000, ok - slow).expect("in range");
        if slow > 0 {
            h.record_n(900_000, slow).expect("in range");
        }
        DecodedSeries {
            grpc_codes: [0; 17],
            route: Some("/ask".into()),
            variant: Some(Variant { experiment, arm }),
            latency: LatencyCounts::from_histogram(&h),
            status: StatusCounts {
                success: ok,
                ..Default::default()
            },
            errors: 0,
            cancelled: 1,
            cache: lumen_middleware::wire::CacheCounts {
                hits,
                misses: ok - hits,
            },
            methods: Default::default(),
            keys: None,
            tiers: None,
            assignments: Some(lumen_middleware::wire::Assignments {
                random: ok,
                by_key: 0,
            }),
        }
    }

    #[test]
    fn arms_count_their_own_series_and_a_win_fixes_the_value_in_apply_mode() {
        let mut x = Experiments::default();
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let id = x.start(spec.clone(), 1_000).expect("starts").id;
        assert_eq!(
            x.start(spec.clone(), 1_001).expect_err("one at a time"),
            ExperimentError::AlreadyRunning {
                id,
                param: "ttl".into()
            }
        );
        let rules = BudgetRules::default();
        x.note(&series(id, Arm::A, 20_000, 16_000, 100), &rules);
        x.note(&series(id, Arm::B, 20_000, 17_000, 0), &rules);
        x.note(&series(id + 1, Arm::B, 5, 5, 0), &rules); // no such experiment
        let e = x.current().expect("running");
        assert_eq!(e.arms[0].requests, 20_000);
        assert_eq!(e.arms[0].cancelled, 1);
        assert_eq!(e.arms[0].under_p95_target, 19_900);
        assert_eq!(e.arms[1].hits, 17_000);
        assert!(e.quantile_us(Arm::A, 0.999).expect("data") >= 899_000);
        let (v0, _, arms) = x.channel();
        assert_eq!(arms.expect("arms").share_b_percent, 50);
        let verdict = x.look(2_000, FeedbackMode::Apply).expect("running");
        assert_eq!(
            verdict.outcome,
            Outcome::Winner { arm: Arm::B },
            "{}",
            verdict.why
        );
        assert!(x.current().is_none());
        let (v1, fixed, arms) = x.channel();
        assert!(v1 > v0 && arms.is_none());
        assert_eq!(fixed["ttl"], 600);
        let decided = x.history().last().expect("kept");
        assert_eq!(decided.timeline.len(), 1);
        assert!(decided.applied);
        // A request served in an arm before the app heard of the decision
        // still counts there; the verdict stays.
        x.note(&series(id, Arm::A, 7, 0, 0), &rules);
        let decided = x.history().last().expect("kept");
        assert_eq!(decided.arms[0].requests, 20_007);
        assert_eq!(
            decided.verdict.as_ref().map(|v| v.assigned[0]),
            Some(20_001)
        );
    }

    #[test]
    fn a_stop_keeps_a_and_recommend_mode_fixes_nothing() {
        let mut x = Experiments::default();
        assert_eq!(
            x.stop(1, FeedbackMode::Apply).expect_err("none"),
            ExperimentError::NoneRunning
        );
        x.start(ExperimentSpec::new("ttl", 60, 600), 0)
            .expect("starts");
        let e = x.stop(5, FeedbackMode::Recommend).expect("stops");
        assert_eq!(
            (e.outcome, e.kept_value(), e.applied),
            (Outcome::Stopped, 60, false)
        );
        assert!(x.fixed().is_empty());
        let mut bad = ExperimentSpec::new("ttl", 60, 600);
        bad.share_b_percent = 0;
        assert!(matches!(x.start(bad, 6), Err(ExperimentError::Invalid(_))));
    }

    #[test]
    fn a_shared_state_is_adopted_with_this_instances_own_counts_kept() {
        let rules = BudgetRules::default();
        let mut here = Experiments::default();
        here.set_shared(true);
        here.note(&series(1, Arm::A, 10, 5, 0), &rules);
        let mut fleet = Experiments::default();
        fleet
            .start(ExperimentSpec::new("ttl", 60, 600), 0)
            .expect("starts");
        let shared = fleet.to_shared();
        here.adopt(shared);
        assert_eq!(here.current().map(|e| e.id), Some(1));
        assert_eq!(here.own()[&1].arms[0].requests, 10, "own counts kept");
        // Shared: an arm series counts only as this instance's own.
        here.note(&series(1, Arm::B, 4, 4, 0), &rules);
        assert_eq!(here.current().map(|e| e.arms[1].requests), Some(0));
        let mut sums = here.own().clone();
        sums.get_mut(&1).expect("counted").arms[1].requests += 100;
        // Without a fleet cost (no instance said its cost) no cost per
        // request: this instance's time over the fleet's requests would be
        // too low.
        here.set_counts(&sums, |_, _| None, 900);
        assert_eq!(here.current().map(|e| e.arms[1].requests), Some(104));
        let cost = crate::eval::CostConfig::default();
        let b_cost = |x: &Experiments| {
            x.report(1_000, FeedbackMode::Recommend, &cost, 0.0)
                .running
                .expect("running")
                .arms[1]
                .cost_per_request_usd
        };
        assert_eq!(b_cost(&here), None);
        // Every instance's compute from the start to the count, over the
        // fleet's requests (116 with the abandoned ones).
        let asked = std::cell::Cell::new(None);
        here.set_counts(
            &sums,
            |from, to| {
                asked.set(Some((from, to)));
                Some(2.32)
            },
            900,
        );
        assert_eq!(asked.get(), Some((0, 900)), "from the start to now");
        let b = b_cost(&here);
        assert!(b.is_some_and(|c| (c - 2.32 / 116.0).abs() < 1e-15), "{b:?}");
        // A look is due once per interval.
        assert!(here.look_due(Duration::from_secs(1), 1_000));
        here.look(1_000, FeedbackMode::Recommend);
        assert!(!here.look_due(Duration::from_secs(1), 1_500));
        assert!(here.look_due(Duration::from_secs(1), 1_900));
        assert!(
            here.to_shared().own().is_empty(),
            "own counts are not shared"
        );
    }
}
