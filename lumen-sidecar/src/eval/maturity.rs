//! The maturity score: six metrics, each scored 0–100 by a function written
//! down here, averaged over those with data into a score and a level 1–5.

use serde::{Deserialize, Serialize};

/// Where a deployment count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentSource {
    /// The Cloud Run Admin API's revision list (the whole service).
    CloudRunApi,
    /// The revisions this sidecar's batches named (its instance only).
    SidecarSeen,
}

/// A count of deployments over the last 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deployments {
    /// Revisions created in the last 7 days.
    pub count_7d: u32,
    /// Where the count comes from.
    pub source: DeploymentSource,
}

/// Level names, by level − 1.
pub const LEVEL_NAMES: [&str; 5] = [
    "Initial",
    "Managed",
    "Defined",
    "Quantitatively Managed",
    "Optimizing",
];
/// Deployments in 7 days that score 100 (one a day).
pub const DEPLOYS_FOR_FULL_SCORE: f64 = 7.0;
/// A failure share this many times the allowed one scores 0.
pub const FAILURE_MULTIPLE_AT_ZERO: f64 = 5.0;
/// Cache hit rates (percent) scoring 0 and 100.
pub const HIT_RATE_RANGE: (f64, f64) = (40.0, 80.0);

/// What the six metrics are measured from (`None`: no data).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaturityInputs {
    /// Availability, percent, and its target.
    pub availability: Option<(f64, f64)>,
    /// P95 latency, ms, and its target.
    pub latency_p95: Option<(f64, f64)>,
    /// Error rate, percent, and its target.
    pub error_rate: Option<(f64, f64)>,
    /// Cache hit rate, percent.
    pub cache_hit_rate: Option<f64>,
    /// Distinct revisions seen in the last 7 days.
    pub deployments_7d: Option<u32>,
    /// Where that count comes from.
    pub deployments_source: Option<DeploymentSource>,
    /// CPU used over the CPU limit, 0–1 (averaged over instances).
    pub cpu_utilisation: Option<f64>,
    /// Resident memory over the memory limit, 0–1 (averaged over instances).
    pub memory_utilisation: Option<f64>,
}

/// One metric's measurement and score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricScore {
    /// `availability`, `latency_p95`, `error_rate`, `cache_hit_rate`,
    /// `deployment_frequency`, `resource_efficiency`.
    pub metric: String,
    /// The measured value (`null` without data).
    pub value: Option<f64>,
    /// Where the value comes from, when there is more than one way to know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DeploymentSource>,
    /// Its unit.
    pub unit: String,
    /// 0–100, `null` without data (left out of the average).
    pub score: Option<f64>,
}

/// Metrics that must be measured (availability among them) for a maturity score.
pub const MIN_MEASURED_METRICS: usize = 3;

/// The maturity of the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maturity {
    /// The six metrics.
    pub metrics: Vec<MetricScore>,
    /// Mean of the scores with data, 0–100.
    pub score: Option<f64>,
    /// 1–5.
    pub level: Option<u8>,
    /// `Level 4 - Quantitatively Managed`.
    pub level_name: Option<String>,
}

/// A failure share (percent) against the allowed share: 100 at or below it,
/// falling linearly to 0 at [`FAILURE_MULTIPLE_AT_ZERO`] times it.
pub fn score_failure_share(actual: f64, allowed: f64) -> f64 {
    if actual <= allowed {
        return 100.0;
    }
    let zero_at = allowed * FAILURE_MULTIPLE_AT_ZERO;
    (100.0 * (zero_at - actual) / (zero_at - allowed)).clamp(0.0, 100.0)
}

/// Availability (percent) against its target, as a failure share.
pub fn score_availability(availability: f64, target: f64) -> f64 {
    score_failure_share(100.0 - availability, 100.0 - target)
}

/// P95 against its target: 100 up to the target, 0 at twice it, linear between.
pub fn score_latency(p95_ms: f64, target_ms: f64) -> f64 {
    (100.0 * (2.0 * target_ms - p95_ms) / target_ms).clamp(0.0, 100.0)
}

/// Cache hit rate: 0 at 40 % or less, 100 at 80 % or more, linear between.
pub fn score_hit_rate(percent: f64) -> f64 {
    let (low, high) = HIT_RATE_RANGE;
    (100.0 * (percent - low) / (high - low)).clamp(0.0, 100.0)
}

/// Deployments in 7 days: 100 × n ÷ 7, at most 100.
pub fn score_deployments(n: u32) -> f64 {
    (100.0 * f64::from(n) / DEPLOYS_FOR_FULL_SCORE).min(100.0)
}

/// A utilisation (0–1) of a limit: 50 when idle rising to 100 at 40 %,
/// 100 up to 80 %, falling to 0 at 100 % (no headroom left).
pub fn score_utilisation(u: f64) -> f64 {
    if u < 0.4 {
        50.0 + 125.0 * u.max(0.0)
    } else if u <= 0.8 {
        100.0
    } else {
        (100.0 - 500.0 * (u - 0.8)).max(0.0)
    }
}

/// Level 1 below 20, 2 below 40, 3 below 60, 4 below 80, 5 from 80.
pub fn level_of(score: f64) -> u8 {
    ((score / 20.0).floor() as u8 + 1).clamp(1, 5)
}

/// Scores the six metrics and averages those with data.
pub fn maturity(inputs: &MaturityInputs) -> Maturity {
    let efficiency = match (inputs.cpu_utilisation, inputs.memory_utilisation) {
        (Some(c), Some(m)) => Some((
            (c + m) / 2.0,
            (score_utilisation(c) + score_utilisation(m)) / 2.0,
        )),
        (Some(u), None) | (None, Some(u)) => Some((u, score_utilisation(u))),
        (None, None) => None,
    };
    let row = |metric: &str, unit: &str, v: Option<(f64, f64)>| MetricScore {
        metric: metric.to_owned(),
        source: (metric == "deployment_frequency")
            .then_some(inputs.deployments_source)
            .flatten(),
        value: v.map(|x| x.0),
        unit: unit.to_owned(),
        score: v.map(|x| x.1),
    };
    let metrics = vec![
        row(
            "availability",
            "%",
            inputs
                .availability
                .map(|(a, t)| (a, score_availability(a, t))),
        ),
        row(
            "latency_p95",
            "ms",
            inputs.latency_p95.map(|(p, t)| (p, score_latency(p, t))),
        ),
        row(
            "error_rate",
            "%",
            inputs
                .error_rate
                .map(|(e, t)| (e, score_failure_share(e, t))),
        ),
        row(
            "cache_hit_rate",
            "%",
            inputs.cache_hit_rate.map(|h| (h, score_hit_rate(h))),
        ),
        row(
            "deployment_frequency",
            "deploys/7d",
            inputs
                .deployments_7d
                .map(|n| (f64::from(n), score_deployments(n))),
        ),
        row("resource_efficiency", "utilisation", efficiency),
    ];
    let scored: Vec<f64> = metrics.iter().filter_map(|m| m.score).collect();
    // A score needs traffic (availability measured) and at least
    // MIN_MEASURED_METRICS of the six: one metric alone (the deployments of
    // an idle service) must not stand for the whole.
    let enough = inputs.availability.is_some() && scored.len() >= MIN_MEASURED_METRICS;
    let score = enough.then(|| scored.iter().sum::<f64>() / scored.len() as f64);
    let level = score.map(level_of);
    Maturity {
        metrics,
        score,
        level,
        level_name: level.map(|l| format!("Level {l} - {}", LEVEL_NAMES[usize::from(l) - 1])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_functions_at_their_boundaries() {
        // Failure share: allowed 0.5 %; 0 at 2.5 %.
        for (actual, score) in [
            (0.0, 100.0),
            (0.5, 100.0),
            (1.5, 50.0),
            (2.5, 0.0),
            (9.0, 0.0),
        ] {
            assert!(
                (score_failure_share(actual, 0.5) - score).abs() < 1e-9,
                "{actual}"
            );
        }
        assert!((score_availability(99.5, 99.5) - 100.0).abs() < 1e-9);
        assert!((score_availability(98.5, 99.5) - 50.0).abs() < 1e-9);
        for (p95, score) in [
            (100.0, 100.0),
            (200.0, 100.0),
            (300.0, 50.0),
            (400.0, 0.0),
            (900.0, 0.0),
        ] {
            assert_eq!(score_latency(p95, 200.0), score, "{p95}");
        }
        for (h, score) in [
            (0.0, 0.0),
            (40.0, 0.0),
            (60.0, 50.0),
            (80.0, 100.0),
            (99.0, 100.0),
        ] {
            assert_eq!(score_hit_rate(h), score, "{h}");
        }
        assert!((score_deployments(1) - 100.0 / 7.0).abs() < 1e-9);
        assert_eq!(score_deployments(7), 100.0);
        assert_eq!(score_deployments(30), 100.0);
        for (u, score) in [
            (0.0, 50.0),
            (0.2, 75.0),
            (0.4, 100.0),
            (0.8, 100.0),
            (0.9, 50.0),
            (1.0, 0.0),
            (1.5, 0.0),
        ] {
            assert!((score_utilisation(u) - score).abs() < 1e-9, "{u}");
        }
        for (s, level) in [
            (0.0, 1),
            (19.99, 1),
            (20.0, 2),
            (39.99, 2),
            (40.0, 3),
            (60.0, 4),
            (78.5, 4),
            (80.0, 5),
            (100.0, 5),
        ] {
            assert_eq!(level_of(s), level, "{s}");
        }
    }

    #[test]
    fn metrics_without_data_are_left_out_not_scored() {
        let m = maturity(&MaturityInputs {
            availability: Some((99.9, 99.5)),
            cache_hit_rate: Some(60.0),
            error_rate: Some((0.05, 0.1)),
            ..MaturityInputs::default()
        });
        assert_eq!(m.metrics.len(), 6);
        assert_eq!(m.metrics.iter().filter(|x| x.score.is_none()).count(), 3);
        let expected = (100.0 + 50.0 + 100.0) / 3.0;
        assert_eq!(m.score, Some(expected), "mean of the three, not of six");
        assert_eq!(m.level, Some(level_of(expected)));
        let none = maturity(&MaturityInputs::default());
        assert_eq!((none.score, none.level), (None, None));
        // An idle service: only the deployments are known. No score.
        let idle = maturity(&MaturityInputs {
            deployments_7d: Some(1),
            cpu_utilisation: Some(0.1),
            memory_utilisation: Some(0.3),
            ..MaturityInputs::default()
        });
        assert_eq!(idle.score, None, "no traffic, no maturity score");
        // Traffic but too little measured.
        let thin = maturity(&MaturityInputs {
            availability: Some((99.9, 99.5)),
            deployments_7d: Some(1),
            ..MaturityInputs::default()
        });
        assert_eq!(thin.score, None);
    }

    #[test]
    fn resource_efficiency_averages_cpu_and_memory() {
        let m = maturity(&MaturityInputs {
            cpu_utilisation: Some(0.2),
            memory_utilisation: Some(0.9),
            ..MaturityInputs::default()
        });
        let r = &m.metrics[5];
        assert!((r.score.expect("scored") - 62.5).abs() < 1e-9);
        assert!((r.value.expect("value") - 0.55).abs() < 1e-12);
    }
}
