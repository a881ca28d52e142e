//! The experiment analysis in deterministic simulations of seven-day
//! experiments at a realistic 20 requests a second, split 50/50, each
//! request one cache lookup, looked at once a day (and hourly where said):
//!
//! - 200 A/A experiments: a winner is declared in at most α of them (plus
//!   a Monte-Carlo tolerance of two standard errors, √(α(1−α)/200) ≈ 1.5
//!   points), and the other false alarms (a guardrail, the split) stay as
//!   rare;
//! - a known effect (+5 points of hit rate) is found before the seventh day
//!   in at least 80 % of 200 experiments, and a small one (+0.5 points)
//!   in most, at hourly looks;
//! - a guardrail regression (five times the errors) blocks B's win;
//! - a 45/55 split meant to be 50/50 is flagged as a sample-ratio mismatch.
//!
//! Daily counts are drawn binomially (normal approximation) per arm and
//! metric, and added up: the analysis sees exact cumulative counts, as the
//! sidecar does.

mod sim_rng;
use sim_rng::Rng;

use lumen_middleware::wire::Arm;
use lumen_sidecar::eval::{ArmCounts, ExperimentSpec, Metric, Outcome, judge};

const REQUESTS_PER_S: u64 = 20;
const DAY_MS: u64 = 86_400_000;
const RUNS: u64 = 200;

/// One arm's truth.
#[derive(Clone, Copy)]
struct Truth {
    hit_rate: f64,
    error_rate: f64,
}

const BASE: Truth = Truth {
    hit_rate: 0.80,
    error_rate: 0.001,
};

/// Runs one experiment with looks every `look_ms`; its outcome and when.
fn run(
    spec: &ExperimentSpec,
    truth: [Truth; 2],
    actual_share_b: f64,
    look_ms: u64,
    seed: u64,
) -> (Outcome, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut arms = [ArmCounts::default(); 2];
    let per_look = REQUESTS_PER_S * look_ms / 1000;
    let end = spec.duration.as_millis() as u64;
    let mut at = 0;
    while at < end {
        at += look_ms;
        let to_b = rng.binomial(per_look, actual_share_b);
        for (i, n) in [per_look - to_b, to_b].into_iter().enumerate() {
            let t = truth[i];
            arms[i].add(&ArmCounts {
                requests: n,
                assigned_random: n,
                assigned_by_key: 0,
                cancelled: 0,
                errors: rng.binomial(n, t.error_rate),
                lookups: n,
                hits: rng.binomial(n, t.hit_rate),
                under_p95_target: rng.binomial(n, 0.95),
                under_p99_target: rng.binomial(n, 0.99),
            });
        }
        let v = judge(spec, &arms, at);
        if v.outcome.is_final() {
            return (v.outcome, at);
        }
    }
    (Outcome::NoDifference, end)
}

fn spec() -> ExperimentSpec {
    ExperimentSpec::new("answer_ttl_s", 300, 900)
}

#[test]
fn a_a_experiments_with_daily_looks_declare_a_winner_at_most_alpha_of_the_time() {
    let spec = spec();
    let mut winners = 0;
    let mut other_alarms = 0;
    for seed in 1..=RUNS {
        match run(&spec, [BASE, BASE], 0.5, DAY_MS, seed).0 {
            Outcome::Winner { .. } => winners += 1,
            Outcome::GuardrailRegression { .. } | Outcome::SampleRatioMismatch => other_alarms += 1,
            _ => {}
        }
    }
    let tolerance = 2.0 * (spec.alpha * (1.0 - spec.alpha) / RUNS as f64).sqrt();
    let fpr = winners as f64 / RUNS as f64;
    assert!(
        fpr <= spec.alpha + tolerance,
        "{winners} of {RUNS} A/A runs declared a winner ({fpr:.3} > {:.3})",
        spec.alpha + tolerance
    );
    let alarms = other_alarms as f64 / RUNS as f64;
    assert!(
        alarms <= spec.alpha + tolerance,
        "{other_alarms} of {RUNS} A/A runs raised a guardrail or split alarm"
    );
    eprintln!("A/A: {winners} winners, {other_alarms} other alarms in {RUNS} runs");
}

#[test]
fn a_five_point_gain_is_found_before_the_seventh_day() {
    let spec = spec();
    let better = Truth {
        hit_rate: BASE.hit_rate + 0.05,
        ..BASE
    };
    let mut found = 0;
    for seed in 1..=RUNS {
        let (outcome, at) = run(&spec, [BASE, better], 0.5, DAY_MS, seed);
        if outcome == (Outcome::Winner { arm: Arm::B }) && at < 7 * DAY_MS {
            found += 1;
        }
    }
    assert!(found * 100 >= RUNS * 80, "found in {found} of {RUNS}");
}

#[test]
fn a_half_point_gain_is_found_within_the_week_at_hourly_looks() {
    let spec = spec();
    let better = Truth {
        hit_rate: BASE.hit_rate + 0.005,
        ..BASE
    };
    let mut found = 0;
    let mut days = Vec::new();
    for seed in 1..=RUNS {
        let (outcome, at) = run(&spec, [BASE, better], 0.5, DAY_MS / 24, seed);
        if outcome == (Outcome::Winner { arm: Arm::B }) {
            found += 1;
            days.push(at as f64 / DAY_MS as f64);
        }
    }
    assert!(found * 100 >= RUNS * 80, "found in {found} of {RUNS}");
    days.sort_by(f64::total_cmp);
    eprintln!(
        "+0.5 points: found in {found} of {RUNS}, median day {:.1}",
        days[days.len() / 2]
    );
}

#[test]
fn a_guardrail_regression_blocks_the_winner() {
    let spec = spec();
    let better_but_failing = Truth {
        hit_rate: BASE.hit_rate + 0.05,
        error_rate: BASE.error_rate * 5.0,
    };
    for seed in 1..=RUNS {
        let (outcome, _) = run(&spec, [BASE, better_but_failing], 0.5, DAY_MS, seed);
        assert_eq!(
            outcome,
            Outcome::GuardrailRegression {
                metric: Metric::ErrorRate
            },
            "seed {seed}"
        );
    }
}

#[test]
fn a_forty_five_fifty_five_split_is_a_sample_ratio_mismatch() {
    let spec = spec();
    for seed in 1..=RUNS {
        let (outcome, at) = run(&spec, [BASE, BASE], 0.55, DAY_MS, seed);
        assert_eq!(outcome, Outcome::SampleRatioMismatch, "seed {seed}");
        assert_eq!(at, DAY_MS, "flagged at the first look");
    }
}

/// A/A experiments looked at after every 10-second batch (8,640 looks a
/// day) for their first day, where early false alarms live: how many stop
/// on a guardrail, on the split, or with a winner.
fn per_batch_a_a(runs: u64) -> (u64, u64, u64) {
    let spec = ExperimentSpec {
        duration: std::time::Duration::from_millis(DAY_MS),
        ..spec()
    };
    let (mut guardrail, mut split, mut winner) = (0, 0, 0);
    for seed in 1..=runs {
        match run(&spec, [BASE, BASE], 0.5, 10_000, 1_000 + seed).0 {
            Outcome::GuardrailRegression { .. } => guardrail += 1,
            Outcome::SampleRatioMismatch => split += 1,
            Outcome::Winner { .. } => winner += 1,
            _ => {}
        }
    }
    (guardrail, split, winner)
}

#[test]
fn looked_at_after_every_batch_a_a_experiments_keep_every_error_rate() {
    const PER_BATCH_RUNS: u64 = 400;
    let spec = spec();
    let (guardrail, split, winner) = per_batch_a_a(PER_BATCH_RUNS);
    eprintln!(
        "A/A at every batch, {PER_BATCH_RUNS} runs: {guardrail} guardrail stops, {split} split alarms, {winner} winners"
    );
    let tolerance =
        |alpha: f64| alpha + 2.0 * (alpha * (1.0 - alpha) / PER_BATCH_RUNS as f64).sqrt();
    // The guardrails together at most α (each at α / 3).
    assert!(
        guardrail as f64 / (PER_BATCH_RUNS as f64) <= tolerance(spec.alpha),
        "{guardrail} of {PER_BATCH_RUNS} stopped on a guardrail"
    );
    // The split test at most its 0.1 %: with 400 runs, at most one.
    assert!(
        split as f64 / (PER_BATCH_RUNS as f64) <= tolerance(lumen_sidecar::eval::SRM_P_VALUE),
        "{split} of {PER_BATCH_RUNS} flagged a split that was fair"
    );
    assert!(
        winner as f64 / (PER_BATCH_RUNS as f64) <= tolerance(spec.alpha),
        "{winner} of {PER_BATCH_RUNS} declared a winner"
    );
}
