//! The Markdown report of `GET /v1/report`.

use std::fmt::Write;

use crate::eval::{BudgetReport, HealthReport, SloName, SloReport};

use super::actions::action_items;
use super::format::{cell, met, percent, target, utc, value};

/// Renders the report, with the health section when given.
pub fn markdown(report: &SloReport, extra: Option<(&HealthReport, &BudgetReport)>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# SLO report: {}\n", cell(&report.service));
    let _ = writeln!(
        o,
        "**Status: {}** · compliance {} · window {}s · {} requests · revision {} · evaluated {}\n",
        report.status.as_str(),
        percent(report.compliance_rate),
        report.window_s,
        report.requests,
        cell(report.revision.as_deref().unwrap_or("unknown")),
        utc(report.evaluated_at_ms)
    );
    let _ = writeln!(o, "## Targets and current values\n");
    let _ = writeln!(
        o,
        "| SLO | Target | Current | Status |\n| --- | --- | --- | --- |"
    );
    for s in &report.slos {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            s.name.title(),
            target(s),
            value(s.current, &s.unit),
            met(s)
        );
    }
    let c = &report.counts;
    let _ = writeln!(
        o,
        "\nRequests: {} (2xx {}, 3xx {}, 4xx {}, 5xx {}, inner failures {}); {} cancelled by clients, not counted. Cache: {} hits, {} misses, hit rate {}.\n",
        report.requests,
        c.success,
        c.redirect,
        c.client_error,
        c.server_error,
        c.errors,
        c.cancelled,
        report.cache.hits,
        report.cache.misses,
        percent(report.cache.hit_rate)
    );
    if !report.routes.is_empty() {
        let _ = writeln!(o, "## Routes\n");
        let _ = writeln!(
            o,
            "| Route | Requests | Availability | P95 | P99 | Error rate | Cache hit rate | Status |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for r in &report.routes {
            let cur = |n: SloName| {
                r.slos
                    .iter()
                    .find(|s| s.name == n)
                    .map_or("n/a".into(), |s| value(s.current, &s.unit))
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(r.route.as_deref().unwrap_or("(no route)")),
                r.requests,
                cur(SloName::Availability),
                cur(SloName::LatencyP95),
                cur(SloName::LatencyP99),
                cur(SloName::ErrorRate),
                percent(r.cache.hit_rate),
                r.status.as_str()
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Action items\n");
    for item in action_items(report) {
        let _ = writeln!(o, "- {item}");
    }
    if let Some((h, b)) = extra {
        let _ = writeln!(o);
        o.push_str(&super::health_text::health_markdown(h));
        let _ = writeln!(o);
        o.push_str(&budget_markdown(b));
    }
    o
}

/// The error-budget section: remaining budget, burn rates, alerts firing.
pub fn budget_markdown(b: &BudgetReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Error budgets ({} period)\n", b.period);
    let _ = writeln!(
        o,
        "| SLO | Remaining | Burn 1h | Burn 6h | Burn 3d | Alerts firing |\n| --- | ---: | ---: | ---: | ---: | --- |"
    );
    for row in super::check_text::budget_rows(b) {
        let _ = writeln!(o, "| {} |", row.join(" | "));
    }
    o
}
