use super::*;

const DAY: u64 = 1440;
/// 2026-11-01T00:00Z in minutes.
const NOV_1: u64 = 29_891_520;

fn traffic(ledger: &mut BudgetLedger, from: u64, minutes: u64, per_minute: u64, unavailable: u64) {
    for m in from..from + minutes {
        ledger.add(
            m,
            &BudgetCounts {
                total: per_minute,
                unavailable,
                errors: unavailable,
                slow_p95: 0,
                slow_p99: 0,
            },
            false,
        );
    }
}

fn report(ledger: &BudgetLedger, minute: u64) -> BudgetReport {
    budget_report(
        ledger,
        &SloTargets::default(),
        SloPeriod::Rolling(30),
        DEFAULT_MIN_EVENTS,
        minute * MINUTE_MS + 30_000,
    )
}

fn availability(r: &BudgetReport) -> &SloBudget {
    &r.slos[0]
}

#[test]
fn arithmetic_by_hand() {
    // 20 bad of 1000 against an allowed 0.5 %: 2 % / 0.5 % = 4.
    assert_eq!(burn_rate(20, 1000, 0.005), Some(4.0));
    assert_eq!(burn_rate(0, 0, 0.005), None);
    // 2 % of a 30-day budget in 1 h: 0.02 × 720 h / 1 h = 14.4.
    assert!((alert_factor(0.02, 720.0, 60) - 14.4).abs() < 1e-9);
    assert!((alert_factor(0.05, 720.0, 360) - 6.0).abs() < 1e-9);
    assert!((alert_factor(0.10, 720.0, 1440) - 3.0).abs() < 1e-9);
    assert!((alert_factor(0.10, 720.0, 4320) - 1.0).abs() < 1e-9);
    // A 7-day period keeps the same budget shares: 0.02 × 168 / 1 = 3.36.
    assert!((alert_factor(0.02, 168.0, 60) - 3.36).abs() < 1e-9);
    let mut l = BudgetLedger::default();
    traffic(&mut l, NOV_1, 60, 100, 1);
    let r = report(&l, NOV_1 + 59);
    let a = availability(&r);
    // 60 bad of 6000: 1 % over 0.5 % allowed.
    assert_eq!(
        a.burn_rates
            .iter()
            .find(|b| b.window == "1h")
            .and_then(|b| b.rate),
        Some(2.0)
    );
    assert_eq!((a.bad, a.events), (60, 6000));
    assert!((a.allowed_bad - 30.0).abs() < 1e-9);
    assert!(
        (a.remaining_percent.expect("data") + 100.0).abs() < 1e-9,
        "spent twice over"
    );
    assert_eq!(a.exhausted_in_s, Some(0.0));
}

#[test]
fn an_outage_pages_within_five_minutes_and_recovery_clears_the_page() {
    let mut l = BudgetLedger::default();
    traffic(&mut l, NOV_1, 10 * DAY, 100, 0);
    let start = NOV_1 + 10 * DAY;
    let mut paged_at = None;
    for k in 0..10 {
        traffic(&mut l, start + k, 1, 100, 100);
        let r = report(&l, start + k);
        let paging = availability(&r)
            .alerts
            .iter()
            .any(|a| a.firing && a.severity == "page");
        if paged_at.is_none() && paging {
            paged_at = Some(k + 1);
        }
    }
    let paged = paged_at.expect("paged");
    assert!(paged <= 5, "paged after {paged} min");
    let spent = availability(&report(&l, start + paged - 1)).bad as f64
        / (0.005 * 100.0 * 30.0 * DAY as f64);
    assert!(
        spent >= 0.02,
        "about 2 % of the month's budget spent when it pages: {spent}"
    );
    // Recovered: the 5 min short window clears the page, though the hour still burns.
    let end = start + 10;
    traffic(&mut l, end, 5, 100, 0);
    let r = report(&l, end + 4);
    assert!(
        !availability(&r)
            .alerts
            .iter()
            .any(|a| a.firing && a.severity == "page"),
        "{:?}",
        availability(&r).alerts
    );
    assert!(
        availability(&r)
            .burn_rates
            .iter()
            .find(|b| b.window == "1h")
            .and_then(|b| b.rate)
            .expect("rate")
            > 14.4
    );
}

#[test]
fn a_slow_burn_opens_a_ticket_and_no_page() {
    let mut l = BudgetLedger::default();
    // 0.6 % unavailable for 4 days: 1.2 × the budget.
    for m in 0..4 * DAY {
        let bad = u64::from(m % 5 < 3);
        l.add(
            NOV_1 + m,
            &BudgetCounts {
                total: 100,
                unavailable: bad,
                errors: 0,
                slow_p95: 0,
                slow_p99: 0,
            },
            false,
        );
    }
    let r = report(&l, NOV_1 + 4 * DAY - 1);
    let a = availability(&r);
    let row = |long: &str| {
        a.alerts
            .iter()
            .find(|x| x.long_window == long)
            .expect("row")
    };
    assert!(row("3d").firing, "{:?}", a.alerts);
    assert!(!row("1d").firing && !row("6h").firing && !row("1h").firing);
    assert!(r.firing("ticket") && !r.firing("page"));
}

#[test]
fn one_failure_at_night_does_not_page() {
    let mut l = BudgetLedger::default();
    traffic(&mut l, NOV_1, 60, 0, 0);
    l.add(
        NOV_1 + 30,
        &BudgetCounts {
            total: 3,
            unavailable: 1,
            errors: 1,
            slow_p95: 0,
            slow_p99: 0,
        },
        false,
    );
    let r = report(&l, NOV_1 + 31);
    let a = availability(&r);
    assert!(
        a.burn_rates
            .iter()
            .find(|b| b.window == "5m")
            .and_then(|b| b.rate)
            .expect("rate")
            > 14.4
    );
    assert!(a.alerts.iter().all(|x| x.low_traffic && !x.firing));
}

#[test]
fn a_calendar_month_starts_afresh() {
    assert_eq!(
        SloPeriod::CalendarMonth.bounds(NOV_1 * MINUTE_MS + 5 * 3_600_000),
        (NOV_1, 30.0 * 24.0)
    );
    let dec_1 = NOV_1 + 30 * DAY;
    assert_eq!(
        SloPeriod::CalendarMonth.bounds(dec_1 * MINUTE_MS),
        (dec_1, 31.0 * 24.0)
    );
    assert_eq!(
        SloPeriod::CalendarMonth.bounds(dec_1 * MINUTE_MS - 1).0,
        NOV_1,
        "the last millisecond of November"
    );
    let mut l = BudgetLedger::default();
    traffic(&mut l, dec_1 - 60, 60, 100, 10);
    traffic(&mut l, dec_1, 60, 100, 0);
    let month = |m: u64| {
        budget_report(
            &l,
            &SloTargets::default(),
            SloPeriod::CalendarMonth,
            100,
            m * MINUTE_MS,
        )
    };
    assert_eq!(availability(&month(dec_1 - 1)).bad, 600);
    let dec = month(dec_1 + 59);
    assert_eq!(
        (availability(&dec).bad, availability(&dec).events),
        (0, 6000)
    );
    assert_eq!(dec.period, "month");
    assert_eq!(SloPeriod::parse("28d"), Some(SloPeriod::Rolling(28)));
    assert_eq!(SloPeriod::parse("1y"), None);
}

#[test]
fn the_burn_down_is_the_budget_left_hour_by_hour() {
    use crate::store::{BudgetCounts, BudgetLedger};
    let period = SloPeriod::default();
    let now_ms = 1_796_190_000_000_u64;
    let (start, _) = period.bounds(now_ms);
    let mut ledger = BudgetLedger::default();
    // Two hours of the period: 1000 requests each, 1 then 9 unavailable.
    for (h, bad) in [(start / 60 + 1, 1), (start / 60 + 3, 9)] {
        ledger.add(
            h * 60,
            &BudgetCounts {
                total: 1000,
                unavailable: bad,
                ..BudgetCounts::default()
            },
            false,
        );
    }
    let report = budget_report(&ledger, &SloTargets::default(), period, 100, now_ms);
    let availability = report
        .slos
        .iter()
        .find(|s| s.name == SloName::Availability)
        .expect("availability");
    let left: Vec<Option<f64>> = availability
        .burndown
        .iter()
        .map(|p| p.remaining_percent.map(|r| (r * 100.0).round() / 100.0))
        .collect();
    // 0.5 % allowed: 5 of 1000, then 10 of 2000.
    assert_eq!(left, vec![Some(80.0), Some(0.0)]);
    assert_eq!(
        availability.burndown[0].at_ms,
        (start / 60 + 2) * 60 * MINUTE_MS
    );
    assert_eq!(
        availability.burndown.last().map(|p| p.remaining_percent),
        Some(availability.remaining_percent)
    );
}
