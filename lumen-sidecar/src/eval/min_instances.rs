//! Min instances from cold-start evidence: every instance start is a cold
//! start; keeping `k` instances warm (Cloud Run's service-level
//! `scaling.minInstanceCount`) would have avoided each start that found
//! fewer than `k` instances running. Its cost is the instance-time the `k`
//! warm instances would have spent beyond what ran anyway, at the cost
//! model's rate (an upper bound: Cloud Run bills an idle min instance at a
//! lower rate), scaled to a month.

use serde::Serialize;

use super::roi::MONTH_S;

/// Share of cold starts the recommendation avoids by default.
pub const DEFAULT_AVOID_SHARE: f64 = 0.9;
/// The most min instances considered.
pub const MAX_MIN_INSTANCES: u32 = 100;

/// One instance's life, Unix ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifetime {
    /// When it started.
    pub start_ms: u64,
    /// When it was last seen (or now, if running).
    pub end_ms: u64,
    /// P95 latency of its first two minutes, ms, when known.
    pub cold_p95_ms: Option<f64>,
    /// P95 latency after them, ms, when known.
    pub warm_p95_ms: Option<f64>,
}

/// What keeping `min_instances` warm would have done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinInstancesOption {
    /// Instances kept warm.
    pub min_instances: u32,
    /// Cold starts it would have avoided.
    pub cold_starts_avoided: u64,
    /// Their share of all cold starts.
    pub avoided_share: f64,
    /// What it adds a month, USD (instance-time beyond what ran anyway).
    pub extra_monthly_usd: f64,
}

/// The advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinInstancesAdvice {
    /// The evidence's window, Unix ms.
    pub from_ms: u64,
    /// Its end.
    pub to_ms: u64,
    /// Instance starts in it.
    pub cold_starts: u64,
    /// The most instances running at once.
    pub peak_instances: u32,
    /// What a cold start costs: the mean P95 of instances' first two
    /// minutes against the mean P95 after them, ms (when instances said).
    pub cold_p95_ms: Option<f64>,
    /// The warm P95 it is held against, ms.
    pub warm_p95_ms: Option<f64>,
    /// The user's floor (never recommended below).
    pub floor: u32,
    /// The share of cold starts to avoid.
    pub avoid_share: f64,
    /// The recommendation.
    pub recommended: u32,
    /// Each option from the floor to the recommendation (and one past it).
    pub options: Vec<MinInstancesOption>,
    /// Why.
    pub why: String,
}

/// Instances running at each change, as `(time, running)` steps over `[from, to]`.
fn running_steps(lives: &[Lifetime], from: u64, to: u64) -> Vec<(u64, i64)> {
    let mut events: Vec<(u64, i64)> = Vec::new();
    for l in lives {
        let (s, e) = (l.start_ms.max(from), l.end_ms.min(to));
        if s < e {
            events.push((s, 1));
            events.push((e, -1));
        }
    }
    events.sort_unstable();
    events
}

/// Seconds of instance-time `k` warm instances add over `[from, to]`:
/// ∫ max(0, k − running(t)) dt.
fn extra_instance_seconds(lives: &[Lifetime], from: u64, to: u64, k: u32) -> f64 {
    let mut running = 0_i64;
    let mut at = from;
    let mut idle_ms = 0_u64;
    for (t, d) in running_steps(lives, from, to) {
        idle_ms += (i64::from(k) - running).max(0) as u64 * (t - at);
        running += d;
        at = t;
    }
    idle_ms += (i64::from(k) - running).max(0) as u64 * (to - at);
    idle_ms as f64 / 1000.0
}

/// The advice from `lives` over `[from_ms, to_ms]`, at `usd_per_instance_s`,
/// never below `floor`, avoiding at least `avoid_share` of cold starts.
pub fn advise_min_instances(
    lives: &[Lifetime],
    from_ms: u64,
    to_ms: u64,
    floor: u32,
    avoid_share: f64,
    usd_per_instance_s: f64,
) -> MinInstancesAdvice {
    // For each start in the window: how many others were running then.
    let found: Vec<u32> = lives
        .iter()
        .filter(|l| l.start_ms >= from_ms && l.start_ms < to_ms)
        .map(|l| {
            lives
                .iter()
                .filter(|o| !std::ptr::eq(*o, l))
                .filter(|o| o.start_ms < l.start_ms && o.end_ms > l.start_ms)
                .count() as u32
        })
        .collect();
    let cold = found.len() as u64;
    let mut peak = 0_i64;
    let mut running = 0_i64;
    for (_, d) in running_steps(lives, from_ms, to_ms) {
        running += d;
        peak = peak.max(running);
    }
    let window_s = (to_ms.saturating_sub(from_ms) as f64 / 1000.0).max(1.0);
    let started_in = |l: &&Lifetime| l.start_ms >= from_ms && l.start_ms < to_ms;
    let cold_p95_ms = super::mean(
        lives
            .iter()
            .filter(started_in)
            .filter_map(|l| l.cold_p95_ms),
    );
    let warm_p95_ms = super::mean(lives.iter().filter_map(|l| l.warm_p95_ms));
    let option = |k: u32| {
        let avoided = found.iter().filter(|n| **n < k).count() as u64;
        MinInstancesOption {
            min_instances: k,
            cold_starts_avoided: avoided,
            avoided_share: if cold == 0 {
                1.0
            } else {
                avoided as f64 / cold as f64
            },
            extra_monthly_usd: extra_instance_seconds(lives, from_ms, to_ms, k)
                * usd_per_instance_s
                * MONTH_S
                / window_s,
        }
    };
    let mut options = Vec::new();
    let mut recommended = floor;
    for k in floor..=MAX_MIN_INSTANCES.max(floor) {
        let o = option(k);
        let enough = o.avoided_share >= avoid_share;
        options.push(o);
        if enough {
            recommended = k;
            if k < MAX_MIN_INSTANCES.max(floor) {
                options.push(option(k + 1));
            }
            break;
        }
        recommended = k;
    }
    let chosen = options
        .iter()
        .find(|o| o.min_instances == recommended)
        .cloned()
        .unwrap_or_else(|| option(recommended));
    let penalty = match (cold_p95_ms, warm_p95_ms) {
        (Some(c), Some(w)) => {
            format!("; a cold start's first minutes run at P95 {c:.0} ms against {w:.0} ms warm")
        }
        _ => String::new(),
    };
    let why = if cold == 0 {
        format!("no cold start in the window: the floor ({floor})")
    } else if recommended == floor && chosen.avoided_share >= avoid_share {
        format!(
            "the floor ({floor}) already avoids {} of {cold} cold starts",
            chosen.cold_starts_avoided
        )
    } else {
        format!(
            "{recommended} warm instances avoid {} of {cold} cold starts ({:.0} %, target {:.0} %) for ${:.2} a month more",
            chosen.cold_starts_avoided,
            chosen.avoided_share * 100.0,
            avoid_share * 100.0,
            chosen.extra_monthly_usd
        )
    };
    let why = why + &penalty;
    MinInstancesAdvice {
        from_ms,
        to_ms,
        cold_starts: cold,
        peak_instances: peak.max(0) as u32,
        cold_p95_ms,
        warm_p95_ms,
        floor,
        avoid_share,
        recommended,
        options,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn life(start_ms: u64, end_ms: u64) -> Lifetime {
        Lifetime {
            start_ms,
            end_ms,
            cold_p95_ms: Some(500.0),
            warm_p95_ms: Some(50.0),
        }
    }

    #[test]
    fn bursts_above_a_steady_pair_need_their_peak_warm() {
        // Two instances all day; 10 bursts start a third for 6 minutes.
        let mut lives = vec![life(0, 24 * H), life(0, 24 * H)];
        for b in 0..10 {
            lives.push(life(H + b * 2 * H, H + b * 2 * H + H / 10));
        }
        let a = advise_min_instances(&lives, 0, 24 * H, 1, 0.9, 0.001);
        assert_eq!(a.cold_starts, 12);
        assert_eq!(a.peak_instances, 3);
        // 2 warm avoid the two first starts only; 3 avoid all.
        assert_eq!(a.recommended, 3);
        let three = &a.options[a.options.len() - 2];
        assert_eq!((three.min_instances, three.cold_starts_avoided), (3, 12));
        // The third instance idles 24 h less its 10 × 6 min: 23 h a day.
        let expected = 23.0 * 3600.0 * 0.001 * MONTH_S / (24.0 * 3600.0);
        assert!(
            (three.extra_monthly_usd - expected).abs() < 1e-6,
            "{three:?}"
        );
    }

    #[test]
    fn never_below_the_floor_and_no_evidence_is_the_floor() {
        let a = advise_min_instances(&[], 0, H, 2, 0.9, 0.001);
        assert_eq!((a.recommended, a.cold_starts), (2, 0));
        let lives = [life(0, H)];
        let a = advise_min_instances(&lives, 0, H, 5, 0.9, 0.001);
        assert_eq!(a.recommended, 5);
    }
}
