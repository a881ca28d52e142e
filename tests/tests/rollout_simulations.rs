//! Seeded simulations of progressive rollouts, judged at every reading by
//! the tests the rollout decides on (`compare_revisions`): the false-alarm
//! rate holds over every reading of A/A rollouts, regressions are caught
//! early, and thin traffic settles nothing.
//!
//! A simulated service takes `per_minute` requests a minute, split between
//! the old revision and the new by the rollout's steps (5, 25, 50, 100 %,
//! ten minutes each), read once a minute over the minutes since the
//! rollout started. Each side's minute is drawn from its true rates:
//! server errors, error statuses, and lognormal latencies (σ = 1) summed
//! into histogram buckets (8 a decade from 1 ms), from which the latency
//! SLOs' events (P95 target 200 ms, P99 target 800 ms) are counted exactly.

use lumen_sidecar::eval::{
    Finding, RevisionComparison, RevisionCounts, RolloutTests, compare_revisions, erfc,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const STEPS: [u64; 4] = [5, 25, 50, 100];
const STEP_MINUTES: u64 = 10;
const P95_TARGET_S: f64 = 0.2;
const P99_TARGET_S: f64 = 0.8;

/// A revision's true behaviour.
#[derive(Debug, Clone, Copy)]
struct Truth {
    server_errors: f64,
    error_statuses: f64,
    median_s: f64,
    sigma: f64,
}

const BASE: Truth = Truth {
    server_errors: 0.005,
    error_statuses: 0.02,
    median_s: 0.05,
    sigma: 1.0,
};

fn bounds() -> Vec<f64> {
    // 1 ms to 31.6 s, eight a decade, then +Inf.
    let mut b: Vec<f64> = (0..=36)
        .map(|i| 1e-3 * 10f64.powf(i as f64 / 8.0))
        .collect();
    b.push(f64::INFINITY);
    b
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A binomial draw: by inversion of the Poisson for small means, the
/// normal approximation for large ones, Bernoulli trials otherwise.
fn binomial(rng: &mut SmallRng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let mean = n as f64 * p;
    let var = mean * (1.0 - p);
    if var >= 25.0 {
        let x = (mean + var.sqrt() * standard_normal(rng)).round();
        return x.clamp(0.0, n as f64) as u64;
    }
    if n <= 200 {
        return (0..n).filter(|_| rng.random_bool(p)).count() as u64;
    }
    // Poisson(mean) by inversion (mean < ~26 here).
    let (mut k, mut prob, u) = (0_u64, (-mean).exp(), rng.random::<f64>());
    let mut cdf = prob;
    while u > cdf && k < n {
        k += 1;
        prob *= mean / k as f64;
        cdf += prob;
    }
    k
}

/// One side's minute of `n` requests.
fn minute(rng: &mut SmallRng, t: Truth, n: u64, bounds: &[f64]) -> RevisionCounts {
    let server = binomial(rng, n, t.server_errors);
    let errors = binomial(rng, n, t.error_statuses);
    // Multinomial over the buckets, one conditional binomial at a time.
    let cdf = |le: f64| {
        if le.is_infinite() {
            1.0
        } else {
            normal_cdf((le / t.median_s).ln() / t.sigma)
        }
    };
    let (mut left, mut done_p, mut below) = (n, 0.0, 0);
    let mut buckets = Vec::with_capacity(bounds.len());
    for &le in bounds {
        let p = cdf(le);
        let share = if done_p >= 1.0 {
            0.0
        } else {
            ((p - done_p) / (1.0 - done_p)).clamp(0.0, 1.0)
        };
        let k = binomial(rng, left, share);
        left -= k;
        below += k;
        done_p = p;
        buckets.push((le, below));
    }
    let over = |target: f64| {
        n - buckets
            .iter()
            .take_while(|(le, _)| *le <= target)
            .last()
            .map_or(0, |(_, c)| *c)
    };
    let (p95_bad, p99_bad) = (over(P95_TARGET_S), over(P99_TARGET_S));
    RevisionCounts {
        requests: n,
        slo_events: [
            [n - server, server],
            [n - p95_bad, p95_bad],
            [n - p99_bad, p99_bad],
            [n - errors, errors],
        ],
        buckets,
    }
}

/// What a simulated rollout read: the minute of each reading and its comparison.
struct Rollout {
    readings: Vec<(u64, RevisionComparison)>,
}

impl Rollout {
    /// The first minute a reading was worse, if any.
    fn first_worse(&self) -> Option<u64> {
        self.readings
            .iter()
            .find(|(_, c)| c.finding == Finding::Worse)
            .map(|(m, _)| *m)
    }

    fn any(&self, f: Finding) -> bool {
        self.readings.iter().any(|(_, c)| c.finding == f)
    }
}

/// A rollout of `minutes` at `per_minute` requests, the new revision at
/// `share(minute)` percent, read every minute.
fn simulate(
    seed: u64,
    per_minute: u64,
    old: Truth,
    new: Truth,
    minutes: u64,
    share: impl Fn(u64) -> u64,
) -> Rollout {
    let mut rng = SmallRng::seed_from_u64(seed);
    let bounds = bounds();
    let tests = RolloutTests::default();
    let (mut a, mut b) = (RevisionCounts::default(), RevisionCounts::default());
    let mut readings = Vec::new();
    for m in 0..minutes {
        let to_new = binomial(&mut rng, per_minute, share(m) as f64 / 100.0);
        a.add(&minute(&mut rng, old, per_minute - to_new, &bounds));
        b.add(&minute(&mut rng, new, to_new, &bounds));
        readings.push((m + 1, compare_revisions(&a, &b, &tests)));
    }
    Rollout { readings }
}

fn stepped(m: u64) -> u64 {
    STEPS[((m / STEP_MINUTES) as usize).min(STEPS.len() - 1)]
}

/// 20,000 requests a minute (about 330 a second): a mid-sized API.
const REALISTIC: u64 = 20_000;

#[test]
fn a_and_a_rollouts_stop_falsely_at_most_at_alpha_at_every_reading() {
    let runs = 200;
    let mut false_stops = 0;
    let mut naive_stops = 0;
    let mut promotable = 0;
    for seed in 0..runs {
        let r = simulate(seed, REALISTIC, BASE, BASE, 40, stepped);
        if r.first_worse().is_some() {
            false_stops += 1;
        }
        if r.any(Finding::NoWorse) {
            promotable += 1;
        }
        // What peeking at a fixed-sample z-test at every reading would do:
        // the share tests at the same per-test level, two-sided 1 %.
        let peeked = r.readings.iter().any(|(_, c)| {
            c.metrics
                .iter()
                .filter(|m| m.metric != "latency_shift")
                .any(|m| {
                    let (na, nb) = (m.old_requests as f64, m.new_requests as f64);
                    let pool = (m.old * na + m.new * nb) / (na + nb);
                    let se = (pool * (1.0 - pool) * (1.0 / na + 1.0 / nb)).sqrt();
                    se > 0.0 && m.difference / se > 2.576
                })
        });
        if peeked {
            naive_stops += 1;
        }
    }
    let alpha = RolloutTests::default().alpha;
    eprintln!(
        "A/A: {false_stops} false stops, {naive_stops} naive, {promotable} promotable of {runs}"
    );
    assert!(
        (false_stops as f64) <= alpha * runs as f64,
        "{false_stops} of {runs} A/A rollouts rolled back (α = {alpha})"
    );
    // The simulation can see peeking: the fixed-sample test read at every
    // reading stops far more often than its level.
    assert!(
        naive_stops as f64 > 0.02 * runs as f64,
        "only {naive_stops} naive stops: the simulation would not tell"
    );
    // And A/A rollouts do get promoted (the tests are not simply silent).
    assert!(
        promotable as f64 >= 0.95 * runs as f64,
        "{promotable} of {runs}"
    );
}

#[test]
fn a_two_point_error_rate_regression_at_five_percent_is_caught_in_the_first_or_second_step() {
    let bad = Truth {
        server_errors: BASE.server_errors + 0.02,
        error_statuses: BASE.error_statuses + 0.02,
        ..BASE
    };
    for seed in 0..100 {
        let r = simulate(1_000 + seed, REALISTIC, BASE, bad, 20, stepped);
        let at = r
            .first_worse()
            .unwrap_or_else(|| panic!("seed {seed}: never caught"));
        assert!(at <= 2 * STEP_MINUTES, "seed {seed}: caught at minute {at}");
        let (_, c) = &r.readings[at as usize - 1];
        let worse = c.worse();
        assert!(
            worse.contains(&"availability") || worse.contains(&"error_rate"),
            "{worse:?}"
        );
        // Nothing was ever promotable before it.
        assert!(
            !r.readings[..at as usize]
                .iter()
                .any(|(_, c)| c.finding == Finding::NoWorse)
        );
    }
}

#[test]
fn a_twenty_percent_p95_regression_is_caught() {
    // Every quantile 20 % slower: the P95 too.
    let slow = Truth {
        median_s: BASE.median_s * 1.2,
        ..BASE
    };
    let mut in_first_step = 0;
    for seed in 0..100 {
        let r = simulate(2_000 + seed, REALISTIC, BASE, slow, 20, stepped);
        let at = r
            .first_worse()
            .unwrap_or_else(|| panic!("seed {seed}: never caught"));
        if at <= STEP_MINUTES {
            in_first_step += 1;
        }
        let (_, c) = &r.readings[at as usize - 1];
        assert!(
            c.worse().iter().all(|m| m.starts_with("latency")),
            "a latency regression blamed on {:?}",
            c.worse()
        );
    }
    eprintln!("P95 +20 %: {in_first_step} of 100 caught in the first step");
    assert!(
        in_first_step >= 95,
        "{in_first_step} of 100 in the first step"
    );
}

#[test]
fn thin_traffic_never_promotes_and_never_rolls_back() {
    // 40 requests a minute: two a minute reach the new revision at 5 %,
    // even when it fails one request in ten.
    let bad = Truth {
        server_errors: 0.1,
        ..BASE
    };
    for (seed, new) in (0..50)
        .map(|s| (3_000 + s, BASE))
        .chain((0..50).map(|s| (4_000 + s, bad)))
    {
        let r = simulate(seed, 40, BASE, new, 40, |_| 5);
        for (m, c) in &r.readings {
            assert_eq!(
                c.finding,
                Finding::Inconclusive,
                "seed {seed} minute {m}: {c:#?}"
            );
        }
        let (_, last) = r.readings.last().expect("read");
        assert!(last.needs_more().is_some(), "says what is missing");
    }
}
