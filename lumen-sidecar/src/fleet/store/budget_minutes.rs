//! An hour's budget counts minute by minute, as each sidecar counted them
//! (`lumen:{S}:bm:HOUR`, kept as long as a window can still be marked):
//! what lets a window marked after an instance ended leave that instance's
//! budget hours too. Each sidecar applies the marks to its own ledger and
//! writes its hours without them; the hours of the others (ended ones
//! included) it settles from their minutes, once for each set of windows
//! it knows. Settling is idempotent: an hour is always the sum of its
//! counted minutes outside the windows, whoever computes it.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use redis::aio::ConnectionManager;

use super::block::{decode, encode};
use super::error::{FleetStoreError, note_unreadable};
use super::keys::{BUDGET_KEEP_MINUTES, BUDGET_MINUTES_KEEP_MINUTES, FleetKeys};
use crate::store::{BudgetCounts, Exclusions, MINUTE_MS};

/// One minute as stored: its minute of the hour, then its requests, the
/// unavailable, the errors, and those not under the P95 and P99 targets.
type PackedMinute = [u64; 6];

/// An hour's `minutes` (Unix minutes and their counts) as stored.
pub fn pack(minutes: impl Iterator<Item = (u64, BudgetCounts)>) -> Vec<u8> {
    let packed: Vec<PackedMinute> = minutes
        .map(|(m, c)| {
            [
                m % 60,
                c.total,
                c.unavailable,
                c.errors,
                c.slow_p95,
                c.slow_p99,
            ]
        })
        .collect();
    encode(&packed)
}

/// Hour `hour`'s counts from its stored minutes, those `exclusions`
/// covers left out; `Err` says why the value is not an hour's minutes.
pub fn counted_hour(
    bytes: &[u8],
    hour: u64,
    exclusions: &Exclusions,
) -> Result<BudgetCounts, String> {
    let minutes: Vec<PackedMinute> = decode(bytes)?;
    let mut sum = BudgetCounts::default();
    for [m, total, unavailable, errors, slow_p95, slow_p99] in minutes {
        if m >= 60 {
            return Err(format!("minute {m} of an hour"));
        }
        if [unavailable, errors, slow_p95, slow_p99]
            .iter()
            .any(|bad| *bad > total)
        {
            return Err(format!("minute {m}: more bad requests than requests"));
        }
        if !exclusions.covers(hour * 60 + m) {
            sum.add(&BudgetCounts {
                total,
                unavailable,
                errors,
                slow_p95,
                slow_p99,
            });
        }
    }
    Ok(sum)
}

/// The hours (Unix minutes ÷ 60) whose minutes are still kept at minute
/// `now` and that hold a minute `exclusions` covers, with a digest of the
/// spans that makes them so.
pub fn hours_to_settle(exclusions: &Exclusions, now: u64) -> (BTreeSet<u64>, u64) {
    let first_hour = now.saturating_sub(BUDGET_MINUTES_KEEP_MINUTES) / 60 + 1;
    let spans = exclusions.spans(first_hour * 60 * MINUTE_MS, (now + 1) * MINUTE_MS);
    let mut digest = DefaultHasher::new();
    let mut hours = BTreeSet::new();
    for span in &spans {
        (span.from_ms, span.to_ms).hash(&mut digest);
        let (first, last) = (span.from_ms / MINUTE_MS, span.to_ms / MINUTE_MS - 1);
        hours.extend((first / 60).max(first_hour)..=(last / 60).min(now / 60));
    }
    (hours, digest.finish())
}

/// Rewrites every other sidecar's budget hours in `hours` from the
/// minutes it stored, `exclusions` left out: the hours rewritten. A
/// value that does not read is left as it is, and logged.
pub async fn settle_others(
    con: &mut ConnectionManager,
    keys: &FleetKeys,
    own: &str,
    exclusions: &Exclusions,
    hours: &BTreeSet<u64>,
) -> Result<usize, FleetStoreError> {
    if hours.is_empty() {
        return Ok(0);
    }
    let mut read = redis::pipe();
    for hour in hours {
        read.cmd("HGETALL").arg(keys.budget_minutes(*hour));
    }
    let replies: Vec<Vec<(String, Vec<u8>)>> =
        read.query_async(con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "reading the budget minutes",
                source,
            })?;
    let mut write = redis::pipe();
    write.atomic();
    let mut settled = 0;
    for (hour, fields) in hours.iter().zip(replies) {
        let key = keys.budget_hour(*hour);
        for (instance, bytes) in fields.iter().filter(|(i, _)| i != own) {
            match counted_hour(bytes, *hour, exclusions) {
                Ok(counts) => {
                    write
                        .cmd("HSET")
                        .arg(&key)
                        .arg(instance)
                        .arg(encode(&counts))
                        .ignore();
                    settled += 1;
                }
                Err(reason) => note_unreadable(&keys.budget_minutes(*hour), instance, &reason),
            }
        }
        write
            .cmd("EXPIREAT")
            .arg(&key)
            .arg((hour + 1) * 3600 + BUDGET_KEEP_MINUTES * 60)
            .ignore();
    }
    if settled > 0 {
        write
            .query_async::<()>(con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "settling the other sidecars' budget hours",
                source,
            })?;
    }
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Exclusion;

    #[test]
    fn an_hour_is_its_minutes_outside_the_windows() {
        let hour = 29_941_920 / 60; // an hour's number
        let counts = |n: u64| BudgetCounts {
            total: n,
            unavailable: n / 10,
            errors: n / 5,
            slow_p95: n / 20,
            slow_p99: n / 100,
        };
        let bytes = pack((0..60).map(|m| (hour * 60 + m, counts(1_000 + m))));
        let mut x = Exclusions::default();
        assert_eq!(
            counted_hour(&bytes, hour, &x).map(|c| c.total),
            Ok((0..60).map(|m| 1_000 + m).sum())
        );
        x.add(
            Exclusion::new(
                (hour * 60 + 10) * MINUTE_MS,
                (hour * 60 + 20) * MINUTE_MS,
                "failover",
                "ana",
                0,
            )
            .expect("valid"),
        );
        let mut want = BudgetCounts::default();
        for m in (0..10).chain(20..60) {
            want.add(&counts(1_000 + m));
        }
        assert_eq!(counted_hour(&bytes, hour, &x), Ok(want));
        let (hours, digest) = hours_to_settle(&x, hour * 60 + 70);
        assert_eq!(hours.into_iter().collect::<Vec<_>>(), vec![hour]);
        assert_ne!(
            digest,
            hours_to_settle(&Exclusions::default(), hour * 60 + 70).1
        );
        // Long gone: nothing to settle.
        assert!(hours_to_settle(&x, hour * 60 + 5 * 1440).0.is_empty());
    }

    #[test]
    fn values_that_are_not_minutes_are_refused() {
        let x = Exclusions::default();
        assert!(counted_hour(&encode(&vec![[60_u64, 1, 0, 0, 0, 0]]), 1, &x).is_err());
        assert!(counted_hour(&encode(&vec![[3_u64, 1, 2, 0, 0, 0]]), 1, &x).is_err());
        assert!(counted_hour(&encode(&"hello"), 1, &x).is_err());
        assert!(counted_hour(b"", 1, &x).is_err());
    }
}
