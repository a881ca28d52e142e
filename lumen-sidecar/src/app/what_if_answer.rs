//! The answer of a what-if, whoever replayed it (this sidecar's store or
//! the fleet's).

use crate::eval::{SloTargets, WhatIf};

/// What other targets would have said about the stored history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WhatIfAnswer {
    /// The targets asked about.
    pub targets: SloTargets,
    /// The error budget's period.
    pub period: String,
    /// Budgets now and every alert that would have fired.
    #[serde(flatten)]
    pub what_if: WhatIf,
    /// Set when the latency thresholds or error classes differ from the
    /// configured ones: the events were counted again from the minutes'
    /// histograms, which the store holds from here on (Unix ms), so the
    /// budgets cover that span only.
    pub recounted_from_ms: Option<u64>,
    /// Whose history: `this instance`, or the fleet.
    pub scope: String,
}
