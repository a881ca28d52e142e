//! Action items: for each failing SLO, what it is, by how much, and the
//! first thing to look at.

use crate::eval::{RouteReport, SloName, SloReport, Status};

use super::format::{percent, target, value};

/// The sentence a healthy report ends with.
pub const ALL_MET: &str = "All SLOs are meeting targets. Continue monitoring.";

fn route_name(r: &RouteReport) -> &str {
    r.route.as_deref().unwrap_or("(no route)")
}

fn current_of(r: &RouteReport, name: SloName) -> Option<f64> {
    r.slos
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.current)
}

/// The route that does worst on `name`, if routes are labelled.
fn worst_route(report: &SloReport, name: SloName) -> Option<(&str, f64)> {
    let worse = |a: f64, b: f64| {
        if name == SloName::Availability {
            a < b
        } else {
            a > b
        }
    };
    report
        .routes
        .iter()
        .filter(|r| r.route.is_some())
        .filter_map(|r| current_of(r, name).map(|v| (route_name(r), v)))
        .fold(None, |best: Option<(&str, f64)>, (route, v)| match best {
            Some((_, b)) if !worse(v, b) => best,
            _ => Some((route, v)),
        })
}

/// One line per failing SLO; [`ALL_MET`] when none fails; a no-data note.
pub fn action_items(report: &SloReport) -> Vec<String> {
    if report.status == Status::NoData {
        return vec![
            "No requests in the window: check that the app's LumenLayer ships to this sidecar (LUMEN_SIDECAR_URL) and that the app receives traffic.".to_owned(),
        ];
    }
    let c = &report.counts;
    let items: Vec<String> = report
        .failing()
        .map(|slo| {
            let head = format!(
                "{} is {} against a target of {}.",
                slo.name.title(),
                value(slo.current, &slo.unit),
                target(slo)
            );
            let worst = worst_route(report, slo.name)
                .map(|(route, v)| format!(" Worst route: {route} ({}).", value(Some(v), &slo.unit)))
                .unwrap_or_default();
            let look = match slo.name {
                SloName::Availability => format!(
                    "{} 5xx responses and {} inner failures: read the app's ERROR logs and compare with the latest deploy{}.",
                    c.server_error,
                    c.errors,
                    report.revision.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                SloName::LatencyP95 | SloName::LatencyP99 => format!(
                    "Check the backend behind cache misses and the cache hit rate ({}); look for slow dependencies and CPU throttling.",
                    percent(report.cache.hit_rate)
                ),
                SloName::ErrorRate => format!(
                    "{} 4xx and {} 5xx responses: 4xx points at clients or input validation, 5xx at the service itself.",
                    c.client_error, c.server_error
                ),
            };
            format!("{head}{worst} {look}")
        })
        .collect();
    if items.is_empty() {
        vec![ALL_MET.to_owned()]
    } else {
        items
    }
}
