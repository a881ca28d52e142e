//! The application: what the sidecar knows (configuration, window store,
//! totals, counters) and how it evaluates it, shared by every part that
//! serves or ships it.
//!
//! Everything that consumes the application — the HTTP handlers
//! ([`crate::server`]), the OTLP export ([`crate::export`]), the Slack
//! alerter ([`crate::alerts`]) — depends on this module and on nothing of
//! each other; [`crate::sidecar`] builds them all and runs them as peers.

mod checkpoint;
mod clock;
mod evaluation;
pub mod experiment_hub;
pub mod experiments;
mod fleet_view;
mod what_if_answer;
pub mod memory_limit;
mod shutdown;
mod state;
pub mod state_volume;
mod stats;
mod totals;
pub mod wal_handle;
pub mod tuning;
pub mod tuning_hub;
pub mod wal_writer;

pub use checkpoint::{restore_checkpoint, save_snapshot};
pub use clock::now_ms;
pub use evaluation::{Evaluation, EvaluationCache};
pub use experiment_hub::{CommandFuture, ExperimentsHub, SharedExperiments};
pub use fleet_view::{FleetView, ReportFuture, ShareFuture, WhatIfFuture};
pub use shutdown::{Shutdown, ShutdownTrigger, shutdown_channel};
pub use state::{AppState, LatencyFeed, StateParts};
pub use stats::{
    CONNECTIONS_REFUSED, ExportStats, FLEET_STORE_UNREADABLE, IngestStats, RejectReason, SlackStats,
};
pub use totals::{
    ADVISED_BOUNDARIES_S, CumulativeTotals, INNER_FAILURE_LABEL, LatencyBoundaries, LatencyTotals,
    RequestTotals, SloEvents,
};
pub use tuning_hub::TuningHub;
pub use wal_handle::IngestError;
pub use what_if_answer::WhatIfAnswer;
