//! The gate's decisions as a pure state machine over readings, commands
//! and time (milliseconds on a monotonic clock): when a trigger has held
//! for its duration the approval window opens; it closes on a veto, when
//! every trigger clears, or at its end, where the rollback proceeds (unless
//! approval is required: then it escalates and nothing is rolled back).
//! An approval proceeds at once. Thin data never counts as holding.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::triggers::{Evidence, GateRules, Reading, TriggerKind, read};

/// The manual-approval window: five minutes.
pub const DEFAULT_APPROVAL_WINDOW: Duration = Duration::from_secs(300);

/// An open approval window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalWindow {
    /// Its id, for `gate approve --window ID` / `gate veto --window ID`.
    pub id: String,
    /// The revision it would roll back.
    pub revision: String,
    /// When it opened (the gate's clock, ms).
    pub opened_at_ms: u64,
    /// When it ends (the gate's clock, ms).
    pub deadline_ms: u64,
    /// The triggers that opened it.
    pub triggers: Vec<TriggerKind>,
    /// The evidence it opened on.
    pub evidence: Evidence,
    /// Each trigger's latest reading.
    pub readings: BTreeMap<TriggerKind, Reading>,
}

impl ApprovalWindow {
    fn holding(&self) -> bool {
        self.triggers
            .iter()
            .any(|t| self.readings.get(t).is_some_and(Reading::holds))
    }

    fn all_clear(&self) -> bool {
        self.triggers
            .iter()
            .all(|t| matches!(self.readings.get(t), Some(Reading::Clear { .. })))
    }
}

/// Why a rollback proceeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Proceed {
    /// Someone approved it.
    Approved {
        /// Who (as `gate approve --by` said).
        who: String,
    },
    /// The window ended without a veto, the trigger still holding.
    WindowEnded,
}

/// Why a window closed without a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Closed {
    /// Every trigger cleared inside the window.
    Cleared,
    /// Someone vetoed it.
    Vetoed {
        /// Who.
        who: String,
    },
    /// Approval was required and none came: a human must decide.
    Escalated,
    /// The data went thin before the window ended: nothing to act on.
    Thin,
    /// No reading was current when the window ended (the evidence could
    /// not be read since `last_read_ms`): a gate acts on current evidence
    /// only.
    Stale {
        /// When the last reading was taken (the gate's clock, ms).
        last_read_ms: Option<u64>,
    },
}

/// How old the latest reading may be for a window's end to act on it.
pub const DEFAULT_EVIDENCE_MAX_AGE: Duration = Duration::from_secs(180);

/// How the gate settled a revision (it then leaves that revision alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Settled {
    /// Traffic was moved to `to` and verified.
    RolledBack {
        /// The revision now serving.
        to: String,
    },
    /// A veto kept the revision.
    Vetoed {
        /// Who.
        who: String,
    },
    /// Approval was required and none came.
    Escalated,
    /// A dry run: the rollback that would have been made.
    WouldRollBack {
        /// The revision it would have moved traffic to (none qualified: `None`).
        to: Option<String>,
    },
    /// The rollback could not be carried out.
    RollbackFailed {
        /// Why.
        reason: String,
    },
}

/// Where the gate is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GateState {
    /// Reading the evidence; no window open.
    Watching,
    /// The approval window is open.
    Open(ApprovalWindow),
    /// A rollback was decided and is being carried out.
    RollingBack {
        /// The window that decided it.
        window: ApprovalWindow,
        /// Why it proceeds.
        proceed: Proceed,
    },
    /// The gate settled `revision` and leaves it alone.
    Settled {
        /// The revision.
        revision: String,
        /// How.
        settled: Settled,
    },
}

/// What the gate decided, for the runner to carry out and report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GateEvent {
    /// The approval window opened: post the evidence and the commands.
    WindowOpened(ApprovalWindow),
    /// The window closed without a rollback.
    WindowClosed {
        /// The window.
        window: ApprovalWindow,
        /// Why.
        closed: Closed,
    },
    /// Roll back now.
    RollBack {
        /// The window.
        window: ApprovalWindow,
        /// Why.
        proceed: Proceed,
    },
}

/// A command the gate cannot take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// No approval window is open.
    #[error("no approval window is open (the gate is {0})")]
    NoWindow(String),
    /// The window named is not the open one.
    #[error("window {asked} is not open (the open one is {open})")]
    OtherWindow {
        /// The id asked for.
        asked: String,
        /// The open window's id.
        open: String,
    },
    /// An approval while the evidence is not current: the gate acts on
    /// current evidence only.
    #[error(
        "no current evidence (the last reading is older than {max_age_s} s): the approval is not taken; the window ends without a rollback unless readings resume"
    )]
    StaleEvidence {
        /// How old a reading may be, seconds.
        max_age_s: u64,
    },
}

/// The gate's state machine.
#[derive(Debug, Clone)]
pub struct GateMachine {
    rules: GateRules,
    approval_window: Duration,
    require_approval: bool,
    revision: Option<String>,
    since: BTreeMap<TriggerKind, u64>,
    readings: BTreeMap<TriggerKind, Reading>,
    state: GateState,
    windows_opened: u32,
    /// When the latest reading was taken (the gate's clock, ms).
    last_read_ms: Option<u64>,
    evidence_max_age: Duration,
}

impl GateMachine {
    /// A gate with `rules`, opening windows of `approval_window`; with
    /// `require_approval` a window that ends unanswered escalates instead
    /// of rolling back.
    pub fn new(rules: GateRules, approval_window: Duration, require_approval: bool) -> Self {
        Self {
            rules,
            approval_window,
            require_approval,
            revision: None,
            since: BTreeMap::new(),
            readings: BTreeMap::new(),
            state: GateState::Watching,
            windows_opened: 0,
            last_read_ms: None,
            evidence_max_age: DEFAULT_EVIDENCE_MAX_AGE,
        }
    }

    /// This gate, its readings expiring after `age` (the watcher gives a
    /// few of its read intervals).
    pub fn with_evidence_max_age(mut self, age: Duration) -> Self {
        self.evidence_max_age = age;
        self
    }

    /// Whether the latest reading is current at `now_ms`.
    pub fn evidence_current(&self, now_ms: u64) -> bool {
        self.last_read_ms
            .is_some_and(|at| now_ms.saturating_sub(at) <= self.evidence_max_age.as_millis() as u64)
    }

    /// Where the gate is.
    pub fn state(&self) -> &GateState {
        &self.state
    }

    /// Each trigger's latest reading.
    pub fn readings(&self) -> &BTreeMap<TriggerKind, Reading> {
        &self.readings
    }

    /// Since when (the gate's clock, ms) each holding trigger has held.
    pub fn holding_since(&self) -> &BTreeMap<TriggerKind, u64> {
        &self.since
    }

    /// Takes a reading at `now_ms`. A new revision serving starts the gate
    /// afresh.
    pub fn observe(&mut self, now_ms: u64, evidence: &Evidence) -> Vec<GateEvent> {
        self.last_read_ms = Some(now_ms);
        if self.revision.as_deref() != Some(evidence.revision.as_str()) {
            self.revision = Some(evidence.revision.clone());
            self.since.clear();
            self.state = GateState::Watching;
        }
        // Regression is read only in a rollout.
        self.readings = TriggerKind::ALL
            .iter()
            .filter(|k| **k != TriggerKind::Regression || evidence.comparison.is_some())
            .map(|k| (*k, read(*k, evidence, &self.rules)))
            .collect();
        for (kind, reading) in &self.readings {
            if reading.holds() {
                self.since.entry(*kind).or_insert(now_ms);
            } else {
                // Clear or thin: holding must be continuous, on real data.
                self.since.remove(kind);
            }
        }
        let mut events = Vec::new();
        match &mut self.state {
            GateState::Watching => {
                let hold_ms = self.rules.hold_for.as_millis() as u64;
                let due: Vec<TriggerKind> = self
                    .since
                    .iter()
                    .filter(|(_, since)| now_ms.saturating_sub(**since) >= hold_ms)
                    .map(|(k, _)| *k)
                    .collect();
                if !due.is_empty() {
                    self.windows_opened += 1;
                    let window = ApprovalWindow {
                        id: format!("{}-w{}", evidence.revision, self.windows_opened),
                        revision: evidence.revision.clone(),
                        opened_at_ms: now_ms,
                        deadline_ms: now_ms + self.approval_window.as_millis() as u64,
                        triggers: due,
                        evidence: evidence.clone(),
                        readings: self.readings.clone(),
                    };
                    self.state = GateState::Open(window.clone());
                    events.push(GateEvent::WindowOpened(window));
                }
            }
            GateState::Open(window) => {
                window.readings = self.readings.clone();
                if window.all_clear() {
                    let window = window.clone();
                    self.state = GateState::Watching;
                    events.push(GateEvent::WindowClosed {
                        window,
                        closed: Closed::Cleared,
                    });
                }
            }
            GateState::RollingBack { .. } | GateState::Settled { .. } => {}
        }
        events.extend(self.tick(now_ms));
        events
    }

    /// Ends the open window if its time is up at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Vec<GateEvent> {
        let GateState::Open(window) = &self.state else {
            return Vec::new();
        };
        if now_ms < window.deadline_ms {
            return Vec::new();
        }
        let window = window.clone();
        let event = if !self.evidence_current(now_ms) {
            // The readings in the window are from before the evidence
            // stopped coming: nothing is rolled back on them.
            self.state = GateState::Watching;
            self.since.clear();
            GateEvent::WindowClosed {
                window,
                closed: Closed::Stale {
                    last_read_ms: self.last_read_ms,
                },
            }
        } else if self.require_approval {
            self.state = GateState::Settled {
                revision: window.revision.clone(),
                settled: Settled::Escalated,
            };
            GateEvent::WindowClosed {
                window,
                closed: Closed::Escalated,
            }
        } else if window.holding() {
            self.state = GateState::RollingBack {
                window: window.clone(),
                proceed: Proceed::WindowEnded,
            };
            GateEvent::RollBack {
                window,
                proceed: Proceed::WindowEnded,
            }
        } else {
            // Neither holding nor all clear: the data went thin.
            self.state = GateState::Watching;
            self.since.clear();
            GateEvent::WindowClosed {
                window,
                closed: Closed::Thin,
            }
        };
        vec![event]
    }

    fn open_window(&self, id: Option<&str>) -> Result<&ApprovalWindow, CommandError> {
        let GateState::Open(window) = &self.state else {
            return Err(CommandError::NoWindow(self.state_name().to_owned()));
        };
        match id {
            Some(asked) if asked != window.id => Err(CommandError::OtherWindow {
                asked: asked.to_owned(),
                open: window.id.clone(),
            }),
            _ => Ok(window),
        }
    }

    /// Approves the open window (`id`, when given, must be it) at
    /// `now_ms`: the rollback proceeds now, if the evidence is current.
    pub fn approve(
        &mut self,
        id: Option<&str>,
        who: &str,
        now_ms: u64,
    ) -> Result<GateEvent, CommandError> {
        let window = self.open_window(id)?.clone();
        if !self.evidence_current(now_ms) {
            return Err(CommandError::StaleEvidence {
                max_age_s: self.evidence_max_age.as_secs(),
            });
        }
        let proceed = Proceed::Approved {
            who: who.to_owned(),
        };
        self.state = GateState::RollingBack {
            window: window.clone(),
            proceed: proceed.clone(),
        };
        Ok(GateEvent::RollBack { window, proceed })
    }

    /// Vetoes the open window: no rollback, and the gate leaves this
    /// revision alone.
    pub fn veto(&mut self, id: Option<&str>, who: &str) -> Result<GateEvent, CommandError> {
        let window = self.open_window(id)?.clone();
        self.state = GateState::Settled {
            revision: window.revision.clone(),
            settled: Settled::Vetoed {
                who: who.to_owned(),
            },
        };
        Ok(GateEvent::WindowClosed {
            window,
            closed: Closed::Vetoed {
                who: who.to_owned(),
            },
        })
    }

    /// How the decided rollback ended (carried out, failed, or a dry run's).
    pub fn settle(&mut self, settled: Settled) {
        if let GateState::RollingBack { window, .. } = &self.state {
            self.state = GateState::Settled {
                revision: window.revision.clone(),
                settled,
            };
        }
    }

    /// `watching`, `open`, `rolling_back` or `settled`.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            GateState::Watching => "watching",
            GateState::Open(_) => "open",
            GateState::RollingBack { .. } => "rolling_back",
            GateState::Settled { .. } => "settled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn evidence(compliance: f64, requests: u64) -> Evidence {
        Evidence {
            revision: "api-00002".into(),
            window_s: 600,
            at_ms: 0,
            requests,
            lookups: 0,
            hit_rate: None,
            compliance_percent: Some(compliance),
            slos_failing: Vec::new(),
            roi_percent: None,
            cost_usd: None,
            forecast_usd: Some(10.0),
            month_to_date_usd: Some(1.0),
            comparison: None,
            excluded: None,
        }
    }

    fn gate(require: bool) -> GateMachine {
        GateMachine::new(GateRules::default(), DEFAULT_APPROVAL_WINDOW, require)
    }

    #[test]
    fn a_window_whose_evidence_stopped_coming_closes_without_a_rollback() {
        let mut g = gate(false);
        let w = opened(&mut g);
        // Readings stop after the window opened (the query API is down);
        // the clock runs on to the deadline.
        match g.tick(w.deadline_ms).as_slice() {
            [
                GateEvent::WindowClosed {
                    closed: Closed::Stale { last_read_ms },
                    ..
                },
            ] => assert_eq!(*last_read_ms, Some(2 * MIN)),
            other => panic!("rolled back on stale evidence: {other:?}"),
        }
        assert_eq!(g.state_name(), "watching");
        // With a reading a minute before the deadline it does roll back.
        let mut g = gate(false);
        let w = opened(&mut g);
        assert!(
            g.observe(w.deadline_ms - MIN, &evidence(50.0, 1000))
                .is_empty()
        );
        assert!(matches!(
            g.tick(w.deadline_ms).as_slice(),
            [GateEvent::RollBack { .. }]
        ));
    }

    fn opened(g: &mut GateMachine) -> ApprovalWindow {
        assert!(g.observe(0, &evidence(50.0, 1000)).is_empty());
        assert!(g.observe(MIN, &evidence(50.0, 1000)).is_empty());
        match g.observe(2 * MIN, &evidence(50.0, 1000)).as_slice() {
            [GateEvent::WindowOpened(w)] => {
                assert_eq!(w.triggers, vec![TriggerKind::SloCompliance]);
                assert_eq!(w.deadline_ms, 7 * MIN);
                w.clone()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_window_opens_after_the_hold_and_rolls_back_at_its_end() {
        let mut g = gate(false);
        let w = opened(&mut g);
        assert!(g.observe(6 * MIN, &evidence(50.0, 1000)).is_empty());
        match g.observe(7 * MIN, &evidence(50.0, 1000)).as_slice() {
            [GateEvent::RollBack { window, proceed }] => {
                assert_eq!(window.id, w.id);
                assert_eq!(*proceed, Proceed::WindowEnded);
            }
            other => panic!("{other:?}"),
        }
        g.settle(Settled::RolledBack {
            to: "api-00001".into(),
        });
        assert!(matches!(
            g.state(),
            GateState::Settled {
                settled: Settled::RolledBack { .. },
                ..
            }
        ));
        // Settled: the same revision opens nothing more.
        assert!(g.observe(20 * MIN, &evidence(50.0, 1000)).is_empty());
    }

    #[test]
    fn a_break_in_holding_restarts_the_hold() {
        let mut g = gate(false);
        g.observe(0, &evidence(50.0, 1000));
        g.observe(MIN, &evidence(99.0, 1000));
        assert!(g.observe(2 * MIN, &evidence(50.0, 1000)).is_empty());
        assert!(g.observe(3 * MIN, &evidence(50.0, 1000)).is_empty());
        assert_eq!(g.observe(4 * MIN, &evidence(50.0, 1000)).len(), 1);
    }

    #[test]
    fn thin_data_never_opens_a_window_or_rolls_back() {
        let mut g = gate(false);
        for m in 0..30 {
            assert!(g.observe(m * MIN, &evidence(0.0, 10)).is_empty());
        }
        let mut g = gate(false);
        let w = opened(&mut g);
        // Thin inside the window: it stays open, then closes without a rollback.
        assert!(g.observe(3 * MIN, &evidence(0.0, 10)).is_empty());
        match g.observe(7 * MIN, &evidence(0.0, 10)).as_slice() {
            [GateEvent::WindowClosed { window, closed }] => {
                assert_eq!((window.id.as_str(), closed), (w.id.as_str(), &Closed::Thin));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clearing_inside_the_window_closes_it() {
        let mut g = gate(false);
        opened(&mut g);
        match g.observe(4 * MIN, &evidence(100.0, 1000)).as_slice() {
            [GateEvent::WindowClosed { closed, .. }] => assert_eq!(*closed, Closed::Cleared),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.state(), &GateState::Watching);
        assert!(g.observe(8 * MIN, &evidence(100.0, 1000)).is_empty());
    }

    #[test]
    fn approve_and_veto_act_on_the_open_window_only() {
        let mut g = gate(false);
        assert!(matches!(
            g.approve(None, "ana", 0),
            Err(CommandError::NoWindow(_))
        ));
        let w = opened(&mut g);
        assert!(matches!(
            g.veto(Some("api-00002-w9"), "ana"),
            Err(CommandError::OtherWindow { .. })
        ));
        match g.approve(Some(&w.id), "ana", 2 * MIN) {
            Ok(GateEvent::RollBack { proceed, .. }) => {
                assert_eq!(proceed, Proceed::Approved { who: "ana".into() });
            }
            other => panic!("{other:?}"),
        }
        let mut g = gate(false);
        let w = opened(&mut g);
        assert!(g.veto(Some(&w.id), "bo").is_ok());
        // The veto holds for this revision even when the window would end.
        assert!(g.observe(9 * MIN, &evidence(50.0, 1000)).is_empty());
    }

    #[test]
    fn an_approval_on_stale_evidence_is_not_taken() {
        let mut g = gate(false).with_evidence_max_age(Duration::from_secs(60));
        let w = opened(&mut g);
        // The last reading was at minute 2; at minute 4 it is stale.
        assert!(matches!(
            g.approve(Some(&w.id), "ana", 4 * MIN),
            Err(CommandError::StaleEvidence { max_age_s: 60 })
        ));
        assert!(matches!(g.state(), GateState::Open(_)), "nothing changed");
        // A veto changes nothing on the service: it is taken.
        assert!(g.veto(Some(&w.id), "ana").is_ok());
    }

    #[test]
    fn required_approval_escalates_and_never_rolls_back_by_itself() {
        let mut g = gate(true);
        opened(&mut g);
        match g.observe(7 * MIN, &evidence(50.0, 1000)).as_slice() {
            [GateEvent::WindowClosed { closed, .. }] => assert_eq!(*closed, Closed::Escalated),
            other => panic!("{other:?}"),
        }
        assert!(g.observe(30 * MIN, &evidence(50.0, 1000)).is_empty());
    }

    #[test]
    fn a_new_revision_starts_afresh() {
        let mut g = gate(false);
        let w = opened(&mut g);
        g.veto(Some(&w.id), "ana").expect("open");
        let next = Evidence {
            revision: "api-00003".into(),
            ..evidence(50.0, 1000)
        };
        assert!(g.observe(10 * MIN, &next).is_empty());
        assert_eq!(g.state(), &GateState::Watching);
    }
}
