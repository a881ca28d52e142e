//! SHARDS against the exact miss-ratio curve on deterministic Zipf traces
//! of two million accesses with keys spread by a Fibonacci hash (the
//! middleware's own key path, at realistic sample sizes, is checked in
//! `tests/tests/mrc_accuracy.rs`):
//! at a 1 % sampling rate (with SHARDS_adj) the curve is within 0.02 of
//! Mattson's exact one at every L1 size from 10 ÷ R (1000 entries) up to
//! the key count, and the L1 size it recommends for a target hit rate is
//! the exact curve's. Below 10 ÷ R a sample cannot resolve reuse distances
//! (one sampled step is 1 ÷ R entries); a skewed trace's few hottest keys
//! then decide the curve, sampled or not.

use lumen_sidecar::eval::mrc::{MODULUS, MissRatioCurve, ShardsSample, log_capacities};

mod sim_rng;
use sim_rng::Rng;

/// `n` accesses to `keys` keys, Zipf `s`; keys hashed as the middleware does.
fn zipf_trace(keys: usize, s: f64, n: usize, seed: u64) -> Vec<u64> {
    let raw: Vec<f64> = (1..=keys).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = raw.iter().sum();
    let cdf: Vec<f64> = raw
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let u = rng.next();
            let k = cdf.partition_point(|c| *c < u).min(keys - 1) as u64;
            (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        })
        .collect()
}

#[test]
fn shards_at_one_percent_tracks_the_exact_curve() {
    for seed in [11, 5, 23] {
        one_percent(seed);
    }
}

fn one_percent(seed: u64) {
    let trace = zipf_trace(100_000, 0.8, 2_000_000, seed);
    let exact = MissRatioCurve::from_trace(&trace, 1.0);
    let threshold = MODULUS / 100;
    let mut sample = ShardsSample::new(threshold, 100_000, 2_000_000);
    for k in &trace {
        sample.offer(*k, threshold);
    }
    sample.count_accesses(trace.len() as u64);
    assert!((sample.rate() - 0.01).abs() < 1e-4);
    assert!(
        (sample.len() as f64 / trace.len() as f64 - 0.01).abs() < 0.003,
        "{} sampled",
        sample.len()
    );
    let shards = sample.curve();
    let mut worst = (0, 0.0_f64);
    for c in log_capacities(100_000).into_iter().filter(|c| *c >= 1000) {
        let d = (shards.miss_ratio(c) - exact.miss_ratio(c)).abs();
        if d > worst.1 {
            worst = (c, d);
        }
    }
    assert!(worst.1 <= 0.02, "seed {seed}: largest difference {worst:?}");

    // The recommended size for 60 % hits: the exact curve's, within 10 %.
    let want = exact.capacity_for(0.6).expect("reachable");
    let got = shards.capacity_for(0.6).expect("reachable");
    assert!(
        (got as f64 / want as f64 - 1.0).abs() <= 0.1,
        "seed {seed}: SHARDS {got}, exact {want}"
    );
    // And the exact curve at that size does reach the target.
    assert!(1.0 - exact.miss_ratio(want) >= 0.6);
    assert!(1.0 - exact.miss_ratio(want - 1) < 0.6);
}

#[test]
fn the_fixed_size_variant_stays_close_with_a_tenth_of_the_keys() {
    // At most 200 distinct sampled keys: the threshold drops below 1 %.
    let trace = zipf_trace(100_000, 0.8, 1_000_000, 5);
    let exact = MissRatioCurve::from_trace(&trace, 1.0);
    let threshold = MODULUS / 100;
    let mut sample = ShardsSample::new(threshold, 200, 1_000_000);
    for k in &trace {
        sample.offer(*k, threshold);
    }
    sample.count_accesses(trace.len() as u64);
    assert!(sample.rate() < 0.01);
    let shards = sample.curve();
    let resolvable = (10.0 / sample.rate()) as u64;
    let worst = log_capacities(100_000)
        .into_iter()
        .filter(|c| *c >= resolvable)
        .map(|c| (shards.miss_ratio(c) - exact.miss_ratio(c)).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= 0.05,
        "largest difference {worst} at rate {}",
        sample.rate()
    );
}
