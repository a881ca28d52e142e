//! Miss-ratio curves from sampled keys: SHARDS (Waldspurger et al.,
//! "Efficient MRC Construction with SHARDS", FAST '15) over Mattson's
//! stack distances. A key is in the sample when its spatial value
//! `t = hash >> 40` (24 bits of a well-mixed 64-bit hash) is below the
//! threshold `T`: every access to a sampled key is kept, so reuse
//! distances among sampled keys are the full trace's scaled by the rate
//! `R = T / 2^24`. The fixed-size variant keeps at most `s_max` distinct
//! keys: when a new one would exceed it, `T` drops to the largest `t` held
//! and the keys at or above it leave with their accesses.
//!
//! An LRU cache of `c` entries hits an access whose stack distance (the
//! distinct keys touched since the key's previous access) is below `c`.

use std::collections::HashMap;

use serde::Serialize;

/// The spatial-hash modulus: 24 bits.
pub const MODULUS: u32 = 1 << 24;

/// A key's spatial value: the top 24 bits of its (mixed) hash.
pub fn spatial_value(hash: u64) -> u32 {
    (hash >> 40) as u32
}

/// A fixed-size SHARDS sample of an access trace.
#[derive(Debug, Clone)]
pub struct ShardsSample {
    threshold: u32,
    max_keys: usize,
    max_accesses: usize,
    /// Sampled accesses, oldest first.
    trace: Vec<u64>,
    /// Distinct keys held and their spatial values.
    keys: HashMap<u64, u32>,
    /// Accesses of the whole trace (sampled or not) that the held ones
    /// stand for, for SHARDS_adj.
    total: f64,
}

impl ShardsSample {
    /// A sample at threshold `threshold` (of [`MODULUS`]) holding at most
    /// `max_keys` distinct keys and the latest `max_accesses` accesses.
    pub fn new(threshold: u32, max_keys: usize, max_accesses: usize) -> Self {
        Self {
            threshold: threshold.min(MODULUS),
            max_keys: max_keys.max(1),
            max_accesses: max_accesses.max(1),
            trace: Vec::new(),
            keys: HashMap::new(),
            total: 0.0,
        }
    }

    /// Counts `n` accesses of the whole trace (sampled or not).
    pub fn count_accesses(&mut self, n: u64) {
        self.total += n as f64;
    }

    /// Adds one interval's sample as a sender shipped it: its accesses at
    /// its threshold, and the lookups they stand for. When the sender's
    /// buffer overflowed (`dropped` accesses), only the share of the
    /// interval the kept accesses cover is counted, so SHARDS_adj does not
    /// take the dropped accesses for keys the sample missed.
    pub fn add_interval(&mut self, keys: &lumen_middleware::wire::KeySample) {
        let kept = keys.accesses.len() as f64;
        let covered = if keys.dropped == 0 {
            keys.lookups as f64
        } else {
            keys.lookups as f64 * kept / (kept + keys.dropped as f64)
        };
        self.total += covered;
        for hash in &keys.accesses {
            self.offer(*hash, keys.threshold);
        }
    }

    /// The sampling rate in force.
    pub fn rate(&self) -> f64 {
        f64::from(self.threshold) / f64::from(MODULUS)
    }

    /// Sampled accesses held.
    pub fn len(&self) -> usize {
        self.trace.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.trace.is_empty()
    }

    /// Offers one access to key `hash` (a sender may have sampled it at
    /// `sender_threshold` already: the lower threshold wins).
    pub fn offer(&mut self, hash: u64, sender_threshold: u32) {
        if sender_threshold < self.threshold {
            self.lower_to(sender_threshold);
        }
        let t = spatial_value(hash);
        if t >= self.threshold {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.keys.entry(hash) {
            e.insert(t);
            if self.keys.len() > self.max_keys {
                let top = self.keys.values().copied().max().unwrap_or(0);
                self.lower_to(top);
                if t >= self.threshold {
                    return;
                }
            }
        }
        self.trace.push(hash);
        if self.trace.len() > self.max_accesses * 2 {
            let cut = self.trace.len() - self.max_accesses;
            // The whole trace's count shrinks in step with the sample's.
            self.total *= self.max_accesses as f64 / self.trace.len() as f64;
            self.trace.drain(..cut);
            let held: std::collections::HashSet<u64> = self.trace.iter().copied().collect();
            self.keys.retain(|k, _| held.contains(k));
        }
    }

    fn lower_to(&mut self, threshold: u32) {
        self.threshold = threshold;
        self.keys.retain(|_, t| *t < threshold);
        let keys = &self.keys;
        self.trace.retain(|k| keys.contains_key(k));
    }

    /// The miss-ratio curve of the held accesses, scaled to the full
    /// trace, with SHARDS_adj's correction when the whole trace's count is
    /// known: the sample's shortfall (or excess) against the expected
    /// `total × rate` accesses is taken as hits at distance 0, which is
    /// where the frequent keys a sample happens to miss (or catch) land.
    pub fn curve(&self) -> MissRatioCurve {
        let start = self.trace.len().saturating_sub(self.max_accesses);
        let held = &self.trace[start..];
        let mut curve = MissRatioCurve::from_trace(held, self.rate());
        if self.total > 0.0 {
            let share = held.len() as f64 / self.trace.len().max(1) as f64;
            curve.adjust(self.total * share * self.rate());
        }
        curve
    }
}

/// Stack distances of `trace` (`None` for a first access).
pub fn stack_distances(trace: &[u64]) -> Vec<Option<u64>> {
    // A Fenwick tree over positions marks each key's latest access; the
    // distance of an access is the marks strictly between it and the key's
    // previous access.
    let n = trace.len();
    let mut tree = vec![0i64; n + 1];
    let add = |tree: &mut Vec<i64>, mut i: usize, v: i64| {
        i += 1;
        while i <= n {
            tree[i] += v;
            i += i & i.wrapping_neg();
        }
    };
    let prefix = |tree: &Vec<i64>, mut i: usize| -> i64 {
        // Sum over positions [0, i).
        let mut s = 0;
        while i > 0 {
            s += tree[i];
            i -= i & i.wrapping_neg();
        }
        s
    };
    let mut last: HashMap<u64, usize> = HashMap::with_capacity(n / 4);
    let mut out = Vec::with_capacity(n);
    for (i, key) in trace.iter().enumerate() {
        match last.insert(*key, i) {
            Some(j) => {
                let between = prefix(&tree, i) - prefix(&tree, j + 1);
                out.push(Some(between as u64));
                add(&mut tree, j, -1);
            }
            None => out.push(None),
        }
        add(&mut tree, i, 1);
    }
    out
}

/// A miss-ratio curve: for LRU caches of each size, the share of accesses
/// that miss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissRatioCurve {
    /// Accesses the curve stands for (sampled accesses ÷ rate).
    pub accesses: f64,
    /// The sampling rate.
    pub rate: f64,
    /// Scaled stack distances, ascending (first accesses left out).
    distances: Vec<f64>,
    /// First accesses (cold misses), sampled.
    cold: usize,
    /// Sampled accesses (the denominator: after SHARDS_adj, the expected count).
    sampled: f64,
    /// Hits at distance 0 added (or, negative, removed) by SHARDS_adj.
    adjusted: f64,
}

impl MissRatioCurve {
    /// The curve of `trace` sampled at `rate` (1 for a whole trace).
    pub fn from_trace(trace: &[u64], rate: f64) -> Self {
        let mut distances = Vec::with_capacity(trace.len());
        let mut cold = 0;
        for d in stack_distances(trace) {
            match d {
                Some(d) => distances.push(d as f64 / rate),
                None => cold += 1,
            }
        }
        distances.sort_by(f64::total_cmp);
        Self {
            accesses: trace.len() as f64 / rate,
            rate,
            distances,
            cold,
            sampled: trace.len() as f64,
            adjusted: 0.0,
        }
    }

    /// SHARDS_adj: the sample should hold `expected` accesses; the
    /// difference counts as hits at distance 0.
    pub fn adjust(&mut self, expected: f64) {
        if expected > 0.0 {
            self.adjusted = expected - self.sampled;
            self.sampled = expected;
            self.accesses = expected / self.rate;
        }
    }

    /// Hits of an LRU cache of `capacity` entries, in sampled accesses. A
    /// sampled stack distance `d` stands for true distances from `d ÷ R`
    /// up to `(d + 1) ÷ R` (one sampled key is `1 ÷ R` keys), taken as
    /// spread evenly: a cache inside that span hits the share of it it
    /// covers. SHARDS_adj's hits sit at distance 0, so they too count in
    /// full only from `1 ÷ R` entries up (a one-entry cache does not hit
    /// every access to the hot keys a sample happened to miss).
    fn hits_below(&self, capacity: f64) -> f64 {
        if capacity <= 0.0 {
            return 0.0;
        }
        let step = 1.0 / self.rate;
        let whole = self.distances.partition_point(|d| *d + step <= capacity);
        let partial: f64 = self.distances[whole..]
            .iter()
            .take_while(|d| **d < capacity)
            .map(|d| (capacity - d) / step)
            .sum();
        let adjusted = self.adjusted * (capacity / step).min(1.0);
        (whole as f64 + partial + adjusted).max(0.0)
    }

    /// The miss ratio of an LRU cache of `capacity` entries, 0 to 1.
    pub fn miss_ratio(&self, capacity: u64) -> f64 {
        if self.sampled <= 0.0 {
            return 1.0;
        }
        (1.0 - self.hits_below(capacity as f64) / self.sampled).clamp(0.0, 1.0)
    }

    /// The smallest capacity whose hit ratio (1 − miss ratio) reaches
    /// `target` (0 to 1); `None` when no size does (cold misses alone
    /// exceed the rest).
    pub fn capacity_for(&self, target: f64) -> Option<u64> {
        if self.sampled <= 0.0 {
            return None;
        }
        let reaches = |c: u64| 1.0 - self.miss_ratio(c) >= target;
        // Past the largest distance and one step, every hit counts.
        let top = self.distances.last().copied().unwrap_or(0.0) + 1.0 / self.rate;
        let mut high = (top.ceil() as u64).max(1) + 1;
        if !reaches(high) {
            return None;
        }
        let mut low = 1;
        while low < high {
            let mid = low + (high - low) / 2;
            if reaches(mid) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        Some(low)
    }

    /// Points of the curve at `capacities`: `(capacity, hit ratio)`.
    pub fn points(&self, capacities: &[u64]) -> Vec<(u64, f64)> {
        capacities
            .iter()
            .map(|c| (*c, 1.0 - self.miss_ratio(*c)))
            .collect()
    }
}

/// Capacities from 1 to `max`, log-spaced (about 4 per doubling).
pub fn log_capacities(max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut c = 1.0_f64;
    while (c as u64) <= max {
        let v = c.round() as u64;
        if out.last() != Some(&v) {
            out.push(v);
        }
        c *= 2f64.powf(0.25);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_distances_count_distinct_keys_between() {
        // a b c a b b: a's second access saw b, c; b's saw c, a; b's last saw none.
        let d = stack_distances(&[1, 2, 3, 1, 2, 2]);
        assert_eq!(d, [None, None, None, Some(2), Some(2), Some(0)]);
        let curve = MissRatioCurve::from_trace(&[1, 2, 3, 1, 2, 2], 1.0);
        // One entry holds only the repeated b; three hold every reuse.
        assert!((curve.miss_ratio(1) - 5.0 / 6.0).abs() < 1e-12);
        assert!((curve.miss_ratio(3) - 0.5).abs() < 1e-12);
        assert_eq!(curve.capacity_for(0.5), Some(3));
        assert_eq!(
            curve.capacity_for(0.6),
            None,
            "cold misses cap the hit ratio at 1/2"
        );
    }

    #[test]
    fn the_recommended_capacity_reaches_its_target_on_its_own_curve() {
        // A sample with more accesses than expected (a negative
        // adjustment) and one with fewer: the capacity named for a target
        // reaches it on the curve it came from, and one less does not.
        let trace: Vec<u64> = (0..4_000u64)
            .map(|i| (i * 7919) % 97 + (i % 5) * 1_000)
            .collect();
        for expected in [2_500.0, 4_000.0, 6_000.0] {
            let mut curve = MissRatioCurve::from_trace(&trace, 1.0);
            curve.adjust(expected);
            for target in [0.3, 0.5, 0.8] {
                let Some(c) = curve.capacity_for(target) else {
                    continue;
                };
                let hit = 1.0 - curve.miss_ratio(c);
                assert!(hit >= target - 1e-9, "{expected}: {target} at {c}: {hit}");
                if c > 1 {
                    let below = 1.0 - curve.miss_ratio(c - 1);
                    assert!(
                        below < target,
                        "{expected}: {c} - 1 already reaches {target}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_fixed_size_sample_lowers_its_threshold_to_stay_in_bounds() {
        let mut s = ShardsSample::new(MODULUS, 10, 1000);
        for k in 0..100u64 {
            s.offer(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), MODULUS);
        }
        assert!(s.keys.len() <= 10);
        assert!(s.rate() < 0.2, "{}", s.rate());
        assert!(s.trace.iter().all(|k| spatial_value(*k) < s.threshold));
    }
}
