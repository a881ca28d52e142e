//! Which batches were applied: the highest seq per app instance, with the
//! instance's latest process figures.

use std::collections::HashMap;

use lumen_middleware::wire::ProcessStats;
use serde::{Deserialize, Serialize};

/// Most instances remembered; beyond it the longest silent is forgotten.
pub const MAX_INSTANCES: usize = 10_000;

/// One app instance as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Highest seq applied.
    pub applied_seq: u64,
    /// When its last batch arrived (sidecar clock, Unix ms).
    pub last_seen_ms: u64,
    /// Its latest process figures.
    pub process: Option<ProcessStats>,
}

/// Applied seqs by instance id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceLedger {
    instances: HashMap<String, InstanceEntry>,
}

impl InstanceLedger {
    /// The highest seq applied for `instance` (0 when unknown).
    pub fn applied_seq(&self, instance: &str) -> u64 {
        self.instances.get(instance).map_or(0, |e| e.applied_seq)
    }

    /// Notes that `seq` of `instance` was applied.
    pub fn record(&mut self, instance: &str, seq: u64, now_ms: u64, process: Option<ProcessStats>) {
        if !self.instances.contains_key(instance) && self.instances.len() >= MAX_INSTANCES {
            self.forget_oldest();
        }
        let entry = self
            .instances
            .entry(instance.to_owned())
            .or_insert(InstanceEntry {
                applied_seq: 0,
                last_seen_ms: now_ms,
                process: None,
            });
        entry.applied_seq = entry.applied_seq.max(seq);
        entry.last_seen_ms = now_ms;
        if process.is_some() {
            entry.process = process;
        }
    }

    /// Forgets instances silent since before `cutoff_ms`.
    pub fn evict_before(&mut self, cutoff_ms: u64) {
        self.instances.retain(|_, e| e.last_seen_ms >= cutoff_ms);
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .instances
            .iter()
            .min_by_key(|(_, e)| e.last_seen_ms)
            .map(|(k, _)| k.clone())
        {
            self.instances.remove(&oldest);
        }
    }

    /// Instances seen since `since_ms`, with their entries.
    pub fn active_since(&self, since_ms: u64) -> impl Iterator<Item = (&str, &InstanceEntry)> {
        self.instances
            .iter()
            .filter(move |(_, e)| e.last_seen_ms >= since_ms)
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Number of instances remembered.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether no instance is remembered.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}
