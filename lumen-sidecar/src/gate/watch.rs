//! `gate watch`: reads the serving revision's evidence every interval,
//! feeds the state machine, and carries out what it decides: the approval
//! window's Slack message, the outcome in its thread, the rollback.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::evidence::{read_comparison, read_evidence, served_revisions};
use super::machine::{ApprovalWindow, Closed, GateEvent, GateMachine, GateState, Proceed, Settled};
use super::rollout::{
    RolloutPhase, RolloutPlan, RolloutStatus, StepDecision, comparison_lines, decide_step,
};
use super::slack_thread::GateSlack;
use super::triggers::{Evidence, GateRules, Reading, TriggerKind, threshold_phrase};
use crate::alerts::{escape, section};
use crate::fleet::FleetReader;
use crate::google::cloud_run::{
    CloudRunService, RollbackReport, choose_target, read_service, roll_back, serving_revision,
    set_split, stepped_split, traffic_split, traffic_summary,
};
use crate::http_client::OffClock;

/// The window the evidence is read over.
pub const DEFAULT_GATE_WINDOW: Duration = Duration::from_secs(600);
/// How often the evidence is read.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// How far back a revision must have served traffic to be a rollback target.
pub const DEFAULT_TARGET_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);
/// Where the gate's approve/veto API listens.
pub const DEFAULT_GATE_LISTEN: &str = "127.0.0.1:9465";
/// History entries kept for the status.
const HISTORY_KEPT: usize = 200;

/// How `gate watch` behaves.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The Cloud Run service's id (for messages and commands).
    pub service: String,
    /// The window the evidence is read over.
    pub window: Duration,
    /// How often the evidence is read.
    pub interval: Duration,
    /// How long the approval window stays open.
    pub approval_window: Duration,
    /// Roll back only when approved.
    pub require_approval: bool,
    /// Decide and report, never change traffic.
    pub dry_run: bool,
    /// Thresholds, durations and guards.
    pub rules: GateRules,
    /// How far back a target must have served traffic.
    pub target_lookback: Duration,
    /// The approve/veto API's base URL, for the commands in messages.
    pub api_url: String,
    /// Whether the window's message carries Approve and Veto buttons (the
    /// gate takes Slack's interactions: a signing secret and approvers).
    pub slack_buttons: bool,
    /// A progressive rollout to carry out (`gate rollout`), or none
    /// (`gate watch`: the revision serving the most traffic is watched).
    pub rollout: Option<RolloutPlan>,
}

/// How a `--once` gate ended (its exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateExit {
    /// 0: every trigger clear.
    Healthy,
    /// 1: a window closed without a rollback (veto, approval required and
    /// missing, dry run), or the gate was stopped before an answer. A
    /// trigger that holds is no answer yet: the gate reads on.
    Holding,
    /// 2: rolled back.
    RolledBack,
    /// 3: no data, too little data, or an error.
    NoData,
}

impl GateExit {
    /// Every exit, by code.
    pub const ALL: [Self; 4] = [Self::Healthy, Self::Holding, Self::RolledBack, Self::NoData];

    /// What the exit means, as docs/rollback-gate.md says it after `**CODE**`.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Healthy => "healthy (every trigger clear, or the window cleared)",
            Self::Holding => {
                "a window closed without a rollback (veto, approval required and missing, `--dry-run`), or the gate stopped (SIGTERM) before an answer"
            }
            Self::RolledBack => "rolled back, and verified",
            Self::NoData => "no data, too little data, a failed read or a failed rollback",
        }
    }

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Holding => 1,
            Self::RolledBack => 2,
            Self::NoData => 3,
        }
    }
}

/// One thing the gate did, on its clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Since the gate started, ms.
    pub at_ms: u64,
    /// The data's time (Unix ms) then.
    pub data_at_ms: u64,
    /// What happened.
    pub what: String,
}

/// `GET /v1/gate`: where the gate is and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateStatus {
    /// The Cloud Run service.
    pub service: String,
    /// The revision watched (the one serving the most traffic).
    pub revision: Option<String>,
    /// The state machine's state.
    pub state: GateState,
    /// The rules.
    pub rules: GateRules,
    /// Each trigger's latest reading.
    pub readings: Vec<(TriggerKind, Reading)>,
    /// Since when (gate clock, ms) each holding trigger has held.
    pub holding_since: Vec<(TriggerKind, u64)>,
    /// The latest evidence.
    pub evidence: Option<Evidence>,
    /// The rollback target chosen when the window opened.
    pub target: Option<String>,
    /// The rollback, when one was carried out.
    pub rollback: Option<RollbackReport>,
    /// The latest failure to read or act, if the last attempt failed.
    pub last_error: Option<String>,
    /// Slack messages that could not be posted.
    pub slack_failures: Vec<String>,
    /// Dry run.
    pub dry_run: bool,
    /// What happened, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The progressive rollout, when the gate carries one out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// The state the loop and the approve/veto API share.
#[derive(Debug)]
pub struct GateShared {
    /// The state machine.
    pub machine: GateMachine,
    /// What the machine does not hold (its state, readings and holding
    /// times are read from it by [`GateShared::snapshot`]).
    pub status: GateStatus,
    /// When the gate started: its clock's zero.
    pub started: Instant,
}

impl GateShared {
    /// The gate's clock now, ms since it started (what the machine's
    /// times are on).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The status now: what the loop recorded, and the machine's state,
    /// readings and holding times as they are.
    pub fn snapshot(&self) -> GateStatus {
        GateStatus {
            state: self.machine.state().clone(),
            readings: self.machine.readings().clone().into_iter().collect(),
            holding_since: self.machine.holding_since().clone().into_iter().collect(),
            ..self.status.clone()
        }
    }
}

/// A handle on the shared state, for the HTTP API.
pub type SharedGate = Arc<Mutex<GateShared>>;

/// Locks the shared state.
pub fn lock(shared: &SharedGate) -> std::sync::MutexGuard<'_, GateShared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The gate: its settings, its sources and sinks, its shared state.
pub struct Gate {
    settings: GateSettings,
    source: FleetReader,
    run: CloudRunService,
    slack: GateSlack,
    io: OffClock,
    shared: SharedGate,
    commands: mpsc::UnboundedReceiver<GateEvent>,
    thread_ts: Option<String>,
    started: Instant,
    started_data_ms: u64,
    failed_last: bool,
    /// When the latest reading succeeded (the gate's clock, ms).
    last_good_read_ms: u64,
}

/// A gate and the sender its HTTP API passes approvals and vetoes through.
pub fn gate(
    settings: GateSettings,
    source: FleetReader,
    run: CloudRunService,
    slack: GateSlack,
    io: OffClock,
    data_start_ms: u64,
) -> (Gate, SharedGate, mpsc::UnboundedSender<GateEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    // A reading is current for three read intervals (at least a minute).
    let machine = GateMachine::new(
        settings.rules,
        settings.approval_window,
        settings.require_approval,
    )
    .with_evidence_max_age((settings.interval * 3).max(Duration::from_secs(60)));
    let status = GateStatus {
        service: settings.service.clone(),
        revision: None,
        state: GateState::Watching,
        rules: settings.rules,
        readings: Vec::new(),
        holding_since: Vec::new(),
        evidence: None,
        target: None,
        rollback: None,
        last_error: None,
        slack_failures: Vec::new(),
        dry_run: settings.dry_run,
        history: Vec::new(),
        rollout: settings.rollout.clone().map(RolloutStatus::new),
    };
    let started = Instant::now();
    let shared = Arc::new(Mutex::new(GateShared {
        machine,
        status,
        started,
    }));
    let gate = Gate {
        settings,
        source,
        run,
        slack,
        io,
        shared: Arc::clone(&shared),
        commands: rx,
        thread_ts: None,
        started,
        started_data_ms: data_start_ms,
        failed_last: false,
        last_good_read_ms: 0,
    };
    (gate, shared, tx)
}

fn value(r: Option<&Reading>) -> String {
    match r {
        Some(Reading::Holding { value } | Reading::Clear { value }) => format!("{value:.1}"),
        Some(Reading::Thin { why }) => format!("too little data ({why})"),
        None => "n/a".into(),
    }
}

impl Gate {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The data's time now: the start's, moved on by the gate's clock.
    fn data_ms(&self) -> u64 {
        self.started_data_ms + self.now_ms()
    }

    fn note(&self, what: String) {
        tracing::info!(gate = %what);
        let entry = HistoryEntry {
            at_ms: self.now_ms(),
            data_at_ms: self.data_ms(),
            what,
        };
        let mut s = lock(&self.shared);
        s.status.history.push(entry);
        let excess = s.status.history.len().saturating_sub(HISTORY_KEPT);
        s.status.history.drain(..excess);
    }

    fn fail(&mut self, what: String) {
        tracing::warn!(gate = %what);
        self.failed_last = true;
        let now = self.now_ms();
        let mut s = lock(&self.shared);
        // A rollout whose readings fail for as long as a step may hold
        // stops with its traffic where it is.
        if let Some(r) = s.status.rollout.as_mut()
            && r.phase == RolloutPhase::Stepping
            && now.saturating_sub(self.last_good_read_ms.max(r.step_started_ms))
                >= r.plan.max_hold.as_millis() as u64
        {
            r.phase = RolloutPhase::Stopped {
                why: format!("no reading for {} s: {what}", r.plan.max_hold.as_secs()),
                failed: true,
            };
        }
        s.status.last_error = Some(what);
    }

    /// Runs until `--once` has its answer (then returns it), or forever.
    pub async fn run(mut self, once: bool) -> GateExit {
        loop {
            self.step().await;
            if once && let Some(exit) = self.once_exit() {
                return exit;
            }
            let wait = self.next_wait();
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    let events = lock(&self.shared).machine.tick(self.now_ms());
                    for e in events {
                        self.handle(e).await;
                    }
                }
                Some(event) = self.commands.recv() => self.handle(event).await,
            }
            if once && let Some(exit) = self.once_exit() {
                return exit;
            }
        }
    }

    /// Until the next reading, or the window's end if sooner.
    fn next_wait(&self) -> Duration {
        let now = self.now_ms();
        match lock(&self.shared).machine.state() {
            GateState::Open(w) if w.deadline_ms > now => self
                .settings
                .interval
                .min(Duration::from_millis(w.deadline_ms - now)),
            _ => self.settings.interval,
        }
    }

    /// One reading: the watched revision (the rollout's, else the one
    /// serving the most traffic), its evidence, the decisions; in a
    /// rollout, its comparison and the step's decision.
    pub async fn step(&mut self) {
        self.failed_last = false;
        let service = match read_service(&self.run, &self.io).await {
            Ok(s) => s,
            Err(e) => return self.fail(format!("cannot read the service: {e}")),
        };
        if self.rollout_phase() == Some(RolloutPhase::Starting)
            && let Err(why) = self.start_rollout(&service).await
        {
            return self.stop_rollout(why, true).await;
        }
        let ended = matches!(
            self.rollout_phase(),
            Some(RolloutPhase::Promoted | RolloutPhase::Returned | RolloutPhase::Stopped { .. })
        );
        if ended && self.settings.rollout.is_some() {
            return; // `gate rollout` ends with its rollout
        }
        // The gate service watches the serving revision again once a
        // rollout it was asked for has ended.
        let revision = match self.active_rollout() {
            Some(plan) => plan.to,
            None => match serving_revision(&service) {
                Some(r) => r,
                None => {
                    return self.fail(format!(
                        "no revision serves traffic ({})",
                        traffic_summary(&service)
                    ));
                }
            },
        };
        let (source, window, at) = (self.source.clone(), self.settings.window, self.data_ms());
        let rev = revision.clone();
        let mut evidence = match self
            .io
            .run(async move { read_evidence(&source, &rev, window, at).await })
            .await
        {
            Ok(e) => e,
            Err(e) => return self.fail(format!("cannot read {revision}'s evidence: {e}")),
        };
        let mut new_requests = None;
        if let Some((old, since, tests)) = self.comparison_inputs() {
            let (source, rev) = (self.source.clone(), revision.clone());
            match self
                .io
                .run(async move { read_comparison(&source, &rev, &old, since, at, &tests).await })
                .await
            {
                Ok((comparison, new_counts)) => {
                    new_requests = Some(new_counts.requests);
                    evidence.comparison = Some(comparison);
                }
                Err(e) => {
                    return self.fail(format!(
                        "cannot compare {revision} with the old revisions: {e}"
                    ));
                }
            }
        }
        let now = self.now_ms();
        self.last_good_read_ms = now;
        let events = {
            let mut s = lock(&self.shared);
            let events = s.machine.observe(now, &evidence);
            if let (Some(r), Some(c)) = (s.status.rollout.as_mut(), &evidence.comparison) {
                r.record(evidence.at_ms, c.clone());
            }
            s.status.revision = Some(revision);
            s.status.evidence = Some(evidence);
            s.status.last_error = None;
            events
        };
        for e in events {
            self.handle(e).await;
        }
        if let Some(n) = new_requests {
            self.advance_rollout(n).await;
        }
    }

    /// The rollout being carried out (starting or stepping), if any.
    fn active_rollout(&self) -> Option<RolloutPlan> {
        let s = lock(&self.shared);
        let r = s.status.rollout.as_ref()?;
        matches!(r.phase, RolloutPhase::Starting | RolloutPhase::Stepping).then(|| r.plan.clone())
    }

    fn rollout_phase(&self) -> Option<RolloutPhase> {
        lock(&self.shared)
            .status
            .rollout
            .as_ref()
            .map(|r| r.phase.clone())
    }

    /// The old revisions, since when, and the tests, while stepping.
    fn comparison_inputs(&self) -> Option<(Vec<String>, u64, crate::eval::RolloutTests)> {
        let s = lock(&self.shared);
        let r = s.status.rollout.as_ref()?;
        match (&r.phase, r.started_data_ms) {
            (RolloutPhase::Stepping, Some(since)) => Some((r.old_revisions(), since, r.plan.tests)),
            _ => None,
        }
    }

    /// Sets the first step's traffic: the service's split before it is
    /// what the rollout returns to on a rollback.
    async fn start_rollout(&mut self, service: &Value) -> Result<(), String> {
        let plan = self.active_rollout().expect("only a rollout starts one");
        let run = self.run.clone();
        let revisions = self
            .io
            .run(async move { run.revisions().await })
            .await
            .map_err(|e| format!("cannot list the revisions: {e}"))?;
        match revisions.iter().find(|r| r.name == plan.to) {
            None => return Err(format!("revision {} does not exist", plan.to)),
            Some(r) if !r.ready => return Err(format!("revision {} is not Ready", plan.to)),
            Some(_) => {}
        }
        let before = traffic_split(service);
        let already = before
            .iter()
            .find(|(r, _)| *r == plan.to)
            .map_or(0, |(_, p)| *p);
        let from: Vec<(String, u64)> = stepped_split(&before, &plan.to, 0)
            .into_iter()
            .filter(|(r, _)| *r != plan.to)
            .collect();
        if from.is_empty() || already >= 100 {
            return Err(format!(
                "{} already serves all traffic ({}): nothing to compare it with. Deploy it with `gcloud run deploy --no-traffic`, then start the rollout",
                plan.to,
                traffic_summary(service)
            ));
        }
        // A rollout started again goes on from the step it had reached.
        let step = plan
            .steps
            .iter()
            .position(|p| *p >= already)
            .expect("the last step is 100");
        let percent = plan.steps[step];
        let split = stepped_split(&from, &plan.to, percent);
        let operation = set_split(&self.run, &self.io, &split)
            .await
            .map_err(|e| format!("cannot set the first step's traffic: {e}"))?;
        let now = self.now_ms();
        let data_at = self.data_ms();
        {
            let mut s = lock(&self.shared);
            let r = s.status.rollout.as_mut().expect("a rollout");
            r.from = from.clone();
            r.step = step;
            r.percent = percent;
            r.started_data_ms = Some(data_at);
            r.step_started_ms = now;
            r.step_started_requests = 0;
            r.phase = RolloutPhase::Stepping;
        }
        let was = from
            .iter()
            .map(|(r, p)| format!("`{}` {p}%", escape(r)))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            ":arrow_forward: *Lumen rollout* of `{}` to `{}`: {percent}% of requests (steps {}, at least {} s each), compared with {was} over the same minutes ({operation}).",
            escape(&self.settings.service),
            escape(&plan.to),
            plan.steps
                .iter()
                .map(|p| format!("{p}%"))
                .collect::<Vec<_>>()
                .join(" → "),
            plan.step_for.as_secs()
        );
        self.note(format!("rollout started: {} at {percent}%", plan.to));
        self.post(text.clone(), vec![section(&text)], false).await;
        Ok(())
    }

    /// Ends the rollout with the traffic where it is.
    async fn stop_rollout(&mut self, why: String, failed: bool) {
        let to = {
            let mut s = lock(&self.shared);
            let Some(r) = s.status.rollout.as_mut() else {
                return;
            };
            r.phase = RolloutPhase::Stopped {
                why: why.clone(),
                failed,
            };
            r.plan.to.clone()
        };
        if failed {
            self.fail(format!("rollout stopped: {why}"));
        }
        let text = format!(
            ":double_vertical_bar: Rollout of `{}` stopped: {}. The traffic stays where it is; decide by hand.",
            escape(&to),
            escape(&why)
        );
        self.note(text.clone());
        self.post(text.clone(), vec![section(&text)], true).await;
    }

    /// After a reading: promotes, completes or keeps the step, unless a
    /// trigger holds or a window is open.
    async fn advance_rollout(&mut self, new_requests: u64) {
        let now = self.now_ms();
        let decision = {
            let mut s = lock(&self.shared);
            let quiet = matches!(s.machine.state(), GateState::Watching)
                && !s.machine.readings().values().any(Reading::holds);
            let settled = match s.machine.state() {
                GateState::Settled { settled, .. } => Some(settled.clone()),
                _ => None,
            };
            let Some(r) = s.status.rollout.as_mut() else {
                return;
            };
            if r.phase != RolloutPhase::Stepping {
                return;
            }
            if let Some(settled) = settled {
                // A window was vetoed or escalated: a human decides.
                Some(StepDecision::GiveUp {
                    why: format!("the approval window settled as {settled:?}"),
                })
            } else if !quiet {
                r.waiting_for = Some("a trigger holds: no step while it does".into());
                None
            } else {
                let in_step = Duration::from_millis(now.saturating_sub(r.step_started_ms));
                let minutes = in_step.as_secs_f64() / 60.0;
                let rate = (minutes > 0.0)
                    .then(|| new_requests.saturating_sub(r.step_started_requests) as f64 / minutes);
                let c = r.comparison.as_ref().expect("recorded with the reading");
                Some(decide_step(&r.plan, r.step, in_step, c, rate))
            }
        };
        match decision {
            None => {}
            Some(StepDecision::Stay { why }) => {
                if let Some(r) = lock(&self.shared).status.rollout.as_mut() {
                    r.waiting_for = Some(why);
                }
            }
            Some(StepDecision::GiveUp { why }) => self.stop_rollout(why, false).await,
            Some(StepDecision::Promote { to_percent }) => {
                self.promote(to_percent, new_requests).await;
            }
            Some(StepDecision::Complete) => {
                let lines = {
                    let mut s = lock(&self.shared);
                    let r = s.status.rollout.as_mut().expect("a rollout");
                    r.phase = RolloutPhase::Promoted;
                    r.waiting_for = None;
                    r.comparison
                        .as_ref()
                        .map(comparison_lines)
                        .unwrap_or_default()
                };
                let to = lock(&self.shared)
                    .status
                    .rollout
                    .as_ref()
                    .map(|r| r.plan.to.clone())
                    .unwrap_or_default();
                let text = format!(
                    ":white_check_mark: Rollout of `{}` complete: it serves 100%, no worse than the revisions it replaced.\n{}",
                    escape(&to),
                    lines.join("\n")
                );
                self.note(format!("rollout complete: {to}"));
                self.post(text.clone(), vec![section(&text)], true).await;
            }
        }
    }

    async fn promote(&mut self, to_percent: u64, new_requests: u64) {
        let (from, to, lines) = {
            let s = lock(&self.shared);
            let r = s.status.rollout.as_ref().expect("a rollout");
            (
                r.from.clone(),
                r.plan.to.clone(),
                r.comparison
                    .as_ref()
                    .map(comparison_lines)
                    .unwrap_or_default(),
            )
        };
        let split = stepped_split(&from, &to, to_percent);
        match set_split(&self.run, &self.io, &split).await {
            Ok(operation) => {
                let now = self.now_ms();
                {
                    let mut s = lock(&self.shared);
                    let r = s.status.rollout.as_mut().expect("a rollout");
                    r.step += 1;
                    r.percent = to_percent;
                    r.step_started_ms = now;
                    r.step_started_requests = new_requests;
                    r.waiting_for = None;
                }
                let text = format!(
                    ":arrow_up: Rollout of `{}`: no worse so far, now {to_percent}% of requests ({operation}).\n{}",
                    escape(&to),
                    lines.join("\n")
                );
                self.note(format!("rollout step: {} at {to_percent}%", to.as_str()));
                self.post(text.clone(), vec![section(&text)], true).await;
            }
            Err(e) => {
                self.stop_rollout(format!("cannot set {to_percent}%: {e}"), true)
                    .await
            }
        }
    }

    fn once_exit(&self) -> Option<GateExit> {
        if self.settings.rollout.is_some()
            && let Some(phase) = self.rollout_phase()
        {
            return self.rollout_exit(phase);
        }
        if self.failed_last {
            return Some(GateExit::NoData);
        }
        let s = lock(&self.shared);
        match s.machine.state() {
            GateState::Settled { settled, .. } => Some(match settled {
                Settled::RolledBack { .. } => GateExit::RolledBack,
                Settled::RollbackFailed { .. } => GateExit::NoData,
                Settled::Vetoed { .. } | Settled::Escalated | Settled::WouldRollBack { .. } => {
                    GateExit::Holding
                }
            }),
            GateState::Open(_) | GateState::RollingBack { .. } => None,
            GateState::Watching => {
                let r = s.machine.readings();
                if r.values().any(Reading::holds) {
                    None // holding, not yet for long enough: keep reading
                } else if matches!(
                    r.get(&TriggerKind::SloCompliance),
                    Some(Reading::Clear { .. })
                ) {
                    Some(GateExit::Healthy)
                } else {
                    Some(GateExit::NoData)
                }
            }
        }
    }

    /// A rollout ends only when it is done, returned or stopped; a read
    /// that fails is tried again at the next reading, until readings have
    /// failed for as long as a step may hold.
    fn rollout_exit(&self, phase: RolloutPhase) -> Option<GateExit> {
        match phase {
            RolloutPhase::Promoted => Some(GateExit::Healthy),
            RolloutPhase::Returned => Some(GateExit::RolledBack),
            RolloutPhase::Stopped { failed: true, .. } => Some(GateExit::NoData),
            RolloutPhase::Stopped { failed: false, .. } => Some(GateExit::Holding),
            RolloutPhase::Starting | RolloutPhase::Stepping => {
                let s = lock(&self.shared);
                match s.machine.state() {
                    GateState::Settled {
                        settled: Settled::RolledBack { .. },
                        ..
                    } => Some(GateExit::RolledBack),
                    GateState::Settled {
                        settled: Settled::RollbackFailed { .. },
                        ..
                    } => Some(GateExit::NoData),
                    GateState::Settled { .. } => Some(GateExit::Holding),
                    _ => None,
                }
            }
        }
    }

    async fn post(&mut self, text: String, blocks: Vec<Value>, threaded: bool) {
        let thread = if threaded {
            self.thread_ts.clone()
        } else {
            None
        };
        match self
            .slack
            .post(&self.io, &text, &blocks, thread.as_deref())
            .await
        {
            Ok(ts) => {
                if !threaded && ts.is_some() {
                    self.thread_ts = ts;
                }
            }
            Err(why) => {
                let what = format!("Slack message not posted ({why}): {text}");
                tracing::warn!(gate = %what);
                lock(&self.shared).status.slack_failures.push(what);
            }
        }
    }

    fn commands(&self, window: &ApprovalWindow) -> String {
        format!(
            "Approve: `lumen-sidecar gate approve --url {u} --window {id}`\nVeto: `lumen-sidecar gate veto --url {u} --window {id}`",
            u = self.settings.api_url,
            id = window.id
        )
    }

    async fn target(&self, bad: &str) -> Result<Option<String>, String> {
        let (source, lookback, at) = (
            self.source.clone(),
            self.settings.target_lookback,
            self.data_ms(),
        );
        let served: BTreeSet<String> = self
            .io
            .run(async move { served_revisions(&source, lookback, at).await })
            .await
            .map_err(|e| e.to_string())?;
        let run = self.run.clone();
        let revisions = self
            .io
            .run(async move { run.revisions().await })
            .await
            .map_err(|e| e.to_string())?;
        Ok(choose_target(&revisions, bad, &served).map(|r| r.name))
    }

    async fn handle(&mut self, event: GateEvent) {
        match event {
            GateEvent::WindowOpened(w) => self.opened(w).await,
            GateEvent::WindowClosed { window, closed } => self.closed(window, closed).await,
            GateEvent::RollBack { window, proceed } => self.roll_back(window, proceed).await,
        }
    }

    async fn opened(&mut self, w: ApprovalWindow) {
        let returned_to = lock(&self.shared).status.rollout.as_ref().map(|r| {
            r.from
                .iter()
                .map(|(r, p)| format!("{r} {p}%"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let target = match returned_to {
            // A rollout's rollback returns the traffic as it was.
            Some(before) => Some(before),
            None => match self.target(&w.revision).await {
                Ok(t) => t,
                Err(e) => {
                    self.fail(format!("cannot choose a rollback target: {e}"));
                    None
                }
            },
        };
        lock(&self.shared).status.target = target.clone();
        let minutes = self.settings.approval_window.as_secs_f64() / 60.0;
        let rules = self.settings.rules;
        let e = &w.evidence;
        let mut lines = vec![format!(
            ":warning: *Lumen rollback gate*: revision `{}` of `{}` (every instance of it, {} requests in the last {} s)",
            escape(&w.revision),
            escape(&self.settings.service),
            e.requests,
            e.window_s
        )];
        for kind in TriggerKind::ALL {
            let reading = w.readings.get(&kind);
            if reading.is_none() && kind == TriggerKind::Regression {
                continue; // not a rollout
            }
            let mark = if w.triggers.contains(&kind) {
                ":red_circle:"
            } else if reading.is_some_and(Reading::holds) {
                ":large_orange_circle:"
            } else {
                ":white_circle:"
            };
            lines.push(format!(
                "{mark} {kind}: {} (trigger {} for {} s)",
                value(reading),
                threshold_phrase(kind, &rules),
                rules.hold_for.as_secs()
            ));
        }
        if !e.slos_failing.is_empty() {
            lines.push(format!("SLOs not met: {}", e.slos_failing.join(", ")));
        }
        if let Some(c) = &e.comparison {
            lines.push("Against the revisions it replaces, over the same minutes:".to_owned());
            lines.extend(comparison_lines(c));
        }
        let plan = match (&target, self.settings.require_approval, self.settings.dry_run) {
            (None, _, _) => "*No revision to roll back to* (none older is Ready and served traffic): nothing will be changed.".to_owned(),
            (Some(t), true, _) => format!("Rolls back to `{}` *only if approved* within {minutes:.0} min.", escape(t)),
            (Some(t), false, dry) => format!(
                "Rolls back to `{}` in {minutes:.0} min unless vetoed{}.",
                escape(t),
                if dry { " (dry run: nothing will be changed)" } else { "" }
            ),
        };
        lines.push(plan);
        let text = format!(
            "Lumen rollback gate: {} of {}: {} ({})",
            escape(&w.revision),
            escape(&self.settings.service),
            w.triggers
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            w.id
        );
        self.note(format!(
            "window {} opened on {} ({}), target {}",
            w.id,
            w.revision,
            text,
            target.as_deref().unwrap_or("none")
        ));
        let mut blocks = vec![section(&lines.join("\n")), section(&self.commands(&w))];
        if self.settings.slack_buttons {
            blocks.push(super::slack_interactions::buttons(&w.id));
        }
        self.post(text, blocks, false).await;
    }

    async fn closed(&mut self, w: ApprovalWindow, closed: Closed) {
        let target = lock(&self.shared).status.target.clone();
        let text = match &closed {
            Closed::Cleared => format!(
                ":white_check_mark: Window {} closed: every trigger cleared ({}). No rollback.",
                w.id,
                w.triggers
                    .iter()
                    .map(|t| format!("{t} now {}", value(w.readings.get(t))))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Closed::Vetoed { who } => format!(
                ":no_entry: Window {} vetoed by {}. No rollback; the gate leaves `{}` alone.",
                w.id,
                escape(who),
                escape(&w.revision)
            ),
            Closed::Escalated => format!(
                "<!here> :rotating_light: Window {} ended without the required approval. *No rollback was made*; `{}` still serves. To roll back by hand: `gcloud run services update-traffic {} --to-revisions={}=100`",
                w.id,
                escape(&w.revision),
                escape(&self.settings.service),
                escape(target.as_deref().unwrap_or("REVISION"))
            ),
            Closed::Thin => format!(
                ":grey_question: Window {} ended on too little data to act on. No rollback.",
                w.id
            ),
            Closed::Stale { .. } => format!(
                ":grey_question: Window {} ended with no current evidence: the readings stopped coming (see the gate's last failure). No rollback on old readings; `{}` still serves.",
                w.id,
                escape(&w.revision)
            ),
        };
        self.note(format!("window {} closed: {closed:?}", w.id));
        self.post(text.clone(), vec![section(&text)], true).await;
        if self.active_rollout().is_some()
            && matches!(closed, Closed::Vetoed { .. } | Closed::Escalated)
        {
            let percent = lock(&self.shared)
                .status
                .rollout
                .as_ref()
                .map_or(0, |r| r.percent);
            self.stop_rollout(
                format!(
                    "window {} closed without a rollback ({closed:?}) at {percent}%",
                    w.id
                ),
                false,
            )
            .await;
        }
    }

    async fn roll_back(&mut self, w: ApprovalWindow, proceed: Proceed) {
        let why = match &proceed {
            Proceed::Approved { who } => format!("approved by {}", escape(who)),
            Proceed::WindowEnded => "the window ended without a veto".to_owned(),
        };
        let target = lock(&self.shared).status.target.clone();
        if self.settings.dry_run {
            let text = format!(
                ":test_tube: Dry run: {why}; would roll `{}` back to `{}`. Nothing changed.",
                escape(&w.revision),
                escape(target.as_deref().unwrap_or("no revision"))
            );
            lock(&self.shared)
                .machine
                .settle(Settled::WouldRollBack { to: target });
            self.note(text.clone());
            self.post(text.clone(), vec![section(&text)], true).await;
            return;
        }
        self.note(format!("rolling back {} ({why})", w.revision));
        if self.active_rollout().is_some() {
            return self.return_traffic(&w, why).await;
        }
        // Chosen afresh: revisions may have changed since the window opened.
        let source = self.source.clone();
        let (lookback, at) = (self.settings.target_lookback, self.data_ms());
        let served = match self
            .io
            .run(async move { served_revisions(&source, lookback, at).await })
            .await
        {
            Ok(s) => s,
            Err(e) => {
                return self
                    .failed_rollback(
                        &w,
                        format!("cannot tell which revisions served traffic: {e}"),
                    )
                    .await;
            }
        };
        match roll_back(
            &self.run,
            &self.io,
            &w.revision,
            &served,
            &self.settings.service,
        )
        .await
        {
            Ok(report) => {
                let text = format!(
                    ":rewind: Rolled back `{}` → `{}` ({why}); verified: `{}` serves 100%. Traffic stays pinned to it until you run `{}` (the next deploy does not take traffic by itself).",
                    escape(&report.from),
                    escape(&report.to),
                    escape(&report.to),
                    escape(&report.unpin_command)
                );
                {
                    let mut s = lock(&self.shared);
                    s.machine.settle(Settled::RolledBack {
                        to: report.to.clone(),
                    });
                    s.status.rollback = Some(report);
                }
                self.note(text.clone());
                self.post(text.clone(), vec![section(&text)], true).await;
            }
            Err(e) => self.failed_rollback(&w, e.to_string()).await,
        }
    }

    /// A rollout's rollback: the traffic as it was before the rollout.
    async fn return_traffic(&mut self, w: &ApprovalWindow, why: String) {
        let from = lock(&self.shared)
            .status
            .rollout
            .as_ref()
            .map(|r| r.from.clone())
            .unwrap_or_default();
        let before = from
            .iter()
            .map(|(r, p)| format!("{r} {p}%"))
            .collect::<Vec<_>>()
            .join(", ");
        match set_split(&self.run, &self.io, &from).await {
            Ok(operation) => {
                let text = format!(
                    ":rewind: Rolled back the rollout of `{}` ({why}): the traffic is as it was before it, verified: {}.",
                    escape(&w.revision),
                    escape(&before)
                );
                {
                    let mut s = lock(&self.shared);
                    s.machine.settle(Settled::RolledBack { to: before.clone() });
                    s.status.rollback = Some(RollbackReport {
                        from: w.revision.clone(),
                        to: before,
                        operation,
                        conflicts: 0,
                        unpin_command: format!(
                            "lumen-sidecar gate rollout --service {} --to REVISION (a new rollout), or gcloud run services update-traffic {} --to-latest",
                            self.settings.service, self.settings.service
                        ),
                    });
                    if let Some(r) = s.status.rollout.as_mut() {
                        r.phase = RolloutPhase::Returned;
                        r.percent = 0;
                        r.waiting_for = None;
                    }
                }
                self.note(text.clone());
                self.post(text.clone(), vec![section(&text)], true).await;
            }
            Err(e) => {
                self.failed_rollback(w, e.to_string()).await;
                self.stop_rollout(format!("the traffic could not be returned: {e}"), true)
                    .await;
            }
        }
    }

    async fn failed_rollback(&mut self, w: &ApprovalWindow, reason: String) {
        let run = self.run.clone();
        let now = match self.io.run(async move { run.service().await }).await {
            Ok(s) => traffic_summary(&s),
            Err(e) => format!("unknown ({e})"),
        };
        let text = format!(
            ":x: Rollback of `{}` FAILED: {}. Traffic now: {}. Nothing was rolled back by the gate; act by hand.",
            escape(&w.revision),
            escape(&reason),
            escape(&now)
        );
        lock(&self.shared).machine.settle(Settled::RollbackFailed {
            reason: reason.clone(),
        });
        self.fail(format!("rollback failed: {reason}"));
        self.note(text.clone());
        self.post(text.clone(), vec![section(&text)], true).await;
    }
}

/// The status as text, for `gate watch --once` and `gate status`.
pub fn status_text(s: &GateStatus) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let state = match &s.state {
        GateState::Watching => "watching".to_owned(),
        GateState::Open(w) => format!("approval window {} open", w.id),
        GateState::RollingBack { .. } => "rolling back".to_owned(),
        GateState::Settled { settled, .. } => format!("settled: {settled:?}"),
    };
    let _ = writeln!(
        o,
        "Lumen rollback gate: {} revision {}: {state}{}",
        s.service,
        s.revision.as_deref().unwrap_or("unknown"),
        if s.dry_run { " (dry run)" } else { "" }
    );
    for (kind, reading) in &s.readings {
        let _ = writeln!(
            o,
            "  {kind}: {} (trigger {})",
            value(Some(reading)),
            threshold_phrase(*kind, &s.rules)
        );
    }
    if let Some(r) = &s.rollout {
        let phase = match &r.phase {
            RolloutPhase::Starting => "starting".to_owned(),
            RolloutPhase::Stepping => format!(
                "at {}% (step {} of {})",
                r.percent,
                r.step + 1,
                r.plan.steps.len()
            ),
            RolloutPhase::Promoted => "promoted: 100%".to_owned(),
            RolloutPhase::Returned => "rolled back: the traffic is as it was".to_owned(),
            RolloutPhase::Stopped { why, .. } => format!("stopped at {}%: {why}", r.percent),
        };
        let _ = writeln!(o, "  rollout of {}: {phase}", r.plan.to);
        if let Some(w) = &r.waiting_for {
            let _ = writeln!(o, "  waiting for: {w}");
        }
        if let Some(c) = &r.comparison {
            for line in comparison_lines(c) {
                let _ = writeln!(o, "    {line}");
            }
        }
    }
    if let Some(r) = &s.rollback {
        let _ = writeln!(
            o,
            "  rolled back {} -> {}; unpin: {}",
            r.from, r.to, r.unpin_command
        );
    }
    if let Some(e) = &s.last_error {
        let _ = writeln!(o, "  error: {e}");
    }
    for f in &s.slack_failures {
        let _ = writeln!(o, "  {f}");
    }
    o
}
