//! The adaptive TTL in a deterministic simulation where the best TTL is
//! computable: Zipf-distributed keys, Poisson arrivals at a known rate, a
//! real TTL cache (an entry lives its TTL from the miss that wrote it), and
//! the controller deciding once a minute on that minute's hits and misses.
//! The TTL whose hit rate is the target follows from the Poisson TTL-cache
//! formula; the controller must get there and stay.

use std::collections::HashMap;

use lumen_sidecar::eval::{TtlControl, next_ttl, poisson_ttl_hit_rate};

mod sim_rng;
use sim_rng::Rng;

fn zipf_shares(keys: usize, s: f64) -> Vec<f64> {
    let raw: Vec<f64> = (1..=keys).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|w| w / total).collect()
}

/// The TTL whose Poisson hit rate is `target`, by bisection.
fn optimum(shares: &[f64], rate: f64, target: f64) -> f64 {
    let (mut lo, mut hi) = (1.0_f64, 100_000.0_f64);
    for _ in 0..100 {
        let mid = (lo * hi).sqrt();
        if poisson_ttl_hit_rate(shares, rate, mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo * hi).sqrt()
}

struct Run {
    ttls: Vec<u32>,
    hit_rates: Vec<f64>,
}

fn simulate(shares: &[f64], rate: f64, c: &TtlControl, minutes: usize, seed: u64) -> Run {
    let cdf: Vec<f64> = shares
        .iter()
        .scan(0.0, |acc, p| {
            *acc += p;
            Some(*acc)
        })
        .collect();
    let mut rng = Rng(seed);
    let mut expires: HashMap<usize, f64> = HashMap::new();
    let mut t = 0.0;
    let mut ttl = c.initial_ttl_s;
    let mut run = Run {
        ttls: Vec::new(),
        hit_rates: Vec::new(),
    };
    for minute in 0..minutes {
        let end = (minute + 1) as f64 * 60.0;
        let (mut hits, mut misses) = (0u64, 0u64);
        loop {
            t += -(1.0 - rng.next()).ln() / rate;
            if t >= end {
                break;
            }
            let u = rng.next();
            let key = cdf.partition_point(|c| *c < u).min(shares.len() - 1);
            match expires.get(&key) {
                Some(e) if *e > t => hits += 1,
                _ => {
                    misses += 1;
                    expires.insert(key, t + f64::from(ttl));
                }
            }
        }
        run.hit_rates
            .push(hits as f64 * 100.0 / (hits + misses).max(1) as f64);
        ttl = next_ttl(ttl, hits, misses, c).ttl_s;
        run.ttls.push(ttl);
        // The clock restarts the interval where the overshooting arrival fell.
        t = t.min(end);
    }
    run
}

#[test]
fn the_controller_reaches_the_target_and_stays_in_band() {
    // 5000 keys, Zipf 0.9, 40 requests a second; target 80 % hits.
    let shares = zipf_shares(5000, 0.9);
    let rate = 40.0;
    let c = TtlControl {
        initial_ttl_s: 60,
        ..TtlControl::default()
    };
    let best = optimum(&shares, rate, c.target_hit_rate);
    assert!(
        (60.0..3600.0).contains(&best),
        "the target is reachable inside the bounds: {best}"
    );
    for seed in [1, 7, 42] {
        let run = simulate(&shares, rate, &c, 120, seed);
        // Reached: within 5 points of the target by the 20th minute.
        let reached = run
            .hit_rates
            .iter()
            .position(|h| (h - c.target_hit_rate).abs() <= 5.0)
            .expect("reaches the target");
        assert!(
            reached < 20,
            "seed {seed}: reached at minute {reached}: {:?}",
            run.hit_rates
        );
        // Stays: the last hour's minutes average within 2 points of the
        // target and none strays more than 8.
        let last = &run.hit_rates[60..];
        let mean = last.iter().sum::<f64>() / last.len() as f64;
        assert!(
            (mean - c.target_hit_rate).abs() <= 2.0,
            "seed {seed}: mean {mean}"
        );
        assert!(
            last.iter().all(|h| (h - c.target_hit_rate).abs() <= 8.0),
            "seed {seed}: {last:?}"
        );
        // And the TTL it settles on is the computed optimum's, within 30 %.
        let mut settled: Vec<u32> = run.ttls[60..].to_vec();
        settled.sort_unstable();
        let median = f64::from(settled[settled.len() / 2]);
        assert!(
            (median / best - 1.0).abs() <= 0.3,
            "seed {seed}: settled {median} s, optimum {best:.0} s"
        );
    }
}

#[test]
fn an_unreachable_target_parks_at_the_bound_and_thin_data_never_moves() {
    // 200 000 keys, almost uniform, 2 requests a second: 80 % needs a TTL
    // far past an hour; the controller stops at 3600 s.
    let shares = zipf_shares(200_000, 0.2);
    let c = TtlControl::default();
    let run = simulate(&shares, 2.0, &c, 60, 3);
    // 120 lookups a minute clear the 100-lookup floor.
    assert_eq!(run.ttls.last(), Some(&3600), "{:?}", run.ttls);
    // At 1 request a second (60 a minute), below the floor: never moves.
    let thin = simulate(&shares, 1.0, &c, 30, 3);
    assert!(
        thin.ttls.iter().all(|t| *t == c.initial_ttl_s),
        "{:?}",
        thin.ttls
    );
}
