//! Minutes kept off the error budget: planned maintenance that recurs
//! (`Sun 02:00-03:00`, from the configuration) and one-off windows marked
//! by a person (`slo exclude --from --to --reason`), such as a known
//! incident or a maintenance announced for one night.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A minute, ms (the store's `MINUTE_MS`; not imported: the window store
/// imports this module).
const MINUTE_MS: u64 = 60_000;

/// One-off exclusions kept at most (the oldest beyond go first).
pub const MAX_ONE_OFF: usize = 500;
/// The longest one-off exclusion, minutes (7 days).
pub const MAX_ONE_OFF_MINUTES: u64 = 7 * 24 * 60;
/// The longest reason, bytes.
pub const MAX_REASON_BYTES: usize = 500;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A window that recurs every week on one day, or every day, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurringWindow {
    /// The day (0 Monday … 6 Sunday); `None`: every day.
    pub weekday: Option<u8>,
    /// Its first minute of the day.
    pub start: u16,
    /// The minute of the day it ends at (exclusive, up to 1440).
    pub end: u16,
}

impl RecurringWindow {
    /// `Sun 02:00-03:00` or `daily 04:00-04:30` (UTC; the end up to
    /// `24:00`, after the start: a window over midnight is two windows).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split_whitespace();
        let (Some(day), Some(span), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "{text:?}: DAY HH:MM-HH:MM (UTC), DAY one of Mon … Sun or daily"
            ));
        };
        let weekday = if day.eq_ignore_ascii_case("daily") {
            None
        } else {
            let i = DAYS
                .iter()
                .position(|d| day.len() >= 3 && d.eq_ignore_ascii_case(&day[..3]))
                .ok_or_else(|| format!("{text:?}: {day:?} is not a day (Mon … Sun, or daily)"))?;
            Some(i as u8)
        };
        let (from, to) = span
            .split_once('-')
            .ok_or_else(|| format!("{text:?}: the span is HH:MM-HH:MM"))?;
        let clock = |t: &str| -> Result<u16, String> {
            let (h, m) = t
                .split_once(':')
                .ok_or_else(|| format!("{text:?}: {t:?} is not HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse()
                    .map_err(|_| format!("{text:?}: {t:?} is not HH:MM"))?,
                m.parse()
                    .map_err(|_| format!("{text:?}: {t:?} is not HH:MM"))?,
            );
            if m >= 60 || h * 60 + m > 1440 {
                return Err(format!("{text:?}: {t:?} is not a time of day"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (clock(from)?, clock(to)?);
        if start >= end {
            return Err(format!(
                "{text:?}: the end must be after the start (a window over midnight is two: Sat 23:00-24:00, Sun 00:00-01:00)"
            ));
        }
        Ok(Self {
            weekday,
            start,
            end,
        })
    }

    /// Whether it covers `minute` (Unix minutes).
    pub fn covers(&self, minute: u64) -> bool {
        let day = minute / 1440;
        let of_day = (minute % 1440) as u16;
        // 1970-01-01 was a Thursday.
        let weekday = ((day + 3) % 7) as u8;
        self.weekday.is_none_or(|d| d == weekday) && of_day >= self.start && of_day < self.end
    }
}

impl fmt::Display for RecurringWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = self.weekday.map_or("daily", |d| DAYS[d as usize]);
        write!(
            f,
            "{day} {:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Recurring windows from a list (`;` or `,` between them).
pub fn parse_recurring(text: &str) -> Result<Vec<RecurringWindow>, String> {
    text.split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(RecurringWindow::parse)
        .collect()
}

/// A one-off window kept off the budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// Its first minute, Unix ms (a whole minute).
    pub from_ms: u64,
    /// Its end, Unix ms (a whole minute, exclusive).
    pub to_ms: u64,
    /// Why.
    pub reason: String,
    /// Who marked it.
    pub by: String,
    /// When it was marked, Unix ms.
    pub marked_ms: u64,
}

impl Exclusion {
    /// A one-off exclusion, checked: whole minutes, the end after the
    /// start, at most 7 days, a reason of at most 500 bytes.
    pub fn new(
        from_ms: u64,
        to_ms: u64,
        reason: &str,
        by: &str,
        marked_ms: u64,
    ) -> Result<Self, String> {
        if !from_ms.is_multiple_of(MINUTE_MS) || !to_ms.is_multiple_of(MINUTE_MS) {
            return Err("from and to: whole minutes".into());
        }
        if to_ms <= from_ms {
            return Err("to must be after from".into());
        }
        if (to_ms - from_ms) / MINUTE_MS > MAX_ONE_OFF_MINUTES {
            return Err("at most 7 days at once".into());
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
            return Err(format!(
                "reason: say why, in at most {MAX_REASON_BYTES} bytes"
            ));
        }
        if reason.chars().any(char::is_control) || by.chars().any(char::is_control) {
            return Err("reason and by: no control characters".into());
        }
        Ok(Self {
            from_ms,
            to_ms,
            reason: reason.to_owned(),
            by: by.chars().take(100).collect(),
            marked_ms,
        })
    }

    /// Its minutes, first and last (Unix minutes).
    pub fn minutes(&self) -> (u64, u64) {
        (self.from_ms / MINUTE_MS, self.to_ms / MINUTE_MS - 1)
    }
}

/// Every window kept off the budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusions {
    /// One-off windows, oldest first.
    #[serde(default)]
    pub one_off: Vec<Exclusion>,
    /// Recurring windows (from the configuration; not kept in checkpoints).
    #[serde(skip)]
    pub recurring: Vec<RecurringWindow>,
}

/// An excluded span, for charts and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedSpan {
    /// Its start, Unix ms.
    pub from_ms: u64,
    /// Its end, Unix ms (exclusive).
    pub to_ms: u64,
    /// Why (`maintenance Sun 02:00-03:00` for a recurring window).
    pub reason: String,
}

impl Exclusions {
    /// Whether `minute` (Unix minutes) is kept off the budget.
    pub fn covers(&self, minute: u64) -> bool {
        self.recurring.iter().any(|w| w.covers(minute))
            || self.one_off.iter().any(|e| {
                let (first, last) = e.minutes();
                (first..=last).contains(&minute)
            })
    }

    /// Whether the one-off window `e` (its span and reason) is held.
    pub fn holds(&self, e: &Exclusion) -> bool {
        self.one_off
            .iter()
            .any(|x| x.from_ms == e.from_ms && x.to_ms == e.to_ms && x.reason == e.reason)
    }

    /// Adds a one-off window (the oldest go beyond [`MAX_ONE_OFF`]).
    pub fn add(&mut self, e: Exclusion) {
        self.one_off.push(e);
        let excess = self.one_off.len().saturating_sub(MAX_ONE_OFF);
        self.one_off.drain(..excess);
    }

    /// Drops one-off windows that ended before `before_ms`.
    pub fn evict(&mut self, before_ms: u64) {
        self.one_off.retain(|e| e.to_ms > before_ms);
    }

    /// The excluded spans overlapping `from_ms..to_ms`, recurring windows
    /// spelled out, in order of start.
    pub fn spans(&self, from_ms: u64, to_ms: u64) -> Vec<ExcludedSpan> {
        let mut out: Vec<ExcludedSpan> = self
            .one_off
            .iter()
            .filter(|e| e.to_ms > from_ms && e.from_ms < to_ms)
            .map(|e| ExcludedSpan {
                from_ms: e.from_ms,
                to_ms: e.to_ms,
                reason: e.reason.clone(),
            })
            .collect();
        let (first_day, last_day) = (from_ms / MINUTE_MS / 1440, to_ms / MINUTE_MS / 1440);
        for w in &self.recurring {
            for day in first_day..=last_day {
                let start = (day * 1440 + u64::from(w.start)) * MINUTE_MS;
                let end = (day * 1440 + u64::from(w.end)) * MINUTE_MS;
                if w.covers(day * 1440 + u64::from(w.start)) && end > from_ms && start < to_ms {
                    out.push(ExcludedSpan {
                        from_ms: start,
                        to_ms: end,
                        reason: format!("maintenance {w}"),
                    });
                }
            }
        }
        out.sort_by_key(|s| s.from_ms);
        out
    }
}

/// `spans` as disjoint spans in order of start: those that overlap or
/// touch become one (their reasons joined with `; `), so a minute in two
/// of them is left out once.
pub fn merge_spans(mut spans: Vec<ExcludedSpan>) -> Vec<ExcludedSpan> {
    spans.sort_by_key(|s| (s.from_ms, s.to_ms));
    let mut out: Vec<ExcludedSpan> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.from_ms <= last.to_ms => {
                last.to_ms = last.to_ms.max(span.to_ms);
                if !last.reason.split("; ").any(|r| r == span.reason) {
                    last.reason = format!("{}; {}", last.reason, span.reason);
                }
            }
            _ => out.push(span),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-06 was a Sunday.
    const SUNDAY_MIDNIGHT_MIN: u64 = 1_796_515_200 / 60;

    #[test]
    fn weekly_and_daily_windows_cover_their_minutes_in_utc() {
        let w = RecurringWindow::parse("Sun 02:00-03:00").expect("valid");
        assert_eq!(w.to_string(), "Sun 02:00-03:00");
        assert!(!w.covers(SUNDAY_MIDNIGHT_MIN + 119));
        assert!(w.covers(SUNDAY_MIDNIGHT_MIN + 120));
        assert!(w.covers(SUNDAY_MIDNIGHT_MIN + 179));
        assert!(!w.covers(SUNDAY_MIDNIGHT_MIN + 180));
        // A week later too, not the day after.
        assert!(w.covers(SUNDAY_MIDNIGHT_MIN + 7 * 1440 + 150));
        assert!(!w.covers(SUNDAY_MIDNIGHT_MIN + 1440 + 150));
        let daily = RecurringWindow::parse("daily 23:30-24:00").expect("valid");
        assert!(daily.covers(SUNDAY_MIDNIGHT_MIN + 3 * 1440 + 23 * 60 + 59));
        assert_eq!(
            parse_recurring("Sun 02:00-03:00; daily 04:00-04:10").map(|v| v.len()),
            Ok(2)
        );
        for bad in [
            "Sun",
            "Funday 01:00-02:00",
            "Sun 03:00-02:00",
            "Sun 25:00-26:00",
            "Sun 2-3",
            "Sat 23:00-01:00",
        ] {
            assert!(RecurringWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_off_windows_are_checked_and_spelled_out_with_the_recurring() {
        let m = MINUTE_MS;
        let start = SUNDAY_MIDNIGHT_MIN * m;
        assert!(Exclusion::new(start + 1, start + m, "x", "ana", 0).is_err());
        assert!(Exclusion::new(start, start, "x", "ana", 0).is_err());
        assert!(Exclusion::new(start, start + m, " ", "ana", 0).is_err());
        assert!(Exclusion::new(start, start + 8 * 1440 * m, "x", "ana", 0).is_err());
        let e = Exclusion::new(start + 600 * m, start + 630 * m, "db failover", "ana", 0)
            .expect("valid");
        let mut x = Exclusions {
            recurring: parse_recurring("Sun 02:00-03:00").expect("valid"),
            ..Exclusions::default()
        };
        x.add(e);
        assert!(x.covers(SUNDAY_MIDNIGHT_MIN + 600) && x.covers(SUNDAY_MIDNIGHT_MIN + 629));
        assert!(!x.covers(SUNDAY_MIDNIGHT_MIN + 630));
        let spans = x.spans(start, start + 1440 * m);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].reason, "maintenance Sun 02:00-03:00");
        assert_eq!(spans[1].reason, "db failover");
        x.evict(start + 631 * m);
        assert!(x.one_off.is_empty());
    }

    #[test]
    fn overlapping_spans_merge_into_one_and_apart_ones_stay() {
        let span = |from: u64, to: u64, reason: &str| ExcludedSpan {
            from_ms: from * MINUTE_MS,
            to_ms: to * MINUTE_MS,
            reason: reason.into(),
        };
        let merged = merge_spans(vec![
            span(50, 60, "c"),
            span(10, 20, "a"),
            span(15, 30, "b"),
            span(30, 35, "a"),
            span(12, 14, "a"),
        ]);
        assert_eq!(
            merged,
            vec![span(10, 35, "a; b"), span(50, 60, "c")],
            "touching and overlapping spans are one"
        );
        assert!(merge_spans(Vec::new()).is_empty());
    }
}
