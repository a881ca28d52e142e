//! What other targets would have said about the stored history: each SLO's
//! compliance and budget left now, and every burn-rate page and ticket
//! that would have fired, with when it started and ended. Pure: it runs
//! [`budget_report_of_sums`] (what the live budgets run) at every stored
//! minute, over prefix sums of the ledger's minutes.

use serde::{Deserialize, Serialize};

use super::error_budget::{
    BURN_WINDOWS, BudgetReport, SloPeriod, budget_report, budget_report_of_sums,
};
use super::slo::{SloName, SloTargets};
use crate::store::{BudgetCounts, BudgetLedger, MINUTE_MS};

/// One alert that would have fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredAlert {
    /// The SLO it is about.
    pub slo: SloName,
    /// `page` or `ticket`.
    pub severity: String,
    /// Its long window.
    pub long_window: String,
    /// Its short window.
    pub short_window: String,
    /// The minute it started firing, Unix ms.
    pub from_ms: u64,
    /// The minute it stopped, Unix ms; `None` while it still fires.
    pub to_ms: Option<u64>,
}

/// The targets' verdict on the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIf {
    /// The budgets now, under the targets.
    pub budget: BudgetReport,
    /// Every alert that would have fired, oldest first.
    pub alerts: Vec<FiredAlert>,
    /// The first minute replayed, Unix ms (the ledger keeps minutes for
    /// three days; alerts before are not replayed).
    pub replayed_from_ms: u64,
}

/// `targets` over `ledger` (its counts made against those targets'
/// latency thresholds) for the error budget's `period`, at `now_ms`.
pub fn what_if(
    ledger: &BudgetLedger,
    targets: &SloTargets,
    period: SloPeriod,
    min_events: u64,
    now_ms: u64,
) -> WhatIf {
    let now_minute = now_ms / MINUTE_MS;
    let longest = BURN_WINDOWS.iter().map(|w| w.1).max().unwrap_or(1);
    // The minutes the ledger holds one by one, and the longest window
    // before the first of them (as zeros: nothing was counted there).
    let first = ledger
        .first_fine_minute()
        .unwrap_or(now_minute)
        .min(now_minute);
    let base = first.saturating_sub(longest);
    let mut prefix: Vec<BudgetCounts> = Vec::with_capacity((now_minute - base + 2) as usize);
    let mut running = BudgetCounts::default();
    prefix.push(running);
    for minute in base..=now_minute {
        // Before the first minute held one by one: nothing to add (the hour
        // tier is not spread over minutes).
        if minute >= first {
            running.add(&ledger.sum(minute, minute));
        }
        prefix.push(running);
    }
    let sum = |from: u64, to: u64| -> BudgetCounts {
        let (a, b) = (
            prefix[(from.max(base) - base) as usize],
            prefix[(to - base + 1) as usize],
        );
        BudgetCounts {
            total: b.total - a.total,
            unavailable: b.unavailable - a.unavailable,
            errors: b.errors - a.errors,
            slow_p95: b.slow_p95 - a.slow_p95,
            slow_p99: b.slow_p99 - a.slow_p99,
        }
    };
    let mut alerts: Vec<FiredAlert> = Vec::new();
    let mut open: Vec<Option<usize>> = Vec::new();
    for minute in first..=now_minute {
        let windows: Vec<BudgetCounts> = BURN_WINDOWS
            .iter()
            .map(|(_, len)| sum((minute + 1).saturating_sub(*len), minute))
            .collect();
        let at_ms = minute * MINUTE_MS;
        let report = budget_report_of_sums(
            &BudgetCounts::default(),
            &windows,
            targets,
            period,
            min_events,
            at_ms,
        );
        let states = report
            .slos
            .iter()
            .flat_map(|s| s.alerts.iter().map(move |a| (s.name, a)));
        for (i, (slo, alert)) in states.enumerate() {
            if open.len() <= i {
                open.push(None);
            }
            match (alert.firing, open[i]) {
                (true, None) => {
                    open[i] = Some(alerts.len());
                    alerts.push(FiredAlert {
                        slo,
                        severity: alert.severity.clone(),
                        long_window: alert.long_window.clone(),
                        short_window: alert.short_window.clone(),
                        from_ms: at_ms,
                        to_ms: None,
                    });
                }
                (false, Some(at)) => {
                    alerts[at].to_ms = Some(at_ms);
                    open[i] = None;
                }
                _ => {}
            }
        }
    }
    WhatIf {
        budget: budget_report(ledger, targets, period, min_events, now_ms),
        alerts,
        replayed_from_ms: first * MINUTE_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: u64, unavailable: u64) -> BudgetCounts {
        BudgetCounts {
            total,
            unavailable,
            ..BudgetCounts::default()
        }
    }

    #[test]
    fn a_burst_pages_under_a_strict_target_only_and_the_page_ends_after_it() {
        let now_minute = 30_000_000;
        let mut ledger = BudgetLedger::default();
        for m in now_minute - 240..=now_minute {
            // 1 % unavailable for twenty minutes, an hour and a half ago.
            let bad = if (now_minute - 110..now_minute - 90).contains(&m) {
                10
            } else {
                0
            };
            ledger.add(m, &counts(1000, bad), false);
        }
        let now_ms = now_minute * MINUTE_MS;
        let lax = SloTargets::default(); // 99.5 %: a burn rate of 2
        let strict = SloTargets {
            availability_percent: 99.99,
            ..SloTargets::default()
        };
        let calm = what_if(&ledger, &lax, SloPeriod::Rolling(30), 100, now_ms);
        assert!(calm.alerts.is_empty(), "{:?}", calm.alerts);
        let paged = what_if(&ledger, &strict, SloPeriod::Rolling(30), 100, now_ms);
        let page = paged
            .alerts
            .iter()
            .find(|a| a.slo == SloName::Availability && a.long_window == "1h")
            .expect("the 1h page fires");
        let burst = ((now_minute - 110) * MINUTE_MS)..((now_minute - 90) * MINUTE_MS);
        assert!(burst.contains(&page.from_ms), "{page:?}");
        let ended = page.to_ms.expect("it ends");
        assert!(
            ended > burst.end && ended <= burst.end + 10 * MINUTE_MS,
            "{page:?}"
        );
        // The budgets now are the live report's, for the same targets.
        assert_eq!(
            paged.budget,
            budget_report(&ledger, &strict, SloPeriod::Rolling(30), 100, now_ms)
        );
    }
}
