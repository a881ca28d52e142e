//! The experiments' decision reports in Markdown: per experiment its arms,
//! counts, the primary's effect with its always-valid interval, the
//! guardrails, the sample-ratio test and the timeline of looks.

use std::fmt::Write;

use crate::app::experiments::{ExperimentReport, ExperimentsReport};
use crate::config::FeedbackMode;
use crate::eval::{Comparison, Direction, Outcome};

use super::format::{cell, percent, utc, value};

/// Looks the report's timeline shows (the newest).
pub const TIMELINE_SHOWN: usize = 12;

/// Every experiment's report, the running one first (empty without any).
pub fn experiments_markdown(x: &ExperimentsReport) -> String {
    let mut o = String::new();
    if x.running.is_none() && x.decided.is_empty() {
        return o;
    }
    let _ = writeln!(
        o,
        "\n## Experiments ({}; mode {})\n",
        if x.scope == "fleet" {
            "the fleet's requests"
        } else {
            "this instance's requests"
        },
        x.mode.as_str()
    );
    for e in x.running.iter().chain(&x.decided) {
        o.push_str(&experiment_markdown(e, x.mode));
    }
    o
}

/// One experiment's decision report.
pub fn experiment_markdown(e: &ExperimentReport, mode: FeedbackMode) -> String {
    let mut o = String::new();
    let s = &e.spec;
    let _ = writeln!(
        o,
        "### Experiment {}: `{}` {} (A) against {} (B): {}\n",
        e.id,
        cell(&s.param),
        s.a,
        s.b,
        outcome_name(e.outcome)
    );
    let _ = writeln!(
        o,
        "Started {}, {} {}; B gets {} % of requests; primary `{}` at α = {} (always-valid mSPRT interval, τ = {} points).\n",
        utc(e.started_ms),
        if e.outcome.is_final() {
            "decided"
        } else {
            "ends by"
        },
        utc(e.decided_ms.unwrap_or(e.ends_ms)),
        s.share_b_percent,
        s.primary.as_str(),
        s.alpha,
        s.tau * 100.0
    );
    let _ = writeln!(o, "**{}**", cell(&e.why));
    if let Some(kept) = e.kept_value {
        let _ = writeln!(
            o,
            "\nKept: `{}` = {kept} ({}).",
            cell(&s.param),
            if e.applied {
                "set on the tuning channel".to_owned()
            } else {
                format!(
                    "a recommendation: mode {} does not change parameters",
                    mode.as_str()
                )
            }
        );
    }
    let [a, b] = &e.arms;
    let row = |name: &str, f: &dyn Fn(&crate::app::experiments::ArmReport) -> String| {
        format!("| {name} | {} | {} |\n", f(a), f(b))
    };
    let _ = write!(
        o,
        "\n| | A ({}) | B ({}) |\n| --- | ---: | ---: |\n",
        a.value, b.value
    );
    o.push_str(&row("requests assigned", &|r| {
        r.counts.assigned().to_string()
    }));
    o.push_str(&row("cache hit rate", &|r| percent(r.hit_rate)));
    o.push_str(&row("error rate", &|r| percent(r.error_rate)));
    o.push_str(&row("under the P95 target", &|r| {
        percent(r.under_p95_target)
    }));
    o.push_str(&row("under the P99 target", &|r| {
        percent(r.under_p99_target)
    }));
    o.push_str(&row("P95", &|r| value(r.p95_ms, "ms")));
    o.push_str(&row("P99", &|r| value(r.p99_ms, "ms")));
    o.push_str(&row("cost per request", &|r| {
        r.cost_per_request_usd
            .map_or("n/a".into(), |c| format!("${c:.8}"))
    }));
    if let Some(v) = &e.verdict {
        let _ = write!(
            o,
            "\n| metric | role | B − A (points) | always-valid interval | p | verdict |\n| --- | --- | ---: | --- | ---: | --- |\n"
        );
        for (c, role) in std::iter::once((&v.primary, "primary"))
            .chain(v.guardrails.iter().map(|g| (g, "guardrail")))
        {
            o.push_str(&comparison_row(c, role));
        }
        let _ = match v.srm_p_value {
            Some(p) => writeln!(
                o,
                "\nSample ratio: {} to A, {} to B at random for a {} % share (chi-square p = {p:.3}; a mismatch is p < {}).",
                a.counts.assigned_random,
                b.counts.assigned_random,
                s.share_b_percent,
                crate::eval::SRM_P_VALUE
            ),
            None => writeln!(
                o,
                "\nSample ratio: not tested (every request was assigned by the app's key: a key keeps its arm, so requests are not independent draws)."
            ),
        };
    }
    if !e.timeline.is_empty() {
        let _ = write!(
            o,
            "\n| look | assigned A / B | B − A (points) | interval | outcome |\n| --- | ---: | ---: | --- | --- |\n"
        );
        let skip = e.timeline.len().saturating_sub(TIMELINE_SHOWN);
        for l in &e.timeline[skip..] {
            let (effect, interval) = match l.effect_points {
                Some([d, lo, hi]) => (format!("{d:+.2}"), format!("[{lo:+.2}, {hi:+.2}]")),
                None => ("n/a".into(), "n/a".into()),
            };
            let _ = writeln!(
                o,
                "| {} | {} / {} | {effect} | {interval} | {} |",
                utc(l.at_ms),
                l.assigned[0],
                l.assigned[1],
                outcome_name(l.outcome)
            );
        }
    }
    o.push('\n');
    o
}

fn comparison_row(c: &Comparison, role: &str) -> String {
    let (effect, interval, p) = match c.difference {
        Some(d) => (
            format!("{:+.2}", d.effect * 100.0),
            format!("[{:+.2}, {:+.2}]", d.low * 100.0, d.high * 100.0),
            format!("{:.3}", d.p_value),
        ),
        None => ("n/a".into(), "n/a".into(), "n/a".into()),
    };
    let verdict = match c.verdict {
        Direction::BBetter => "B better",
        Direction::BWorse => "B worse",
        Direction::NotDetected => "no difference detected",
    };
    format!(
        "| {} | {role} | {effect} | {interval} | {p} | {verdict} |\n",
        c.metric.as_str()
    )
}

/// The outcome in a few words.
pub fn outcome_name(o: Outcome) -> String {
    match o {
        Outcome::Running => "running".into(),
        Outcome::Winner { arm } => format!("{} wins", arm.as_str().to_uppercase()),
        Outcome::NoDifference => "no detectable difference".into(),
        Outcome::GuardrailRegression { metric } => {
            format!("blocked by the guardrail {}", metric.as_str())
        }
        Outcome::SampleRatioMismatch => "sample-ratio mismatch".into(),
        Outcome::Stopped => "stopped".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::experiments::Experiments;
    use crate::eval::{CostConfig, ExperimentSpec};

    #[test]
    fn a_decided_experiment_reads_with_its_interval_and_kept_value() {
        let mut x = Experiments::default();
        x.start(ExperimentSpec::new("answer_ttl_s", 300, 900), 0)
            .expect("starts");
        assert!(x.look(60_000, FeedbackMode::Recommend).is_some());
        x.stop(120_000, FeedbackMode::Recommend).expect("stops");
        let report = x.report(
            120_000,
            FeedbackMode::Recommend,
            &CostConfig::default(),
            0.001,
        );
        let md = experiments_markdown(&report);
        assert!(
            md.contains("### Experiment 1: `answer_ttl_s` 300 (A) against 900 (B): stopped"),
            "{md}"
        );
        assert!(
            md.contains("Kept: `answer_ttl_s` = 300 (a recommendation"),
            "{md}"
        );
        assert!(md.contains("| requests assigned | 0 | 0 |"), "{md}");
        assert!(
            md.contains("| 1970-01-01T00:01:00Z | 0 / 0 | n/a | n/a | running |"),
            "{md}"
        );
        assert_eq!(
            experiments_markdown(&Experiments::default().report(
                0,
                FeedbackMode::Off,
                &CostConfig::default(),
                0.0
            )),
            ""
        );
    }
}
