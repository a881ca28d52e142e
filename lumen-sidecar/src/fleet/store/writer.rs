//! The writer: a peer of the sidecar that, every write interval, writes
//! the minutes that changed (and the 10-minute and hour blocks that hold
//! them, once closed) to the fleet store.
//!
//! Ingest never waits for it: it takes the changed minutes and shares
//! them (copy on write) under the store's lock for a moment, then encodes
//! and writes outside it. What could not be written stays due and is
//! written with fresh data when Redis answers again; when Redis lost it
//! (restarted empty, flushed, evicted) the writer's marker is gone and
//! everything the sidecar holds is written again. Every write sets a
//! block's whole state in one transaction, so nothing is ever counted
//! twice.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::block::{FleetBlock, InstanceInfo, encode};
use super::compaction::{
    self, CompactionSummary, late_field, minus_field, write_minus, write_unless_merged,
};
use super::error::FleetStoreError;
use super::keys::{BUDGET_KEEP_MINUTES, BUDGET_MINUTES_KEEP_MINUTES, FleetKeys, Tier};
use super::{budget_minutes, instance_index};
use crate::app::{AppState, Shutdown, now_ms};
use crate::config::SidecarConfig;
use crate::eval::{DEPLOYMENT_WINDOW, DeploymentSource, mean};
use crate::store::{BudgetCounts, HeldMinutes, LateBatch, MINUTE_MS, RouteKey, RouteSlot};

/// The name of the file in the state directory that keeps the sidecar's
/// name in the fleet store across restarts.
pub const INSTANCE_FILE: &str = "fleet-instance";
/// How long the last write at shutdown may take.
pub const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Something to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    /// A block of a tier, by its start minute.
    Block(Tier, u64),
    /// An hour's budget counts.
    BudgetHour(u64),
}

/// What one write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Blocks written.
    pub blocks: usize,
    /// Budget hours written.
    pub budget_hours: usize,
    /// Whether everything held was written (first write, or the store had
    /// lost this sidecar's data).
    pub resync: bool,
    /// Other sidecars' budget hours rewritten without the windows kept off
    /// the budget (see [`budget_minutes`]).
    pub settled_hours: usize,
    /// Sidecars not seen for 32 days whose information was dropped (see
    /// [`instance_index`]).
    pub dropped_instances: usize,
    /// Late batches' fields written (see [`compaction`]).
    pub late_fields: usize,
}

/// Writes one sidecar's minutes to the fleet store.
pub struct FleetWriter {
    con: ConnectionManager,
    instance: String,
    retention_minutes: u64,
    due: BTreeSet<Job>,
    awaiting: BTreeSet<(Tier, u64)>,
    synced: bool,
    /// The digest of the windows kept off the budget last settled.
    settled: Option<u64>,
    /// The share of Redis's `maxmemory` the store may take, 0–1.
    memory_share: f64,
    /// Late batches yet to be written (see [`compaction`]).
    late_due: Vec<LateBatch>,
    /// How often this sidecar offers to compact (zero: never).
    compact_every: Duration,
    /// When it last did (Unix ms).
    compacted_ms: u64,
}

impl std::fmt::Debug for FleetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetWriter")
            .field("instance", &self.instance)
            .field("due", &self.due.len())
            .field("awaiting", &self.awaiting.len())
            .field("synced", &self.synced)
            .finish_non_exhaustive()
    }
}

/// A block gathered under the store's lock, merged after.
struct Gathered {
    tier: Tier,
    start: u64,
    held: HeldMinutes,
    budget: BudgetCounts,
    /// Late batches of the block, taken out of this sidecar's field: each
    /// is a field of its own.
    late: Vec<LateBatch>,
}

/// This sidecar's share of a minute kept off the budget since the last
/// write: all it holds of the minute, and the late batches among it.
struct Share {
    minute: u64,
    routes: Vec<(RouteKey, RouteSlot)>,
    late: Vec<LateBatch>,
}

/// `routes` without `late`'s (exact: each was added to its minute).
fn without_late(
    mut routes: Vec<(RouteKey, RouteSlot)>,
    late: &[LateBatch],
) -> Vec<(RouteKey, RouteSlot)> {
    for batch in late {
        for (key, slot) in &batch.routes {
            if let Ok(i) = routes.binary_search_by(|(k, _)| k.cmp(key)) {
                routes[i].1.subtract(slot);
            }
        }
    }
    routes.retain(|(_, slot)| !slot.is_empty());
    routes
}

fn random_hex() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

fn is_instance_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// This sidecar's name in the fleet store: the configured one; else the
/// one kept in the state directory (made there the first time), so a
/// restarted sidecar rewrites its own fields rather than adding new
/// ones; else a new one (a sidecar without a state directory starts
/// empty, so its earlier fields stay as they were).
pub fn fleet_instance(config: &SidecarConfig) -> String {
    if let Some(name) = &config.fleet_store.instance {
        return name.clone();
    }
    let made = format!(
        "{}-{}",
        std::env::var("K_REVISION")
            .ok()
            .filter(|r| is_instance_name(r) && r.len() <= 100)
            .unwrap_or_else(|| "sidecar".to_owned()),
        random_hex()
    );
    let Some(dir) = &config.state_dir else {
        return made;
    };
    let file = dir.join(INSTANCE_FILE);
    match std::fs::read_to_string(&file) {
        Ok(kept) if is_instance_name(kept.trim()) => kept.trim().to_owned(),
        _ => {
            let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&file, &made));
            if let Err(e) = written {
                tracing::warn!(file = %file.display(), error = %e, "cannot keep the fleet store name; a restart will write under a new one");
            }
            made
        }
    }
}

impl FleetWriter {
    /// A writer for `instance` over `con`.
    pub fn new(con: ConnectionManager, instance: String, retention: Duration) -> Self {
        Self {
            con,
            instance,
            retention_minutes: (retention.as_millis() as u64 / MINUTE_MS).max(1),
            due: BTreeSet::new(),
            awaiting: BTreeSet::new(),
            synced: false,
            settled: None,
            memory_share: crate::config::DEFAULT_FLEET_MEMORY_SHARE_PERCENT / 100.0,
            late_due: Vec::new(),
            compact_every: crate::config::DEFAULT_FLEET_COMPACT_EVERY,
            compacted_ms: 0,
        }
    }

    /// The same writer, offering to compact every `every` (zero: never).
    pub fn with_compaction_every(mut self, every: Duration) -> Self {
        self.compact_every = every;
        self
    }

    /// The same writer, writing only while Redis uses at most
    /// `percent` of its `maxmemory` (with this write).
    pub fn with_memory_share(mut self, percent: f64) -> Self {
        self.memory_share = percent / 100.0;
        self
    }

    /// Refuses a write of `bytes` when Redis would then use more than the
    /// store's share of its `maxmemory` (`INFO memory`; no limit without one).
    async fn check_room(&mut self, bytes: u64) -> Result<(), FleetStoreError> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "reading Redis's memory (INFO memory)",
                source,
            })?;
        let (used, max) = memory_of(&info);
        if max > 0 && (used + bytes) as f64 > max as f64 * self.memory_share {
            let mib = |b: u64| b as f64 / f64::from(1 << 20);
            return Err(FleetStoreError::NoRoom {
                used_mib: mib(used),
                max_mib: mib(max),
                share_percent: (self.memory_share * 100.0 * 10.0).round() / 10.0,
            });
        }
        Ok(())
    }

    /// Blocks and hours waiting to be written.
    pub fn due(&self) -> usize {
        self.due.len()
    }

    fn plan(&mut self, changed: BTreeSet<u64>, now: u64) {
        for minute in changed {
            self.due.insert(Job::Block(Tier::Minute, minute));
            self.due.insert(Job::BudgetHour(minute / 60));
            for tier in Tier::BLOCKS {
                self.awaiting.insert((tier, tier.start_of(minute)));
            }
        }
        // A block is written once all its minutes are past, and again
        // whenever a late batch changes one of them.
        let closed: Vec<(Tier, u64)> = self
            .awaiting
            .iter()
            .filter(|(tier, start)| start + tier.minutes() <= now)
            .copied()
            .collect();
        for (tier, start) in closed {
            self.awaiting.remove(&(tier, start));
            self.due.insert(Job::Block(tier, start));
        }
    }

    /// Writes what changed since the last successful write (everything
    /// held, the first time or when the store lost this sidecar's data).
    /// On failure what was due stays due.
    pub async fn write(&mut self, state: &AppState) -> Result<WriteSummary, FleetStoreError> {
        let now_ms = now_ms();
        let now = now_ms / MINUTE_MS;
        let now_s = now_ms / 1000;
        let Some(service) = state.service_name() else {
            return Ok(WriteSummary::default()); // nothing ingested yet
        };
        let keys = FleetKeys::new(&service);
        let marker = keys.marker(&self.instance);
        let present: bool = redis::cmd("EXISTS")
            .arg(&marker)
            .query_async(&mut self.con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "looking for this sidecar's marker",
                source,
            })?;
        let resync = !self.synced || !present;
        let retention = self.retention_minutes;
        // Windows another sidecar was told to keep off the budget.
        let marks = super::shared_exclusions::shared(&mut self.con, &keys).await?;
        let (blocks, hours, info, exclusions, taken_out) = {
            let mut store = state.store();
            for mark in marks {
                if !store.exclusions().holds(&mark) {
                    // Minutes no longer held one by one stay as counted.
                    let _ = store.exclude(mark);
                }
            }
            if resync {
                store.mark_all_changed();
                self.late_due.clear();
            }
            self.late_due.extend(store.take_new_late(resync));
            let changed = store.take_changed();
            self.plan(changed, now);
            let mut blocks = Vec::new();
            let mut hours = Vec::new();
            for job in &self.due {
                match *job {
                    Job::Block(tier, start) if tier.expires_at_s(start, retention) > now_s => {
                        let end = start + tier.minutes();
                        blocks.push(Gathered {
                            tier,
                            start,
                            held: store.held_counted(start, tier.minutes()),
                            budget: store.budget().sum(start, end - 1),
                            late: store
                                .late()
                                .within(start, end)
                                .filter(|b| b.late_for(end) && !store.exclusions().covers(b.minute))
                                .cloned()
                                .collect(),
                        });
                    }
                    Job::BudgetHour(hour) if (hour + 1) * 60 + BUDGET_KEEP_MINUTES > now => {
                        let minutes =
                            ((hour + 1) * 60 + BUDGET_MINUTES_KEEP_MINUTES > now).then(|| {
                                budget_minutes::pack(
                                    store.budget().counted_minutes(hour * 60, hour * 60 + 59),
                                )
                            });
                        hours.push((hour, store.budget().sum(hour * 60, hour * 60 + 59), minutes));
                    }
                    _ => {} // aged out of its tier
                }
            }
            let recent: Vec<_> = store
                .ledger()
                .active_since(now_ms.saturating_sub(5 * MINUTE_MS))
                .map(|(_, e)| e)
                .collect();
            let since = now_ms.saturating_sub(DEPLOYMENT_WINDOW.as_millis() as u64);
            let deployments = match state.deployments() {
                Some(d) if d.source == DeploymentSource::CloudRunApi => Some(d.count_7d),
                _ => Some(store.revisions().values().filter(|s| **s >= since).count() as u32)
                    .filter(|n| *n > 0),
            };
            let (cold_p95_ms, warm_p95_ms) = store.cold_and_warm_p95_ms(state.started_ms(), now_ms);
            let info = InstanceInfo {
                last_seen_ms: now_ms,
                revision: store.revision().map(str::to_owned),
                deployments_7d: deployments,
                cpu_utilisation: mean(recent.iter().filter_map(|e| e.cpu_utilisation())),
                memory_utilisation: mean(recent.iter().filter_map(|e| e.memory_utilisation())),
                started_ms: Some(state.started_ms()),
                cost_usd_per_s: Some(state.config.cost.instance_usd_per_s()),
                cache_totals: state.cache_lookups_by_route(),
                cold_p95_ms,
                warm_p95_ms,
                experiment_counts: state.experiments.own_counts(),
            };
            self.late_due
                .retain(|b| !store.exclusions().covers(b.minute));
            // Minutes a mark kept off the budget since the last write: this
            // sidecar's shares of them, for blocks merged before the mark.
            let taken_out: Vec<Share> = store
                .newly_excluded()
                .into_iter()
                .map(|minute| Share {
                    minute,
                    routes: store.held(minute, 1).merged(),
                    late: store.late().within(minute, minute + 1).cloned().collect(),
                })
                .collect();
            (blocks, hours, info, store.exclusions().clone(), taken_out)
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut bytes = 0_u64;
        let mut summary = WriteSummary {
            resync,
            ..WriteSummary::default()
        };
        // Each field set unless the block's fields were merged since
        // (compaction): then this sidecar's share is in the merged one.
        for g in &blocks {
            let budget = g
                .late
                .iter()
                .fold(g.budget, |sum, late| sum.minus(&late.budget));
            let block = FleetBlock {
                routes: without_late(g.held.merged(), &g.late),
                budget,
            };
            let key = keys.block(g.tier, g.start);
            let expires = g.tier.expires_at_s(g.start, retention);
            if block.routes.is_empty() && block.budget == BudgetCounts::default() {
                // Nothing left (its minutes kept off the budget since).
                write_unless_merged(&mut pipe, &key, &self.instance, &[], expires);
                continue;
            }
            let encoded = block.encode();
            bytes += (encoded.len() + key.len() + self.instance.len()) as u64;
            write_unless_merged(&mut pipe, &key, &self.instance, &encoded, expires);
            summary.blocks += 1;
        }
        // A late batch is a field of its own in each block that had closed
        // when it came: the same batch is always the same field.
        for late in &self.late_due {
            let field = late_field(&self.instance, late.id);
            let encoded = FleetBlock {
                routes: late.routes.clone(),
                budget: late.budget,
            }
            .encode();
            for tier in [Tier::Minute, Tier::TenMinutes, Tier::Hour] {
                let start = tier.start_of(late.minute);
                let expires = tier.expires_at_s(start, retention);
                if !late.late_for(start + tier.minutes()) || expires <= now_s {
                    continue;
                }
                let key = keys.block(tier, start);
                bytes += (encoded.len() + key.len() + field.len()) as u64;
                write_unless_merged(&mut pipe, &key, &field, &encoded, expires);
                summary.late_fields += 1;
            }
        }
        // A block merged before a mark still holds its minutes: each share
        // of them whose field was merged is taken out by a field of its own
        // (a late batch's field not merged yet is deleted instead).
        let rules = state.config.budget_rules();
        for share in &taken_out {
            for tier in [Tier::Minute, Tier::TenMinutes, Tier::Hour] {
                let start = tier.start_of(share.minute);
                let end = start + tier.minutes();
                let expires = tier.expires_at_s(start, retention);
                if expires <= now_s {
                    continue;
                }
                let key = keys.block(tier, start);
                let late: Vec<LateBatch> = share
                    .late
                    .iter()
                    .filter(|b| b.late_for(end))
                    .cloned()
                    .collect();
                let own = without_late(share.routes.clone(), &late);
                if !own.is_empty() {
                    let budget = HeldMinutes::from(own.clone()).budget_counts(&rules);
                    let encoded = FleetBlock {
                        routes: own,
                        budget,
                    }
                    .encode();
                    let minus = minus_field(&self.instance, share.minute);
                    write_minus(&mut pipe, &key, &self.instance, &minus, &encoded, expires);
                }
                for batch in &late {
                    let field = late_field(&self.instance, batch.id);
                    let encoded = FleetBlock {
                        routes: batch.routes.clone(),
                        budget: batch.budget,
                    }
                    .encode();
                    let minus = minus_field(&field, share.minute);
                    write_minus(&mut pipe, &key, &field, &minus, &encoded, expires);
                }
            }
        }
        for (hour, counts, minutes) in &hours {
            if let Some(minutes) = minutes {
                let key = keys.budget_minutes(*hour);
                bytes += (minutes.len() + key.len() + self.instance.len()) as u64;
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg(&self.instance)
                    .arg(minutes)
                    .ignore();
                pipe.cmd("EXPIREAT")
                    .arg(&key)
                    .arg((hour + 1) * 3600 + BUDGET_MINUTES_KEEP_MINUTES * 60)
                    .ignore();
            }
            let key = keys.budget_hour(*hour);
            pipe.cmd("HSET")
                .arg(&key)
                .arg(&self.instance)
                .arg(encode(counts))
                .ignore();
            pipe.cmd("EXPIREAT")
                .arg(&key)
                .arg((hour + 1) * 3600 + BUDGET_KEEP_MINUTES * 60)
                .ignore();
            summary.budget_hours += 1;
        }
        pipe.cmd("HSET")
            .arg(keys.instances())
            .arg(&self.instance)
            .arg(encode(&info))
            .ignore();
        pipe.cmd("EXPIRE")
            .arg(keys.instances())
            .arg(BUDGET_KEEP_MINUTES * 60)
            .ignore();
        instance_index::mark(&mut pipe, &keys, &self.instance, now_ms);
        pipe.cmd("SET")
            .arg(&marker)
            .arg(now_ms)
            .arg("EX")
            .arg(retention * 60)
            .ignore();
        // The store shares the cache's Redis: past its share nothing is
        // written (what is due stays due), rather than Redis evicting keys.
        self.check_room(bytes).await?;
        if resync {
            instance_index::build_if_missing(&mut self.con, &keys).await?;
        }
        pipe.query_async::<()>(&mut self.con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "writing minutes",
                source,
            })?;
        self.due.clear();
        self.late_due.clear();
        self.synced = true;
        if !taken_out.is_empty() {
            let minutes: Vec<u64> = taken_out.iter().map(|s| s.minute).collect();
            state.store().forget_newly_excluded(&minutes);
        }
        state.stats.fleet_late_fields.fetch_add(
            summary.late_fields as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        summary.dropped_instances = instance_index::drop_unseen(
            &mut self.con,
            &keys,
            now_ms.saturating_sub(BUDGET_KEEP_MINUTES * MINUTE_MS),
        )
        .await?;
        // The other sidecars' hours holding a window this one knows, from
        // the minutes they stored: once for each set of windows.
        let (to_settle, digest) = budget_minutes::hours_to_settle(&exclusions, now);
        if self.settled != Some(digest) {
            summary.settled_hours = budget_minutes::settle_others(
                &mut self.con,
                &keys,
                &self.instance,
                &exclusions,
                &to_settle,
            )
            .await?;
            self.settled = Some(digest);
        }
        Ok(summary)
    }

    /// Compacts the service's closed blocks (see [`compaction`]) when it
    /// is this sidecar's turn: once per compaction interval, by whichever
    /// sidecar takes the interval's lock. `None` when it was not.
    pub async fn compact_if_due(
        &mut self,
        state: &AppState,
    ) -> Result<Option<CompactionSummary>, FleetStoreError> {
        let now_ms = now_ms();
        let every = self.compact_every.as_millis() as u64;
        if every == 0 || now_ms < self.compacted_ms + every {
            return Ok(None);
        }
        let Some(service) = state.service_name() else {
            return Ok(None);
        };
        let keys = FleetKeys::new(&service);
        self.compacted_ms = now_ms;
        let won = super::block::take_lock(
            &self.con,
            keys.compaction_lock(),
            &self.instance,
            self.compact_every * 9 / 10,
            "taking the compaction's lock",
        )
        .await?;
        if !won {
            return Ok(None);
        }
        let summary = compaction::compact(
            &self.con,
            &keys,
            now_ms,
            self.retention_minutes,
            |_, _, _| {},
        )
        .await?;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let stats = &state.stats;
        stats
            .fleet_compacted_blocks
            .fetch_add(summary.blocks as u64, relaxed);
        stats
            .fleet_compacted_fields
            .fetch_add(summary.fields as u64, relaxed);
        Ok(Some(summary))
    }

    /// Writes every `every` until `drained` fires (after the sidecar has
    /// stopped taking batches), then once more within
    /// [`FINAL_WRITE_TIMEOUT`]. Failures are logged once when they start
    /// and once when they end; ingest never notices them.
    pub async fn run(mut self, state: Arc<AppState>, every: Duration, mut drained: Shutdown) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = drained.fired() => break,
                _ = tick.tick() => {}
            }
            let written = self.write(&state).await;
            if written.is_ok() {
                match self.compact_if_due(&state).await {
                    Ok(Some(c)) if c.blocks > 0 => tracing::info!(
                        blocks = c.blocks,
                        fields = c.fields,
                        retried = c.retried,
                        "fleet store compacted"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "fleet store compaction failed; the next interval tries again")
                    }
                }
            }
            match written {
                Ok(s) => {
                    if std::mem::replace(&mut failing, false)
                        || s.resync
                        || s.settled_hours > 0
                        || s.dropped_instances > 0
                    {
                        tracing::info!(
                            instance = %self.instance,
                            blocks = s.blocks,
                            budget_hours = s.budget_hours,
                            settled_hours = s.settled_hours,
                            dropped_instances = s.dropped_instances,
                            resync = s.resync,
                            "fleet store written"
                        );
                    }
                }
                Err(e @ FleetStoreError::NoRoom { .. }) if !failing => {
                    failing = true;
                    tracing::warn!(due = self.due(), "{e}");
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, due = self.due(), "fleet store unavailable; ingest goes on, what is due is kept and written when it answers");
                }
                Err(e) => tracing::debug!(error = %e, "fleet store still unavailable"),
            }
        }
        match tokio::time::timeout(FINAL_WRITE_TIMEOUT, self.write(&state)).await {
            Ok(Ok(s)) => {
                tracing::info!(instance = %self.instance, blocks = s.blocks, "fleet store written at shutdown")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "the last fleet store write failed"),
            Err(_) => {
                tracing::warn!(timeout = ?FINAL_WRITE_TIMEOUT, "the last fleet store write timed out")
            }
        }
    }
}

/// Redis's `used_memory` and `maxmemory` (bytes; 0: no limit) from the
/// text of `INFO memory`.
pub fn memory_of(info: &str) -> (u64, u64) {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("used_memory"), field("maxmemory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_info() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:4194304\r\nmaxmemory_human:4.00M\r\n";
        assert_eq!(memory_of(info), (1 << 20, 4 << 20));
        assert_eq!(
            memory_of("used_memory:10\n"),
            (10, 0),
            "no maxmemory: no limit"
        );
    }

    #[test]
    fn a_state_directory_keeps_the_name_across_restarts() {
        let dir = std::env::temp_dir().join(format!("lumen-fleet-name-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = SidecarConfig {
            state_dir: Some(dir.clone()),
            ..SidecarConfig::default()
        };
        let first = fleet_instance(&config);
        assert!(is_instance_name(&first), "{first}");
        assert_eq!(fleet_instance(&config), first);
        let kept = std::fs::read_to_string(dir.join(INSTANCE_FILE)).expect("kept");
        assert_eq!(kept.trim(), first);
        let without = SidecarConfig::default();
        assert_ne!(fleet_instance(&without), fleet_instance(&without));
        let named = SidecarConfig {
            fleet_store: crate::config::FleetStoreConfig {
                instance: Some("api-7".into()),
                ..Default::default()
            },
            ..config
        };
        assert_eq!(fleet_instance(&named), "api-7");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
