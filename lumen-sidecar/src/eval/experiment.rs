//! An A/B experiment's analysis and verdict: pure functions over the two
//! arms' exact counts.
//!
//! The primary metric is tested with the always-valid interval of
//! [`always_valid_difference`]; every other metric is a guardrail, tested
//! one-sided (B regresses when the whole interval lies on the bad side),
//! each at its share of α (Bonferroni: together at most α); a sample-ratio
//! mismatch (the sequential test's always-valid p below [`SRM_P_VALUE`],
//! [`srm_sequential_p_value`], valid at every look) stops a broken split.
//! An experiment stops early only when the primary's
//! interval excludes no effect and no guardrail regresses; at its end
//! without that, there is no detectable difference and A (the value in
//! force) stays.
//!
//! ```
//! use lumen_sidecar::eval::{ArmCounts, ExperimentSpec, Metric, Outcome, judge};
//! let spec = ExperimentSpec::new("answer_ttl_s", 300, 900);
//! let arm = |requests, hits| ArmCounts {
//!     requests, assigned_random: requests, lookups: requests, hits, ..Default::default()
//! };
//! let v = judge(&spec, &[arm(20_000, 16_000), arm(20_000, 17_000)], 3_600_000);
//! assert_eq!(v.outcome, Outcome::Winner { arm: lumen_middleware::wire::Arm::B });
//! ```

use std::time::Duration;

use lumen_middleware::wire::Arm;
use serde::{Deserialize, Serialize};

use super::experiment_stats::{AlwaysValid, always_valid_difference, srm_sequential_p_value};

/// A sample-ratio mismatch is flagged below this always-valid p-value (of
/// [`srm_sequential_p_value`]): under a sound split, at most this share of
/// experiments is ever flagged, however often they are looked at.
pub const SRM_P_VALUE: f64 = 0.001;
/// Requests each arm needs before a verdict (the normal approximation's
/// floor).
pub const MIN_ARM_REQUESTS: u64 = 100;
/// The default level of every test.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// The default mixing standard deviation: effects of about 2 points.
pub const DEFAULT_TAU: f64 = 0.02;
/// The default length of an experiment: seven days.
pub const DEFAULT_EXPERIMENT_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// B's default share of requests, percent.
pub const DEFAULT_SHARE_B_PERCENT: u8 = 50;

/// What an experiment compares, each a proportion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cache lookups answered by the cache (higher is better).
    CacheHitRate,
    /// Requests that failed (the SLO's error classes and inner failures;
    /// lower is better).
    ErrorRate,
    /// Requests at or under the P95 latency target (higher is better).
    UnderP95Target,
    /// Requests at or under the P99 latency target (higher is better).
    UnderP99Target,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 4] = [
        Self::CacheHitRate,
        Self::ErrorRate,
        Self::UnderP95Target,
        Self::UnderP99Target,
    ];

    /// Its name, as the CLI and the JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CacheHitRate => "cache_hit_rate",
            Self::ErrorRate => "error_rate",
            Self::UnderP95Target => "under_p95_target",
            Self::UnderP99Target => "under_p99_target",
        }
    }

    /// The metric named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether more is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Self::ErrorRate)
    }

    /// `(successes, trials)` of an arm.
    pub fn of(self, c: &ArmCounts) -> (u64, u64) {
        match self {
            Self::CacheHitRate => (c.hits, c.lookups),
            Self::ErrorRate => (c.errors, c.requests),
            Self::UnderP95Target => (c.under_p95_target, c.requests),
            Self::UnderP99Target => (c.under_p99_target, c.requests),
        }
    }
}

/// What an experiment varies and how it is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    /// The parameter's name, as the app reads it.
    pub param: String,
    /// Arm A's value: the control, the value in force.
    pub a: u64,
    /// Arm B's value.
    pub b: u64,
    /// B's share of requests, percent (1 to 99).
    pub share_b_percent: u8,
    /// How long it runs at most.
    #[serde(with = "duration_s")]
    pub duration: Duration,
    /// The metric that picks the winner.
    pub primary: Metric,
    /// The level of every test.
    pub alpha: f64,
    /// The mixing standard deviation of the primary's test (a proportion).
    pub tau: f64,
}

mod duration_s {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl ExperimentSpec {
    /// `param` from `a` to `b` with the defaults: half the traffic, seven
    /// days, the cache hit rate, α = 0.05, τ = 0.02.
    pub fn new(param: &str, a: u64, b: u64) -> Self {
        Self {
            param: param.to_owned(),
            a,
            b,
            share_b_percent: DEFAULT_SHARE_B_PERCENT,
            duration: DEFAULT_EXPERIMENT_DURATION,
            primary: Metric::CacheHitRate,
            alpha: DEFAULT_ALPHA,
            tau: DEFAULT_TAU,
        }
    }

    /// Why it cannot run, if it cannot (the field named).
    pub fn check(&self) -> Result<(), String> {
        if self.param.is_empty() || self.param.len() > lumen_middleware::wire::MAX_NAME_LEN {
            return Err("param: must be 1 to 256 bytes".into());
        }
        if self.param.chars().any(char::is_control) {
            return Err("param: contains control characters".into());
        }
        if self.a == self.b {
            return Err(format!(
                "b: {} is arm A's value too; the arms must differ",
                self.b
            ));
        }
        if !(1..=99).contains(&self.share_b_percent) {
            return Err(format!(
                "share: {} is not a percent from 1 to 99",
                self.share_b_percent
            ));
        }
        if self.duration < Duration::from_secs(1) {
            return Err("duration: at least 1 s".into());
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(format!(
                "alpha: {} is not above 0 and below 0.5",
                self.alpha
            ));
        }
        if !(self.tau > 0.0 && self.tau < 1.0) {
            return Err(format!("tau: {} is not above 0 and below 1", self.tau));
        }
        Ok(())
    }

    /// Arm `arm`'s value.
    pub fn value(&self, arm: Arm) -> u64 {
        match arm {
            Arm::A => self.a,
            Arm::B => self.b,
        }
    }
}

/// One arm's exact counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounts {
    /// Requests answered or failed (those in the latency histogram).
    pub requests: u64,
    /// Requests the client abandoned.
    pub cancelled: u64,
    /// Failed requests (the SLO's error classes and inner failures).
    pub errors: u64,
    /// Cache lookups reported.
    pub lookups: u64,
    /// Of which hits.
    pub hits: u64,
    /// Requests at or under the P95 latency target.
    pub under_p95_target: u64,
    /// Requests at or under the P99 latency target.
    pub under_p99_target: u64,
    /// Requests assigned at random (the sample-ratio test counts these).
    #[serde(default)]
    pub assigned_random: u64,
    /// Requests assigned by the app's key (a key keeps its arm: not
    /// independent draws, so the sample-ratio test leaves them out).
    #[serde(default)]
    pub assigned_by_key: u64,
}

impl ArmCounts {
    /// Adds `other`, saturating.
    pub fn add(&mut self, other: &Self) {
        self.requests = self.requests.saturating_add(other.requests);
        self.cancelled = self.cancelled.saturating_add(other.cancelled);
        self.errors = self.errors.saturating_add(other.errors);
        self.lookups = self.lookups.saturating_add(other.lookups);
        self.hits = self.hits.saturating_add(other.hits);
        self.under_p95_target = self.under_p95_target.saturating_add(other.under_p95_target);
        self.under_p99_target = self.under_p99_target.saturating_add(other.under_p99_target);
        self.assigned_random = self.assigned_random.saturating_add(other.assigned_random);
        self.assigned_by_key = self.assigned_by_key.saturating_add(other.assigned_by_key);
    }

    /// Requests assigned to the arm, abandoned ones included.
    pub fn assigned(&self) -> u64 {
        self.requests.saturating_add(self.cancelled)
    }
}

/// One metric compared between the arms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The metric.
    pub metric: Metric,
    /// A's value, percent (`None`: no trials).
    pub a_percent: Option<f64>,
    /// B's value, percent.
    pub b_percent: Option<f64>,
    /// Trials in A and B.
    pub trials: [u64; 2],
    /// `B − A` in points with its always-valid interval (`None` until both
    /// arms have trials).
    pub difference: Option<AlwaysValid>,
    /// Whether B is better, worse, or not distinguishable (yet).
    pub verdict: Direction,
}

/// Which way a comparison came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The interval lies wholly on B's good side.
    BBetter,
    /// The interval lies wholly on B's bad side.
    BWorse,
    /// The interval holds no difference (or too little data).
    NotDetected,
}

/// How an experiment ended, or that it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Still running.
    Running,
    /// The primary metric picked this arm and no guardrail regressed.
    Winner {
        /// The arm.
        arm: Arm,
    },
    /// The period ended with no detectable difference: A stays.
    NoDifference,
    /// B regressed on a guardrail: A stays.
    GuardrailRegression {
        /// The first metric it regressed on.
        metric: Metric,
    },
    /// The split did not follow the share: the assignment is broken, A stays.
    SampleRatioMismatch,
    /// Stopped by an operator before a verdict: A stays.
    Stopped,
}

impl Outcome {
    /// Whether the experiment is over.
    pub fn is_final(self) -> bool {
        self != Self::Running
    }

    /// The arm whose value is kept.
    pub fn kept(self) -> Arm {
        match self {
            Self::Winner { arm } => arm,
            _ => Arm::A,
        }
    }
}

/// One look at an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Requests assigned to A and B.
    pub assigned: [u64; 2],
    /// The sequential sample-ratio test's always-valid p-value over the
    /// requests assigned at random (`None` when every request was assigned
    /// by key: a key keeps its arm, so requests are not independent draws).
    pub srm_p_value: Option<f64>,
    /// The primary metric.
    pub primary: Comparison,
    /// The guardrails (every other metric with data).
    pub guardrails: Vec<Comparison>,
    /// The outcome of this look.
    pub outcome: Outcome,
    /// Why, in one sentence.
    pub why: String,
}

/// Compares `metric` between the arms at level `alpha`, mixing sd `tau`.
pub fn compare(metric: Metric, arms: &[ArmCounts; 2], alpha: f64, tau: f64) -> Comparison {
    let (xa, na) = metric.of(&arms[0]);
    let (xb, nb) = metric.of(&arms[1]);
    let percent = |x: u64, n: u64| (n > 0).then(|| x as f64 * 100.0 / n as f64);
    let enough = na >= MIN_ARM_REQUESTS && nb >= MIN_ARM_REQUESTS;
    let difference = always_valid_difference(xa, na, xb, nb, tau, alpha);
    let verdict = match difference {
        Some(d) if enough && d.excludes_zero() => {
            if (d.low > 0.0) == metric.higher_is_better() {
                Direction::BBetter
            } else {
                Direction::BWorse
            }
        }
        _ => Direction::NotDetected,
    };
    Comparison {
        metric,
        a_percent: percent(xa, na),
        b_percent: percent(xb, nb),
        trials: [na, nb],
        difference,
        verdict,
    }
}

/// One look at `arms` (A, B) after `elapsed_ms` of `spec`'s experiment.
pub fn judge(spec: &ExperimentSpec, arms: &[ArmCounts; 2], elapsed_ms: u64) -> Verdict {
    let assigned = [arms[0].assigned(), arms[1].assigned()];
    let share_b = f64::from(spec.share_b_percent) / 100.0;
    let random = [arms[0].assigned_random, arms[1].assigned_random];
    let srm = (random != [0, 0]).then(|| srm_sequential_p_value(random[0], random[1], share_b));
    let primary = compare(spec.primary, arms, spec.alpha, spec.tau);
    // Any of the guardrails can stop the experiment: each is held at its
    // share of α (Bonferroni), so together they stop an A/A experiment at
    // most α of the time.
    let guardrail_metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| *m != spec.primary)
        .collect();
    let guardrail_alpha = spec.alpha / guardrail_metrics.len().max(1) as f64;
    let guardrails: Vec<Comparison> = guardrail_metrics
        .into_iter()
        .map(|m| compare(m, arms, guardrail_alpha, spec.tau))
        .filter(|c| c.trials.iter().all(|n| *n > 0))
        .collect();
    let regressed = guardrails.iter().find(|c| c.verdict == Direction::BWorse);
    let over = elapsed_ms >= spec.duration.as_millis() as u64;
    let enough = random.iter().sum::<u64>() >= 2 * MIN_ARM_REQUESTS;
    let (outcome, why) = if let Some(p) = srm.filter(|p| enough && *p < SRM_P_VALUE) {
        (
            Outcome::SampleRatioMismatch,
            format!(
                "sample-ratio mismatch: {} to A and {} to B at random where B's share is {} % (sequential p = {p:.2e}); the split is broken, A stays",
                random[0], random[1], spec.share_b_percent
            ),
        )
    } else if let Some(g) = regressed {
        (
            Outcome::GuardrailRegression { metric: g.metric },
            format!(
                "B regresses on the guardrail {} ({}); A stays",
                g.metric.as_str(),
                describe(g)
            ),
        )
    } else if primary.verdict == Direction::BBetter {
        (
            Outcome::Winner { arm: Arm::B },
            format!(
                "B wins on {} ({}) with no guardrail regressing",
                spec.primary.as_str(),
                describe(&primary)
            ),
        )
    } else if primary.verdict == Direction::BWorse {
        (
            Outcome::Winner { arm: Arm::A },
            format!(
                "A wins on {} ({}): B is worse, A stays",
                spec.primary.as_str(),
                describe(&primary)
            ),
        )
    } else if over {
        (
            Outcome::NoDifference,
            format!(
                "no detectable difference on {} ({}) at the end of the period; A stays",
                spec.primary.as_str(),
                describe(&primary)
            ),
        )
    } else {
        (
            Outcome::Running,
            format!(
                "running: {} so far ({})",
                spec.primary.as_str(),
                describe(&primary)
            ),
        )
    };
    Verdict {
        assigned,
        srm_p_value: srm,
        primary,
        guardrails,
        outcome,
        why,
    }
}

/// "A 80.0 %, B 85.0 %, B − A +5.00 points in [+3.10, +6.90]".
pub fn describe(c: &Comparison) -> String {
    let pct = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| format!("{p:.2} %"));
    match c.difference {
        Some(d) => format!(
            "A {}, B {}, B − A {:+.2} points in [{:+.2}, {:+.2}]",
            pct(c.a_percent),
            pct(c.b_percent),
            d.effect * 100.0,
            d.low * 100.0,
            d.high * 100.0
        ),
        None => format!("A {}, B {}", pct(c.a_percent), pct(c.b_percent)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(requests: u64, hits: u64, errors: u64) -> ArmCounts {
        ArmCounts {
            requests,
            assigned_random: requests,
            errors,
            lookups: requests,
            hits,
            under_p95_target: requests,
            under_p99_target: requests,
            ..Default::default()
        }
    }

    #[test]
    fn a_clear_win_without_regression_stops_early() {
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let v = judge(
            &spec,
            &[arm(20_000, 16_000, 10), arm(20_000, 17_000, 10)],
            1,
        );
        assert_eq!(v.outcome, Outcome::Winner { arm: Arm::B }, "{}", v.why);
        assert_eq!(v.primary.verdict, Direction::BBetter);
        assert!(
            v.why
                .starts_with("B wins on cache_hit_rate (A 80.00 %, B 85.00 %"),
            "{}",
            v.why
        );
    }

    #[test]
    fn a_guardrail_regression_blocks_the_winner() {
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let v = judge(
            &spec,
            &[arm(20_000, 16_000, 20), arm(20_000, 17_000, 400)],
            1,
        );
        assert_eq!(
            v.outcome,
            Outcome::GuardrailRegression {
                metric: Metric::ErrorRate
            },
            "{}",
            v.why
        );
        assert_eq!(v.outcome.kept(), Arm::A);
    }

    #[test]
    fn no_difference_runs_to_the_end_then_keeps_a() {
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let arms = [arm(5_000, 4_000, 0), arm(5_000, 4_010, 0)];
        let running = judge(&spec, &arms, 1_000);
        assert_eq!(running.outcome, Outcome::Running);
        let end = judge(&spec, &arms, spec.duration.as_millis() as u64);
        assert_eq!(end.outcome, Outcome::NoDifference, "{}", end.why);
        assert_eq!(end.outcome.kept(), Arm::A);
    }

    #[test]
    fn a_broken_split_is_flagged() {
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let v = judge(&spec, &[arm(4_500, 3_600, 0), arm(5_500, 4_400, 0)], 1);
        assert_eq!(v.outcome, Outcome::SampleRatioMismatch, "{}", v.why);
        // The same counts under a 55 % share are fine.
        let mut shared = spec.clone();
        shared.share_b_percent = 55;
        assert_ne!(
            judge(&shared, &[arm(4_500, 3_600, 0), arm(5_500, 4_400, 0)], 1).outcome,
            Outcome::SampleRatioMismatch
        );
    }

    #[test]
    fn a_split_by_key_is_not_tested_for_sample_ratio() {
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let by_key = |a: ArmCounts| ArmCounts {
            assigned_random: 0,
            assigned_by_key: a.requests,
            ..a
        };
        let v = judge(
            &spec,
            &[by_key(arm(4_500, 3_600, 0)), by_key(arm(5_500, 4_400, 0))],
            1,
        );
        assert_eq!(v.srm_p_value, None);
        assert_ne!(v.outcome, Outcome::SampleRatioMismatch, "{}", v.why);
    }

    #[test]
    fn too_little_data_decides_nothing() {
        let spec = ExperimentSpec::new("ttl", 60, 600);
        let v = judge(&spec, &[arm(50, 0, 0), arm(50, 50, 0)], 1);
        assert_eq!(v.outcome, Outcome::Running, "{}", v.why);
    }

    #[test]
    fn bad_specs_name_their_field() {
        let mut s = ExperimentSpec::new("ttl", 60, 60);
        assert!(s.check().expect_err("same values").starts_with("b: "));
        s.b = 61;
        s.share_b_percent = 100;
        assert!(s.check().expect_err("share").starts_with("share: "));
        s.share_b_percent = 50;
        s.alpha = 0.0;
        assert!(s.check().expect_err("alpha").starts_with("alpha: "));
        s.alpha = 0.05;
        s.param.clear();
        assert!(s.check().expect_err("param").starts_with("param: "));
        assert_eq!(Metric::parse("error_rate"), Some(Metric::ErrorRate));
        assert_eq!(Metric::parse("p95"), None);
    }
}
