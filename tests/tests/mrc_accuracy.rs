//! The miss-ratio curve the sidecar builds from keys sampled as the
//! middleware samples them (its mix, its 1 % threshold, its per-interval
//! buffer), against Mattson's exact LRU curve of the same Zipf traces.

use lumen_middleware::cache::{KEY_SAMPLE_SLOTS, sampled_key};
use lumen_middleware::wire::{KEY_SAMPLE_MODULUS, KeySample};
use lumen_sidecar::app::tuning::{SAMPLE_ACCESSES, SAMPLE_KEYS};
use lumen_sidecar::eval::mrc::{MODULUS, MissRatioCurve, ShardsSample, log_capacities};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// `n` accesses to `keys` keys with Zipf exponent `s`: each access's key.
fn zipf(keys: usize, s: f64, n: usize, seed: u64) -> Vec<u64> {
    let raw: Vec<f64> = (1..=keys).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = raw.iter().sum();
    let mut acc = 0.0;
    let cdf: Vec<f64> = raw
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random();
            cdf.partition_point(|c| *c < u).min(keys - 1) as u64
        })
        .collect()
}

/// An app's hash of key `k` (any 64-bit hash; here a weak one, which the
/// middleware's mix must spread).
fn app_hash(k: u64) -> u64 {
    k.wrapping_mul(31).wrapping_add(7)
}

/// The sidecar's curve of `trace`, shipped in intervals of
/// `per_interval` lookups as the middleware ships them.
fn sidecar_curve(trace: &[u64], per_interval: usize) -> MissRatioCurve {
    let mut sample = ShardsSample::new(MODULUS, SAMPLE_KEYS, SAMPLE_ACCESSES);
    for interval in trace.chunks(per_interval) {
        let mut accesses = Vec::new();
        let mut dropped = 0;
        for k in interval {
            if let Some(kept) = sampled_key(app_hash(*k)) {
                if accesses.len() < KEY_SAMPLE_SLOTS {
                    accesses.push(kept);
                } else {
                    dropped += 1;
                }
            }
        }
        sample.add_interval(&KeySample {
            threshold: KEY_SAMPLE_MODULUS / 100,
            lookups: interval.len() as u64,
            dropped,
            accesses,
        });
    }
    sample.curve()
}

/// The largest difference in hit ratio from `from` entries up to the key
/// count, and where.
fn worst(exact: &MissRatioCurve, got: &MissRatioCurve, from: u64, keys: u64) -> (u64, f64) {
    log_capacities(keys)
        .into_iter()
        .filter(|c| *c >= from)
        .map(|c| (c, (got.miss_ratio(c) - exact.miss_ratio(c)).abs()))
        .fold((0, 0.0), |w, x| if x.1 > w.1 { x } else { w })
}

/// Worst differences of the sidecar's curve over three seeds of Zipf
/// exponents 0.9 and 1.0 on 50,000 keys after `lookups` lookups: from
/// 10 ÷ R (1,000 entries) up, from 100 ÷ R (10,000) up, and at one entry.
fn errors(lookups: usize, per_interval: &[usize]) -> (f64, f64, f64) {
    const KEYS: usize = 50_000;
    let mut out = (0.0_f64, 0.0_f64, 0.0_f64);
    for s in [0.9, 1.0] {
        for seed in [1, 2, 3] {
            let trace = zipf(KEYS, s, lookups, seed);
            let exact = MissRatioCurve::from_trace(&trace, 1.0);
            for n in per_interval {
                let got = sidecar_curve(&trace, *n);
                let (at, from_1k) = worst(&exact, &got, 1_000, KEYS as u64);
                let (at_10k, from_10k) = worst(&exact, &got, 10_000, KEYS as u64);
                let one = (got.miss_ratio(1) - exact.miss_ratio(1)).abs();
                eprintln!(
                    "α {s}, seed {seed}, {lookups} lookups, {n} an interval: {from_1k:.3} at {at}, {from_10k:.3} at {at_10k}, {one:.3} at 1"
                );
                out = (out.0.max(from_1k), out.1.max(from_10k), out.2.max(one));
            }
        }
    }
    out
}

/// The bounds docs/feedback-loop.md states: after 200,000 lookups (about 2,000 sampled
/// accesses at 1 %), within 0.05 from 1,000 entries up, 0.025 from 10,000
/// up and 0.015 at one entry, whether the app ships 2,000 lookups an
/// interval or all of them in one (the buffer holds them); after a
/// million, within 0.03 and 0.012.
#[test]
fn the_curve_from_the_middlewares_sample_is_within_its_stated_bound() {
    let (from_1k, from_10k, one) = errors(200_000, &[2_000, 200_000]);
    assert!(from_1k <= 0.05, "{from_1k} from 1,000 entries up");
    assert!(from_10k <= 0.025, "{from_10k} from 10,000 entries up");
    assert!(one <= 0.015, "{one} at one entry");
    let (from_1k, from_10k, _) = errors(1_000_000, &[20_000]);
    assert!(from_1k <= 0.03, "{from_1k} from 1,000 entries up");
    assert!(from_10k <= 0.012, "{from_10k} from 10,000 entries up");
}

#[test]
fn the_recommended_size_reaches_its_target_on_the_exact_curve_within_the_bound() {
    // What /v1/tuning recommends for an 80 % target: on the exact curve
    // the size reaches it within the curve's error (it once fell short by
    // up to 19 points).
    for seed in [1, 2, 3] {
        let trace = zipf(50_000, 1.0, 200_000, seed);
        let exact = MissRatioCurve::from_trace(&trace, 1.0);
        let got = sidecar_curve(&trace, 2_000);
        for target in [0.4, 0.5, 0.6] {
            let Some(c) = got.capacity_for(target) else {
                continue;
            };
            assert!(1.0 - got.miss_ratio(c) >= target, "on its own curve");
            let exact_hit = 1.0 - exact.miss_ratio(c);
            assert!(
                exact_hit >= target - 0.05,
                "seed {seed}: {c} entries for {target}: {exact_hit} on the exact curve"
            );
        }
    }
}
