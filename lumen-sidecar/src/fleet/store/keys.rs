//! Where the fleet store keeps what, for how long, and which blocks a
//! window reads.
//!
//! Every key of a service starts with `lumen:{SERVICE}:`, the braces being
//! Redis Cluster's hash tag: a service's keys share one slot, so a
//! pipeline of them goes to one node.
//!
//! | key | holds | kept after its block ends |
//! |---|---|---|
//! | `lumen:{S}:m:MINUTE` | one minute, field per sidecar | 130 min |
//! | `lumen:{S}:t:MINUTE` | a 10-minute block | 3 h |
//! | `lumen:{S}:h:MINUTE` | an hour | the retention (at least 24 h) + 1 h |
//! | `lumen:{S}:b:HOUR` | an hour's budget counts | 32 days |
//! | `lumen:{S}:bm:HOUR` | the same hour's counts minute by minute, as counted | 3 days + 1 h |
//! | `lumen:{S}:x` | one-off windows kept off the error budget | 32 days |
//! | `lumen:{S}:i` | each sidecar's latest [`InstanceInfo`](super::InstanceInfo) | 32 days after that sidecar's last write |
//! | `lumen:{S}:il` | when each sidecar last wrote (sorted set) | 32 days after that sidecar's last write |
//! | `lumen:{S}:w:SIDECAR` | "this sidecar's data is here" | the retention |
//! | `lumen:{S}:compact:lock` | which sidecar compacts this interval | the interval |
//!
//! A block's fields: one per sidecar (its name), one per late batch
//! (`SIDECAR+ID`), and once closed and compacted ([`compaction`](super::compaction))
//! the merged field `*`, the merged ones left empty (tombstones); a share
//! of a minute kept off the budget after the merge is a field
//! `SIDECAR~MINUTE` (or `SIDECAR+ID~MINUTE`) that readers subtract.
//!
//! So a window of up to 2 hours is read to the minute, as a sidecar's own;
//! a longer one starts at the next whole 10 minutes, and one reaching past
//! 2 h 50 min at the next whole hour (the report's `window_s` says what was
//! covered). The budgets' burn rates over 5 minutes to 1 hour are exact to
//! the minute; longer ones start at the whole hour before their start.
//!
//! Memory: a block costs, per sidecar and route with traffic, a few tens
//! of bytes (label, nine counts) plus about 2 bytes per distinct latency
//! bucket it saw (measured: about 250 bytes per route-minute of 100
//! requests with a wide spread, `bench/RESULTS.md`); a service holds
//! at most 131 minutes, 19 ten-minute blocks and 25 hours, so about
//! `sidecars × routes × (131 × b₁ + 19 × b₁₀ + 25 × b₆₀)` bytes where bₙ is
//! about `60 + 2 ×` the distinct buckets of n minutes (measured in
//! `bench/RESULTS.md`).

use crate::store::{COARSE_HOURS, ROLLUP_MINUTES, pieces};

/// How long a minute is kept after it ends, minutes.
pub const MINUTE_KEEP_MINUTES: u64 = 130;
/// How long a 10-minute block is kept after it ends, minutes.
pub const TEN_MINUTE_KEEP_MINUTES: u64 = 3 * 60;
/// How long an hour's budget counts are kept after it ends, minutes.
pub const BUDGET_KEEP_MINUTES: u64 = COARSE_HOURS * 60;
/// How long an hour's budget counts minute by minute are kept after it
/// ends, minutes: as long as a window can still be kept off the budget
/// (the minutes a sidecar's ledger holds one by one), and an hour more.
pub const BUDGET_MINUTES_KEEP_MINUTES: u64 = crate::store::FINE_MINUTES + 60;
/// Minutes at the end of a window always read one by one: blocks that
/// closed this recently may not be written yet.
pub const RECENT_MINUTES: u64 = 5;
/// How far inside a tier's horizon a reader stays (a writer's clock may
/// differ by this much).
const MARGIN_MINUTES: u64 = 10;

/// A block length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// One minute.
    Minute,
    /// Ten minutes, starting at a multiple of 10.
    TenMinutes,
    /// An hour, starting at a multiple of 60.
    Hour,
}

impl Tier {
    /// The two block tiers above minutes.
    pub const BLOCKS: [Tier; 2] = [Tier::TenMinutes, Tier::Hour];

    /// Its length, minutes.
    pub fn minutes(self) -> u64 {
        match self {
            Self::Minute => 1,
            Self::TenMinutes => ROLLUP_MINUTES[0],
            Self::Hour => ROLLUP_MINUTES[1],
        }
    }

    /// The letter in its keys.
    fn code(self) -> char {
        match self {
            Self::Minute => 'm',
            Self::TenMinutes => 't',
            Self::Hour => 'h',
        }
    }

    /// How long a block is kept after it ends, minutes, for a sidecar
    /// keeping `retention_minutes`.
    pub fn keep_minutes(self, retention_minutes: u64) -> u64 {
        match self {
            Self::Minute => MINUTE_KEEP_MINUTES,
            Self::TenMinutes => TEN_MINUTE_KEEP_MINUTES,
            Self::Hour => retention_minutes.max(24 * 60) + 60,
        }
    }

    /// The start of the block of this tier holding `minute`.
    pub fn start_of(self, minute: u64) -> u64 {
        minute / self.minutes() * self.minutes()
    }

    /// When the block starting at `start` expires, Unix seconds.
    pub fn expires_at_s(self, start: u64, retention_minutes: u64) -> u64 {
        (start + self.minutes() + self.keep_minutes(retention_minutes)) * 60
    }
}

/// The keys of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetKeys {
    prefix: String,
}

impl FleetKeys {
    /// The keys of `service` (braces in the name are escaped so the hash
    /// tag stays the whole name).
    pub fn new(service: &str) -> Self {
        let escaped = service.replace('{', "%7B").replace('}', "%7D");
        Self {
            prefix: format!("lumen:{{{escaped}}}"),
        }
    }

    /// The block of `tier` starting at minute `start` (Unix minutes).
    pub fn block(&self, tier: Tier, start: u64) -> String {
        format!("{}:{}:{start}", self.prefix, tier.code())
    }

    /// The budget counts of hour `hour` (Unix minutes ÷ 60).
    pub fn budget_hour(&self, hour: u64) -> String {
        format!("{}:b:{hour}", self.prefix)
    }

    /// The budget counts of hour `hour` minute by minute, as counted.
    pub fn budget_minutes(&self, hour: u64) -> String {
        format!("{}:bm:{hour}", self.prefix)
    }

    /// One-off windows kept off the error budget, shared by every sidecar.
    pub fn exclusions(&self) -> String {
        format!("{}:x", self.prefix)
    }

    /// Each sidecar's latest information.
    pub fn instances(&self) -> String {
        format!("{}:i", self.prefix)
    }

    /// When each sidecar last wrote (a sorted set, Unix ms).
    pub fn instances_seen(&self) -> String {
        format!("{}:il", self.prefix)
    }

    /// The feedback loop's shared state (JSON).
    pub fn tuning(&self) -> String {
        format!("{}:tuning", self.prefix)
    }

    /// Who decides the feedback loop's current interval.
    pub fn tuning_lock(&self) -> String {
        format!("{}:tuning:lock", self.prefix)
    }

    /// The fleet's A/B experiments (JSON).
    pub fn experiments(&self) -> String {
        format!("{}:experiments", self.prefix)
    }

    /// Who holds the experiments (a look or a command).
    pub fn experiments_lock(&self) -> String {
        format!("{}:experiments:lock", self.prefix)
    }

    /// Who compacts the closed blocks this interval.
    pub fn compaction_lock(&self) -> String {
        format!("{}:compact:lock", self.prefix)
    }

    /// The marker that `instance`'s data is in the store.
    pub fn marker(&self, instance: &str) -> String {
        format!("{}:w:{instance}", self.prefix)
    }
}

/// What a window reads: the blocks, and the minutes it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// The first minute covered (the window's own first minute, or the
    /// next block start when that minute has aged out of its tier).
    pub first: u64,
    /// The last minute covered.
    pub last: u64,
    /// The blocks, `(tier, start)`, together covering `first..=last` once.
    pub blocks: Vec<(Tier, u64)>,
}

/// The blocks a window of minutes `first..=last` reads at minute `now`:
/// whole hours and 10-minute blocks where they fit, single minutes
/// elsewhere and for the last [`RECENT_MINUTES`]. A window reaching past
/// the minutes kept starts at the next whole 10 minutes; past the
/// 10-minute blocks kept, at the next whole hour.
pub fn read_plan(first: u64, last: u64, now: u64) -> ReadPlan {
    let minutes_from = now.saturating_sub(MINUTE_KEEP_MINUTES - MARGIN_MINUTES);
    let tens_from = now.saturating_sub(TEN_MINUTE_KEEP_MINUTES - MARGIN_MINUTES);
    let mut first = first;
    if first < minutes_from {
        first = first.div_ceil(10) * 10;
    }
    if first < tens_from {
        first = first.div_ceil(60) * 60;
    }
    let mut blocks = Vec::new();
    let recent = (last + 1).saturating_sub(RECENT_MINUTES).max(first);
    if recent > first {
        for (tier, start) in pieces(first, recent - 1) {
            blocks.push((
                match tier {
                    None => Tier::Minute,
                    Some(0) => Tier::TenMinutes,
                    Some(_) => Tier::Hour,
                },
                start,
            ));
        }
    }
    blocks.extend((recent..=last).map(|m| (Tier::Minute, m)));
    ReadPlan {
        first,
        last,
        blocks,
    }
}

/// [`read_plan`] with the minutes `excluded` keeps off the budget left
/// out: a block holding one is read minute by minute while its minutes are
/// still kept (so a block an instance wrote before a later mark is not
/// counted), those minutes not read at all. Older blocks stay whole: each
/// sidecar wrote them without the windows it knew.
pub fn read_plan_counted(
    first: u64,
    last: u64,
    now: u64,
    excluded: impl Fn(u64) -> bool,
) -> ReadPlan {
    let plan = read_plan(first, last, now);
    let minutes_from = now.saturating_sub(MINUTE_KEEP_MINUTES - MARGIN_MINUTES);
    let mut blocks = Vec::with_capacity(plan.blocks.len());
    for (tier, start) in plan.blocks {
        let minutes = start..start + tier.minutes();
        if minutes.clone().any(&excluded) && start >= minutes_from {
            blocks.extend(minutes.filter(|m| !excluded(*m)).map(|m| (Tier::Minute, m)));
        } else {
            blocks.push((tier, start));
        }
    }
    ReadPlan { blocks, ..plan }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(plan: &ReadPlan) -> Vec<u64> {
        let mut minutes: Vec<u64> = plan
            .blocks
            .iter()
            .flat_map(|(tier, start)| *start..start + tier.minutes())
            .collect();
        minutes.sort_unstable();
        minutes
    }

    #[test]
    fn a_service_keeps_every_key_under_one_hash_tag() {
        let k = FleetKeys::new("api");
        for key in [
            k.block(Tier::Minute, 7),
            k.block(Tier::Hour, 60),
            k.budget_hour(3),
            k.instances(),
            k.marker("a-1"),
        ] {
            assert!(key.starts_with("lumen:{api}:"), "{key}");
        }
        assert_eq!(k.block(Tier::TenMinutes, 30), "lumen:{api}:t:30");
        assert_eq!(FleetKeys::new("a}b").instances(), "lumen:{a%7Db}:i");
    }

    #[test]
    fn a_recent_hour_reads_blocks_then_its_last_minutes_one_by_one() {
        let now = 10_000 * 60 + 37; // minute 37 of an hour
        let plan = read_plan(now - 59, now, now);
        assert_eq!(plan.first, now - 59);
        assert_eq!(covered(&plan), (now - 59..=now).collect::<Vec<_>>());
        // The last five minutes are single minutes, whatever the alignment.
        assert!(
            plan.blocks[plan.blocks.len() - 5..]
                .iter()
                .all(|(t, _)| *t == Tier::Minute)
        );
        assert!(plan.blocks.contains(&(Tier::TenMinutes, 10_000 * 60)));
        assert!(plan.blocks.len() < 60);
    }

    #[test]
    fn a_day_starts_at_the_next_hour_and_reads_few_blocks() {
        let now = 20_000 * 60 + 7;
        let plan = read_plan(now - 1439, now, now);
        assert_eq!(plan.first, (now - 1439).div_ceil(60) * 60);
        assert_eq!(covered(&plan), (plan.first..=now).collect::<Vec<_>>());
        assert!(plan.blocks.len() <= 24 + 5 + 5, "{}", plan.blocks.len());
        // Nothing read has aged out of its tier.
        for (tier, start) in &plan.blocks {
            let ends = start + tier.minutes();
            assert!(
                ends + tier.keep_minutes(24 * 60) > now + MARGIN_MINUTES,
                "{tier:?} {start}"
            );
        }
    }

    #[test]
    fn two_and_a_half_hours_start_at_a_whole_ten_minutes_and_six_at_a_whole_hour() {
        let now = 30_000 * 60 + 3;
        let plan = read_plan(now - 149, now, now);
        assert_eq!(plan.first, (now - 149).div_ceil(10) * 10);
        assert_eq!(covered(&plan), (plan.first..=now).collect::<Vec<_>>());
        let plan = read_plan(now - 359, now, now);
        assert_eq!(plan.first, (now - 359).div_ceil(60) * 60);
        assert_eq!(covered(&plan), (plan.first..=now).collect::<Vec<_>>());
        let plan = read_plan(now - 119, now, now);
        assert_eq!(plan.first, now - 119, "two hours are exact");
    }

    #[test]
    fn blocks_expire_after_their_tier_keeps_them() {
        assert_eq!(Tier::Minute.expires_at_s(100, 1440), (101 + 130) * 60);
        assert_eq!(Tier::Hour.expires_at_s(120, 1440), (180 + 1500) * 60);
        assert_eq!(Tier::Hour.keep_minutes(60), 1500, "at least a day");
        assert_eq!(Tier::TenMinutes.start_of(127), 120);
    }

    #[test]
    fn a_counted_plan_reads_blocks_holding_excluded_minutes_minute_by_minute() {
        let now = 29_000_000;
        let (first, last) = (now - 119, now);
        let excluded = |m: u64| (now - 100..now - 93).contains(&m);
        let plan = read_plan_counted(first, last, now, excluded);
        let whole = read_plan(first, last, now);
        assert!(whole.blocks.iter().any(|(t, _)| *t != Tier::Minute));
        let want: Vec<u64> = covered(&whole)
            .into_iter()
            .filter(|m| !excluded(*m))
            .collect();
        assert_eq!(
            covered(&plan),
            want,
            "every counted minute once, none excluded"
        );
        assert!(
            plan.blocks.len() < want.len(),
            "blocks without excluded minutes stay blocks"
        );
        // Past the minutes kept, blocks stay whole.
        let old = read_plan_counted(now - 600, now, now, |m| m == now - 590);
        assert_eq!(covered(&old), covered(&read_plan(now - 600, now, now)));
    }
}
