//! A progressive rollout as plain data and pure decisions: the plan
//! (the new revision, the traffic steps, how long each lasts), where it is,
//! and what each reading decides for the step: stay (with what is
//! missing), promote, complete, or give up waiting. A regression is not
//! decided here: it is the gate's `regression` trigger, which opens the
//! approval window like the absolute triggers, and a rollback returns the
//! traffic to what it was before the rollout.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::eval::{Finding, RevisionComparison, RolloutTests};

/// The traffic steps, percent of requests on the new revision.
pub const DEFAULT_STEPS: [u64; 4] = [5, 25, 50, 100];
/// How long each step lasts at least.
pub const DEFAULT_STEP_FOR: Duration = Duration::from_secs(600);
/// How long a step may stay inconclusive past its time before the
/// rollout stops waiting (traffic left where it is, a human decides).
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(3600);
/// Readings kept for the chart.
const POINTS_KEPT: usize = 720;

/// What the rollout does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// The new revision.
    pub to: String,
    /// Percent of requests on it at each step, ascending, ending at 100.
    pub steps: Vec<u64>,
    /// How long each step lasts at least.
    pub step_for: Duration,
    /// How long a step may stay inconclusive past `step_for`.
    pub max_hold: Duration,
    /// The tests each reading runs.
    pub tests: RolloutTests,
}

/// `5,25,50,100`: whole percents from 1 to 100, ascending, ending at 100.
pub fn parse_steps(text: &str) -> Result<Vec<u64>, String> {
    let steps: Vec<u64> = text
        .split(',')
        .map(|s| {
            s.trim()
                .trim_end_matches('%')
                .parse::<u64>()
                .map_err(|_| format!("--steps {text}: {s:?} is not a whole percent"))
        })
        .collect::<Result<_, _>>()?;
    if steps.iter().any(|p| *p == 0 || *p > 100) {
        return Err(format!("--steps {text}: each step from 1 to 100 percent"));
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("--steps {text}: steps must rise"));
    }
    if steps.last() != Some(&100) {
        return Err(format!(
            "--steps {text}: the last step must be 100 (the rollout ends with all traffic on the new revision)"
        ));
    }
    Ok(steps)
}

/// A rollout as asked for (by `gate rollout`'s flags, or in JSON of the
/// gate service's `POST /v1/gate/rollout`); omitted fields take the
/// defaults, percents are percentage points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// The new revision.
    pub to: String,
    /// `5,25,50,100`.
    #[serde(default = "default_steps")]
    pub steps: String,
    /// Seconds each step lasts at least.
    #[serde(default = "default_step_for_s")]
    pub step_for_s: u64,
    /// Seconds a step may stay inconclusive past its time.
    #[serde(default = "default_max_hold_s")]
    pub max_hold_s: u64,
    /// The false-alarm rate over every test and reading.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Percentage points a share of bad requests may worsen, at most, to promote.
    #[serde(default = "default_share_tolerance")]
    pub share_tolerance: f64,
    /// Percentage points of requests made slower, at most, to promote.
    #[serde(default = "default_shift_tolerance")]
    pub shift_tolerance: f64,
    /// Fewer requests than this on either side settles no test.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Who asked (the gate service's history; the token decides whose
    /// name is recorded when the gate knows its approvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

fn default_steps() -> String {
    DEFAULT_STEPS.map(|p| p.to_string()).join(",")
}
fn default_step_for_s() -> u64 {
    DEFAULT_STEP_FOR.as_secs()
}
fn default_max_hold_s() -> u64 {
    DEFAULT_MAX_HOLD.as_secs()
}
fn default_alpha() -> f64 {
    crate::eval::DEFAULT_ROLLOUT_ALPHA
}
fn default_share_tolerance() -> f64 {
    crate::eval::DEFAULT_SHARE_TOLERANCE * 100.0
}
fn default_shift_tolerance() -> f64 {
    crate::eval::DEFAULT_SHIFT_TOLERANCE * 100.0
}
fn default_min_requests() -> u64 {
    crate::eval::DEFAULT_ROLLOUT_MIN_REQUESTS
}

impl RolloutRequest {
    /// A request for `to` with every default.
    pub fn to(revision: &str) -> Self {
        Self {
            to: revision.to_owned(),
            steps: default_steps(),
            step_for_s: default_step_for_s(),
            max_hold_s: default_max_hold_s(),
            alpha: default_alpha(),
            share_tolerance: default_share_tolerance(),
            shift_tolerance: default_shift_tolerance(),
            min_requests: default_min_requests(),
            by: None,
        }
    }

    /// The plan, or what is wrong (named as the flags name it).
    pub fn plan(&self) -> Result<RolloutPlan, String> {
        let to = self.to.trim();
        if to.is_empty() || to.len() > 128 || to.chars().any(|c| c.is_control()) {
            return Err("--to: the new revision's name".into());
        }
        if self.steps.len() > 200 {
            return Err("--steps: at most 200 characters".into());
        }
        let steps = parse_steps(&self.steps)?;
        if !(10..=86_400).contains(&self.step_for_s) {
            return Err(format!("--step-for {}s: from 10s to 24h", self.step_for_s));
        }
        if self.max_hold_s > 7 * 86_400 {
            return Err(format!("--max-hold {}s: at most 7d", self.max_hold_s));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(format!("--alpha {}: above 0 and below 0.5", self.alpha));
        }
        for (flag, v) in [
            ("--share-tolerance", self.share_tolerance),
            ("--shift-tolerance", self.shift_tolerance),
        ] {
            if !(v > 0.0 && v < 100.0) {
                return Err(format!(
                    "{flag} {v}: percentage points, above 0 and below 100"
                ));
            }
        }
        Ok(RolloutPlan {
            to: to.to_owned(),
            steps,
            step_for: Duration::from_secs(self.step_for_s),
            max_hold: Duration::from_secs(self.max_hold_s),
            tests: RolloutTests {
                alpha: self.alpha,
                share_tolerance: self.share_tolerance / 100.0,
                shift_tolerance: self.shift_tolerance / 100.0,
                min_requests: self.min_requests.max(1),
                ..RolloutTests::default()
            },
        })
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum RolloutPhase {
    /// Not yet started: the first step's traffic is not set.
    Starting,
    /// Moving through the steps.
    Stepping,
    /// Every step passed: all traffic on the new revision.
    Promoted,
    /// Rolled back: the traffic is what it was before the rollout.
    Returned,
    /// Stopped with the traffic where it is.
    Stopped {
        /// Why.
        why: String,
        /// Whether something failed (a read, a traffic change) rather
        /// than the evidence staying inconclusive or a human deciding.
        failed: bool,
    },
}

/// One test at one reading, for the chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointMetric {
    /// The test.
    pub metric: String,
    /// New against old.
    pub difference: f64,
    /// The always-valid interval's lower end.
    pub low: f64,
    /// Its upper end.
    pub high: f64,
}

/// One reading of the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPoint {
    /// The data's time, Unix ms.
    pub data_at_ms: u64,
    /// The new revision's percent then.
    pub percent: u64,
    /// Each test.
    pub metrics: Vec<PointMetric>,
}

/// The rollout as `GET /v1/gate` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The plan.
    pub plan: RolloutPlan,
    /// The traffic before the rollout (the revisions it replaces).
    pub from: Vec<(String, u64)>,
    /// The current step (an index into the plan's steps).
    pub step: usize,
    /// The new revision's percent now.
    pub percent: u64,
    /// When the rollout's first traffic was set (data time, Unix ms):
    /// the compared minutes start here.
    pub started_data_ms: Option<u64>,
    /// When the current step started (the gate's clock, ms).
    pub step_started_ms: u64,
    /// The new revision's requests when the current step started.
    pub step_started_requests: u64,
    /// Where it is.
    pub phase: RolloutPhase,
    /// The latest comparison.
    pub comparison: Option<RevisionComparison>,
    /// What the current step waits for, in words.
    pub waiting_for: Option<String>,
    /// Every reading (the latest 720), for the chart.
    pub points: Vec<RolloutPoint>,
    /// Who asked the gate service for it (`None`: `gate rollout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

impl RolloutStatus {
    /// A rollout about to start.
    pub fn new(plan: RolloutPlan) -> Self {
        Self {
            plan,
            from: Vec::new(),
            step: 0,
            percent: 0,
            started_data_ms: None,
            step_started_ms: 0,
            step_started_requests: 0,
            phase: RolloutPhase::Starting,
            comparison: None,
            waiting_for: None,
            points: Vec::new(),
            started_by: None,
        }
    }

    /// The revisions the rollout replaces.
    pub fn old_revisions(&self) -> Vec<String> {
        self.from
            .iter()
            .filter(|(r, _)| *r != self.plan.to)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Records a reading.
    pub fn record(&mut self, data_at_ms: u64, comparison: RevisionComparison) {
        self.points.push(RolloutPoint {
            data_at_ms,
            percent: self.percent,
            metrics: comparison
                .metrics
                .iter()
                .map(|m| PointMetric {
                    metric: m.metric.clone(),
                    difference: m.difference,
                    low: m.low,
                    high: m.high,
                })
                .collect(),
        });
        let excess = self.points.len().saturating_sub(POINTS_KEPT);
        self.points.drain(..excess);
        self.comparison = Some(comparison);
    }
}

/// What a reading decides for the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDecision {
    /// Stay at this step.
    Stay {
        /// What it waits for.
        why: String,
    },
    /// Move to the next step.
    Promote {
        /// Its percent.
        to_percent: u64,
    },
    /// The last step passed: the rollout is done.
    Complete,
    /// The step stayed inconclusive past its time and the hold allowed.
    GiveUp {
        /// What was missing.
        why: String,
    },
}

fn points(x: f64) -> String {
    format!("{:+.2}", x * 100.0)
}

fn band(b: &crate::eval::QuantileBand) -> String {
    let high = b.high_ms.map_or_else(
        || "beyond the last bucket".to_owned(),
        |h| format!("{h:.0}"),
    );
    format!(
        "P{:.0} {:.0} ms [{:.0}, {high}]",
        b.q * 100.0,
        b.value_ms,
        b.low_ms
    )
}

/// Each test of `c` as one line: old and new, the difference with its
/// always-valid interval (percentage points), the requests each side had,
/// the test's false-alarm rate, and what it reads.
pub fn comparison_lines(c: &RevisionComparison) -> Vec<String> {
    let mut lines: Vec<String> = c
        .metrics
        .iter()
        .map(|m| {
            let reads = match m.finding {
                Finding::Worse => "WORSE".to_owned(),
                Finding::NoWorse => "no worse".to_owned(),
                Finding::Inconclusive => match m.needs_more {
                    Some(n) => format!("inconclusive, needs ~{n} more requests"),
                    None => "inconclusive".to_owned(),
                },
            };
            let mut line = format!(
                "{} ({}): old {:.2}% → new {:.2}%, {} points, interval [{}, {}], {} vs {} requests, false alarms ≤ {:.1}%: {reads}",
                m.metric,
                m.measures,
                m.old * 100.0,
                m.new * 100.0,
                points(m.difference),
                points(m.low),
                points(m.high),
                m.old_requests,
                m.new_requests,
                m.alpha * 100.0
            );
            if !m.old_quantiles.is_empty() || !m.new_quantiles.is_empty() {
                let side = |bands: &[crate::eval::QuantileBand]| {
                    bands.iter().map(band).collect::<Vec<_>>().join(", ")
                };
                line.push_str(&format!(
                    "; old {}; new {}",
                    side(&m.old_quantiles),
                    side(&m.new_quantiles)
                ));
            }
            line
        })
        .collect();
    lines.push(format!(
        "All tests together: false alarms ≤ {:.0}% over every reading.",
        c.alpha * 100.0
    ));
    lines
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// What `comparison`, read `in_step` into step `step` of `plan`, decides;
/// `new_per_minute`: the new revision's requests a minute in this step
/// (for how long what is missing would take). A test that reads worse
/// decides nothing here (the regression trigger does): the step stays.
pub fn decide_step(
    plan: &RolloutPlan,
    step: usize,
    in_step: Duration,
    comparison: &RevisionComparison,
    new_per_minute: Option<f64>,
) -> StepDecision {
    if comparison.finding == Finding::Worse {
        return StepDecision::Stay {
            why: format!("worse on {}", comparison.worse().join(", ")),
        };
    }
    if in_step < plan.step_for {
        return StepDecision::Stay {
            why: format!(
                "the step's time: {} of {}",
                minutes(Duration::from_secs(in_step.as_secs())),
                minutes(plan.step_for)
            ),
        };
    }
    if comparison.finding == Finding::NoWorse {
        return match plan.steps.get(step + 1) {
            Some(&p) => StepDecision::Promote { to_percent: p },
            None => StepDecision::Complete,
        };
    }
    let missing = match comparison.needs_more() {
        Some(n) => {
            let at_rate = match new_per_minute {
                Some(r) if r > 0.0 => format!(" (~{:.0} min at this rate)", (n as f64 / r).ceil()),
                _ => String::new(),
            };
            format!("needs ~{n} more requests of {}{at_rate}", plan.to)
        }
        None => {
            let beyond: Vec<&str> = comparison
                .metrics
                .iter()
                .filter(|m| m.finding == Finding::Inconclusive)
                .map(|m| m.metric.as_str())
                .collect();
            if beyond.is_empty() {
                "requests on both revisions".to_owned()
            } else {
                format!(
                    "{}: the difference itself is beyond the tolerance, not yet surely worse",
                    beyond.join(", ")
                )
            }
        }
    };
    if in_step >= plan.step_for + plan.max_hold {
        StepDecision::GiveUp {
            why: format!(
                "inconclusive {} past the step's time: {missing}",
                minutes(plan.max_hold)
            ),
        }
    } else {
        StepDecision::Stay { why: missing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{RevisionCounts, compare_revisions};

    fn plan() -> RolloutPlan {
        RolloutPlan {
            to: "api-2".into(),
            steps: DEFAULT_STEPS.to_vec(),
            step_for: DEFAULT_STEP_FOR,
            max_hold: DEFAULT_MAX_HOLD,
            tests: RolloutTests::default(),
        }
    }

    fn reading(new_requests: u64, new_failures: u64) -> RevisionComparison {
        compare_revisions(
            &RevisionCounts::from_failures(500_000, 500),
            &RevisionCounts::from_failures(new_requests, new_failures),
            &RolloutTests::default(),
        )
    }

    #[test]
    fn a_request_takes_the_defaults_and_refuses_what_is_wrong() {
        let plan = RolloutRequest::to("api-2").plan().expect("valid");
        assert_eq!(plan.steps, DEFAULT_STEPS.to_vec());
        assert_eq!(plan.step_for, DEFAULT_STEP_FOR);
        assert_eq!(plan.tests, RolloutTests::default());
        let json: RolloutRequest =
            serde_json::from_str(r#"{"to": "api-2", "steps": "10,100", "step_for_s": 60}"#)
                .expect("parses");
        assert_eq!(json.plan().expect("valid").steps, vec![10, 100]);
        assert!(serde_json::from_str::<RolloutRequest>(r#"{"to": "x", "stpes": "1"}"#).is_err());
        for bad in [
            RolloutRequest {
                to: " ".into(),
                ..RolloutRequest::to("x")
            },
            RolloutRequest {
                step_for_s: 5,
                ..RolloutRequest::to("x")
            },
            RolloutRequest {
                alpha: 0.5,
                ..RolloutRequest::to("x")
            },
            RolloutRequest {
                shift_tolerance: 0.0,
                ..RolloutRequest::to("x")
            },
            RolloutRequest {
                steps: "5,50".into(),
                ..RolloutRequest::to("x")
            },
        ] {
            assert!(bad.plan().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn steps_rise_to_100() {
        assert_eq!(parse_steps("5, 25,50%,100"), Ok(vec![5, 25, 50, 100]));
        for bad in [
            "",
            "5,25",
            "25,5,100",
            "0,100",
            "5,101",
            "five,100",
            "50,50,100",
        ] {
            assert!(parse_steps(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_steps("100"), Ok(vec![100]));
    }

    #[test]
    fn a_step_promotes_only_after_its_time_and_on_enough_evidence() {
        let p = plan();
        let clean = reading(100_000, 100);
        assert!(matches!(
            decide_step(&p, 0, Duration::from_secs(300), &clean, None),
            StepDecision::Stay { .. }
        ));
        assert_eq!(
            decide_step(&p, 0, DEFAULT_STEP_FOR, &clean, None),
            StepDecision::Promote { to_percent: 25 }
        );
        assert_eq!(
            decide_step(&p, 3, DEFAULT_STEP_FOR, &clean, None),
            StepDecision::Complete
        );
        // Thin: stays, says what is missing and how long it would take.
        let thin = reading(600, 0);
        let StepDecision::Stay { why } = decide_step(&p, 0, DEFAULT_STEP_FOR, &thin, Some(30.0))
        else {
            panic!("a thin step promoted");
        };
        assert!(
            why.contains("more requests of api-2") && why.contains("min at this rate"),
            "{why}"
        );
        // Past the hold: gives up, never promotes.
        assert!(matches!(
            decide_step(&p, 0, DEFAULT_STEP_FOR + DEFAULT_MAX_HOLD, &thin, None),
            StepDecision::GiveUp { .. }
        ));
        // Worse: stays (the regression trigger decides).
        let worse = reading(10_000, 500);
        assert_eq!(
            decide_step(&p, 0, DEFAULT_STEP_FOR * 10, &worse, None),
            StepDecision::Stay {
                why: "worse on availability, error_rate".into()
            }
        );
    }
}
