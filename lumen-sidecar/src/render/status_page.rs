//! The status page at `/`: status and compliance, a card per SLO, charts
//! of latency, traffic, errors, availability, cache hit rate, the budget's
//! burn-down and burn rates, the latency distribution, a sortable route
//! table, the running (or latest) A/B experiment. The server renders the first view (it reads without script);
//! the embedded script (`assets/status_page.js`, no network but the
//! sidecar) fetches the JSON API and updates everything in place every
//! 10 s.

use std::fmt::Write;

use crate::eval::SloReport;

use super::actions::action_items;
use super::format::{met, percent, target, utc, value};

/// The page's script, embedded in the binary.
pub const SCRIPT: &str = include_str!("../../assets/status_page.js");

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font:15px system-ui,sans-serif;margin:0 auto;padding:1rem;max-width:72rem;color:#202124}\
h1{margin:.2rem 0}.scope,.notice{color:#5f6368;margin:.2rem 0}.notice{color:#b06000}\
.badge{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;color:#fff;background:#5f6368}\
.badge.HEALTHY{background:#1e8e3e}.badge.WARNING{background:#f9ab00}.badge.CRITICAL{background:#d93025}\
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(12rem,1fr));gap:.8rem;margin:1rem 0}\
.card{border:1px solid #dadce0;border-radius:.5rem;padding:.6rem .8rem}.card h3{margin:0;font-size:.9rem;text-transform:capitalize}\
.card.missed{border-color:#d93025}.card .current{font-size:1.6rem;margin:.2rem 0}.card p{margin:.2rem 0}\
#charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem}\
#charts h3,#experiments h3{font-size:.9rem;margin:.2rem 0}#charts svg,#experiments svg{width:100%;height:auto}#chart-experiment{max-width:36rem}.legend{font-size:.8rem;margin:0}\
table{border-collapse:collapse;margin:1rem 0;width:100%}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left}\
th[data-key]{cursor:pointer}#error{color:#d93025}.scroll{overflow-x:auto}td{overflow-wrap:anywhere}@media (max-width:40rem){#charts{grid-template-columns:1fr}td,th{padding:.3rem}}";

/// Renders the page for `report`, with `notice` (escaped) under the title
/// when given.
pub fn status_page(report: &SloReport, notice: Option<&str>, slo_path: &str) -> String {
    let mut o = String::new();
    let status = report.status.as_str();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
<title>{service}: {status}</title><style>{STYLE}</style></head>\
<body data-slo-path=\"{slo_path}\" data-window=\"{window}m\">\
<h1>{service}</h1><p class=\"scope\">{scope}</p>{notice}\
<p><span id=\"status\" class=\"badge {status}\">{status}</span> compliance <span id=\"compliance\">{compliance}</span> · \
window {window}m · <span id=\"requests\">{requests}</span> requests · evaluated <span id=\"evaluated\">{at}</span></p>\
<p id=\"error\"></p><div id=\"cards\">",
        service = escape(&report.service),
        slo_path = escape(slo_path),
        scope = escape(&format!("Scope: {}", report.scope.describe())),
        notice = notice
            .map(|n| format!("<p class=\"notice\">{}</p>", escape(n)))
            .unwrap_or_default(),
        compliance = percent(report.compliance_rate),
        window = report.window_s / 60,
        requests = report.requests,
        at = utc(report.evaluated_at_ms),
    );
    for s in &report.slos {
        let _ = write!(
            o,
            "<div class=\"card {class}\" data-slo=\"{name}\"><h3>{title}</h3><p class=\"current\">{current}</p><p class=\"target\">target {target}</p><p>{met}</p></div>",
            class = if s.met { "met" } else { "missed" },
            name = s.name.as_str(),
            title = s.name.title(),
            current = escape(&value(s.current, &s.unit)),
            target = escape(&target(s)),
            met = met(s),
        );
    }
    o.push_str(
        "</div><h2>Charts</h2><p id=\"charts-scope\" class=\"scope\"></p><div id=\"charts\">",
    );
    for id in [
        "latency",
        "requests",
        "errors",
        "availability",
        "cache",
        "burndown",
        "burnrates",
        "distribution",
    ] {
        let _ = write!(o, "<div class=\"chart\" id=\"chart-{id}\"></div>");
    }
    o.push_str("</div><h2>Routes</h2><div class=\"scroll\"><table id=\"routes\"><tr><th>Route</th><th>Requests</th><th>Status</th></tr>");
    for r in &report.routes {
        let _ = write!(
            o,
            "<tr class=\"route\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(r.route.as_deref().unwrap_or("(none)")),
            r.requests,
            r.status.as_str()
        );
    }
    o.push_str("</table></div><h2>Experiments</h2><div id=\"experiments\"><p class=\"scope\"><a href=\"/v1/experiments?format=markdown\">decision reports</a></p></div><h2>Action items</h2><ul>");
    for item in action_items(report) {
        let _ = write!(o, "<li>{}</li>", escape(&item));
    }
    let _ = write!(
        o,
        "</ul><p><a href=\"/v1/report\">Markdown report</a> · <a href=\"{}\">JSON</a> · <a href=\"/v1/series\">series</a> · <a href=\"/metrics\">metrics</a></p><script>{SCRIPT}</script></body></html>",
        escape(slo_path)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<img src=x onerror='alert(1)'>&\""),
            "&lt;img src=x onerror=&#39;alert(1)&#39;&gt;&amp;&quot;"
        );
        assert!(
            !SCRIPT.contains("innerHTML"),
            "the script never writes HTML"
        );
    }
}
