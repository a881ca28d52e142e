//! The rollback gate: it watches the revision that
//! serves a Cloud Run service's traffic, judges three triggers on that
//! revision's own fleet data (ROI below 300 %, SLO compliance below 95 %,
//! the month's cost forecast above the budget), each only on enough
//! traffic, and when one has held for its duration opens a five-minute
//! approval window (one Slack message with the evidence, the target and
//! the commands). The rollback proceeds when approved, or when the window
//! ends without a veto (with `--require-approval`: only when approved);
//! it moves all traffic to the newest Ready revision before the bad one
//! that served traffic, on the Cloud Run Admin API v2, and verifies it.
//!
//! In a progressive rollout (`gate rollout`) it moves traffic to a new
//! revision in steps and, at every reading, compares it against the
//! revisions it replaces over the same minutes with always-valid tests
//! ([`crate::eval::compare_revisions`]); a regression is one more trigger,
//! and its rollback returns the traffic to what it was.
//!
//! [`machine`], [`triggers`] and [`rollout`] are pure; [`watch`] carries out what they
//! decide; [`crate::google::cloud_run`] and [`slack_thread`] are the edges.

mod approval_api;
mod evidence;
pub mod machine;
pub mod rollout;
mod rollout_page;
pub mod slack_interactions;
pub mod slack_thread;
pub mod triggers;
pub mod watch;

pub use crate::google::cloud_run::{
    CloudRunService, DEFAULT_RUN_API_BASE, RollbackError, RollbackReport, set_min_instances,
};
pub use approval_api::{GateCommand, parse_approvers, router};
pub use evidence::{read_comparison, read_evidence, served_revisions};
pub use machine::{DEFAULT_APPROVAL_WINDOW, GateMachine, GateState};
pub use rollout::{
    DEFAULT_MAX_HOLD, DEFAULT_STEP_FOR, DEFAULT_STEPS, RolloutPhase, RolloutPlan, RolloutRequest,
    RolloutStatus, parse_steps,
};
pub use slack_thread::{DEFAULT_SLACK_API_BASE, GateSlack, SlackTarget};
pub use triggers::{Evidence, GateRules, Reading, TriggerKind};
pub use watch::{
    DEFAULT_GATE_LISTEN, DEFAULT_GATE_WINDOW, DEFAULT_INTERVAL, DEFAULT_TARGET_LOOKBACK, Gate,
    GateExit, GateSettings, GateStatus, gate, status_text,
};
