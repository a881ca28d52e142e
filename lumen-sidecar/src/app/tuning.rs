//! The feedback loop's state: each cache's TTL (a cache is the route whose
//! lookups it serves), the decisions with the hit rates before and after,
//! and the parameters the ingest answers carry in `apply` mode.
//!
//! Each decision looks at the lookups since the previous one (differences
//! of the exact cumulative counts), so an interval's hit rate is exact
//! whatever the interval's length.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use lumen_middleware::wire::{CacheParams, TuningAnswer};

use crate::config::FeedbackMode;
use crate::eval::{TtlControl, next_ttl};

/// Decisions kept per cache.
pub const CHANGES_KEPT: usize = 50;
/// Distinct sampled keys one cache's miss-ratio sample holds (fixed-size SHARDS).
pub const SAMPLE_KEYS: usize = 5_000;
/// Sampled accesses one cache's miss-ratio sample holds (the latest).
pub const SAMPLE_ACCESSES: usize = 50_000;
/// Sampled accesses a recommendation needs.
pub const MIN_SAMPLED_ACCESSES: usize = 200;

/// The L1 size the miss-ratio curve recommends for one cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L1Recommendation {
    /// Sampled accesses the curve is built on.
    pub sampled_accesses: usize,
    /// The sampling rate in force.
    pub rate: f64,
    /// Entries an LRU L1 needs to reach the target hit rate; when no size
    /// reaches it (first-time keys alone miss more), the entries that reach
    /// the curve's highest hit ratio (within half a point).
    pub capacity: Option<u64>,
    /// Whether that capacity reaches the target.
    pub reaches_target: bool,
    /// The hit ratio an LRU L1 of that capacity reaches on the sample.
    #[serde(default)]
    pub hit_ratio: Option<f64>,
    /// The highest hit ratio any size reaches (first-time keys always miss).
    pub max_hit_ratio: f64,
    /// What that costs at `entry_bytes` an entry.
    pub memory_bytes: Option<u64>,
    /// The curve: `(entries, hit ratio)`, log-spaced.
    pub curve: Vec<(u64, f64)>,
}

/// The recommendation from `sample` for a `target` hit rate (percent).
pub fn recommend_l1(
    sample: &crate::eval::mrc::ShardsSample,
    target: f64,
    entry_bytes: u64,
) -> Option<L1Recommendation> {
    if sample.len() < MIN_SAMPLED_ACCESSES {
        return None;
    }
    let curve = sample.curve();
    let max_hit_ratio = 1.0 - curve.miss_ratio(u64::MAX);
    let reaches_target = max_hit_ratio >= target / 100.0;
    let capacity = if reaches_target {
        curve.capacity_for(target / 100.0)
    } else {
        curve.capacity_for((max_hit_ratio - 0.005).max(0.0))
    };
    let top = (curve.accesses as u64).clamp(16, 1 << 30);
    Some(L1Recommendation {
        sampled_accesses: sample.len(),
        rate: sample.rate(),
        capacity,
        reaches_target,
        hit_ratio: capacity.map(|c| 1.0 - curve.miss_ratio(c)),
        max_hit_ratio,
        memory_bytes: capacity.map(|c| c.saturating_mul(entry_bytes)),
        curve: curve
            .points(&crate::eval::mrc::log_capacities(top))
            .into_iter()
            .step_by(2)
            .collect(),
    })
}

/// What the sampled keys and the tier timings say about one cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheAdvice {
    /// The L1 size for the target hit rate.
    pub l1: Option<L1Recommendation>,
    /// Which tiers pay off.
    pub tiers: Option<crate::eval::TierChoice>,
}

/// One TTL change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtlChange {
    /// When, Unix ms.
    pub at_ms: u64,
    /// The TTL before, seconds.
    pub from_s: u32,
    /// The TTL after, seconds.
    pub to_s: u32,
    /// The hit rate of the interval that led to it, percent.
    pub hit_rate_before: f64,
    /// Lookups in that interval.
    pub lookups_before: u64,
    /// The hit rate of the interval after it (once known), percent.
    pub hit_rate_after: Option<f64>,
    /// Whether it was applied (`apply` mode) or only recommended.
    pub applied: bool,
    /// Why.
    pub why: String,
}

/// One cache's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheTuningState {
    /// The TTL in force (what the app was last told), seconds.
    pub ttl_s: u32,
    /// What the loop would set next, seconds.
    pub recommended_ttl_s: u32,
    /// The last interval's hits.
    pub hits: u64,
    /// The last interval's misses.
    pub misses: u64,
    /// The last interval's hit rate, percent.
    pub hit_rate: Option<f64>,
    /// The last decision's reason.
    pub why: String,
    /// The changes, oldest first.
    pub changes: VecDeque<TtlChange>,
    /// The L1 size for the target hit rate, from the sampled keys.
    pub l1: Option<L1Recommendation>,
    /// Whether the L1, the L2 or both pay off, from the tiers' timings
    /// (the deciding sidecar's app's).
    #[serde(default)]
    pub tiers: Option<crate::eval::TierChoice>,
}

/// `GET /v1/tuning`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuningReport {
    /// Off, recommend or apply.
    pub mode: FeedbackMode,
    /// The version the ingest answers carry (0: nothing sent yet).
    pub version: u64,
    /// The controller's settings.
    pub control: TtlControl,
    /// When it last decided, Unix ms.
    pub decided_at_ms: Option<u64>,
    /// Each cache.
    pub caches: BTreeMap<String, CacheTuningState>,
}

/// The loop's state (shared as JSON through the fleet store, where one
/// sidecar decides per interval for the whole fleet).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TuningState {
    version: u64,
    caches: BTreeMap<String, CacheTuningState>,
    counted: BTreeMap<String, [u64; 2]>,
    decided_at_ms: Option<u64>,
    answer: Option<TuningAnswer>,
}

impl TuningState {
    /// Takes `cumulative` as the starting point: the first decision counts
    /// only lookups after it.
    pub fn start(&mut self, cumulative: &BTreeMap<String, [u64; 2]>, now_ms: u64) {
        self.counted = cumulative.clone();
        self.decided_at_ms = Some(now_ms);
    }

    /// One decision at `now_ms` from the cumulative `[hits, misses]` per
    /// cache; returns the changes made (or recommended).
    pub fn decide(
        &mut self,
        cumulative: &BTreeMap<String, [u64; 2]>,
        advice: &BTreeMap<String, CacheAdvice>,
        control: &TtlControl,
        mode: FeedbackMode,
        now_ms: u64,
    ) -> Vec<TtlChange> {
        let mut made = Vec::new();
        let mut l1_changed = false;
        for (name, now) in cumulative {
            let before = self.counted.get(name).copied().unwrap_or([0, 0]);
            // A sidecar restart resets the totals: count from zero then.
            let (hits, misses) = if now[0] >= before[0] && now[1] >= before[1] {
                (now[0] - before[0], now[1] - before[1])
            } else {
                (now[0], now[1])
            };
            let cache = self
                .caches
                .entry(name.clone())
                .or_insert_with(|| CacheTuningState {
                    ttl_s: control.initial_ttl_s,
                    recommended_ttl_s: control.initial_ttl_s,
                    hits: 0,
                    misses: 0,
                    hit_rate: None,
                    why: String::new(),
                    changes: VecDeque::new(),
                    l1: None,
                    tiers: None,
                });
            let l1_before = cache.l1.as_ref().and_then(|r| r.capacity);
            let advice = advice.get(name).cloned().unwrap_or_default();
            cache.l1 = advice.l1;
            cache.tiers = advice.tiers;
            let l1_moved = cache.l1.as_ref().and_then(|r| r.capacity) != l1_before;
            let rate = (hits + misses > 0).then(|| hits as f64 * 100.0 / (hits + misses) as f64);
            if let (Some(last), Some(r)) = (cache.changes.back_mut(), rate)
                && last.hit_rate_after.is_none()
                && hits + misses >= control.min_lookups
            {
                last.hit_rate_after = Some(r);
            }
            let step = next_ttl(cache.ttl_s, hits, misses, control);
            if hits + misses >= control.min_lookups {
                // Thin intervals add up until there is enough to judge.
                self.counted.insert(name.clone(), *now);
            }
            cache.hits = hits;
            cache.misses = misses;
            cache.hit_rate = rate;
            cache.recommended_ttl_s = step.ttl_s;
            cache.why = step.why.clone();
            if l1_moved && mode == FeedbackMode::Apply {
                l1_changed = true;
            }
            if step.moved {
                let change = TtlChange {
                    at_ms: now_ms,
                    from_s: cache.ttl_s,
                    to_s: step.ttl_s,
                    hit_rate_before: rate.unwrap_or(0.0),
                    lookups_before: hits + misses,
                    hit_rate_after: None,
                    applied: mode == FeedbackMode::Apply,
                    why: step.why,
                };
                if mode == FeedbackMode::Apply {
                    cache.ttl_s = step.ttl_s;
                    cache.changes.push_back(change.clone());
                    if cache.changes.len() > CHANGES_KEPT {
                        cache.changes.pop_front();
                    }
                }
                made.push(change);
            }
        }
        self.decided_at_ms = Some(now_ms);
        if mode == FeedbackMode::Apply && (!made.is_empty() || l1_changed) {
            self.version += 1;
            self.answer = Some(TuningAnswer {
                version: self.version,
                caches: self
                    .caches
                    .iter()
                    .map(|(name, c)| {
                        (
                            name.clone(),
                            CacheParams {
                                ttl_s: Some(c.ttl_s),
                                l1_capacity: c.l1.as_ref().and_then(|r| r.capacity),
                            },
                        )
                    })
                    .collect(),
                ..Default::default()
            });
        }
        made
    }

    /// Whether it has a starting point (a first decision can be made).
    pub fn started(&self) -> bool {
        self.decided_at_ms.is_some()
    }

    /// What the ingest answers carry (`apply` mode, once a change was made).
    pub fn answer(&self) -> Option<&TuningAnswer> {
        self.answer.as_ref()
    }

    /// The report.
    pub fn report(&self, mode: FeedbackMode, control: &TtlControl) -> TuningReport {
        TuningReport {
            mode,
            version: self.version,
            control: *control,
            decided_at_ms: self.decided_at_ms,
            caches: self.caches.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(hits: u64, misses: u64) -> BTreeMap<String, [u64; 2]> {
        [("/ask".to_owned(), [hits, misses])].into()
    }

    #[test]
    fn apply_changes_the_ttl_and_bumps_the_version_with_before_and_after() {
        let c = TtlControl::default();
        let mut t = TuningState::default();
        // 50 % hits: lengthen.
        let made = t.decide(
            &counts(500, 500),
            &BTreeMap::new(),
            &c,
            FeedbackMode::Apply,
            1_000,
        );
        assert_eq!(made.len(), 1);
        let answer = t.answer().expect("an answer").clone();
        assert_eq!(answer.version, 1);
        let ttl = answer.caches["/ask"].ttl_s.expect("ttl");
        assert!(ttl > c.initial_ttl_s);
        // The next interval: 810 more hits of 1000 (81 %): holds, and the
        // change's "after" is that interval's rate.
        assert!(
            t.decide(
                &counts(1310, 690),
                &BTreeMap::new(),
                &c,
                FeedbackMode::Apply,
                2_000
            )
            .is_empty()
        );
        let r = t.report(FeedbackMode::Apply, &c);
        let cache = &r.caches["/ask"];
        assert_eq!(cache.changes[0].hit_rate_before, 50.0);
        assert_eq!(cache.changes[0].hit_rate_after, Some(81.0));
        assert_eq!(cache.ttl_s, ttl);
        assert_eq!(r.version, 1);
    }

    #[test]
    fn the_l1_recommendation_holds_the_working_set() {
        use crate::eval::mrc::{MODULUS, ShardsSample};
        // 10 keys in a cycle, 100 rounds: every reuse has 9 keys between,
        // so 10 entries hit 99 % (all but the first round).
        let mut s = ShardsSample::new(MODULUS, 100, 10_000);
        for _ in 0..100 {
            for k in 1..=10u64 {
                s.offer(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), MODULUS);
            }
        }
        s.count_accesses(1000);
        let r = recommend_l1(&s, 80.0, 1000).expect("enough accesses");
        assert_eq!((r.capacity, r.reaches_target), (Some(10), true));
        assert_eq!(r.memory_bytes, Some(10_000));
        // 99.5 % is out of reach (10 first-time misses of 1000): the size
        // that reaches the top instead.
        let r = recommend_l1(&s, 99.5, 1000).expect("enough accesses");
        assert_eq!((r.capacity, r.reaches_target), (Some(10), false));
        assert!((r.max_hit_ratio - 0.99).abs() < 1e-9);
    }

    #[test]
    fn thin_intervals_add_up_until_they_are_enough() {
        let c = TtlControl::default();
        let mut t = TuningState::default();
        t.start(&counts(0, 0), 0);
        // 60 lookups, then 60 more: the second decision judges all 120.
        assert!(
            t.decide(
                &counts(30, 30),
                &BTreeMap::new(),
                &c,
                FeedbackMode::Apply,
                1
            )
            .is_empty()
        );
        let made = t.decide(
            &counts(60, 60),
            &BTreeMap::new(),
            &c,
            FeedbackMode::Apply,
            2,
        );
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].lookups_before, 120);
    }

    #[test]
    fn recommend_reports_and_never_answers() {
        let c = TtlControl::default();
        let mut t = TuningState::default();
        let made = t.decide(
            &counts(500, 500),
            &BTreeMap::new(),
            &c,
            FeedbackMode::Recommend,
            1_000,
        );
        assert!(!made[0].applied);
        assert!(t.answer().is_none());
        let cache = &t.report(FeedbackMode::Recommend, &c).caches["/ask"];
        assert_eq!(cache.ttl_s, c.initial_ttl_s);
        assert!(cache.recommended_ttl_s > c.initial_ttl_s);
    }
}
