//! The counts error budgets need, for the whole SLO period: per minute for
//! the last 3 days (the longest burn-rate window), per hour beyond, up to
//! 32 days. Service totals only, so a month costs a few hundred kilobytes.
//!
//! Minutes kept off the budget (maintenance, a marked incident) are
//! counted a second time, as excluded, in the same slots; every sum is
//! the counted less the excluded, so what is left out is exact at both
//! resolutions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Minutes kept at one-minute resolution (3 days).
pub const FINE_MINUTES: u64 = 3 * 24 * 60;
/// Hours kept in all (32 days: a 31-day month and a margin).
pub const COARSE_HOURS: u64 = 32 * 24;

/// Good and bad events of one span, per budgetable SLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetCounts {
    /// Finished requests.
    pub total: u64,
    /// Requests with a 5xx or an inner failure (availability's bad events).
    pub unavailable: u64,
    /// Requests of the error classes or failed (error rate's bad events).
    pub errors: u64,
    /// Requests not under the P95 latency target.
    pub slow_p95: u64,
    /// Requests not under the P99 latency target.
    pub slow_p99: u64,
}

impl BudgetCounts {
    /// `self − o` field by field (at least 0).
    pub fn minus(&self, o: &Self) -> Self {
        Self {
            total: self.total.saturating_sub(o.total),
            unavailable: self.unavailable.saturating_sub(o.unavailable),
            errors: self.errors.saturating_sub(o.errors),
            slow_p95: self.slow_p95.saturating_sub(o.slow_p95),
            slow_p99: self.slow_p99.saturating_sub(o.slow_p99),
        }
    }

    /// Adds `o` field by field.
    pub fn add(&mut self, o: &Self) {
        self.total = self.total.saturating_add(o.total);
        self.unavailable = self.unavailable.saturating_add(o.unavailable);
        self.errors = self.errors.saturating_add(o.errors);
        self.slow_p95 = self.slow_p95.saturating_add(o.slow_p95);
        self.slow_p99 = self.slow_p99.saturating_add(o.slow_p99);
    }
}

/// Minute and hour slots of [`BudgetCounts`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetLedger {
    minutes: BTreeMap<u64, BudgetCounts>,
    hours: BTreeMap<u64, BudgetCounts>,
    /// The minute tier holds every minute from here on (0 until the first eviction).
    #[serde(default)]
    fine_since: u64,
    /// The counts of excluded minutes (a part of `minutes`).
    #[serde(default)]
    excluded_minutes: BTreeMap<u64, BudgetCounts>,
    /// The counts of excluded minutes, by hour (a part of `hours`).
    #[serde(default)]
    excluded_hours: BTreeMap<u64, BudgetCounts>,
}

/// A sum over minutes `first..=last` of minute slots where kept, whole
/// hours beyond.
fn tiered_sum(
    minutes: &BTreeMap<u64, BudgetCounts>,
    hours: &BTreeMap<u64, BudgetCounts>,
    fine_since: u64,
    first: u64,
    last: u64,
) -> BudgetCounts {
    let mut out = BudgetCounts::default();
    if first > last {
        return out;
    }
    let mut minutes_from = first;
    if first < fine_since {
        // Whole hours up to the one holding the tier's first minute.
        let hours_end = fine_since.div_ceil(60).min(last / 60 + 1);
        if first / 60 < hours_end {
            for c in hours.range(first / 60..hours_end).map(|(_, c)| c) {
                out.add(c);
            }
        }
        minutes_from = hours_end * 60;
    }
    if minutes_from <= last {
        for c in minutes.range(minutes_from..=last).map(|(_, c)| c) {
            out.add(c);
        }
    }
    out
}

impl BudgetLedger {
    /// Adds `counts` to `minute` (and its hour); `excluded`: the minute
    /// is kept off the budget.
    pub fn add(&mut self, minute: u64, counts: &BudgetCounts, excluded: bool) {
        self.minutes.entry(minute).or_default().add(counts);
        self.hours.entry(minute / 60).or_default().add(counts);
        if excluded {
            self.excluded_minutes.entry(minute).or_default().add(counts);
            self.excluded_hours
                .entry(minute / 60)
                .or_default()
                .add(counts);
        }
    }

    /// Keeps minutes `first..=last` off the budget, as far as they are
    /// held one by one (minutes older than 3 days are held by the hour:
    /// `Err` names the first minute that can be excluded). Excluding a
    /// minute twice changes nothing. The counts newly left out.
    pub fn exclude(&mut self, first: u64, last: u64) -> Result<BudgetCounts, u64> {
        if first < self.fine_since {
            return Err(self.fine_since);
        }
        let mut left_out = BudgetCounts::default();
        let held: Vec<(u64, BudgetCounts)> = self
            .minutes
            .range(first..=last)
            .map(|(m, c)| (*m, *c))
            .collect();
        for (minute, counted) in held {
            let already = self.excluded_minutes.entry(minute).or_default();
            let more = counted.minus(already);
            *already = counted;
            self.excluded_hours
                .entry(minute / 60)
                .or_default()
                .add(&more);
            left_out.add(&more);
        }
        Ok(left_out)
    }

    /// Each minute of `first..=last` held one by one, as counted (kept off
    /// the budget or not).
    pub fn counted_minutes(
        &self,
        first: u64,
        last: u64,
    ) -> impl Iterator<Item = (u64, BudgetCounts)> + '_ {
        self.minutes.range(first..=last).map(|(m, c)| (*m, *c))
    }

    /// What minutes `first..=last` left out (see [`BudgetLedger::sum`]).
    pub fn excluded(&self, first: u64, last: u64) -> BudgetCounts {
        tiered_sum(
            &self.excluded_minutes,
            &self.excluded_hours,
            self.fine_since,
            first,
            last,
        )
    }

    /// Finished requests counted in `minute` (0 when it is not kept by the
    /// minute).
    pub fn minute_total(&self, minute: u64) -> u64 {
        self.minutes.get(&minute).map_or(0, |c| c.total)
    }

    /// Drops minutes older than 3 days and hours older than 32 days before `now_minute`.
    pub fn evict(&mut self, now_minute: u64) {
        self.fine_since = self.fine_since.max(now_minute.saturating_sub(FINE_MINUTES));
        self.minutes = self.minutes.split_off(&self.fine_since);
        self.excluded_minutes = self.excluded_minutes.split_off(&self.fine_since);
        let first_hour = (now_minute / 60).saturating_sub(COARSE_HOURS);
        self.hours = self.hours.split_off(&first_hour);
        self.excluded_hours = self.excluded_hours.split_off(&first_hour);
    }

    /// Sum over minutes `first..=last`, excluded minutes left out: minute
    /// slots where kept, whole hours beyond (a span reaching past 3 days is
    /// counted by the hour, so its start is rounded to the hour).
    pub fn sum(&self, first: u64, last: u64) -> BudgetCounts {
        tiered_sum(&self.minutes, &self.hours, self.fine_since, first, last)
            .minus(&self.excluded(first, last))
    }

    /// A ledger of given slots: `minutes` from `fine_since` on, `hours`
    /// before (what a fleet store's tiers hold). Minutes before
    /// `fine_since` are not counted.
    pub fn from_parts(
        mut minutes: BTreeMap<u64, BudgetCounts>,
        hours: BTreeMap<u64, BudgetCounts>,
        fine_since: u64,
    ) -> Self {
        Self {
            minutes: minutes.split_off(&fine_since),
            hours,
            fine_since,
            ..Self::default()
        }
    }

    /// The hour slots from hour `first` to `last` (Unix minute ÷ 60),
    /// ascending, excluded minutes left out.
    pub fn hourly(&self, first: u64, last: u64) -> impl Iterator<Item = (u64, BudgetCounts)> + '_ {
        self.hours.range(first..=last.max(first)).map(|(h, c)| {
            let left_out = self.excluded_hours.get(h).copied().unwrap_or_default();
            (*h, c.minus(&left_out))
        })
    }

    /// The hours held (Unix minute ÷ 60), ascending.
    pub fn hours(&self) -> impl Iterator<Item = u64> + '_ {
        self.hours.keys().copied()
    }

    /// The minutes held one by one, ascending.
    pub fn fine_minutes(&self) -> impl Iterator<Item = u64> + '_ {
        self.minutes.keys().copied()
    }

    /// The first minute held one by one, if any.
    pub fn first_fine_minute(&self) -> Option<u64> {
        self.minutes.keys().next().copied()
    }

    /// Slots held (minutes, hours).
    pub fn len(&self) -> (usize, usize) {
        (self.minutes.len(), self.hours.len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(total: u64, bad: u64) -> BudgetCounts {
        BudgetCounts {
            total,
            unavailable: bad,
            errors: bad,
            slow_p95: bad,
            slow_p99: bad,
        }
    }

    #[test]
    fn excluded_minutes_are_left_out_at_both_resolutions() {
        let mut l = BudgetLedger::default();
        let now = 10 * 24 * 60;
        // Minutes 120..=179 of each day are maintenance; minute 5,000 is
        // marked later.
        let planned = |m: u64| (120..180).contains(&(m % 1440));
        for m in 0..=now {
            l.add(m, &one(2, 1), planned(m));
        }
        assert_eq!(l.exclude(5_000, 5_000), Ok(one(2, 1)));
        // Twice is once.
        assert_eq!(l.exclude(5_000, 5_000), Ok(BudgetCounts::default()));
        l.evict(now);
        let day = |d: u64| l.sum(d * 1440, d * 1440 + 1439);
        // A day by the hour (day 2) and by the minute (day 9): 1,380 minutes each.
        assert_eq!(day(2), one(2 * 1380, 1380));
        assert_eq!(day(9), one(2 * 1380, 1380));
        assert_eq!(l.excluded(9 * 1440, 9 * 1440 + 1439), one(120, 60));
        let by_hour: BudgetCounts =
            l.hourly(48, 71)
                .fold(BudgetCounts::default(), |mut a, (_, c)| {
                    a.add(&c);
                    a
                });
        assert_eq!(by_hour, day(2));
        // Minutes older than 3 days are held by the hour: refused, naming
        // the first that can be.
        assert_eq!(l.exclude(100, 200), Err(now - FINE_MINUTES));
    }

    #[test]
    fn sums_use_minutes_then_hours() {
        let mut l = BudgetLedger::default();
        let now = 10 * 24 * 60; // day 10
        for m in 0..=now {
            l.add(m, &one(1, u64::from(m % 10 == 0)), false);
        }
        l.evict(now);
        let (minutes, hours) = l.len();
        assert_eq!(minutes, FINE_MINUTES as usize + 1);
        assert_eq!(hours, (now / 60 + 1) as usize);
        // The last hour, from minutes.
        assert_eq!(l.sum(now - 59, now), one(60, 6));
        // Seven whole days: hours for the first four, minutes for the last three.
        let week = l.sum(now - 7 * 24 * 60, now - 1);
        assert_eq!(week.total, 7 * 24 * 60);
        assert_eq!(week.unavailable, 7 * 24 * 6);
        // A span starting mid-hour beyond the fine tier counts that whole hour.
        assert_eq!(l.sum(now - 7 * 24 * 60 + 1, now - 1).total, 7 * 24 * 60);
        assert_eq!(l.sum(now, now - 1), BudgetCounts::default());
    }

    #[test]
    fn a_young_ledger_sums_its_minutes_whatever_the_hour() {
        let mut l = BudgetLedger::default();
        // Data from minute 90 (mid-hour), nothing evicted yet.
        for m in 90..100 {
            l.add(m, &one(1, 0), false);
        }
        l.evict(99);
        assert_eq!(l.sum(95, 99).total, 5, "a 5-minute window counts 5 minutes");
        assert_eq!(l.sum(0, 99).total, 10);
        assert_eq!(
            l.sum(0, 99).total,
            10,
            "a 30-day window from far before the data"
        );
    }
}
