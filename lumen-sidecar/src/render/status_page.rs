//! The small HTML status page at `/`.

use std::fmt::Write;

use crate::eval::{SloReport, Status};

use super::actions::action_items;
use super::format::{met, percent, target, utc, value};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the page, with `notice` (escaped) under the title when given;
/// it reloads itself every 10 s.
pub fn status_page(report: &SloReport, notice: Option<&str>) -> String {
    let colour = match report.status {
        Status::Healthy => "#1e8e3e",
        Status::Warning => "#f9ab00",
        Status::Critical => "#d93025",
        Status::NoData => "#5f6368",
    };
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
<title>{service}: {status}</title><style>body{{font:15px system-ui,sans-serif;margin:2rem;max-width:60rem}}\
.badge{{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;color:#fff;background:{colour}}}\
table{{border-collapse:collapse;margin:1rem 0}}td,th{{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}}</style></head><body>\
<h1>{service}</h1><p class=\"scope\">{scope}</p>{notice}<p><span class=\"badge\">{status}</span> compliance {compliance} · window {window}s · {requests} requests · evaluated {at}</p>\
<table><tr><th>SLO</th><th>Target</th><th>Current</th><th>Status</th></tr>",
        service = escape(&report.service),
        scope = escape(&format!("Scope: {}", report.scope.describe())),
        notice = notice
            .map(|n| format!("<p class=\"notice\">{}</p>", escape(n)))
            .unwrap_or_default(),
        status = report.status.as_str(),
        compliance = percent(report.compliance_rate),
        window = report.window_s,
        requests = report.requests,
        at = utc(report.evaluated_at_ms),
    );
    for s in &report.slos {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.name.title(),
            escape(&target(s)),
            value(s.current, &s.unit),
            met(s)
        );
    }
    let _ = write!(o, "</table><h2>Action items</h2><ul>");
    for item in action_items(report) {
        let _ = write!(o, "<li>{}</li>", escape(&item));
    }
    let _ = write!(
        o,
        "</ul><p><a href=\"/v1/report\">Markdown report</a> · <a href=\"/v1/slo\">JSON</a> · <a href=\"/metrics\">metrics</a></p></body></html>"
    );
    o
}
