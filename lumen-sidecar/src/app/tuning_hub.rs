//! The feedback loop as one part of the sidecar's state: its decisions
//! state, each cache's key sample (for the miss-ratio curve) and tier
//! timings, and the feedback settings they are judged with. Built whole
//! by the composition root; the state holds it.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use lumen_middleware::wire::{DecodedBatch, TierTimes, TuningAnswer};

use super::tuning::{
    CacheAdvice, SAMPLE_ACCESSES, SAMPLE_KEYS, TtlChange, TuningReport, TuningState, recommend_l1,
};
use crate::config::{FeedbackConfig, FeedbackMode};
use crate::eval::mrc::{MODULUS, ShardsSample};

/// The feedback loop's state and inputs.
#[derive(Debug)]
pub struct TuningHub {
    config: FeedbackConfig,
    state: Mutex<TuningState>,
    key_samples: Mutex<BTreeMap<String, ShardsSample>>,
    /// Each route's cache lookups timed by tier, since the sidecar started.
    tier_times: Mutex<BTreeMap<String, TierTimes>>,
}

impl TuningHub {
    /// A loop with nothing decided yet, judged by `config`.
    pub fn new(config: &FeedbackConfig) -> Self {
        Self {
            config: *config,
            state: Mutex::default(),
            key_samples: Mutex::default(),
            tier_times: Mutex::default(),
        }
    }

    /// Takes a stored batch's sampled keys and tier timings (while the
    /// loop is on).
    pub fn note(&self, batch: &DecodedBatch) {
        if self.config.mode != FeedbackMode::Off {
            self.note_key_samples(batch);
            self.note_tier_times(batch);
        }
    }

    /// The loop's own answer for the tuning channel, if it set anything.
    pub fn loop_answer(&self) -> Option<TuningAnswer> {
        self.lock().answer().cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TuningState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One decision at `now_ms` on `cumulative` lookups by cache (this
    /// sidecar's, or the fleet's sums).
    pub fn decide(&self, cumulative: &BTreeMap<String, [u64; 2]>, now_ms: u64) -> Vec<TtlChange> {
        let f = &self.config;
        let mut advice: BTreeMap<String, CacheAdvice> = self
            .key_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(route, sample)| {
                recommend_l1(sample, f.ttl.target_hit_rate, f.l1_entry_bytes).map(|r| {
                    let advice = CacheAdvice {
                        l1: Some(r),
                        tiers: None,
                    };
                    (route.clone(), advice)
                })
            })
            .collect();
        for (route, times) in self
            .tier_times
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let Some([hits, misses]) = cumulative.get(route).copied() else {
                continue;
            };
            if hits + misses == 0 {
                continue;
            }
            let entry = advice.entry(route.clone()).or_default();
            // The L1 at the size the curve recommends; without a curve, the
            // L1 in force as measured (its misses are the L2's lookups).
            let l1_hit_ratio = entry.l1.as_ref().and_then(|r| r.hit_ratio).or_else(|| {
                (times.l1.lookups > 0 && times.l2.lookups > 0).then(|| {
                    1.0 - times.l2.lookups.min(times.l1.lookups) as f64 / times.l1.lookups as f64
                })
            });
            entry.tiers = Some(crate::eval::choose_tiers(
                times,
                hits as f64 / (hits + misses) as f64,
                l1_hit_ratio,
            ));
        }
        let made = self
            .lock()
            .decide(cumulative, &advice, &f.ttl, f.mode, now_ms);
        for c in &made {
            tracing::info!(
                applied = c.applied,
                from_s = c.from_s,
                to_s = c.to_s,
                hit_rate = c.hit_rate_before,
                lookups = c.lookups_before,
                "cache TTL {}: {}",
                if c.applied { "changed" } else { "recommended" },
                c.why
            );
        }
        made
    }

    /// Adds a batch's sampled cache keys to each route's miss-ratio sample.
    fn note_key_samples(&self, batch: &DecodedBatch) {
        let mut samples = self
            .key_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for series in &batch.series {
            let (Some(route), Some(keys)) = (&series.route, &series.keys) else {
                continue;
            };
            let sample = samples
                .entry(route.clone())
                .or_insert_with(|| ShardsSample::new(MODULUS, SAMPLE_KEYS, SAMPLE_ACCESSES));
            sample.add_interval(keys);
        }
    }

    /// Adds a batch's per-tier lookup timings to each route's sums.
    fn note_tier_times(&self, batch: &DecodedBatch) {
        let mut sums = self
            .tier_times
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for series in &batch.series {
            let (Some(route), Some(tiers)) = (&series.route, &series.tiers) else {
                continue;
            };
            let sum = sums.entry(route.clone()).or_default();
            *sum = TierTimes::from_array(std::array::from_fn(|i| {
                sum.as_array()[i].saturating_add(&tiers.as_array()[i])
            }));
        }
    }

    /// Starts the feedback loop at `now_ms` from `cumulative` lookups.
    pub fn start(&self, cumulative: &BTreeMap<String, [u64; 2]>, now_ms: u64) {
        self.lock().start(cumulative, now_ms);
    }

    /// The feedback loop's whole state (to share it through the fleet store).
    pub fn state(&self) -> TuningState {
        self.lock().clone()
    }

    /// Takes `shared` as the feedback loop's state (the fleet's decider's).
    pub fn replace(&self, shared: TuningState) {
        *self.lock() = shared;
    }

    /// `GET /v1/tuning`.
    pub fn report(&self) -> TuningReport {
        let f = &self.config;
        self.lock().report(f.mode, &f.ttl)
    }
}
