//! The tuning parameters an ingest answer may carry (additive to wire
//! version 1): `{"applied_seq": N, "tuning": {"version": V, "caches":
//! {"NAME": {"ttl_s": 300, "l1_capacity": 5000}}}}`. A cache's name is the
//! route whose lookups it serves (or any name the app and the sidecar's
//! config agree on). An older middleware ignores the field. Experiments
//! add `"params": {"NAME": 300}` (values an experiment fixed) and
//! `"experiment": {"id", "param", "a", "b", "share_b_percent"}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The feedback loop's current parameters for one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningAnswer {
    /// Increases with every change; a receiver applies only a newer one
    /// (within one `epoch`).
    pub version: u64,
    /// When the answering sidecar started, Unix ms (0: not said). A new
    /// epoch is a restarted sidecar, whose versions count afresh: its
    /// answer is applied whatever its version.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// Each cache's parameters, by name.
    #[serde(default)]
    pub caches: BTreeMap<String, CacheParams>,
    /// Parameters an experiment's decision fixed, by name (what
    /// `tuning().param(NAME)` reads outside an experiment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, u64>,
    /// The running experiment, if any; absent from a newer answer, it
    /// stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<super::ExperimentArms>,
}

/// One cache's parameters; an absent one is left as the app has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheParams {
    /// Time to live of its entries, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u32>,
    /// Entries the in-process (L1) cache holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1_capacity: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
