//! Error budgets and multi-window, multi-burn-rate alerts (the SRE
//! workbook's table), as pure functions over the budget ledger.
//!
//! Each SLO is event-based: availability's bad events are 5xx and inner
//! failures, the error rate's are the error classes, each latency target's
//! are requests not under it ("P95 < 200 ms" is "95 % of requests under
//! 200 ms", so 5 % may be slow). The budget is the allowed share of the
//! period's events; the burn rate is the bad share of a window over the
//! allowed share.

use serde::{Deserialize, Serialize};

use super::slo::{SloName, SloTargets};
use crate::eval::calendar::{civil_from_days, days_from_civil};
use crate::store::{BudgetCounts, BudgetLedger, MINUTE_MS};

/// The SLO period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SloPeriod {
    /// The last `days` days (7, 28 or 30).
    Rolling(u32),
    /// The current calendar month (UTC).
    CalendarMonth,
}

impl Default for SloPeriod {
    fn default() -> Self {
        Self::Rolling(30)
    }
}

impl SloPeriod {
    /// `7d`, `28d`, `30d` or `month`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "7d" => Some(Self::Rolling(7)),
            "28d" => Some(Self::Rolling(28)),
            "30d" => Some(Self::Rolling(30)),
            "month" => Some(Self::CalendarMonth),
            _ => None,
        }
    }

    /// As written in config.
    pub fn name(self) -> String {
        match self {
            Self::Rolling(d) => format!("{d}d"),
            Self::CalendarMonth => "month".to_owned(),
        }
    }

    /// The period's first minute at `now_ms`, and its full length in hours.
    pub fn bounds(self, now_ms: u64) -> (u64, f64) {
        let now_minute = now_ms / MINUTE_MS;
        match self {
            Self::Rolling(days) => (
                (now_minute + 1).saturating_sub(u64::from(days) * 1440),
                f64::from(days) * 24.0,
            ),
            Self::CalendarMonth => {
                let days = (now_ms / 86_400_000) as i64;
                let (y, m, _) = civil_from_days(days);
                let start = days_from_civil(y, m, 1);
                let next = if m == 12 {
                    days_from_civil(y + 1, 1, 1)
                } else {
                    days_from_civil(y, m + 1, 1)
                };
                (start as u64 * 1440, (next - start) as f64 * 24.0)
            }
        }
    }
}

/// The burn-rate windows reported, with their length in minutes.
pub const BURN_WINDOWS: [(&str, u64); 7] = [
    ("5m", 5),
    ("30m", 30),
    ("1h", 60),
    ("2h", 120),
    ("6h", 360),
    ("1d", 1440),
    ("3d", 4320),
];

/// The SRE workbook's alerts for a 30-day period: severity, long window,
/// short window, share of the budget spent in the long window.
pub const ALERT_TABLE: [(&str, &str, &str, f64); 4] = [
    ("page", "1h", "5m", 0.02),
    ("page", "6h", "30m", 0.05),
    ("ticket", "1d", "2h", 0.10),
    ("ticket", "3d", "6h", 0.10),
];

/// Events in a long window below which no budget alert fires (low traffic).
pub const DEFAULT_MIN_EVENTS: u64 = 100;

fn window_minutes(name: &str) -> u64 {
    BURN_WINDOWS
        .iter()
        .find(|w| w.0 == name)
        .map_or(60, |w| w.1)
}

/// The burn-rate threshold of an alert row: the budget share it catches,
/// times the period, over the long window. 14.4 for the first row of a
/// 30-day period.
pub fn alert_factor(budget_share: f64, period_hours: f64, long_window_minutes: u64) -> f64 {
    budget_share * period_hours / (long_window_minutes as f64 / 60.0)
}

/// The bad share of `counts` over the allowed share: 1 spends the budget
/// exactly over the period. `None` without events.
pub fn burn_rate(bad: u64, total: u64, allowed_share: f64) -> Option<f64> {
    (total > 0 && allowed_share > 0.0).then(|| (bad as f64 / total as f64) / allowed_share)
}

/// One window's burn rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnRate {
    /// `5m` … `3d`.
    pub window: String,
    /// Bad share over allowed share; `null` without events.
    pub rate: Option<f64>,
    /// Events in the window.
    pub events: u64,
}

/// One alert row's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetAlert {
    /// `page` or `ticket`.
    pub severity: String,
    /// Long window.
    pub long_window: String,
    /// Short window.
    pub short_window: String,
    /// Burn rate both windows must reach.
    pub factor: f64,
    /// Whether it fires now.
    pub firing: bool,
    /// True when the long window holds too few events to fire.
    pub low_traffic: bool,
}

/// One SLO's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloBudget {
    /// Which SLO.
    pub name: SloName,
    /// Allowed share of bad events.
    pub allowed_share: f64,
    /// Events in the period so far.
    pub events: u64,
    /// Bad events in the period so far.
    pub bad: u64,
    /// Allowed bad events for the period's events so far.
    pub allowed_bad: f64,
    /// What is left, percent of the budget (negative when overspent).
    pub remaining_percent: Option<f64>,
    /// At the last hour's rate of bad events, seconds until none is left.
    pub exhausted_in_s: Option<f64>,
    /// Burn rates over the standard windows.
    pub burn_rates: Vec<BurnRate>,
    /// The alert rows.
    pub alerts: Vec<BudgetAlert>,
    /// The budget left at the end of each hour of the period so far (a
    /// sidecar's own ledger; empty for a fleet read from counters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub burndown: Vec<BurndownPoint>,
}

/// The budget left at one moment of the period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurndownPoint {
    /// The end of the hour, Unix ms (the hour in progress counts what it
    /// holds so far).
    pub at_ms: u64,
    /// What was left then, percent of the budget (`null` before any event).
    pub remaining_percent: Option<f64>,
}

/// `GET /v1/budget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// `30d`, `month`, ….
    pub period: String,
    /// Period start, Unix ms.
    pub period_start_ms: u64,
    /// When evaluated, Unix ms.
    pub evaluated_at_ms: u64,
    /// Each SLO.
    pub slos: Vec<SloBudget>,
    /// The money: the month's cost so far and its forecast against the
    /// monthly budget (`scope` says whose); absent where the source cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::CostReport>,
    /// Requests of the period in minutes kept off the budget (maintenance,
    /// marked incidents): not counted above.
    #[serde(default)]
    pub excluded_requests: u64,
    /// The spans kept off the budget in the period, when the source knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<crate::store::ExcludedSpan>,
}

impl BudgetReport {
    /// Whether any `severity` alert fires.
    pub fn firing(&self, severity: &str) -> bool {
        self.slos
            .iter()
            .flat_map(|s| &s.alerts)
            .any(|a| a.firing && a.severity == severity)
    }
}

fn bad_of(name: SloName, c: &BudgetCounts) -> u64 {
    match name {
        SloName::Availability => c.unavailable,
        SloName::ErrorRate => c.errors,
        SloName::LatencyP95 => c.slow_p95,
        SloName::LatencyP99 => c.slow_p99,
    }
}

/// The allowed share of bad events of each SLO.
pub fn allowed_share(name: SloName, t: &SloTargets) -> f64 {
    match name {
        SloName::Availability => (100.0 - t.availability_percent) / 100.0,
        SloName::ErrorRate => t.error_rate_percent / 100.0,
        SloName::LatencyP95 => 0.05,
        SloName::LatencyP99 => 0.01,
    }
}

/// Budgets and burn rates of every SLO at `now_ms`, from a sidecar's ledger.
pub fn budget_report(
    ledger: &BudgetLedger,
    targets: &SloTargets,
    period: SloPeriod,
    min_events: u64,
    now_ms: u64,
) -> BudgetReport {
    let now_minute = now_ms / MINUTE_MS;
    let (start, _) = period.bounds(now_ms);
    let windows: Vec<BudgetCounts> = BURN_WINDOWS
        .iter()
        .map(|(_, minutes)| ledger.sum((now_minute + 1).saturating_sub(*minutes), now_minute))
        .collect();
    let mut report = budget_report_of_sums(
        &ledger.sum(start, now_minute),
        &windows,
        targets,
        period,
        min_events,
        now_ms,
    );
    // The burn-down: cumulative counts hour by hour since the period began.
    let mut cumulative = BudgetCounts::default();
    let mut points: Vec<(u64, BudgetCounts)> = Vec::new();
    for (hour, counts) in ledger.hourly(start / 60, now_minute / 60) {
        cumulative.add(&counts);
        points.push(((hour + 1) * 60 * MINUTE_MS, cumulative));
    }
    report.excluded_requests = ledger.excluded(start, now_minute).total;
    for slo in &mut report.slos {
        slo.burndown = points
            .iter()
            .map(|(at_ms, c)| {
                let allowed_bad = slo.allowed_share * c.total as f64;
                BurndownPoint {
                    at_ms: *at_ms,
                    remaining_percent: (allowed_bad > 0.0)
                        .then(|| (allowed_bad - bad_of(slo.name, c) as f64) / allowed_bad * 100.0),
                }
            })
            .collect();
    }
    report
}

/// Budgets and burn rates of every SLO at `now_ms`, from the counts of the
/// period so far and of each of [`BURN_WINDOWS`] (in its order): what a
/// sidecar's ledger or a fleet's summed counters give.
pub fn budget_report_of_sums(
    in_period: &BudgetCounts,
    burn_windows: &[BudgetCounts],
    targets: &SloTargets,
    period: SloPeriod,
    min_events: u64,
    now_ms: u64,
) -> BudgetReport {
    let in_period = *in_period;
    let (start, period_hours) = period.bounds(now_ms);
    let windows: Vec<(&str, BudgetCounts)> = BURN_WINDOWS
        .iter()
        .zip(
            burn_windows
                .iter()
                .copied()
                .chain(std::iter::repeat(BudgetCounts::default())),
        )
        .map(|((name, _), c)| (*name, c))
        .collect();
    let window = |name: &str| {
        windows
            .iter()
            .find(|w| w.0 == name)
            .map(|w| w.1)
            .unwrap_or_default()
    };
    let slos = SloName::ALL
        .iter()
        .map(|&name| {
            let allowed = allowed_share(name, targets);
            let bad = bad_of(name, &in_period);
            let allowed_bad = allowed * in_period.total as f64;
            let remaining_percent =
                (allowed_bad > 0.0).then(|| (allowed_bad - bad as f64) / allowed_bad * 100.0);
            let hour = window("1h");
            let bad_per_s = bad_of(name, &hour) as f64 / 3600.0;
            let exhausted_in_s = match remaining_percent {
                Some(r) if r <= 0.0 => Some(0.0),
                Some(_) if bad_per_s > 0.0 => Some((allowed_bad - bad as f64) / bad_per_s),
                _ => None,
            };
            let burn_rates = windows
                .iter()
                .map(|(w, c)| BurnRate {
                    window: (*w).to_owned(),
                    rate: burn_rate(bad_of(name, c), c.total, allowed),
                    events: c.total,
                })
                .collect();
            let alerts = ALERT_TABLE
                .iter()
                .map(|(severity, long, short, share)| {
                    let factor = alert_factor(*share, period_hours, window_minutes(long));
                    let (l, s) = (window(long), window(short));
                    let low_traffic = l.total < min_events;
                    let burning = |c: &BudgetCounts| {
                        burn_rate(bad_of(name, c), c.total, allowed).is_some_and(|r| r >= factor)
                    };
                    BudgetAlert {
                        severity: (*severity).to_owned(),
                        long_window: (*long).to_owned(),
                        short_window: (*short).to_owned(),
                        factor,
                        firing: !low_traffic && burning(&l) && burning(&s),
                        low_traffic,
                    }
                })
                .collect();
            SloBudget {
                name,
                allowed_share: allowed,
                events: in_period.total,
                bad,
                allowed_bad,
                remaining_percent,
                exhausted_in_s,
                burn_rates,
                alerts,
                burndown: Vec::new(),
            }
        })
        .collect();
    BudgetReport {
        period: period.name(),
        period_start_ms: start * MINUTE_MS,
        evaluated_at_ms: now_ms,
        slos,
        cost: None,
        excluded_requests: 0,
        excluded: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
