//! Compaction: a closed block's fields merged into one, so the store's
//! size and a read's work follow the traffic, not how many instances came
//! and went.
//!
//! A block closes [`LATE_AFTER_MINUTES`] after it ends. A sidecar's field of
//! a closed block is final once that sidecar has written after the block
//! closed (every write carries every block changed since the last, in one
//! transaction with the sidecar's mark in the index of when each wrote,
//! `lumen:{S}:il`), or once it has been silent for [`SILENT_MINUTES`]
//! (an instance that is gone). Batches a sidecar takes after that are late
//! batches, written as fields of their own (`SIDECAR+ID`, the ID a digest
//! of the app instance and the batch's sequence number), final as written.
//!
//! One sidecar at a time (the holder of `lumen:{S}:compact:lock`) merges
//! the final fields of each closed block into the field `*`, exactly (the
//! histograms and counts summed), and empties the fields it merged, in one
//! script that first checks that every field is still what it read (so a
//! racing compactor or a writer in between makes it read again; a
//! compactor killed at any point leaves each block merged or not, never
//! half). An emptied field is a tombstone: the write script refuses to set
//! it again, so a restarted sidecar rewriting what it holds never counts a
//! merged field twice, and readers count its sidecar among the block's.
//!
//! A window kept off the budget after a block was merged: each sidecar,
//! when it first applies the mark, writes its share of each marked minute
//! as a field `SOURCE~MINUTE` for every field of its that was merged
//! (its own, a late batch's), which readers and compaction subtract; a
//! late batch's field not merged yet is deleted instead, and a sidecar's
//! own unmerged field is rewritten without the minute anyway.

use std::collections::{BTreeMap, BTreeSet};

use redis::aio::ConnectionManager;

use super::block::FleetBlock;
use super::error::{FleetStoreError, note_unreadable, redis_error};
use super::keys::{FleetKeys, Tier};
use crate::store::{LATE_AFTER_MINUTES, MINUTE_MS, RouteKey, RouteSlot};

/// The field holding a closed block's merged fields.
pub const MERGED_FIELD: &str = "*";
/// Minutes a sidecar may be silent before its fields of closed blocks are
/// merged without its having written after they closed.
pub const SILENT_MINUTES: u64 = 60;
/// How many times a block is read again when it changed under a merge.
const ATTEMPTS: usize = 3;

/// Sets a sidecar's field of a block unless it was merged (a tombstone):
/// KEYS[1] the block, ARGV the field, the value (empty: delete the field),
/// the expiry (Unix s). 1 when written, 0 when refused.
const WRITE_SCRIPT: &str = r"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held == '' then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
";

/// Takes a sidecar's share of a minute kept off the budget out of a block
/// whose field holding it was merged: KEYS[1] the block; ARGV the field
/// holding the share (the sidecar's, or a late batch's), the minus field,
/// the share, the expiry. When that field was merged, the minus field is
/// set (unless merged itself); when a late batch's field is still there,
/// it is deleted; a sidecar's own unmerged field is rewritten without the
/// minute anyway.
const MINUS_SCRIPT: &str = r"
local source = redis.call('HGET', KEYS[1], ARGV[1])
if source == '' then
  if redis.call('HGET', KEYS[1], ARGV[2]) == '' then return 0 end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIREAT', KEYS[1], ARGV[4])
  return 1
end
if source and string.find(ARGV[1], '+', 1, true) then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// For each key: 2 × its fields holding data besides `*`, plus 1 when it
/// has `*`.
const COUNT_SCRIPT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local n = 0
  local merged = 0
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if field == '*' then merged = 1
    elseif redis.call('HSTRLEN', key, field) > 0 then n = n + 1 end
  end
  out[i] = 2 * n + merged
end
return out
";

/// Merges: KEYS[1] the block; ARGV[1] `*` as read ('' when absent),
/// ARGV[2] the merged value, then pairs of a field and its value as read.
/// Nothing is changed unless every one still holds what was read.
const MERGE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local merged = redis.call('HGET', KEYS[1], '*')
if (merged or '') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 0 end
end
redis.call('HSET', KEYS[1], '*', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], '') end
return 1
";

/// The field of a late batch `id` of `sidecar`.
pub fn late_field(sidecar: &str, id: u64) -> String {
    format!("{sidecar}+{id:016x}")
}

/// The field taking `source`'s share of `minute` out of a merged block.
pub fn minus_field(source: &str, minute: u64) -> String {
    format!("{source}~{minute}")
}

/// Whether a block's field is a share taken out (see [`minus_field`]).
pub fn is_minus(field: &str) -> bool {
    field.contains('~')
}

/// The sidecar a block's field belongs to (a late batch's and a share
/// taken out to its sidecar); `None` for the merged field.
pub fn field_owner(field: &str) -> Option<&str> {
    if field == MERGED_FIELD {
        return None;
    }
    Some(field.split(['+', '~']).next().unwrap_or(field))
}

/// Adds "take `share` (of `source`'s field) out of `key` if that field was
/// merged" to `pipe` (see the minus script).
pub fn write_minus(
    pipe: &mut redis::Pipeline,
    key: &str,
    source: &str,
    minus: &str,
    share: &[u8],
    expire_at_s: u64,
) {
    pipe.cmd("EVAL")
        .arg(MINUS_SCRIPT)
        .arg(1)
        .arg(key)
        .arg(source)
        .arg(minus)
        .arg(share)
        .arg(expire_at_s)
        .ignore();
}

/// `block` without `minus` (exact when `minus` was added to it): routes
/// by key, budget counts.
pub fn subtract_block(block: &mut FleetBlock, minus: &FleetBlock) {
    for (key, slot) in &minus.routes {
        if let Ok(i) = block.routes.binary_search_by(|(k, _)| k.cmp(key)) {
            block.routes[i].1.subtract(slot);
        }
    }
    block.routes.retain(|(_, slot)| !slot.is_empty());
    block.budget = block.budget.minus(&minus.budget);
}

/// The fields of one block netted: merged into one (`*`) with the shares
/// taken out subtracted, when it holds any; as they are otherwise.
pub fn netted(fields: Vec<(String, FleetBlock)>) -> Vec<(String, FleetBlock)> {
    if !fields.iter().any(|(f, _)| is_minus(f)) {
        return fields;
    }
    let (minus, plus): (Vec<_>, Vec<_>) = fields.into_iter().partition(|(f, _)| is_minus(f));
    let mut net = merge_blocks(plus.iter().map(|(_, b)| b));
    for (_, m) in &minus {
        subtract_block(&mut net, m);
    }
    vec![(MERGED_FIELD.to_owned(), net)]
}

/// Adds "set `sidecar`'s `field` of `key` to `value` (delete it when
/// empty) unless it was merged" to `pipe`.
pub fn write_unless_merged(
    pipe: &mut redis::Pipeline,
    key: &str,
    field: &str,
    value: &[u8],
    expire_at_s: u64,
) {
    pipe.cmd("EVAL")
        .arg(WRITE_SCRIPT)
        .arg(1)
        .arg(key)
        .arg(field)
        .arg(value)
        .arg(expire_at_s)
        .ignore();
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionSummary {
    /// Blocks merged.
    pub blocks: usize,
    /// Fields merged into them.
    pub fields: usize,
    /// Blocks read again because they changed under the merge.
    pub retried: usize,
}

/// The closed blocks still kept at minute `now` for a sidecar keeping
/// `retention_minutes`, oldest first.
pub fn closed_blocks(now: u64, retention_minutes: u64) -> Vec<(Tier, u64)> {
    let mut out = Vec::new();
    for tier in [Tier::Hour, Tier::TenMinutes, Tier::Minute] {
        let len = tier.minutes();
        let oldest = tier.start_of(now.saturating_sub(len + tier.keep_minutes(retention_minutes)));
        let mut start = oldest;
        while start + len + LATE_AFTER_MINUTES < now {
            out.push((tier, start));
            start += len;
        }
    }
    out.sort_by_key(|(tier, start)| (*start, std::cmp::Reverse(tier.minutes())));
    out
}

/// Sums blocks: routes by key (histograms merged), budgets added.
pub fn merge_blocks<'a>(blocks: impl IntoIterator<Item = &'a FleetBlock>) -> FleetBlock {
    let mut routes: BTreeMap<RouteKey, RouteSlot> = BTreeMap::new();
    let mut merged = FleetBlock::default();
    for block in blocks {
        for (key, slot) in &block.routes {
            routes.entry(key.clone()).or_default().add(slot);
        }
        merged.budget.add(&block.budget);
    }
    merged.routes = routes.into_iter().collect();
    merged
}

/// Merges every closed block of `keys`' service at `now_ms` (see the
/// module): blocks with at least two fields to merge, or one and a merged
/// field. `on_block` hears of each block merged.
pub async fn compact(
    con: &ConnectionManager,
    keys: &FleetKeys,
    now_ms: u64,
    retention_minutes: u64,
    mut on_block: impl FnMut(Tier, u64, usize),
) -> Result<CompactionSummary, FleetStoreError> {
    let mut con = con.clone();
    let now = now_ms / MINUTE_MS;
    let blocks = closed_blocks(now, retention_minutes);
    let mut summary = CompactionSummary::default();
    if blocks.is_empty() {
        return Ok(summary);
    }
    let names: Vec<String> = blocks.iter().map(|(t, s)| keys.block(*t, *s)).collect();
    let mut counted = redis::cmd("EVAL");
    counted.arg(COUNT_SCRIPT).arg(names.len()).arg(&names);
    let counts: Vec<u64> = counted
        .query_async(&mut con)
        .await
        .map_err(redis_error("counting the fields of closed blocks"))?;
    for (((tier, start), key), count) in blocks.iter().zip(&names).zip(counts) {
        let (fields, merged) = (count / 2, count % 2);
        if fields + merged < 2 {
            continue;
        }
        let end = start + tier.minutes();
        for attempt in 0..ATTEMPTS {
            match merge_block(&mut con, keys, key, end, now_ms).await? {
                Merge::Done(n) => {
                    summary.blocks += 1;
                    summary.fields += n;
                    on_block(*tier, *start, n);
                    break;
                }
                Merge::Nothing => break,
                Merge::Changed if attempt + 1 < ATTEMPTS => summary.retried += 1,
                Merge::Changed => {
                    summary.retried += 1;
                    tracing::debug!(
                        key,
                        "a block kept changing under compaction; left for the next one"
                    );
                }
            }
        }
    }
    Ok(summary)
}

/// What merging one block came to.
enum Merge {
    /// Merged this many fields.
    Done(usize),
    /// Nothing final to merge.
    Nothing,
    /// The block changed between the read and the merge.
    Changed,
}

/// Reads `key` (a block ending at minute `end`) and merges its final
/// fields, if the block still holds what was read.
async fn merge_block(
    con: &mut ConnectionManager,
    keys: &FleetKeys,
    key: &str,
    end: u64,
    now_ms: u64,
) -> Result<Merge, FleetStoreError> {
    let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(con)
        .await
        .map_err(redis_error("reading a closed block"))?;
    let owners: BTreeSet<&str> = fields
        .iter()
        .filter(|(f, v)| !v.is_empty() && !f.contains('+') && !is_minus(f))
        .filter_map(|(f, _)| field_owner(f))
        .collect();
    let owners: Vec<&str> = owners.into_iter().collect();
    let seen: Vec<Option<f64>> = if owners.is_empty() {
        Vec::new()
    } else {
        redis::cmd("ZMSCORE")
            .arg(keys.instances_seen())
            .arg(&owners)
            .query_async(con)
            .await
            .map_err(redis_error("reading when the sidecars last wrote"))?
    };
    let closed_ms = (end + LATE_AFTER_MINUTES + 1) * MINUTE_MS;
    let silent_since = now_ms.saturating_sub(SILENT_MINUTES * MINUTE_MS);
    let done: BTreeSet<&str> = owners
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| match seen {
            Some(ms) => *ms as u64 >= closed_ms || (*ms as u64) < silent_since,
            None => true, // dropped from the index: long gone
        })
        .map(|(o, _)| *o)
        .collect();
    let mut merged_before: &[u8] = &[];
    let mut parts = Vec::new();
    let mut taken: Vec<(&str, &[u8])> = Vec::new();
    for (field, value) in &fields {
        if field == MERGED_FIELD {
            merged_before = value;
        }
        // Late batches' fields and shares taken out never change.
        let final_field = field != MERGED_FIELD
            && !value.is_empty()
            && (field.contains('+') || is_minus(field) || done.contains(field.as_str()));
        if field != MERGED_FIELD && !final_field {
            continue;
        }
        match FleetBlock::decode(value) {
            Ok(block) => {
                parts.push((field.as_str(), block));
                if field != MERGED_FIELD {
                    taken.push((field, value));
                }
            }
            // Left as it is: the readers leave it out and say so.
            Err(reason) if field != MERGED_FIELD => note_unreadable(key, field, &reason),
            Err(reason) => {
                note_unreadable(key, field, &reason);
                return Ok(Merge::Nothing); // never merge over a bad `*`
            }
        }
    }
    if taken.is_empty() || (taken.len() == 1 && merged_before.is_empty()) {
        return Ok(Merge::Nothing);
    }
    let merged = netted(parts.into_iter().map(|(f, b)| (f.to_owned(), b)).collect());
    let merged = merge_blocks(merged.iter().map(|(_, b)| b)).encode();
    let mut script = redis::cmd("EVAL");
    script
        .arg(MERGE_SCRIPT)
        .arg(1)
        .arg(key)
        .arg(merged_before)
        .arg(merged);
    for (field, value) in &taken {
        script.arg(*field).arg(*value);
    }
    let applied: u64 = script
        .query_async(con)
        .await
        .map_err(redis_error("merging a closed block"))?;
    Ok(if applied == 1 {
        Merge::Done(taken.len())
    } else {
        Merge::Changed
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{Counts, SparseHistogram};

    #[test]
    fn fields_belong_to_their_sidecar() {
        assert_eq!(field_owner("api-7"), Some("api-7"));
        assert_eq!(field_owner(&late_field("api-7", 255)), Some("api-7"));
        assert_eq!(late_field("a", 255), "a+00000000000000ff");
        assert_eq!(field_owner(MERGED_FIELD), None);
        assert_eq!(field_owner(&minus_field("api-7", 99)), Some("api-7"));
        let late_minus = minus_field(&late_field("api-7", 1), 99);
        assert_eq!(field_owner(&late_minus), Some("api-7"));
        assert!(is_minus(&late_minus) && !is_minus("api-7"));
    }

    #[test]
    fn closed_blocks_are_those_ended_past_the_grace_and_still_kept() {
        let now = 1_000_000;
        let blocks = closed_blocks(now, 24 * 60);
        for (tier, start) in &blocks {
            assert!(start + tier.minutes() + LATE_AFTER_MINUTES < now);
            assert!(tier.expires_at_s(*start, 24 * 60) > (now - tier.minutes() - 60) * 60);
        }
        let minutes = blocks.iter().filter(|(t, _)| *t == Tier::Minute).count() as u64;
        assert!(
            (110..=131).contains(&minutes),
            "the minutes kept, not the last {LATE_AFTER_MINUTES}: {minutes}"
        );
        assert!(blocks.contains(&(Tier::Minute, now - LATE_AFTER_MINUTES - 2)));
        assert!(!blocks.contains(&(Tier::Minute, now - LATE_AFTER_MINUTES - 1)));
        assert!(blocks.iter().filter(|(t, _)| *t == Tier::Hour).count() >= 24);
    }

    #[test]
    fn merged_blocks_are_the_sums() {
        let slot = |n: u64, at: u32| RouteSlot {
            counts: Counts {
                status: [0, n, 0, 0, 0],
                ..Counts::default()
            },
            latency: SparseHistogram::from_pairs(vec![(at, n)]),
        };
        let ask: RouteKey = Some(Arc::from("/ask"));
        let a = FleetBlock {
            routes: vec![(None, slot(2, 10)), (ask.clone(), slot(3, 50))],
            budget: crate::store::BudgetCounts {
                total: 5,
                ..Default::default()
            },
        };
        let b = FleetBlock {
            routes: vec![(ask.clone(), slot(4, 50))],
            budget: crate::store::BudgetCounts {
                total: 4,
                ..Default::default()
            },
        };
        let m = merge_blocks([&a, &b]);
        assert_eq!(m.budget.total, 9);
        assert_eq!(m.routes.len(), 2);
        assert_eq!(m.routes[1].1.counts.status[1], 7);
        assert_eq!(
            m.routes[1].1.latency.iter().collect::<Vec<_>>(),
            vec![(50, 7)]
        );
        // A share taken out: the sum of the rest.
        let net = netted(vec![
            ("a".into(), a.clone()),
            ("b".into(), b.clone()),
            (minus_field("b", 3), b.clone()),
        ]);
        assert_eq!(net, vec![(MERGED_FIELD.to_owned(), a.clone())]);
        let plain = vec![("a".to_owned(), a.clone())];
        assert_eq!(netted(plain.clone()), plain, "nothing to take out");
    }
}
