//! The adaptive TTL: a controller that moves a cache's TTL toward a target
//! hit rate, one step per interval, by stochastic approximation on the
//! observed hit rate (in the spirit of d-TTL, Basu et al., "Adaptive
//! TTL-Based Caching for Content Delivery"): the TTL's logarithm moves by
//! a gain times the miss of the target, so the step is proportional to the
//! error and to the TTL's scale. It holds inside a dead band (hysteresis),
//! moves at most by a factor per interval, stays within its bounds, and
//! does not move on thin data.
//!
//! A TTL cache's hit rate rises with the TTL (for Poisson requests of rate
//! λ to a key, λT ÷ (1 + λT)), so the iteration settles where the hit rate
//! meets the target, or at a bound when the target is out of reach.

use serde::{Deserialize, Serialize};

/// The target hit rate: 80 %.
pub const DEFAULT_TARGET_HIT_RATE: f64 = 80.0;
/// The TTL's bounds: 60 s to 3600 s.
pub const DEFAULT_TTL_MIN_S: u32 = 60;
/// The TTL's bounds: 60 s to 3600 s.
pub const DEFAULT_TTL_MAX_S: u32 = 3600;
/// Where a cache starts before the loop moves it.
pub const DEFAULT_INITIAL_TTL_S: u32 = 300;
/// Gain: the log-TTL moves by this times the error (hit-rate points ÷ 100).
pub const DEFAULT_GAIN: f64 = 3.0;
/// No move while the hit rate is within this many points of the target.
pub const DEFAULT_DEAD_BAND: f64 = 2.0;
/// At most ×2 or ÷2 per interval.
pub const DEFAULT_MAX_FACTOR: f64 = 2.0;
/// Fewer lookups than this in an interval is too little data to move on.
pub const DEFAULT_MIN_LOOKUPS: u64 = 100;

/// The controller's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TtlControl {
    /// Target hit rate, percent.
    pub target_hit_rate: f64,
    /// Lowest TTL, seconds.
    pub ttl_min_s: u32,
    /// Highest TTL, seconds.
    pub ttl_max_s: u32,
    /// Starting TTL, seconds.
    pub initial_ttl_s: u32,
    /// Gain on the log-TTL per point of error ÷ 100.
    pub gain: f64,
    /// Dead band, hit-rate points.
    pub dead_band: f64,
    /// Largest factor per interval (≥ 1).
    pub max_factor: f64,
    /// Lookups an interval needs before the TTL moves.
    pub min_lookups: u64,
}

impl Default for TtlControl {
    fn default() -> Self {
        Self {
            target_hit_rate: DEFAULT_TARGET_HIT_RATE,
            ttl_min_s: DEFAULT_TTL_MIN_S,
            ttl_max_s: DEFAULT_TTL_MAX_S,
            initial_ttl_s: DEFAULT_INITIAL_TTL_S,
            gain: DEFAULT_GAIN,
            dead_band: DEFAULT_DEAD_BAND,
            max_factor: DEFAULT_MAX_FACTOR,
            min_lookups: DEFAULT_MIN_LOOKUPS,
        }
    }
}

/// One interval's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtlStep {
    /// The TTL for the next interval, seconds.
    pub ttl_s: u32,
    /// Whether it differs from the current one.
    pub moved: bool,
    /// Why (or why not).
    pub why: String,
}

/// The next TTL from `current_s` after an interval of `hits` and `misses`.
pub fn next_ttl(current_s: u32, hits: u64, misses: u64, c: &TtlControl) -> TtlStep {
    let current = current_s.clamp(c.ttl_min_s, c.ttl_max_s);
    let lookups = hits + misses;
    let hold = |why: String| TtlStep {
        ttl_s: current,
        moved: current != current_s,
        why,
    };
    // No lookup at all is too little data whatever the setting: a hit rate
    // of 0 ÷ 0 would move the TTL by NaN.
    if lookups == 0 || lookups < c.min_lookups {
        return hold(format!(
            "{lookups} lookups, fewer than {}: too little data to move",
            c.min_lookups
        ));
    }
    let rate = hits as f64 * 100.0 / lookups as f64;
    let error = c.target_hit_rate - rate;
    if error.abs() <= c.dead_band {
        return hold(format!(
            "hit rate {rate:.1}% within {} points of the {}% target",
            c.dead_band, c.target_hit_rate
        ));
    }
    let factor = (c.gain * error / 100.0)
        .exp()
        .clamp(1.0 / c.max_factor, c.max_factor);
    // Clamped as a whole number: whatever the float, the TTL stays in
    // its bounds (a NaN would otherwise become 0 s).
    let next = ((f64::from(current) * factor).round() as u32).clamp(c.ttl_min_s, c.ttl_max_s);
    if next == current {
        return hold(format!(
            "hit rate {rate:.1}% vs the {}% target, but the TTL is at its bound ({current} s)",
            c.target_hit_rate
        ));
    }
    TtlStep {
        ttl_s: next,
        moved: true,
        why: format!(
            "hit rate {rate:.1}% vs the {}% target: TTL {current} s → {next} s",
            c.target_hit_rate
        ),
    }
}

/// The hit rate of a TTL cache (entries expire `ttl_s` after they are
/// written on a miss) under independent Poisson requests: key `k` takes a
/// `share` of `rate_per_s` requests; each such key's hit ratio is
/// λT ÷ (1 + λT). The controller's fixed point, for checking it.
pub fn poisson_ttl_hit_rate(shares: &[f64], rate_per_s: f64, ttl_s: f64) -> f64 {
    shares
        .iter()
        .map(|p| {
            let lt = p * rate_per_s * ttl_s;
            p * lt / (1.0 + lt)
        })
        .sum::<f64>()
        * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_without_lookups_never_moves_the_ttl_to_zero() {
        let c = TtlControl {
            min_lookups: 0,
            ..TtlControl::default()
        };
        let step = next_ttl(300, 0, 0, &c);
        assert_eq!(step.ttl_s, 300, "{step:?}");
        assert!(!step.moved);
        assert!(!step.why.contains("NaN"), "{}", step.why);
        // Unset (0) in the state: held at the lower bound, never 0.
        assert_eq!(next_ttl(0, 0, 0, &c).ttl_s, c.ttl_min_s);
        assert!(next_ttl(0, 5, 5, &c).ttl_s >= c.ttl_min_s);
    }

    #[test]
    fn below_target_lengthens_above_shortens_within_band_holds() {
        let c = TtlControl::default();
        let up = next_ttl(300, 600, 400, &c); // 60 %
        assert!(up.moved && up.ttl_s > 300, "{up:?}");
        // exp(3 × 0.2) = 1.82.
        assert_eq!(up.ttl_s, 547);
        let down = next_ttl(300, 990, 10, &c); // 99 %
        assert!(down.moved && down.ttl_s < 300, "{down:?}");
        assert!(!next_ttl(300, 810, 190, &c).moved);
        assert!(!next_ttl(300, 10, 80, &c).moved, "thin");
    }

    #[test]
    fn steps_are_bounded() {
        let c = TtlControl::default();
        // 0 % hits: exp(2.4) = 11, capped at ×2.
        assert_eq!(next_ttl(300, 0, 1000, &c).ttl_s, 600);
        assert_eq!(next_ttl(3000, 0, 1000, &c).ttl_s, 3600);
        assert!(!next_ttl(3600, 0, 1000, &c).moved);
        assert_eq!(next_ttl(100, 1000, 0, &c).ttl_s, 60);
        // A TTL outside the bounds is brought inside.
        assert_eq!(next_ttl(10_000, 10, 1, &c).ttl_s, 3600);
    }

    #[test]
    fn the_poisson_hit_rate_rises_with_the_ttl() {
        let shares = [0.5, 0.3, 0.2];
        let h = |t| poisson_ttl_hit_rate(&shares, 1.0, t);
        assert!(h(10.0) < h(100.0) && h(100.0) < h(1000.0));
        // One key at 1/s, T = 1 s: half the requests hit.
        assert!((poisson_ttl_hit_rate(&[1.0], 1.0, 1.0) - 50.0).abs() < 1e-12);
    }
}
