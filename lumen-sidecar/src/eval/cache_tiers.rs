//! Which cache tiers pay off: an in-process L1, a shared L2 (Redis), both
//! or none, from the measured mean time of a lookup in each tier and the
//! hit rates each would reach.
//!
//! A lookup's expected time, with `t1`, `t2` the L1's and L2's mean lookup
//! times (hit or miss), `o` the origin's mean fetch, `h` the hit rate of
//! the shared cache (the service's observed hit rate: an L1 in front of
//! it, filled with the same TTL, never holds what the L2 has let expire)
//! and `h1 ≤ h` the L1's:
//!
//! | tiers | expected time |
//! | --- | --- |
//! | none | `o` |
//! | L1 | `t1 + (1 − h1)·o` |
//! | L2 | `t2 + (1 − h)·o` |
//! | L1 and L2 | `t1 + (1 − h1)·t2 + (1 − h)·o` |
//!
//! The fastest layout wins unless one with fewer tiers comes within
//! [`MIN_SAVING`] of it: a tier must earn its memory and its moving parts.
//!
//! ```
//! use lumen_middleware::wire::{TierTime, TierTimes};
//! use lumen_sidecar::eval::{TierLayout, choose_tiers};
//! // 1000 L1 lookups at 2 µs, 400 Redis lookups at 0.8 ms, 150 origin
//! // fetches at 40 ms; 85 % of lookups hit Redis, 60 % would hit the L1.
//! let timed = TierTimes {
//!     l1: TierTime { lookups: 1000, total_us: 2_000 },
//!     l2: TierTime { lookups: 400, total_us: 320_000 },
//!     origin: TierTime { lookups: 150, total_us: 6_000_000 },
//! };
//! let choice = choose_tiers(&timed, 0.85, Some(0.60));
//! assert_eq!(choice.best, Some(TierLayout::L1AndL2));
//! ```

use serde::{Deserialize, Serialize};

/// The share of a lookup's expected time a tier must save to be kept over
/// a layout with fewer tiers: 5 %.
pub const MIN_SAVING: f64 = 0.05;
/// Timed lookups a tier's mean needs before it is trusted.
pub const MIN_TIER_LOOKUPS: u64 = 20;

/// Where an app's lookups can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierLayout {
    /// No cache: every lookup goes to the origin.
    None,
    /// An in-process cache only.
    L1,
    /// A shared cache only.
    L2,
    /// The in-process cache in front of the shared one.
    L1AndL2,
}

impl TierLayout {
    /// Every layout, fewest tiers first.
    pub const ALL: [TierLayout; 4] = [Self::None, Self::L1, Self::L2, Self::L1AndL2];

    /// Tiers the layout runs.
    pub fn tiers(self) -> u32 {
        match self {
            Self::None => 0,
            Self::L1 | Self::L2 => 1,
            Self::L1AndL2 => 2,
        }
    }

    /// Its name in prose.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "no cache",
            Self::L1 => "L1 only",
            Self::L2 => "L2 only",
            Self::L1AndL2 => "L1 and L2",
        }
    }
}

/// Mean time of one lookup per tier, µs (`None`: not measured, or on too
/// few lookups).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TierMeans {
    /// The in-process cache's lookup.
    pub l1_us: Option<f64>,
    /// The shared cache's lookup.
    pub l2_us: Option<f64>,
    /// The origin's fetch.
    pub origin_us: Option<f64>,
}

impl TierMeans {
    /// Means from cumulative timings; a tier with fewer than
    /// [`MIN_TIER_LOOKUPS`] lookups has none.
    pub fn of(times: &lumen_middleware::wire::TierTimes) -> Self {
        let mean = |t: &lumen_middleware::wire::TierTime| {
            (t.lookups >= MIN_TIER_LOOKUPS)
                .then(|| t.mean_us())
                .flatten()
        };
        Self {
            l1_us: mean(&times.l1),
            l2_us: mean(&times.l2),
            origin_us: mean(&times.origin),
        }
    }
}

/// One layout's expected lookup time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayoutCost {
    /// The layout.
    pub layout: TierLayout,
    /// Expected time of one lookup, µs.
    pub expected_us: f64,
}

/// The comparison and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierChoice {
    /// The timings it rests on.
    pub timed: lumen_middleware::wire::TierTimes,
    /// Their means (of tiers with enough lookups).
    pub means: TierMeans,
    /// The shared cache's hit rate used, percent.
    pub hit_rate: f64,
    /// The L1's hit rate used, percent (`None`: unknown).
    pub l1_hit_rate: Option<f64>,
    /// Every layout the measurements can price, fastest first.
    pub layouts: Vec<LayoutCost>,
    /// The layout that pays off (`None`: the origin's time is not measured).
    pub best: Option<TierLayout>,
    /// Why, in one sentence.
    pub why: String,
}

/// Compares the layouts the timings can price: `hit_rate` is the shared
/// cache's (0–1), `l1_hit_rate` the L1's at the size it would run (0–1;
/// capped at `hit_rate`).
pub fn choose_tiers(
    timed: &lumen_middleware::wire::TierTimes,
    hit_rate: f64,
    l1_hit_rate: Option<f64>,
) -> TierChoice {
    let means = &TierMeans::of(timed);
    let h = hit_rate.clamp(0.0, 1.0);
    let h1 = l1_hit_rate.map(|r| r.clamp(0.0, 1.0).min(h));
    let mut choice = TierChoice {
        timed: *timed,
        means: *means,
        hit_rate: h * 100.0,
        l1_hit_rate: h1.map(|r| r * 100.0),
        layouts: Vec::new(),
        best: None,
        why: String::new(),
    };
    let Some(o) = means.origin_us else {
        choice.why = format!(
            "the origin's fetch time is not measured yet (at least {MIN_TIER_LOOKUPS} timed fetches)"
        );
        return choice;
    };
    let l1 = means.l1_us.zip(h1);
    for layout in TierLayout::ALL {
        let expected = match layout {
            TierLayout::None => Some(o),
            TierLayout::L1 => l1.map(|(t1, h1)| t1 + (1.0 - h1) * o),
            TierLayout::L2 => means.l2_us.map(|t2| t2 + (1.0 - h) * o),
            TierLayout::L1AndL2 => l1
                .zip(means.l2_us)
                .map(|((t1, h1), t2)| t1 + (1.0 - h1) * t2 + (1.0 - h) * o),
        };
        if let Some(expected_us) = expected {
            choice.layouts.push(LayoutCost {
                layout,
                expected_us,
            });
        }
    }
    choice
        .layouts
        .sort_by(|a, b| a.expected_us.total_cmp(&b.expected_us));
    let fastest = choice.layouts[0];
    // The fewest tiers within MIN_SAVING of the fastest (the faster on a tie).
    let best = choice
        .layouts
        .iter()
        .filter(|c| c.expected_us <= fastest.expected_us * (1.0 + MIN_SAVING))
        .min_by_key(|c| c.layout.tiers())
        .copied()
        .unwrap_or(fastest);
    let unpriced: Vec<&str> = TierLayout::ALL
        .iter()
        .filter(|l| !choice.layouts.iter().any(|c| c.layout == **l))
        .map(|l| l.as_str())
        .collect();
    let others: Vec<String> = choice
        .layouts
        .iter()
        .filter(|c| c.layout != best.layout)
        .map(|c| format!("{} {}", c.layout.as_str(), ms(c.expected_us)))
        .collect();
    choice.why = format!(
        "{}: {} a lookup{}{}{}",
        best.layout.as_str(),
        ms(best.expected_us),
        if others.is_empty() {
            String::new()
        } else {
            format!(" against {}", others.join(", "))
        },
        if best.layout != fastest.layout {
            format!(
                " ({} saves less than {:.0} %)",
                fastest.layout.as_str(),
                MIN_SAVING * 100.0
            )
        } else {
            String::new()
        },
        if unpriced.is_empty() {
            String::new()
        } else {
            format!("; not priced (tier not timed): {}", unpriced.join(", "))
        },
    );
    choice.best = Some(best.layout);
    choice
}

fn ms(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lumen_middleware::wire::{TierTime, TierTimes};

    fn means(l1: Option<f64>, l2: Option<f64>, origin: Option<f64>) -> TierMeans {
        TierMeans {
            l1_us: l1,
            l2_us: l2,
            origin_us: origin,
        }
    }

    /// Timings of 100 lookups a tier at the given means (none: not timed).
    fn timed(l1: Option<f64>, l2: Option<f64>, origin: Option<f64>) -> TierTimes {
        let tier = |mean: Option<f64>| {
            mean.map_or(TierTime::default(), |m| TierTime {
                lookups: 100,
                total_us: (m * 100.0) as u64,
            })
        };
        TierTimes {
            l1: tier(l1),
            l2: tier(l2),
            origin: tier(origin),
        }
    }

    fn expected(c: &TierChoice, layout: TierLayout) -> f64 {
        c.layouts
            .iter()
            .find(|l| l.layout == layout)
            .unwrap_or_else(|| panic!("{layout:?} priced: {c:?}"))
            .expected_us
    }

    #[test]
    fn the_formulas_price_each_layout() {
        let c = choose_tiers(
            &timed(Some(2.0), Some(800.0), Some(40_000.0)),
            0.85,
            Some(0.6),
        );
        assert_eq!(expected(&c, TierLayout::None), 40_000.0);
        assert!((expected(&c, TierLayout::L1) - (2.0 + 0.4 * 40_000.0)).abs() < 1e-6);
        assert!((expected(&c, TierLayout::L2) - (800.0 + 0.15 * 40_000.0)).abs() < 1e-6);
        assert!(
            (expected(&c, TierLayout::L1AndL2) - (2.0 + 0.4 * 800.0 + 0.15 * 40_000.0)).abs()
                < 1e-6
        );
        assert_eq!(c.best, Some(TierLayout::L1AndL2));
        assert!(
            c.layouts
                .windows(2)
                .all(|w| w[0].expected_us <= w[1].expected_us)
        );
        assert!(
            c.why.starts_with("L1 and L2: 6.3 ms a lookup against"),
            "{}",
            c.why
        );
    }

    #[test]
    fn an_l1_that_holds_what_redis_holds_makes_redis_dead_weight() {
        // One instance whose L1 reaches the shared hit rate: the L2 adds
        // its round trip to every L1 miss and saves nothing.
        let c = choose_tiers(
            &timed(Some(3.0), Some(900.0), Some(20_000.0)),
            0.8,
            Some(0.8),
        );
        assert_eq!(c.best, Some(TierLayout::L1), "{}", c.why);
    }

    #[test]
    fn a_cache_slower_than_the_origin_does_not_pay() {
        // A remote cache at 5 ms in front of a 4 ms origin.
        let c = choose_tiers(&timed(None, Some(5_000.0), Some(4_000.0)), 0.5, None);
        assert_eq!(c.best, Some(TierLayout::None), "{}", c.why);
        assert!(
            c.why
                .contains("not priced (tier not timed): L1 only, L1 and L2")
        );
    }

    #[test]
    fn a_tier_that_saves_under_five_percent_is_left_out() {
        // An L1 that answers 2 % of lookups: L2 alone 500 + 0.2·10000 =
        // 2500 µs, both 5 + 0.98·500 + 2000 = 2495 µs. Keep one tier.
        let c = choose_tiers(
            &timed(Some(5.0), Some(500.0), Some(10_000.0)),
            0.8,
            Some(0.02),
        );
        assert!(expected(&c, TierLayout::L1AndL2) < expected(&c, TierLayout::L2));
        assert_eq!(c.best, Some(TierLayout::L2), "{}", c.why);
        assert!(c.why.contains("L1 and L2 saves less than 5 %"), "{}", c.why);
    }

    #[test]
    fn without_the_origin_nothing_is_chosen_and_the_l1_is_capped_by_the_ttl() {
        let c = choose_tiers(&timed(Some(2.0), Some(800.0), None), 0.9, Some(0.5));
        assert_eq!(c.best, None);
        assert!(c.layouts.is_empty());
        assert!(c.why.contains("origin"), "{}", c.why);
        let c = choose_tiers(&timed(Some(2.0), None, Some(1_000.0)), 0.3, Some(0.9));
        assert_eq!(c.l1_hit_rate, Some(30.0));
    }

    #[test]
    fn means_need_enough_lookups() {
        let m = TierMeans::of(&TierTimes {
            l1: TierTime {
                lookups: MIN_TIER_LOOKUPS,
                total_us: MIN_TIER_LOOKUPS * 3,
            },
            l2: TierTime {
                lookups: MIN_TIER_LOOKUPS - 1,
                total_us: 10_000,
            },
            origin: TierTime::default(),
        });
        assert_eq!(m, means(Some(3.0), None, None));
    }
}
