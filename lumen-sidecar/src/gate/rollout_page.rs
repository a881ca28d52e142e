//! The gate's page (`GET /` on its API): where a rollout is and why, and
//! for each test a chart of the difference and its always-valid interval at
//! every reading, the steps marked, drawn as SVG on the server (no script).

use std::fmt::Write;

use super::rollout::{RolloutPhase, RolloutStatus, comparison_lines};
use crate::render::escape_html as escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const PAD: f64 = 36.0;

/// One test's chart: x is the reading, y the difference in percentage
/// points; each reading's interval is a vertical bar, the difference a dot;
/// the zero line, the tolerance line and each step's start are drawn.
fn chart(status: &RolloutStatus, metric: &str, tolerance_points: f64) -> String {
    let points: Vec<(usize, u64, f64, f64, f64)> = status
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let m = p.metrics.iter().find(|m| m.metric == metric)?;
            // Intervals are clipped to ±100 points for drawing.
            let clip = |x: f64| (x * 100.0).clamp(-100.0, 100.0);
            Some((i, p.percent, clip(m.difference), clip(m.low), clip(m.high)))
        })
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let (mut lo, mut hi) = (-tolerance_points.abs(), tolerance_points.abs());
    for &(_, _, _, l, h) in &points {
        lo = lo.min(l);
        hi = hi.max(h);
    }
    let span = (hi - lo).max(1e-9);
    let n = status.points.len().max(2) - 1;
    let x = |i: usize| PAD + (WIDTH - 2.0 * PAD) * i as f64 / n as f64;
    let y = |v: f64| HEIGHT - PAD / 2.0 - (HEIGHT - PAD) * (v - lo) / span;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{m}: difference and interval at each reading"><title>{m}</title>"#,
        m = escape(metric)
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" x2="{x2}" y1="{z:.1}" y2="{z:.1}" stroke="#555"/><text x="2" y="{z:.1}" font-size="10">0</text>"##,
        x2 = WIDTH - PAD,
        z = y(0.0)
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" x2="{x2}" y1="{t:.1}" y2="{t:.1}" stroke="#c80" stroke-dasharray="4 3"/><text x="2" y="{t:.1}" font-size="10">{tolerance_points:+.1}</text>"##,
        x2 = WIDTH - PAD,
        t = y(tolerance_points)
    );
    let mut last_percent = None;
    for &(i, percent, d, l, h) in &points {
        if last_percent != Some(percent) {
            let _ = write!(
                svg,
                r##"<line x1="{xi:.1}" x2="{xi:.1}" y1="0" y2="{HEIGHT}" stroke="#aaa" stroke-dasharray="2 2"/><text x="{xt:.1}" y="10" font-size="10">{percent}%</text>"##,
                xi = x(i),
                xt = x(i) + 2.0
            );
            last_percent = Some(percent);
        }
        let colour = if l > 0.0 { "#c00" } else { "#06c" };
        let _ = write!(
            svg,
            r#"<line x1="{xi:.1}" x2="{xi:.1}" y1="{yl:.1}" y2="{yh:.1}" stroke="{colour}" stroke-width="2"/><circle cx="{xi:.1}" cy="{yd:.1}" r="2" fill="{colour}"/>"#,
            xi = x(i),
            yl = y(l),
            yh = y(h),
            yd = y(d)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The page for `service`'s gate, with its rollout if there is one.
pub fn rollout_page(service: &str, state: &str, rollout: Option<&RolloutStatus>) -> String {
    let mut body = format!(
        "<h1>Lumen gate: {}</h1><p>{}</p>",
        escape(service),
        escape(state)
    );
    match rollout {
        None => body
            .push_str("<p>No rollout: the gate watches the revision serving the most traffic.</p>"),
        Some(r) => {
            let phase = match &r.phase {
                RolloutPhase::Starting => "starting".to_owned(),
                RolloutPhase::Stepping => format!("at {}% of requests", r.percent),
                RolloutPhase::Promoted => "promoted: 100% of requests".to_owned(),
                RolloutPhase::Returned => "rolled back: the traffic is as it was".to_owned(),
                RolloutPhase::Stopped { why, .. } => format!("stopped at {}%: {why}", r.percent),
            };
            let _ = write!(
                body,
                "<h2>Rollout of {}: {}</h2><p>Steps {}; compared with {} over the same minutes.</p>",
                escape(&r.plan.to),
                escape(&phase),
                r.plan
                    .steps
                    .iter()
                    .map(|p| format!("{p}%"))
                    .collect::<Vec<_>>()
                    .join(" → "),
                escape(
                    &r.from
                        .iter()
                        .map(|(rev, p)| format!("{rev} ({p}% before)"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            );
            if let Some(w) = &r.waiting_for {
                let _ = write!(body, "<p>Waiting for: {}</p>", escape(w));
            }
            if let Some(c) = &r.comparison {
                body.push_str("<ul>");
                for line in comparison_lines(c) {
                    let _ = write!(body, "<li>{}</li>", escape(&line));
                }
                body.push_str("</ul>");
                body.push_str("<p>Each chart: new against old in percentage points at every reading; the bar is the always-valid interval (red once it lies wholly above 0: worse), the dashed line the tolerance a step is promoted within, the grey lines the steps.</p>");
                for m in &c.metrics {
                    let tolerance = if m.metric == "latency_shift" {
                        r.plan.tests.shift_tolerance
                    } else {
                        r.plan.tests.share_tolerance
                    };
                    let _ = write!(
                        body,
                        "<h3>{} ({})</h3>{}",
                        escape(&m.metric),
                        escape(&m.measures),
                        chart(r, &m.metric, tolerance * 100.0)
                    );
                }
            }
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lumen gate: {}</title><style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem}}svg{{width:100%;height:auto}}li{{font-size:.85rem}}</style></head><body>{body}</body></html>",
        escape(service)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{RevisionCounts, RolloutTests, compare_revisions};
    use crate::gate::rollout::{DEFAULT_STEPS, RolloutPlan};
    use std::time::Duration;

    #[test]
    fn the_chart_has_a_bar_per_reading_and_marks_the_steps() {
        let mut r = RolloutStatus::new(RolloutPlan {
            to: "api-<2>".into(),
            steps: DEFAULT_STEPS.to_vec(),
            step_for: Duration::from_secs(600),
            max_hold: Duration::from_secs(3600),
            tests: RolloutTests::default(),
        });
        r.phase = RolloutPhase::Stepping;
        r.from = vec![("api-1".into(), 100)];
        let old = RevisionCounts::from_failures(100_000, 500);
        for (i, percent) in [5, 5, 25].into_iter().enumerate() {
            r.percent = percent;
            let new = RevisionCounts::from_failures(5_000 * (i as u64 + 1), 500 * (i as u64 + 1));
            r.record(
                i as u64 * 60_000,
                compare_revisions(&old, &new, &RolloutTests::default()),
            );
        }
        let page = rollout_page("api", "watching", Some(&r));
        assert!(page.contains("api-&lt;2&gt;") && !page.contains("api-<2>"));
        let availability = page
            .split("<h3>availability")
            .nth(1)
            .and_then(|s| s.split("</svg>").next())
            .expect("an availability chart");
        // Three readings: three bars and dots; two steps marked.
        assert_eq!(availability.matches("<circle").count(), 3);
        assert_eq!(availability.matches(">5%</text>").count(), 1);
        assert_eq!(availability.matches(">25%</text>").count(), 1);
        // 10 % against 0.5 %: surely worse, drawn red.
        assert!(availability.contains("#c00"));
    }
}
