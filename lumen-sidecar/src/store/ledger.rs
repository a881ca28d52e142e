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
    /// Its latest process figures, with the end of the batch that carried them.
    pub process: Option<(ProcessStats, u64)>,
    /// The figures before those, for rates.
    pub previous_process: Option<(ProcessStats, u64)>,
}

impl InstanceEntry {
    /// CPU used over the CPU limit between the last two samples (0–1+), when
    /// both samples and a limit are known.
    pub fn cpu_utilisation(&self) -> Option<f64> {
        let ((now, t1), (before, t0)) = (self.process?, self.previous_process?);
        let limit = now.cpu_limit_cores?;
        let seconds = (t1.checked_sub(t0)? as f64) / 1000.0;
        (seconds > 0.0).then(|| ((now.cpu_seconds - before.cpu_seconds).max(0.0) / seconds) / limit)
    }

    /// Resident memory over the memory limit, when a limit is known.
    pub fn memory_utilisation(&self) -> Option<f64> {
        let (p, _) = self.process?;
        p.memory_limit_bytes
            .filter(|l| *l > 0)
            .map(|l| p.rss_bytes as f64 / l as f64)
    }
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
    pub fn record(
        &mut self,
        instance: &str,
        seq: u64,
        now_ms: u64,
        process: Option<(ProcessStats, u64)>,
    ) {
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
                previous_process: None,
            });
        entry.applied_seq = entry.applied_seq.max(seq);
        entry.last_seen_ms = now_ms;
        if process.is_some() {
            entry.previous_process = entry.process.take();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(cpu: f64, rss: u64) -> ProcessStats {
        ProcessStats {
            cpu_seconds: cpu,
            rss_bytes: rss,
            memory_limit_bytes: Some(1000),
            cpu_limit_cores: Some(2.0),
        }
    }

    #[test]
    fn utilisation_from_two_samples_against_the_limits() {
        let mut l = InstanceLedger::default();
        l.record("a", 1, 0, Some((stats(10.0, 250), 10_000)));
        let e = l.active_since(0).next().expect("one").1.clone();
        assert_eq!(e.cpu_utilisation(), None, "one sample gives no rate");
        assert_eq!(e.memory_utilisation(), Some(0.25));
        // 10 s later 5 more CPU seconds on a 2-core limit: 25 %.
        l.record("a", 2, 1, Some((stats(15.0, 500), 20_000)));
        let e = l.active_since(0).next().expect("one").1.clone();
        assert_eq!(e.cpu_utilisation(), Some(0.25));
        assert_eq!(e.memory_utilisation(), Some(0.5));
        l.record("a", 3, 2, None);
        let e = l.active_since(0).next().expect("one").1.clone();
        assert_eq!(
            e.cpu_utilisation(),
            Some(0.25),
            "a batch without figures keeps the last ones"
        );
    }
}
