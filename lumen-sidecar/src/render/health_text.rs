//! The health report for people: the six sections of `lumen-sidecar
//! health`, and the health section of the Markdown report.

use std::fmt::Write;

use crate::eval::{Action, Gate, HealthReport, NO_ACTIONS, WEIGHTS};

use super::format::{percent, table};

fn score(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"))
}

fn gate(g: Gate) -> &'static str {
    match g {
        Gate::Pass => "PASS",
        Gate::Warn => "WARN",
        Gate::Fail => "FAIL",
        Gate::NoData => "NO_DATA",
    }
}

fn value(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "no data".to_owned(), |v| format!("{v:.2} {unit}"))
}

fn action_line(a: &Action) -> String {
    let measured = match a.score {
        Some(s) => format!("{} (score {s:.0})", value(a.value, &a.unit)),
        None => value(a.value, &a.unit),
    };
    let t = &a.threshold;
    format!(
        "[{}] {}: {} is {measured} (threshold {} {} {}); check {}",
        a.priority.as_str(),
        a.category.as_str(),
        a.metric,
        t.comparison,
        t.value,
        t.unit,
        a.check
    )
}

fn maturity_rows(h: &HealthReport) -> Vec<Vec<String>> {
    h.maturity
        .metrics
        .iter()
        .map(|m| {
            let measured = match m.source {
                Some(crate::eval::DeploymentSource::CloudRunApi) => {
                    format!("{} (Cloud Run API)", value(m.value, &m.unit))
                }
                Some(crate::eval::DeploymentSource::SidecarSeen) => {
                    format!("{} (this sidecar only)", value(m.value, &m.unit))
                }
                None => value(m.value, &m.unit),
            };
            vec![m.metric.clone(), measured, score(m.score)]
        })
        .collect()
}

/// The six sections; `verbose` adds the weights and the ROI arithmetic.
pub fn health_text(h: &HealthReport, verbose: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Lumen health check: {} ({}), window {}s\n",
        h.service,
        h.revision.as_deref().unwrap_or("unknown revision"),
        h.window_s
    );
    let _ = writeln!(o, "[1/6] Maturity");
    for l in table(&["Metric", "Value", "Score"], &maturity_rows(h)).lines() {
        let _ = writeln!(o, "  {l}");
    }
    let _ = writeln!(
        o,
        "  Score {} : {}",
        score(h.maturity.score),
        h.maturity.level_name.as_deref().unwrap_or("no data")
    );
    let r = &h.roi;
    let _ = writeln!(o, "\n[2/6] ROI gate");
    let _ = writeln!(
        o,
        "  ROI {} -> {} (PASS >= {}%, WARN >= {}%)",
        r.roi_percent.map_or("n/a".into(), |v| format!("{v:.1}%")),
        gate(r.gate),
        r.pass_percent,
        r.warn_percent
    );
    let _ = writeln!(
        o,
        "  Cache hit rate {} ({} hits, {} misses)",
        percent(r.hit_rate),
        r.hits,
        r.misses
    );
    let _ = writeln!(
        o,
        "  Savings ${:.2} against ${:.2} of cost for the window (compute ${:.2}, Redis ${:.2})",
        r.savings_usd,
        r.cost_usd,
        r.compute_cost_usd,
        r.cost_usd - r.compute_cost_usd
    );
    if let Some(b) = &h.budget {
        let _ = writeln!(o, "  {}", budget_line(b));
    }
    let _ = writeln!(o, "\n[3/6] SLO compliance");
    for l in table(&["SLO", "Target", "Current", "Status"], &slo_rows(h)).lines() {
        let _ = writeln!(o, "  {l}");
    }
    let _ = writeln!(
        o,
        "  Status {}, compliance {}, {} requests",
        h.slo.status.as_str(),
        percent(h.slo.compliance_rate),
        h.slo.requests
    );
    let _ = writeln!(o, "\n[4/6] Summary");
    for l in table(&["Metric", "Value"], &summary_rows(h)).lines() {
        let _ = writeln!(o, "  {l}");
    }
    let (wm, wr, wc) = WEIGHTS;
    let rows = vec![
        vec![
            "Maturity".to_owned(),
            score(h.maturity.score),
            format!("{:.0}%", wm * 100.0),
        ],
        vec![
            "ROI score".to_owned(),
            score(r.score),
            format!("{:.0}%", wr * 100.0),
        ],
        vec![
            "SLO compliance".to_owned(),
            score(h.slo.compliance_rate),
            format!("{:.0}%", wc * 100.0),
        ],
        vec!["Health".to_owned(), score(h.health_score), String::new()],
    ];
    if verbose {
        for l in table(&["Component", "Score", "Weight"], &rows).lines() {
            let _ = writeln!(o, "  {l}");
        }
        let _ = writeln!(
            o,
            "  (components without data are left out and the weights rescaled)"
        );
        let _ = writeln!(
            o,
            "  ROI = (savings - cost) / cost x 100 = ({:.4} - {:.4}) / {:.4} x 100",
            r.savings_usd, r.cost_usd, r.cost_usd
        );
    }
    let _ = writeln!(o, "\n[5/6] Overall");
    let _ = writeln!(o, "  {}", overall(h));
    for c in h.components.iter().filter(|c| c.score.is_none()) {
        let _ = writeln!(
            o,
            "  {} not measured: {}{}",
            c.name,
            c.missing.as_deref().unwrap_or("no data"),
            if c.required {
                ""
            } else {
                " (left out, weights rescaled)"
            }
        );
    }
    let _ = writeln!(o, "\n[6/6] Recommended actions");
    if h.actions.is_empty() {
        let _ = writeln!(o, "  {}", no_actions(h));
    }
    for a in &h.actions {
        let _ = writeln!(o, "  - {}", action_line(a));
    }
    o
}

/// `Overall Health: GOOD (82.9/100)`, or why there is no score.
/// One line: the month's cost so far and its forecast against the budget.
pub fn budget_line(b: &crate::eval::CostReport) -> String {
    format!(
        "Budget ({}): ${:.2} this month so far, forecast ${:.2} of ${:.2} ({:.0}%){}",
        if b.scope == "instance" {
            "this instance"
        } else {
            "the fleet"
        },
        b.month_to_date_usd,
        b.forecast_usd,
        b.budget_usd,
        b.forecast_percent_of_budget,
        if b.over_budget { ": OVER BUDGET" } else { "" }
    )
}

fn overall(h: &HealthReport) -> String {
    match h.health_score {
        Some(v) => format!("Overall Health: {} ({v:.1}/100)", h.band.as_str()),
        None => format!("Overall Health: {} (no score)", h.band.as_str()),
    }
}

/// The sentence when nothing needs doing, unless there is no score.
fn no_actions(h: &HealthReport) -> &'static str {
    if h.health_score.is_some() {
        NO_ACTIONS
    } else {
        "No actions: without data there is nothing to judge."
    }
}

fn slo_rows(h: &HealthReport) -> Vec<Vec<String>> {
    h.slo
        .slos
        .iter()
        .map(|s| {
            vec![
                s.name.as_str().to_owned(),
                super::format::target(s),
                super::format::value(s.current, &s.unit),
                super::format::met(s).to_owned(),
            ]
        })
        .collect()
}

/// The summary rows.
fn summary_rows(h: &HealthReport) -> Vec<Vec<String>> {
    let r = &h.roi;
    vec![
        vec!["Maturity score".into(), score(h.maturity.score)],
        vec![
            "Maturity level".into(),
            h.maturity
                .level_name
                .clone()
                .unwrap_or_else(|| "no data".into()),
        ],
        vec![
            "ROI".into(),
            r.roi_percent.map_or("n/a".into(), |v| format!("{v:.1}%")),
        ],
        vec!["ROI gate status".into(), gate(r.gate).into()],
        vec!["SLO compliance".into(), percent(h.slo.compliance_rate)],
        vec!["SLO overall status".into(), h.slo.status.as_str().into()],
    ]
}

/// The health section of the Markdown report.
pub fn health_markdown(h: &HealthReport) -> String {
    let mut o = String::new();
    let r = &h.roi;
    let _ = writeln!(o, "## Health\n");
    let _ = writeln!(o, "**{}**\n", overall(h));
    if let Some(b) = &h.budget {
        let _ = writeln!(o, "{} (an estimate, not a bill)\n", budget_line(b));
    }
    let _ = writeln!(o, "| Metric | Value |\n| --- | --- |");
    for row in summary_rows(h) {
        let _ = writeln!(o, "| {} | {} |", row[0], row[1]);
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| Maturity metric | Value | Score |\n| --- | --- | --- |"
    );
    for row in maturity_rows(h) {
        let _ = writeln!(o, "| {} | {} | {} |", row[0], row[1], row[2]);
    }
    let _ = writeln!(
        o,
        "\nCache: {} hits, {} misses, hit rate {}; savings ${:.2}, Redis cost ${:.2} for the window.\n",
        r.hits,
        r.misses,
        percent(r.hit_rate),
        r.savings_usd,
        r.cost_usd
    );
    let _ = writeln!(o, "### Recommended actions\n");
    if h.actions.is_empty() {
        let _ = writeln!(o, "- {}", no_actions(h));
    }
    for a in &h.actions {
        let _ = writeln!(o, "- {}", action_line(a));
    }
    o
}
