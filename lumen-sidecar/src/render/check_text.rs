//! The seven phases of `lumen-sidecar check`, as text for a terminal.

use std::fmt::Write;

use crate::eval::{SloName, SloReport, SloResult};

use super::actions::action_items;
use super::format::{met, percent, table, target, value};

fn slo(report: &SloReport, name: SloName) -> Option<&SloResult> {
    report.slos.iter().find(|s| s.name == name)
}

fn line_for(s: &SloResult) -> String {
    let evidence = match (s.estimate, s.under_target_percent) {
        (Some(e), Some(under)) => format!(
            ", a bucket estimate in [{}, {}); {} of requests under the target, exact",
            value(Some(e.low_ms), "ms"),
            e.high_ms
                .map_or("+Inf".to_owned(), |h| value(Some(h), "ms")),
            value(Some(under), "%")
        ),
        _ => String::new(),
    };
    format!(
        "{}: {}{evidence} (target {}) {}",
        s.name.title(),
        value(s.current, &s.unit),
        target(s),
        met(s)
    )
}

/// Renders the check. `verbose` adds the counts and the per-route table.
pub fn check_text(report: &SloReport, verbose: bool) -> String {
    let mut o = String::new();
    let revision = report.revision.as_deref().unwrap_or("unknown revision");
    let _ = writeln!(
        o,
        "Lumen SLO check: {} ({revision}), window {}s, {} requests, {}\n",
        report.service,
        report.window_s,
        report.requests,
        report.scope.describe()
    );
    let _ = writeln!(o, "[1/7] SLO targets");
    for s in &report.slos {
        let _ = writeln!(o, "  {:<13} {}", s.name.title(), target(s));
    }
    let c = &report.counts;
    let _ = writeln!(o, "\n[2/7] Availability");
    if let Some(s) = slo(report, SloName::Availability) {
        let _ = writeln!(o, "  {}", line_for(s));
    }
    let _ = writeln!(
        o,
        "  {} 5xx and {} inner failures of {} requests ({} cancelled, not counted)",
        c.server_error, c.errors, report.requests, c.cancelled
    );
    let _ = writeln!(o, "\n[3/7] Latency");
    for name in [SloName::LatencyP95, SloName::LatencyP99] {
        if let Some(s) = slo(report, name) {
            let _ = writeln!(o, "  {}", line_for(s));
        }
    }
    let _ = writeln!(o, "\n[4/7] Error rate");
    if let Some(s) = slo(report, SloName::ErrorRate) {
        let _ = writeln!(o, "  {}", line_for(s));
    }
    let _ = writeln!(
        o,
        "  {} 4xx and {} 5xx responses",
        c.client_error, c.server_error
    );
    let _ = writeln!(o, "\n[5/7] Overall status");
    let met_count = report.slos.iter().filter(|s| s.met).count();
    let _ = writeln!(
        o,
        "  Status: {}, {met_count} of {} SLOs met, compliance rate {}",
        report.status.as_str(),
        report.slos.len(),
        percent(report.compliance_rate)
    );
    let _ = writeln!(o, "\n[6/7] Summary");
    let rows: Vec<Vec<String>> = report
        .slos
        .iter()
        .map(|s| {
            vec![
                s.name.title().to_owned(),
                target(s),
                value(s.current, &s.unit),
                met(s).to_owned(),
            ]
        })
        .collect();
    for l in table(&["Metric", "Target", "Current", "Status"], &rows).lines() {
        let _ = writeln!(o, "  {l}");
    }
    if verbose {
        let _ = writeln!(
            o,
            "\n  Counts: 1xx {} / 2xx {} / 3xx {} / 4xx {} / 5xx {} / inner failures {} / cancelled {}",
            c.informational,
            c.success,
            c.redirect,
            c.client_error,
            c.server_error,
            c.errors,
            c.cancelled
        );
        let _ = writeln!(
            o,
            "  Cache: {} hits, {} misses, hit rate {}",
            report.cache.hits,
            report.cache.misses,
            percent(report.cache.hit_rate)
        );
        if !report.routes.is_empty() {
            let _ = writeln!(o, "\n  Routes");
            let rows: Vec<Vec<String>> = report
                .routes
                .iter()
                .map(|r| {
                    let cur = |n: SloName| {
                        r.slos
                            .iter()
                            .find(|s| s.name == n)
                            .map_or("n/a".into(), |s| value(s.current, &s.unit))
                    };
                    vec![
                        r.route.clone().unwrap_or_else(|| "(no route)".into()),
                        r.requests.to_string(),
                        cur(SloName::Availability),
                        cur(SloName::LatencyP95),
                        cur(SloName::LatencyP99),
                        cur(SloName::ErrorRate),
                        r.status.as_str().to_owned(),
                    ]
                })
                .collect();
            for l in table(
                &[
                    "Route",
                    "Requests",
                    "Availability",
                    "P95",
                    "P99",
                    "Error rate",
                    "Status",
                ],
                &rows,
            )
            .lines()
            {
                let _ = writeln!(o, "  {l}");
            }
        }
    }
    let _ = writeln!(o, "\n[7/7] Report and action items");
    for item in action_items(report) {
        let _ = writeln!(o, "  - {item}");
    }
    o
}

/// One row per SLO: name, budget left, burn 1 h, 6 h, 3 d, alerts firing.
pub fn budget_rows(b: &crate::eval::BudgetReport) -> Vec<Vec<String>> {
    b.slos
        .iter()
        .map(|s| {
            let rate = |w: &str| {
                s.burn_rates
                    .iter()
                    .find(|r| r.window == w)
                    .and_then(|r| r.rate)
                    .map_or("n/a".to_owned(), |r| format!("{r:.2}x"))
            };
            let firing: Vec<String> = s
                .alerts
                .iter()
                .filter(|a| a.firing)
                .map(|a| format!("{} {}/{}", a.severity, a.long_window, a.short_window))
                .collect();
            vec![
                s.name.title().to_owned(),
                s.remaining_percent
                    .map_or("n/a".to_owned(), |r| format!("{r:.1}%")),
                rate("1h"),
                rate("6h"),
                rate("3d"),
                if firing.is_empty() {
                    "none".to_owned()
                } else {
                    firing.join(", ")
                },
            ]
        })
        .collect()
}

/// The error-budget section `check --verbose` appends.
pub fn budget_text(b: &crate::eval::BudgetReport) -> String {
    let mut o = format!("\nError budgets ({} period)\n", b.period);
    for l in table(
        &[
            "SLO",
            "Budget left",
            "Burn 1h",
            "Burn 6h",
            "Burn 3d",
            "Alerts",
        ],
        &budget_rows(b),
    )
    .lines()
    {
        o.push_str("  ");
        o.push_str(l);
        o.push('\n');
    }
    if let Some(c) = &b.cost {
        o.push_str(&format!(
            "\n{} (an estimate, not a bill)\n",
            super::health_text::budget_line(c)
        ));
    }
    o
}
