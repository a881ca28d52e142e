//! Reading the fleet store: every sidecar's blocks of a window, fetched in
//! one pipeline and merged exactly, evaluated by the sidecar's own pure
//! functions (same JSON, same exit codes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::block::{FleetBlock, InstanceInfo, decode, fleet_cost_between};
use super::compaction::{field_owner, netted};
use super::error::{FleetStoreError, note_unreadable};
use super::keys::{FleetKeys, MINUTE_KEEP_MINUTES, Tier, read_plan_counted};
use crate::app::{FleetView, ReportFuture};
use crate::config::SidecarConfig;
use crate::eval::{
    BudgetReport, CostReport, HealthReport, ReportScope, SloPeriod, SloReport, SloTargets, WhatIf,
    budget_report, mean, what_if,
};
use crate::fleet::{InstanceFigures, fleet_health};
use crate::store::{
    BudgetCounts, BudgetLedger, Exclusions, HeldMinutes, MINUTE_MS, WindowData, merge_routes,
};

/// A window of the fleet, read from the store.
#[derive(Debug, Clone)]
pub struct FleetStoreWindow {
    /// The merged data (window: the minutes actually covered).
    pub data: WindowData,
    /// Sidecars with data in the window (ended ones included).
    pub instances: u64,
    /// Sidecars whose stored values did not read (left out; logged).
    pub unreadable: Vec<String>,
}

/// Reads a service's fleet from the store.
#[derive(Clone)]
pub struct FleetStoreReader {
    con: ConnectionManager,
    keys: FleetKeys,
    /// The service.
    pub service: String,
    /// The configuration whose targets the fleet is held against.
    pub config: SidecarConfig,
}

impl std::fmt::Debug for FleetStoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStoreReader")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

type Fields = HashMap<String, Vec<u8>>;

impl FleetStoreReader {
    /// A reader of `service` over `con`, against `config`'s targets.
    pub fn new(con: ConnectionManager, service: String, config: SidecarConfig) -> Self {
        Self {
            con,
            keys: FleetKeys::new(&service),
            service,
            config,
        }
    }

    /// Every field of each key, in one pipeline.
    async fn fields(&self, keys: &[String]) -> Result<Vec<Fields>, FleetStoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HGETALL").arg(key);
        }
        let mut con = self.con.clone();
        pipe.query_async(&mut con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "reading blocks",
                source,
            })
    }

    /// Each field of `replies` decoded by `decode`; a field that does not
    /// decode is left out, logged and counted, and its instance named in
    /// the returned set: one bad value never fails the whole read. Empty
    /// fields (merged into the block's `*` by compaction) are skipped.
    fn decoded<T>(
        keys: &[String],
        replies: Vec<Fields>,
        decode: impl Fn(&[u8]) -> Result<T, String>,
        unreadable: &mut BTreeSet<String>,
    ) -> Vec<Vec<(String, T)>> {
        keys.iter()
            .zip(replies)
            .map(|(key, fields)| {
                fields
                    .into_iter()
                    .filter(|(_, bytes)| !bytes.is_empty())
                    .filter_map(|(field, bytes)| match decode(&bytes) {
                        Ok(value) => Some((field, value)),
                        Err(reason) => {
                            note_unreadable(key, &field, &reason);
                            unreadable.insert(field);
                            None
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Every sidecar's latest information (an unreadable one is left out
    /// and logged).
    pub async fn instances(&self) -> Result<BTreeMap<String, InstanceInfo>, FleetStoreError> {
        Ok(self.instances_and_unreadable(None).await?.0)
    }

    /// The latest information of the sidecars that wrote since `since_ms`
    /// (every one's with `None`), readable, and the instances whose
    /// information did not read. Through the index of when each wrote
    /// while it covers every field (no sidecar older than the index wrote
    /// one), so a read costs the sidecars of its span, not every instance
    /// of the last 32 days.
    async fn instances_and_unreadable(
        &self,
        since_ms: Option<u64>,
    ) -> Result<(BTreeMap<String, InstanceInfo>, BTreeSet<String>), FleetStoreError> {
        let key = self.keys.instances();
        let replies = match since_ms {
            Some(since) => match self.indexed_since(since).await? {
                Some(fields) => vec![fields],
                None => self.fields(std::slice::from_ref(&key)).await?,
            },
            None => self.fields(std::slice::from_ref(&key)).await?,
        };
        let mut unreadable = BTreeSet::new();
        let infos = Self::decoded(&[key], replies, decode, &mut unreadable)
            .into_iter()
            .flatten()
            .collect();
        Ok((infos, unreadable))
    }

    /// The information fields of the sidecars that wrote since
    /// `since_ms`, through the index; `None` when the index does not cover
    /// every field.
    async fn indexed_since(&self, since_ms: u64) -> Result<Option<Fields>, FleetStoreError> {
        let (key, index) = (self.keys.instances(), self.keys.instances_seen());
        let mut con = self.con.clone();
        let redis_error = |source| FleetStoreError::Redis {
            doing: "reading the sidecars' index",
            source,
        };
        let (fields, indexed): (u64, u64) = redis::pipe()
            .cmd("HLEN")
            .arg(&key)
            .cmd("ZCARD")
            .arg(&index)
            .query_async(&mut con)
            .await
            .map_err(redis_error)?;
        if fields != indexed {
            return Ok(None);
        }
        let names: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&index)
            .arg(since_ms)
            .arg("+inf")
            .query_async(&mut con)
            .await
            .map_err(redis_error)?;
        if names.is_empty() {
            return Ok(Some(Fields::new()));
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&names)
            .query_async(&mut con)
            .await
            .map_err(redis_error)?;
        Ok(Some(
            names
                .into_iter()
                .zip(values)
                .filter_map(|(name, value)| Some((name, value?)))
                .collect(),
        ))
    }

    /// The windows kept off the budget: the fleet's marks and the
    /// configuration's recurring windows.
    async fn exclusions(&self) -> Result<Exclusions, FleetStoreError> {
        let mut con = self.con.clone();
        Ok(Exclusions {
            one_off: super::shared_exclusions::shared(&mut con, &self.keys).await?,
            recurring: self.config.budget_maintenance.clone(),
        })
    }

    /// The minutes of `first..=last` on the budget and their blocks' keys:
    /// those kept off it are not read (an instance that ended before the
    /// mark wrote them as counted).
    async fn counted_minutes(
        &self,
        first: u64,
        last: u64,
    ) -> Result<(Vec<u64>, Vec<String>), FleetStoreError> {
        let exclusions = self.exclusions().await?;
        let minutes: Vec<u64> = (first..=last).filter(|m| !exclusions.covers(*m)).collect();
        let keys = minutes
            .iter()
            .map(|m| self.keys.block(Tier::Minute, *m))
            .collect();
        Ok((minutes, keys))
    }

    /// The fleet's window of `window` ending at `at_ms`: every sidecar's
    /// blocks merged, histograms exactly, the minutes kept off the budget
    /// left out: the blocks are written without them, and while minutes
    /// are kept one by one a block holding one is read minute by minute
    /// without them, so what an instance wrote before a mark is left out
    /// too.
    pub async fn window(
        &self,
        window: Duration,
        at_ms: u64,
    ) -> Result<FleetStoreWindow, FleetStoreError> {
        let now = at_ms / MINUTE_MS;
        let span = (window.as_secs() / 60).max(1);
        let exclusions = self.exclusions().await?;
        let plan = read_plan_counted((now + 1).saturating_sub(span), now, now, |m| {
            exclusions.covers(m)
        });
        let keys: Vec<String> = plan
            .blocks
            .iter()
            .map(|(tier, start)| self.keys.block(*tier, *start))
            .collect();
        let (replies, infos) = tokio::join!(
            self.fields(&keys),
            self.instances_and_unreadable(Some(plan.first * MINUTE_MS))
        );
        let (infos, mut unreadable) = infos?;
        let replies = replies?;
        // Sidecars whose fields were merged (compaction) had data there.
        let merged: BTreeSet<String> = replies
            .iter()
            .flatten()
            .filter(|(_, bytes)| bytes.is_empty())
            .filter_map(|(field, _)| field_owner(field).map(str::to_owned))
            .collect();
        let per_key = Self::decoded(&keys, replies, FleetBlock::decode, &mut unreadable);
        let instances: BTreeSet<String> = per_key
            .iter()
            .flatten()
            .filter(|(_, b)| !b.routes.is_empty())
            .filter_map(|(field, _)| field_owner(field).map(str::to_owned))
            .chain(merged)
            .collect();
        // Shares kept off the budget since their block was merged, taken out.
        let blocks: Vec<(String, FleetBlock)> = per_key.into_iter().flat_map(netted).collect();
        let revision = infos
            .iter()
            .filter(|(name, _)| instances.contains(name.as_str()))
            .max_by_key(|(_, info)| info.last_seen_ms)
            .and_then(|(_, info)| info.revision.clone());
        let (total, routes) = merge_routes(
            blocks
                .iter()
                .flat_map(|(_, b)| b.routes.iter().map(|(k, s)| (k, s))),
        );
        Ok(FleetStoreWindow {
            instances: instances.len() as u64,
            unreadable: unreadable.into_iter().collect(),
            data: WindowData {
                window: Duration::from_secs((plan.last + 1 - plan.first) * 60),
                service: Some(self.service.clone()),
                revision,
                total,
                routes,
            },
        })
    }

    /// The fleet's SLO report over `window` ending at `at_ms`.
    pub async fn slo_report(
        &self,
        window: Duration,
        at_ms: u64,
    ) -> Result<SloReport, FleetStoreError> {
        let w = self.window(window, at_ms).await?;
        Ok(SloReport::evaluate_as(
            &w.data,
            &self.config.slo,
            Some(&self.service),
            at_ms,
            ReportScope::FleetStore {
                instances: w.instances,
                unreadable: w.unreadable,
            },
        ))
    }

    /// The fleet's error budgets and burn rates at `at_ms`: minutes from
    /// the first whole hour inside the minutes kept (at least the last
    /// hour), whole hours before (as a sidecar's own ledger counts beyond
    /// its minutes).
    pub async fn budget(&self, at_ms: u64) -> Result<BudgetReport, FleetStoreError> {
        let ledger = self.ledger(self.config.budget_period, at_ms).await?;
        let mut report = budget_report(
            &ledger,
            &self.config.slo,
            self.config.budget_period,
            self.config.budget_min_events,
            at_ms,
        );
        report.cost = self.cost(&self.instances().await?, at_ms);
        Ok(report)
    }

    /// The fleet's budget counts for `period` at `at_ms`: minutes from the
    /// first whole hour inside the minutes kept, the budget hours before.
    async fn ledger(&self, period: SloPeriod, at_ms: u64) -> Result<BudgetLedger, FleetStoreError> {
        let now = at_ms / MINUTE_MS;
        let fine_since = now.saturating_sub(MINUTE_KEEP_MINUTES - 10).div_ceil(60) * 60;
        let (period_start, _) = period.bounds(at_ms);
        let (minutes_read, minute_keys) = self.counted_minutes(fine_since, now).await?;
        let hours: Vec<u64> = (period_start / 60..fine_since / 60).collect();
        let hour_keys: Vec<String> = hours.iter().map(|h| self.keys.budget_hour(*h)).collect();
        let (minute_replies, hour_replies) =
            tokio::join!(self.fields(&minute_keys), self.fields(&hour_keys));
        let mut unreadable = BTreeSet::new();
        let mut minutes = BTreeMap::new();
        let minute_blocks = Self::decoded(
            &minute_keys,
            minute_replies?,
            FleetBlock::decode,
            &mut unreadable,
        );
        for (minute, blocks) in minutes_read.into_iter().zip(minute_blocks) {
            let sum: &mut BudgetCounts = minutes.entry(minute).or_default();
            for (_, block) in netted(blocks) {
                sum.add(&block.budget);
            }
        }
        let mut by_hour = BTreeMap::new();
        let hour_counts = Self::decoded(
            &hour_keys,
            hour_replies?,
            decode::<BudgetCounts>,
            &mut unreadable,
        );
        for (hour, counts) in hours.iter().zip(hour_counts) {
            let sum: &mut BudgetCounts = by_hour.entry(*hour).or_default();
            for (_, c) in counts {
                sum.add(&c);
            }
        }
        Ok(BudgetLedger::from_parts(minutes, by_hour, fine_since))
    }

    /// `targets` over the fleet's stored history for `period` at `at_ms`,
    /// and from when the events were counted again (`None`: the targets
    /// count the configured events, so the budget hours the sidecars wrote
    /// are replayed, over the whole period). Otherwise the events are
    /// counted again from the stored histograms: the minutes kept (2 h)
    /// one by one, the hour blocks (the retention) by the hour. Alerts are
    /// replayed over the minutes kept one by one.
    pub async fn what_if(
        &self,
        targets: &SloTargets,
        period: SloPeriod,
        at_ms: u64,
    ) -> Result<(WhatIf, Option<u64>), FleetStoreError> {
        let rules = crate::config::budget_rules_of(targets);
        if rules == self.config.budget_rules() {
            let ledger = self.ledger(period, at_ms).await?;
            let w = what_if(
                &ledger,
                targets,
                period,
                self.config.budget_min_events,
                at_ms,
            );
            return Ok((w, None));
        }
        let now = at_ms / MINUTE_MS;
        let fine_since = now.saturating_sub(MINUTE_KEEP_MINUTES - 10).div_ceil(60) * 60;
        let (period_start, _) = period.bounds(at_ms);
        let hours_kept = Tier::Hour.keep_minutes(self.config.retention.as_secs() / 60) / 60;
        let first_hour = (period_start / 60).max((now / 60).saturating_sub(hours_kept - 1));
        let (minutes_read, minute_keys) = self.counted_minutes(fine_since, now).await?;
        let hours: Vec<u64> = (first_hour..fine_since / 60).collect();
        let hour_keys: Vec<String> = hours
            .iter()
            .map(|h| self.keys.block(Tier::Hour, h * 60))
            .collect();
        let (minute_replies, hour_replies) =
            tokio::join!(self.fields(&minute_keys), self.fields(&hour_keys));
        let mut unreadable = BTreeSet::new();
        let recount = |blocks: Vec<(String, FleetBlock)>| {
            let mut sum = BudgetCounts::default();
            for (_, block) in netted(blocks) {
                sum.add(&HeldMinutes::from(block.routes).budget_counts(&rules));
            }
            sum
        };
        let mut minutes = BTreeMap::new();
        let decoded = Self::decoded(
            &minute_keys,
            minute_replies?,
            FleetBlock::decode,
            &mut unreadable,
        );
        for (minute, blocks) in minutes_read.into_iter().zip(decoded) {
            if !blocks.is_empty() {
                minutes.insert(minute, recount(blocks));
            }
        }
        let mut by_hour = BTreeMap::new();
        let decoded = Self::decoded(
            &hour_keys,
            hour_replies?,
            FleetBlock::decode,
            &mut unreadable,
        );
        for (hour, blocks) in hours.iter().zip(decoded) {
            if !blocks.is_empty() {
                by_hour.insert(*hour, recount(blocks));
            }
        }
        let from_minute = by_hour
            .keys()
            .next()
            .map(|h| h * 60)
            .or_else(|| minutes.keys().next().copied())
            .unwrap_or(now);
        let ledger = BudgetLedger::from_parts(minutes, by_hour, fine_since);
        let w = what_if(
            &ledger,
            targets,
            period,
            self.config.budget_min_events,
            at_ms,
        );
        Ok((w, Some(from_minute * MINUTE_MS)))
    }

    /// Merges the service's closed blocks at `at_ms` (see
    /// [`compaction`](super::compaction)); `on_block` hears of each.
    pub async fn compact(
        &self,
        at_ms: u64,
        on_block: impl FnMut(Tier, u64, usize),
    ) -> Result<super::CompactionSummary, FleetStoreError> {
        let retention_minutes = (self.config.retention.as_secs() / 60).max(1);
        super::compaction::compact(&self.con, &self.keys, at_ms, retention_minutes, on_block).await
    }

    /// The month's cost at `at_ms` from the instances' start times and
    /// rates: compute since the month began (ended instances up to their
    /// last write), the cache charged once, the forecast at the rate of the
    /// instances running now. `None` when no instance said its cost.
    fn cost(&self, infos: &BTreeMap<String, InstanceInfo>, at_ms: u64) -> Option<CostReport> {
        let (month_start, _) = crate::eval::month_bounds(at_ms);
        let to_date = fleet_cost_between(infos, month_start, at_ms)?;
        // Instances that wrote in the last minute are running now.
        let running_rate: f64 = infos
            .values()
            .filter(|i| i.last_seen_ms + MINUTE_MS >= at_ms)
            .filter_map(|i| i.cost_usd_per_s)
            .sum();
        Some(crate::eval::cost_report(
            "fleet",
            to_date,
            running_rate,
            // From the first instance's start (or the month's).
            Some(crate::eval::CacheCharge {
                monthly_usd: self.config.roi.redis_monthly_cost_usd,
                since_ms: infos
                    .values()
                    .filter_map(|i| i.started_ms)
                    .min()
                    .unwrap_or(month_start),
            }),
            self.config.cost.monthly_budget_usd,
            at_ms,
        ))
    }

    /// The fleet's health from its SLO report `slo`: maturity from the
    /// fleet's exact SLIs and the sidecars' latest figures (those seen in
    /// the window: CPU and memory averaged, deployments the most any
    /// knows); ROI from every instance's hits against the whole cache's
    /// cost, charged once.
    pub async fn health_of(
        &self,
        slo: &SloReport,
        window: Duration,
        at_ms: u64,
    ) -> Result<HealthReport, FleetStoreError> {
        let since = at_ms.saturating_sub(window.as_millis() as u64);
        let infos = self.instances().await?;
        let seen: Vec<&InstanceInfo> = infos.values().filter(|i| i.last_seen_ms >= since).collect();
        let figures = InstanceFigures {
            deployments_7d: seen.iter().filter_map(|i| i.deployments_7d).max(),
            cpu_utilisation: mean(seen.iter().filter_map(|i| i.cpu_utilisation)),
            memory_utilisation: mean(seen.iter().filter_map(|i| i.memory_utilisation)),
            compute_cost_usd: fleet_cost_between(&infos, since, at_ms).unwrap_or(0.0),
        };
        let mut health = fleet_health(slo, figures, window, &self.config.roi);
        health.budget = self.cost(&infos, at_ms);
        Ok(health)
    }
}

/// The fleet store as a sidecar's own [`FleetView`]: the fleet's report
/// for its read API and status page.
#[derive(Clone)]
pub struct FleetStoreView {
    con: ConnectionManager,
    config: SidecarConfig,
}

impl std::fmt::Debug for FleetStoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStoreView").finish_non_exhaustive()
    }
}

impl FleetStoreView {
    /// A view over `con`, against `config`'s targets.
    pub fn new(con: ConnectionManager, config: SidecarConfig) -> Self {
        Self { con, config }
    }
}

impl FleetView for FleetStoreView {
    fn what_if(
        &self,
        service: &str,
        targets: &SloTargets,
        period: SloPeriod,
        at_ms: u64,
    ) -> crate::app::WhatIfFuture<'_> {
        let reader =
            FleetStoreReader::new(self.con.clone(), service.to_owned(), self.config.clone());
        let targets = targets.clone();
        Box::pin(async move {
            let (what_if, recounted_from_ms) = reader
                .what_if(&targets, period, at_ms)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(crate::app::WhatIfAnswer {
                targets,
                period: period.name(),
                what_if,
                recounted_from_ms,
                scope: "the fleet (every instance, from the fleet store)".to_owned(),
            }))
        })
    }

    fn share_exclusion(
        &self,
        service: &str,
        mark: &crate::store::Exclusion,
    ) -> crate::app::ShareFuture<'_> {
        let (mut con, keys, mark) = (self.con.clone(), FleetKeys::new(service), mark.clone());
        Box::pin(async move {
            super::shared_exclusions::share(&mut con, &keys, &mark)
                .await
                .map(|()| true)
                .map_err(|e| e.to_string())
        })
    }

    fn slo_report(&self, service: &str, window: Duration, at_ms: u64) -> ReportFuture<'_> {
        let reader =
            FleetStoreReader::new(self.con.clone(), service.to_owned(), self.config.clone());
        Box::pin(async move {
            reader
                .slo_report(window, at_ms)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
