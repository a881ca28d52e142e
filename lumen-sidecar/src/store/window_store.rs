//! The [`WindowStore`]: per-minute slots per route, keyed by the minute the
//! batch's interval is centred on (batch timestamps, never arrival time).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use lumen_middleware::layout::HistogramLayout;
use lumen_middleware::wire::{DecodedBatch, MAX_HIGHEST_TRACKABLE_US};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::counts::Counts;
use super::error_budget_ledger::{BudgetCounts, BudgetLedger};
use super::exclusions::{Exclusion, Exclusions, RecurringWindow};
use super::late_batches::{self, LateBatch, LateBatches};
use super::ledger::InstanceLedger;
pub use super::route_slot::{RouteKey, RouteSlot};
use super::sparse_histogram::SparseHistogram;
use super::window_histogram::{Scratch, WindowHistogram};

/// One minute, in ms.
pub const MINUTE_MS: u64 = 60_000;
/// How far in the future a batch's end may lie (clock skew allowance).
pub const MAX_FUTURE_MS: u64 = 5 * MINUTE_MS;
/// How long revisions are remembered (deployment frequency looks at 7 days).
pub const REVISION_MEMORY_MS: u64 = 8 * 24 * 60 * MINUTE_MS;

/// The layout every stored histogram uses: 1 µs to 1 h, 3 significant digits.
pub fn store_layout() -> HistogramLayout {
    HistogramLayout::new(1, MAX_HIGHEST_TRACKABLE_US, 3).expect("constant layout is valid")
}

/// A batch the store will not take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The batch's interval ends too far ahead of the sidecar's clock.
    #[error("end_ms: {ahead_ms} ms ahead of the sidecar's clock (at most {MAX_FUTURE_MS} ms)")]
    FromTheFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// The batch would take its minute past [`MAX_MINUTE_COUNT`].
    #[error(
        "series: the batch's {adding} requests would take minute {minute} past {MAX_MINUTE_COUNT} (it holds {held}); no real service sends that many"
    )]
    MinuteFull {
        /// The minute (Unix ms ÷ 60,000).
        minute: u64,
        /// Requests it holds.
        held: u64,
        /// Requests the batch adds.
        adding: u64,
    },
    /// The batch is another service's: one sidecar serves one service.
    #[error(
        "service: this sidecar serves {serves:?}, the batch is from {got:?}; give each service its own sidecar"
    )]
    OtherService {
        /// The service this sidecar serves (its first batch's).
        serves: String,
        /// The batch's.
        got: String,
    },
}

/// The most requests (finished and cancelled) one minute of the store may
/// count: 100 batches at the wire's bound
/// ([`MAX_INTERVAL_COUNT`](lumen_middleware::wire::MAX_INTERVAL_COUNT)).
/// With it no sum the sidecar keeps can saturate: 32 days of minutes (the
/// error budget's longest period) add up to 4.4 × 10^18, below `u64::MAX`
/// (1.8 × 10^19), so every histogram bucket and counter stays exact.
pub const MAX_MINUTE_COUNT: u64 = 100 * lumen_middleware::wire::MAX_INTERVAL_COUNT;

/// What applying a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New data, stored.
    Stored {
        /// The instance's highest applied seq, now this batch's.
        applied_seq: u64,
        /// Finished requests the batch held.
        requests: u64,
    },
    /// The seq was applied before; nothing changed.
    Duplicate {
        /// The instance's highest applied seq.
        applied_seq: u64,
    },
    /// Older than the retention: acknowledged, not stored.
    Expired {
        /// The instance's highest applied seq, now this batch's.
        applied_seq: u64,
    },
}

impl Applied {
    /// The seq to acknowledge.
    pub fn applied_seq(&self) -> u64 {
        match *self {
            Self::Stored { applied_seq, .. }
            | Self::Duplicate { applied_seq }
            | Self::Expired { applied_seq } => applied_seq,
        }
    }
}

/// The route that routes beyond the cap are folded into.
pub const OTHER_ROUTE: &str = "other";
/// Distinct routes a store holds by default before folding new ones.
pub const DEFAULT_MAX_ROUTES: usize = 256;

fn default_route_cap() -> usize {
    DEFAULT_MAX_ROUTES
}

/// What makes an event bad for the budgets: the latency targets (µs) and
/// the status classes the error rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRules {
    /// Requests at or above this latency miss the P95 target.
    pub p95_us: u64,
    /// Requests at or above this latency miss the P99 target.
    pub p99_us: u64,
    /// Error classes, by [`Counts::status`] index.
    pub error_classes: [bool; 5],
}

impl Default for BudgetRules {
    fn default() -> Self {
        Self {
            p95_us: 200_000,
            p99_us: 500_000,
            error_classes: [false, false, false, true, true],
        }
    }
}

impl BudgetRules {
    /// The budget counts of one series.
    pub fn count(&self, series: &lumen_middleware::wire::DecodedSeries) -> BudgetCounts {
        let status = series.status.as_array();
        let slow = |threshold: u64| {
            series
                .latency
                .values()
                .filter(|(v, _)| *v >= threshold)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        BudgetCounts {
            total: status.iter().sum::<u64>() + series.errors,
            unavailable: status[4] + series.errors,
            errors: status
                .iter()
                .zip(self.error_classes)
                .filter(|(_, counted)| *counted)
                .map(|(n, _)| *n)
                .sum::<u64>()
                + series.errors,
            slow_p95: slow(self.p95_us),
            slow_p99: slow(self.p99_us),
        }
    }
}

/// What [`WindowStore::fit_memory_cap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetFit {
    /// The store's estimated heap bytes before.
    pub before_bytes: usize,
    /// And after.
    pub after_bytes: usize,
    /// Minute slots merged into coarser blocks.
    pub merged_slots: usize,
    /// Minute slots dropped (oldest first) because merging was not enough.
    pub dropped_minutes: usize,
}

/// The routes of one minute. Serialized as a list of pairs, since a route
/// key may be `None` and JSON object keys must be strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    from = "Vec<(RouteKey, RouteSlot)>",
    into = "Vec<(RouteKey, RouteSlot)>"
)]
struct MinuteSlots(BTreeMap<RouteKey, RouteSlot>);

impl From<Vec<(RouteKey, RouteSlot)>> for MinuteSlots {
    fn from(pairs: Vec<(RouteKey, RouteSlot)>) -> Self {
        Self(pairs.into_iter().collect())
    }
}

impl From<MinuteSlots> for Vec<(RouteKey, RouteSlot)> {
    fn from(slots: MinuteSlots) -> Self {
        slots.0.into_iter().collect()
    }
}

/// A window's data for one route (or the service).
#[derive(Debug, Clone)]
pub struct RouteWindow {
    /// Counts summed over the window.
    pub counts: Counts,
    /// Latency merged over the window.
    pub latency: WindowHistogram,
}

/// What [`WindowStore::window`] returns: the service total and each route.
#[derive(Debug, Clone)]
pub struct WindowData {
    /// Window length.
    pub window: Duration,
    /// The service's name, as its latest batch said.
    pub service: Option<String>,
    /// The latest revision seen.
    pub revision: Option<String>,
    /// All routes together.
    pub total: RouteWindow,
    /// Each route seen in the window, by label (`None` first).
    pub routes: Vec<(Option<String>, RouteWindow)>,
}

/// Rolling per-minute slots of every route, the dedup ledger, the revisions
/// seen. Memory: per route and minute with traffic, about 150 bytes plus
/// about 2 bytes per distinct latency bucket (see `bench/RESULTS.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowStore {
    retention_minutes: u64,
    /// Each minute behind an `Arc`: a checkpoint's copy of the store shares
    /// every minute it does not see change (copy on write), so taking it
    /// costs no second copy of the data and holds the lock only briefly.
    minutes: BTreeMap<u64, Arc<MinuteSlots>>,
    ledger: InstanceLedger,
    service: Option<String>,
    revision: Option<String>,
    /// Revision name → last seen (batch end, Unix ms).
    revisions: BTreeMap<String, u64>,
    /// Revision name → first seen (batch start, Unix ms): its deploy, as
    /// this sidecar saw it.
    #[serde(default)]
    revisions_first_seen: BTreeMap<String, u64>,
    /// Budget counts for the whole SLO period.
    #[serde(default)]
    budget: BudgetLedger,
    /// What counts as bad for the budgets (set from the config).
    #[serde(default)]
    budget_rules: BudgetRules,
    /// Minutes kept off the budget (the one-off windows are kept here;
    /// the recurring ones come from the config).
    #[serde(default)]
    exclusions: Exclusions,
    #[serde(skip)]
    interned: HashMap<Arc<str>, ()>,
    /// Distinct routes held before new ones fold into [`OTHER_ROUTE`].
    #[serde(skip, default = "default_route_cap")]
    max_routes: usize,
    /// Merged 10-minute and hour blocks, built when a window first needs
    /// them and dropped when a batch lands in them: a cache, not state.
    #[serde(skip)]
    rollups: RefCell<[BTreeMap<u64, Arc<MinuteSlots>>; 2]>,
    /// Minutes changed since [`WindowStore::take_changed`] last ran (what
    /// the fleet store has yet to be told).
    #[serde(skip)]
    changed: BTreeSet<u64>,
    /// Batches that came after the fleet store's blocks of their minute
    /// closed (see [`LateBatches`]).
    #[serde(default, skip_serializing_if = "LateBatches::is_empty")]
    late: LateBatches,
    /// Whether late batches are kept apart (only a fleet store needs them).
    #[serde(skip, default = "keeps_late")]
    keep_late: bool,
    /// Held minutes a mark kept off the budget since the fleet store was
    /// last told (its merged blocks still hold them).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    newly_excluded: BTreeSet<u64>,
}

fn keeps_late() -> bool {
    true
}

/// Block lengths of the two rollup tiers, in minutes.
pub const ROLLUP_MINUTES: [u64; 2] = [10, 60];

/// Minutes of a store shared copy-on-write: cheap to take under the
/// store's lock, merged after it is released.
#[derive(Debug, Clone, Default)]
pub struct HeldMinutes(Vec<Arc<MinuteSlots>>);

impl From<Vec<(RouteKey, RouteSlot)>> for HeldMinutes {
    /// One minute (or block) of routes, as a fleet store holds it.
    fn from(routes: Vec<(RouteKey, RouteSlot)>) -> Self {
        Self(vec![Arc::new(MinuteSlots::from(routes))])
    }
}

impl HeldMinutes {
    /// The budget counts of the held minutes under `rules`, from their
    /// counts and histograms (what [`BudgetRules::count`] gives at ingest).
    pub fn budget_counts(&self, rules: &BudgetRules) -> BudgetCounts {
        let layout = store_layout();
        let mut counts = BudgetCounts::default();
        for slot in self.0.iter().flat_map(|m| m.0.values()) {
            let c = &slot.counts;
            let slow = |threshold: u64| {
                slot.latency
                    .iter()
                    .filter(|(index, _)| layout.highest_equivalent(*index as usize) >= threshold)
                    .map(|(_, n)| n)
                    .sum::<u64>()
            };
            counts.add(&BudgetCounts {
                total: c.status.iter().sum::<u64>() + c.errors,
                unavailable: c.status[4] + c.errors,
                errors: c
                    .status
                    .iter()
                    .zip(rules.error_classes)
                    .filter(|(_, counted)| *counted)
                    .map(|(n, _)| *n)
                    .sum::<u64>()
                    + c.errors,
                slow_p95: slow(rules.p95_us),
                slow_p99: slow(rules.p99_us),
            });
        }
        counts
    }

    /// Whether no minute with data was held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The held minutes merged, route by route (`None` first).
    pub fn merged(&self) -> Vec<(RouteKey, RouteSlot)> {
        match self.0.as_slice() {
            [one] => one.0.iter().map(|(k, s)| (k.clone(), s.clone())).collect(),
            parts => {
                let parts: Vec<&MinuteSlots> = parts.iter().map(|p| &**p).collect();
                merge_slots(&parts).0.into_iter().collect()
            }
        }
    }
}

/// Merges route slots (any number per route, in any order) into a window:
/// the service's total and each route (`None` first), each route's
/// histograms through one reused dense buffer.
pub fn merge_routes<'a>(
    slots: impl IntoIterator<Item = (&'a RouteKey, &'a RouteSlot)>,
) -> (RouteWindow, Vec<(Option<String>, RouteWindow)>) {
    let mut per_route: BTreeMap<&RouteKey, Vec<&RouteSlot>> = BTreeMap::new();
    for (key, slot) in slots {
        per_route.entry(key).or_default().push(slot);
    }
    let mut scratch = Scratch::new(store_layout());
    let mut total_counts = Counts::default();
    let mut routes = Vec::with_capacity(per_route.len());
    for (key, slots) in per_route {
        let mut counts = Counts::default();
        for slot in slots {
            counts.add(&slot.counts);
            scratch.add_sparse(&slot.latency);
        }
        total_counts.add(&counts);
        routes.push((
            key.as_ref().map(|k| k.to_string()),
            RouteWindow {
                counts,
                latency: scratch.take(),
            },
        ));
    }
    for (_, route) in &routes {
        scratch.add_window(&route.latency);
    }
    let total = RouteWindow {
        counts: total_counts,
        latency: scratch.take(),
    };
    (total, routes)
}

/// Checks one minute (or merged block) read back: histograms within the
/// layout, each holding exactly its counts' requests; its requests.
fn check_minute(minute: u64, routes: &MinuteSlots) -> Result<u64, String> {
    let len = store_layout().len();
    let mut requests = 0_u64;
    for (route, slot) in &routes.0 {
        let Some(total) = slot.latency.checked_total(len) else {
            return Err(format!(
                "minute {minute}, route {route:?}: histogram out of layout"
            ));
        };
        if total != slot.counts.requests() {
            return Err(format!(
                "minute {minute}, route {route:?}: histogram holds {total} values, counts say {}",
                slot.counts.requests()
            ));
        }
        requests = requests.saturating_add(total);
    }
    Ok(requests)
}

/// A [`WindowStore`] as a checkpoint holds it, checked as it is read one
/// minute at a time and not kept: a written checkpoint is proven readable
/// without a second copy of the store in memory.
#[derive(Debug, Deserialize)]
pub struct StoreCheck {
    minutes: MinutesCheck,
}

impl StoreCheck {
    /// The slots read and the finished requests in them (compare
    /// [`WindowStore::summary`]).
    pub fn summary(&self) -> (usize, u64) {
        (self.minutes.slots, self.minutes.requests)
    }
}

#[derive(Debug)]
struct MinutesCheck {
    slots: usize,
    requests: u64,
}

impl<'de> Deserialize<'de> for MinutesCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> serde::de::Visitor<'de> for Each {
            type Value = MinutesCheck;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the store's minutes")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MinutesCheck, A::Error> {
                let mut out = MinutesCheck {
                    slots: 0,
                    requests: 0,
                };
                while let Some((minute, routes)) = map.next_entry::<u64, MinuteSlots>()? {
                    let requests =
                        check_minute(minute, &routes).map_err(serde::de::Error::custom)?;
                    out.slots += 1;
                    out.requests = out.requests.saturating_add(requests);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Each)
    }
}

/// Merges the routes of several minutes or blocks into one block, each
/// route's histograms through one dense scratch buffer.
fn merge_slots(parts: &[&MinuteSlots]) -> MinuteSlots {
    let mut per_route: BTreeMap<&RouteKey, Vec<&RouteSlot>> = BTreeMap::new();
    for part in parts {
        for (key, slot) in &part.0 {
            per_route.entry(key).or_default().push(slot);
        }
    }
    let mut scratch = Scratch::new(store_layout());
    let mut merged = MinuteSlots::default();
    for (key, slots) in per_route {
        let mut counts = Counts::default();
        for slot in slots {
            counts.add(&slot.counts);
            scratch.add_sparse(&slot.latency);
        }
        let latency = SparseHistogram::from_sorted(scratch.take().buckets());
        merged.0.insert(key.clone(), RouteSlot { counts, latency });
    }
    merged
}

/// Splits the minutes `first..=last` into the fewest pieces: whole hours,
/// whole 10-minute blocks and single minutes, as `(tier, start minute)`
/// with tier `None` for a single minute.
pub fn pieces(first: u64, last: u64) -> Vec<(Option<usize>, u64)> {
    let mut out = Vec::new();
    let mut m = first;
    while m <= last {
        let piece = ROLLUP_MINUTES
            .iter()
            .enumerate()
            .rev()
            .find(|(_, size)| m.is_multiple_of(**size) && m + **size - 1 <= last)
            .map(|(tier, size)| (Some(tier), *size));
        match piece {
            Some((tier, size)) => {
                out.push((tier, m));
                m += size;
            }
            None => {
                out.push((None, m));
                m += 1;
            }
        }
    }
    out
}

/// Whether `batch` holds any request (finished or cancelled).
fn batch_carries_requests(batch: &DecodedBatch) -> bool {
    batch
        .series
        .iter()
        .any(|s| !s.latency.is_empty() || s.cancelled > 0)
}

/// The minute a batch is stored in: its interval's middle.
fn batch_minute(batch: &DecodedBatch) -> u64 {
    (batch.start_ms / 2 + batch.end_ms / 2) / MINUTE_MS
}

impl WindowStore {
    /// An empty store keeping `retention` of minutes (at least one minute).
    pub fn new(retention: Duration) -> Self {
        Self {
            retention_minutes: (retention.as_millis() as u64 / MINUTE_MS).max(1),
            minutes: BTreeMap::new(),
            ledger: InstanceLedger::default(),
            service: None,
            revision: None,
            revisions: BTreeMap::new(),
            revisions_first_seen: BTreeMap::new(),
            budget: BudgetLedger::default(),
            budget_rules: BudgetRules::default(),
            exclusions: Exclusions::default(),
            interned: HashMap::new(),
            max_routes: DEFAULT_MAX_ROUTES,
            rollups: RefCell::default(),
            changed: BTreeSet::new(),
            late: LateBatches::default(),
            keep_late: true,
            newly_excluded: BTreeSet::new(),
        }
    }

    /// Held minutes kept off the budget since the fleet store was last
    /// told (see [`WindowStore::forget_newly_excluded`]).
    pub fn newly_excluded(&self) -> Vec<u64> {
        self.newly_excluded.iter().copied().collect()
    }

    /// The fleet store was told of `minutes`.
    pub fn forget_newly_excluded(&mut self, minutes: &[u64]) {
        for m in minutes {
            self.newly_excluded.remove(m);
        }
    }

    /// Whether late batches are kept apart for the fleet store (they are
    /// by default); `false` drops those held.
    pub fn set_keep_late(&mut self, keep: bool) {
        self.keep_late = keep;
        if !keep {
            self.late = LateBatches::default();
            self.newly_excluded.clear();
        }
    }

    /// Applies a decoded batch at `now_ms` (the sidecar's clock): refused if
    /// from the future, ignored if already applied, stored otherwise. Either
    /// all of it is applied or none.
    pub fn apply(&mut self, batch: &DecodedBatch, now_ms: u64) -> Result<Applied, StoreError> {
        if let Some(known) = self.precheck(batch, now_ms)? {
            return Ok(known);
        }
        self.ledger.record(
            &batch.instance,
            batch.seq,
            now_ms,
            batch.process.map(|p| (p, batch.end_ms)),
        );
        // The first batch that carries requests claims the store: an idle
        // app's empty batches never lock another service out.
        if self.service.is_none() && batch_carries_requests(batch) {
            self.service = Some(batch.service.clone());
        }
        if let Some(revision) = &batch.revision {
            self.revision = Some(revision.clone());
            let first = self
                .revisions_first_seen
                .entry(revision.clone())
                .or_insert(batch.start_ms);
            *first = (*first).min(batch.start_ms);
            let seen = self.revisions.entry(revision.clone()).or_insert(0);
            *seen = (*seen).max(batch.end_ms);
        }
        let minute = batch_minute(batch);
        self.changed.insert(minute);
        let excluded = self.exclusions.covers(minute);
        let mut budget = BudgetCounts::default();
        for series in &batch.series {
            let counts = self.budget_rules.count(series);
            self.budget.add(minute, &counts, excluded);
            budget.add(&counts);
        }
        if minute + self.retention_minutes <= now_ms / MINUTE_MS {
            return Ok(Applied::Expired {
                applied_seq: batch.seq,
            });
        }
        for (tier, size) in ROLLUP_MINUTES.iter().enumerate() {
            self.rollups.get_mut()[tier].remove(&(minute / size * size));
        }
        let layout = store_layout();
        let mut requests = 0_u64;
        let late = self.keep_late && !excluded && LateBatch::is_late(minute, now_ms / MINUTE_MS);
        let mut late_routes: BTreeMap<RouteKey, RouteSlot> = BTreeMap::new();
        for series in &batch.series {
            let key = self.intern(series.route.as_deref());
            let pairs = series
                .latency
                .values()
                .map(|(value, count)| (layout.index_of(value) as u32, count))
                .collect();
            let latency = SparseHistogram::from_pairs(pairs);
            let counts = Counts {
                status: series.status.as_array(),
                errors: series.errors,
                cancelled: series.cancelled,
                cache_hits: series.cache.hits,
                cache_misses: series.cache.misses,
                grpc: series.grpc_codes,
            };
            requests = requests.saturating_add(counts.requests());
            let slot = Arc::make_mut(self.minutes.entry(minute).or_default())
                .0
                .entry(key.clone())
                .or_default();
            slot.counts.add(&counts);
            slot.latency.merge(&latency);
            if late {
                late_routes
                    .entry(key)
                    .or_default()
                    .add(&RouteSlot { counts, latency });
            }
        }
        if late {
            let kept = self.late.record(LateBatch {
                id: late_batches::batch_id(&batch.instance, batch.seq),
                minute,
                accepted_minute: now_ms / MINUTE_MS,
                routes: late_routes.into_iter().collect(),
                budget,
            });
            if !kept {
                tracing::warn!(
                    max = late_batches::MAX_LATE_BATCHES,
                    "too many late batches held: this one counts in its minute only, and the fleet store may not get it"
                );
            }
        }
        Ok(Applied::Stored {
            applied_seq: batch.seq,
            requests,
        })
    }

    /// Sets how many distinct routes are held before new ones fold into
    /// [`OTHER_ROUTE`].
    pub fn set_route_cap(&mut self, max_routes: usize) {
        self.max_routes = max_routes.max(1);
    }

    /// `batch` with the routes the store has no room for renamed
    /// [`OTHER_ROUTE`] (their counts and histograms kept there), and how
    /// many series were folded; `None` when every route fits. Routes held,
    /// or new ones while fewer than the cap are held, keep their names.
    pub fn fold_routes(&self, batch: &DecodedBatch) -> Option<(DecodedBatch, u64)> {
        let mut admitted: Vec<&str> = Vec::new();
        let mut folded = 0_u64;
        let mut out: Option<DecodedBatch> = None;
        for (i, series) in batch.series.iter().enumerate() {
            let Some(route) = series.route.as_deref() else {
                continue;
            };
            if route == OTHER_ROUTE
                || self.interned.contains_key(route)
                || admitted.contains(&route)
            {
                continue;
            }
            if self.interned.len() + admitted.len() < self.max_routes {
                admitted.push(route);
                continue;
            }
            out.get_or_insert_with(|| batch.clone()).series[i].route = Some(OTHER_ROUTE.to_owned());
            folded += 1;
        }
        out.map(|b| (b, folded))
    }

    /// The service this store holds, once a batch with requests claimed it.
    pub fn claimed_service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// What [`apply`](Self::apply) would do short of changing anything: an
    /// error, `Some(Duplicate)`, or `None` when the batch would change the
    /// store (stored, or counted in the budgets only when expired) — what a
    /// write-ahead log must hold before it is applied.
    pub fn precheck(
        &self,
        batch: &DecodedBatch,
        now_ms: u64,
    ) -> Result<Option<Applied>, StoreError> {
        if let Some(serves) = &self.service
            && *serves != batch.service
        {
            return Err(StoreError::OtherService {
                serves: serves.clone(),
                got: batch.service.clone(),
            });
        }
        // A batch already applied is acknowledged whatever the clock says.
        let last = self.ledger.applied_seq(&batch.instance);
        if batch.seq <= last {
            return Ok(Some(Applied::Duplicate { applied_seq: last }));
        }
        if batch.end_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(StoreError::FromTheFuture {
                ahead_ms: batch.end_ms - now_ms,
            });
        }
        let minute = batch_minute(batch);
        let adding = batch.series.iter().fold(0_u64, |n, s| {
            n.saturating_add(s.latency.len())
                .saturating_add(s.cancelled)
        });
        let held = self
            .minutes
            .get(&minute)
            .map_or(0, |m| {
                m.0.values().fold(0_u64, |n, s| {
                    n.saturating_add(s.counts.requests())
                        .saturating_add(s.counts.cancelled)
                })
            })
            .max(self.budget.minute_total(minute));
        if held.saturating_add(adding) > MAX_MINUTE_COUNT {
            return Err(StoreError::MinuteFull {
                minute,
                held,
                adding,
            });
        }
        Ok(None)
    }

    fn intern(&mut self, route: Option<&str>) -> RouteKey {
        let route = route?;
        if let Some((key, ())) = self.interned.get_key_value(route) {
            return Some(Arc::clone(key));
        }
        let key: Arc<str> = Arc::from(route);
        self.interned.insert(Arc::clone(&key), ());
        Some(key)
    }

    /// Drops minutes, instances and revisions older than what is kept.
    pub fn evict(&mut self, now_ms: u64) {
        let first_kept = (now_ms / MINUTE_MS + 1).saturating_sub(self.retention_minutes);
        self.minutes = self.minutes.split_off(&first_kept);
        self.late.evict_before(first_kept);
        self.newly_excluded = self.newly_excluded.split_off(&first_kept);
        self.budget.evict(now_ms / MINUTE_MS);
        // One-off windows are kept as long as the budget's hours.
        self.exclusions
            .evict(now_ms.saturating_sub(super::COARSE_HOURS * 60 * MINUTE_MS));
        for tier in self.rollups.get_mut().iter_mut() {
            *tier = tier.split_off(&first_kept);
        }
        self.ledger
            .evict_before(now_ms.saturating_sub(self.retention_minutes * MINUTE_MS));
        let revision_cutoff = now_ms.saturating_sub(REVISION_MEMORY_MS);
        self.revisions.retain(|_, seen| *seen >= revision_cutoff);
        let revisions = &self.revisions;
        self.revisions_first_seen
            .retain(|name, _| revisions.contains_key(name));
        let live: std::collections::HashSet<&str> = self
            .minutes
            .values()
            .flat_map(|routes| routes.0.keys().flatten().map(|k| &**k))
            .collect();
        let dead: Vec<Arc<str>> = self
            .interned
            .keys()
            .filter(|k| !live.contains(&***k))
            .cloned()
            .collect();
        for key in dead {
            self.interned.remove(&key);
        }
    }

    /// Cold-start evidence for an instance that started at `started_ms`:
    /// the P95 latency (ms) of its first two minutes, and of the minutes
    /// after them up to `now_ms` (at most the last hour). Each is `None`
    /// until its minutes are complete and hold requests.
    pub fn cold_and_warm_p95_ms(&self, started_ms: u64, now_ms: u64) -> (Option<f64>, Option<f64>) {
        let first = started_ms / MINUTE_MS;
        let now = now_ms / MINUTE_MS;
        let p95 = |data: WindowData| {
            data.total
                .latency
                .quantile_us(0.95)
                .map(|us| us as f64 / 1000.0)
        };
        if now < first + 2 {
            return (None, None);
        }
        let cold = p95(self.window((first + 2) * MINUTE_MS - 1, Duration::from_secs(120)));
        let warm_minutes = (now - (first + 2)).min(60);
        let warm = (warm_minutes > 0)
            .then(|| p95(self.window(now * MINUTE_MS - 1, Duration::from_secs(warm_minutes * 60))))
            .flatten();
        (cold, warm)
    }

    /// The last `window` of minutes up to and including `now_ms`'s minute.
    pub fn window(&self, now_ms: u64, window: Duration) -> WindowData {
        self.window_of(now_ms, window, false)
    }

    /// [`WindowStore::window`] with the minutes kept off the error budget
    /// left out: what the SLOs and health are judged on. (The memory cap
    /// merges excluded minutes apart from the others; a window marked after
    /// it merged a block applies to the merged minutes its first covers.)
    pub fn slo_window(&self, now_ms: u64, window: Duration) -> WindowData {
        self.window_of(now_ms, window, true)
    }

    fn window_of(&self, now_ms: u64, window: Duration, leave_excluded: bool) -> WindowData {
        let last = now_ms / MINUTE_MS;
        let span = (window.as_millis() as u64 / MINUTE_MS).max(1);
        let first = (last + 1).saturating_sub(span);
        // Gather each route's pieces, then merge route by route through one
        // reused dense buffer (no large allocation per route).
        let mut rollups = self.rollups.borrow_mut();
        let mut blocks: Vec<&MinuteSlots> = Vec::new();
        // The excluded spans of the window, found once (recurring windows
        // spelled out), so each minute is checked against a few spans.
        let spans = if leave_excluded {
            self.exclusions
                .spans(first * MINUTE_MS, (last + 1) * MINUTE_MS)
        } else {
            Vec::new()
        };
        let excluded = |m: u64| {
            spans
                .iter()
                .any(|s| (s.from_ms..s.to_ms).contains(&(m * MINUTE_MS)))
        };
        let plan: Vec<(Option<usize>, u64)> = if (first..=last).any(excluded) {
            // Minute by minute, the excluded ones left out.
            (first..=last)
                .filter(|m| !excluded(*m))
                .map(|m| (None, m))
                .collect()
        } else {
            pieces(first, last)
        };
        for (tier, start) in &plan {
            if let Some(tier) = tier {
                self.rollup(&mut rollups, *tier, *start);
            }
        }
        for (tier, start) in &plan {
            match tier {
                None => blocks.extend(self.minutes.get(start).map(|m| &**m)),
                Some(tier) => blocks.push(&*rollups[*tier][start]),
            }
        }
        let (total, routes) = merge_routes(blocks.iter().flat_map(|b| b.0.iter()));
        WindowData {
            window: Duration::from_millis(span * MINUTE_MS),
            service: self.service.clone(),
            revision: self.revision.clone(),
            total,
            routes,
        }
    }

    /// The merged block of `tier` starting at minute `start`, built from the
    /// tier below (or the minutes) when missing.
    fn rollup<'a>(
        &self,
        rollups: &'a mut [BTreeMap<u64, Arc<MinuteSlots>>; 2],
        tier: usize,
        start: u64,
    ) -> &'a MinuteSlots {
        if !rollups[tier].contains_key(&start) {
            // A block the memory cap already merged is its own rollup:
            // shared, not copied.
            let mut held = self.minutes.range(start..start + ROLLUP_MINUTES[tier]);
            if let (Some((&at, block)), None) = (held.next(), held.next())
                && at == start
            {
                let shared = Arc::clone(block);
                rollups[tier].insert(start, shared);
                return &rollups[tier][&start];
            }
            let mut parts: Vec<&MinuteSlots> = Vec::new();
            if tier == 0 {
                parts.extend(
                    self.minutes
                        .range(start..start + ROLLUP_MINUTES[0])
                        .map(|(_, s)| &**s),
                );
            } else {
                let below = ROLLUP_MINUTES[tier - 1];
                let blocks: Vec<u64> = (start..start + ROLLUP_MINUTES[tier])
                    .step_by(below as usize)
                    .collect();
                for block in &blocks {
                    self.rollup(rollups, tier - 1, *block);
                }
                parts.extend(
                    blocks
                        .iter()
                        .filter_map(|b| rollups[tier - 1].get(b).map(|m| &**m)),
                );
            }
            let merged = merge_slots(&parts);
            rollups[tier].insert(start, Arc::new(merged));
        }
        &rollups[tier][&start]
    }

    /// The minutes changed since the last call (by batches, restores and
    /// replays alike), forgotten here.
    pub fn take_changed(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.changed)
    }

    /// Marks every minute held as changed (after a restore, or when the
    /// fleet store lost what it was told).
    pub fn mark_all_changed(&mut self) {
        self.changed.extend(self.minutes.keys().copied());
        self.changed
            .extend(self.budget.hours().map(|hour| hour * 60));
    }

    /// The minutes `start..start + minutes` held, shared (copy on write).
    pub fn held(&self, start: u64, minutes: u64) -> HeldMinutes {
        HeldMinutes(
            self.minutes
                .range(start..start.saturating_add(minutes))
                .map(|(_, m)| Arc::clone(m))
                .collect(),
        )
    }

    /// [`WindowStore::held`] without the minutes kept off the budget: what
    /// a fleet store's blocks hold, so its SLO windows leave them out as
    /// this sidecar's own do.
    pub fn held_counted(&self, start: u64, minutes: u64) -> HeldMinutes {
        let end = start.saturating_add(minutes);
        let spans = self.exclusions.spans(start * MINUTE_MS, end * MINUTE_MS);
        HeldMinutes(
            self.minutes
                .range(start..end)
                .filter(|(m, _)| {
                    !spans
                        .iter()
                        .any(|s| (s.from_ms..s.to_ms).contains(&(**m * MINUTE_MS)))
                })
                .map(|(_, m)| Arc::clone(m))
                .collect(),
        )
    }

    /// The late batches held (see [`LateBatches`]).
    pub fn late(&self) -> &LateBatches {
        &self.late
    }

    /// The late batches the fleet store has yet to be told (every one
    /// with `all`), forgotten as new.
    pub fn take_new_late(&mut self, all: bool) -> Vec<LateBatch> {
        self.late.take_new(all)
    }

    /// Every minute held, shared (copy on write): cheap under the store's
    /// lock, counted after it is released (a minute merged into a block
    /// under the memory cap is held at the block's start).
    pub fn held_by_minute(&self) -> Vec<(u64, HeldMinutes)> {
        self.minutes
            .iter()
            .map(|(minute, slots)| (*minute, HeldMinutes(vec![Arc::clone(slots)])))
            .collect()
    }

    /// The budget counts.
    pub fn budget(&self) -> &BudgetLedger {
        &self.budget
    }

    /// Whether `batch`'s minute (the one it is stored in) is kept off the
    /// budget.
    pub fn keeps_off_budget(&self, batch: &DecodedBatch) -> bool {
        self.exclusions.covers(batch_minute(batch))
    }

    /// The windows kept off the budget.
    pub fn exclusions(&self) -> &Exclusions {
        &self.exclusions
    }

    /// Sets the recurring windows (from the config) and keeps the minutes
    /// they cover that are held one by one off the budget (a window added
    /// to the config applies to the last 3 days too).
    pub fn set_recurring_exclusions(&mut self, windows: Vec<RecurringWindow>) {
        self.exclusions.recurring = windows;
        let covered: Vec<u64> = self
            .budget
            .fine_minutes()
            .filter(|m| self.exclusions.covers(*m))
            .collect();
        for minute in covered {
            // Held one by one, so never refused.
            let _ = self.budget.exclude(minute, minute);
        }
    }

    /// Keeps `e`'s minutes off the budget from now on and, as far as they
    /// are held one by one, in the past: the counts newly left out, or the
    /// first minute that can be excluded (older ones are held by the hour).
    pub fn exclude(&mut self, e: Exclusion) -> Result<BudgetCounts, u64> {
        let (first, last) = e.minutes();
        let left_out = self.budget.exclude(first, last)?;
        // What a fleet store holds of these minutes is written again.
        let held: Vec<u64> = self.minutes.range(first..=last).map(|(m, _)| *m).collect();
        if self.keep_late {
            let exclusions = &self.exclusions;
            self.newly_excluded
                .extend(held.iter().filter(|m| !exclusions.covers(**m)));
        }
        self.changed.extend(held);
        self.exclusions.add(e);
        Ok(left_out)
    }

    /// Sets what counts as bad for the budgets (from the config).
    pub fn set_budget_rules(&mut self, rules: BudgetRules) {
        self.budget_rules = rules;
    }

    /// Forgets the cached rollups; they are rebuilt when a window needs
    /// them. For measuring evaluations from cold.
    pub fn drop_caches(&mut self) {
        *self.rollups.get_mut() = Default::default();
    }

    /// Merges the minutes before minute `before` into blocks of `size`
    /// minutes, each kept at its block's first minute (the minutes kept off
    /// the budget at the block's first such minute); returns how many
    /// slots that removed. Sums over whole blocks are unchanged; a window
    /// whose edge falls inside a merged block counts the block whole when
    /// it holds the block's first minute, else not at all.
    pub fn coarsen(&mut self, before: u64, size: u64) -> usize {
        let size = size.max(1);
        let old: Vec<u64> = self
            .minutes
            .range(..before)
            .map(|(m, _)| *m)
            .filter(|m| !m.is_multiple_of(size))
            .collect();
        let mut removed = 0;
        for minute in old {
            // Minutes kept off the budget merge apart from the others, at
            // the first minute of the block like them, so an SLO window
            // still leaves exactly them out.
            let start = minute / size * size;
            let excluded = self.exclusions.covers(minute);
            let into = (start..minute)
                .find(|m| self.exclusions.covers(*m) == excluded)
                .unwrap_or(minute);
            if into == minute {
                continue;
            }
            let Some(slots) = self.minutes.remove(&minute) else {
                continue;
            };
            removed += 1;
            let block = Arc::make_mut(self.minutes.entry(into).or_default());
            for (key, slot) in Arc::unwrap_or_clone(slots).0 {
                let into = block.0.entry(key).or_default();
                into.counts.add(&slot.counts);
                into.latency.merge(&slot.latency);
            }
        }
        if removed > 0 {
            // Rebuilt on demand, the rollups of merged blocks share them.
            self.drop_caches();
        }
        removed
    }

    /// Keeps the store's memory within `max_bytes`: drops the rollup
    /// caches, then merges minutes older than an hour into 10-minute
    /// blocks, then those older than 6 hours into hours, and only then
    /// drops the oldest hours. Recent minutes are never touched first.
    pub fn fit_memory_cap(&mut self, max_bytes: usize, now_ms: u64) -> BudgetFit {
        let mut fit = BudgetFit {
            before_bytes: self.heap_bytes(),
            ..BudgetFit::default()
        };
        fit.after_bytes = fit.before_bytes;
        if fit.after_bytes <= max_bytes {
            return fit;
        }
        self.drop_caches();
        let now = now_ms / MINUTE_MS;
        for (age, size) in [(60, 10), (6 * 60, 60)] {
            fit.merged_slots += self.coarsen(now.saturating_sub(age), size);
            fit.after_bytes = self.heap_bytes();
            if fit.after_bytes <= max_bytes {
                return fit;
            }
        }
        // The last hour is kept whatever it costs.
        let last_hour = now.saturating_sub(59);
        while fit.after_bytes > max_bytes {
            let Some((&oldest, _)) = self.minutes.first_key_value() else {
                break;
            };
            if oldest >= last_hour {
                break;
            }
            let kept = self.minutes.split_off(&(oldest + 60).min(last_hour));
            fit.dropped_minutes += self.minutes.len();
            self.minutes = kept;
            fit.after_bytes = self.heap_bytes();
        }
        fit
    }

    /// The dedup ledger (instances, their seqs and process figures).
    pub fn ledger(&self) -> &InstanceLedger {
        &self.ledger
    }

    /// The service, as the latest batch named it.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The latest revision a batch named.
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// Revisions seen with when each was last seen.
    pub fn revisions(&self) -> &BTreeMap<String, u64> {
        &self.revisions
    }

    /// Each revision seen and when it was first seen (Unix ms): the
    /// deploys, as this sidecar saw them.
    pub fn revisions_first_seen(&self) -> &BTreeMap<String, u64> {
        &self.revisions_first_seen
    }

    /// Minutes held.
    pub fn minutes_held(&self) -> usize {
        self.minutes.len()
    }

    /// Approximate heap bytes held by the minute slots.
    pub fn heap_bytes(&self) -> usize {
        let per_entry = std::mem::size_of::<RouteKey>() + std::mem::size_of::<RouteSlot>() + 16;
        self.minutes
            .values()
            .map(|routes| {
                64 + routes
                    .0
                    .values()
                    .map(|s| per_entry + s.latency.heap_bytes())
                    .sum::<usize>()
            })
            .sum()
    }

    /// Checks a store read from a snapshot: histograms within the layout,
    /// counts consistent. Also rebuilds the route interning.
    pub fn validate_restored(&mut self) -> Result<(), String> {
        for (minute, routes) in &self.minutes {
            check_minute(*minute, routes)?;
        }
        if self.retention_minutes == 0 {
            return Err("retention of zero minutes".into());
        }
        let keys: Vec<Arc<str>> = self
            .minutes
            .values()
            .flat_map(|r| r.0.keys().flatten().cloned())
            .collect();
        for key in keys {
            self.interned.insert(key, ());
        }
        Ok(())
    }

    /// The slots held (minutes and merged blocks) and the finished
    /// requests in them: what [`StoreCheck`] must find in a checkpoint of
    /// this store.
    pub fn summary(&self) -> (usize, u64) {
        let requests = self
            .minutes
            .values()
            .flat_map(|m| m.0.values())
            .fold(0_u64, |n, s| n.saturating_add(s.counts.requests()));
        (self.minutes.len(), requests)
    }

    /// Keeps `retention` from now on (after a restore with another config).
    pub fn set_retention(&mut self, retention: Duration) {
        self.retention_minutes = (retention.as_millis() as u64 / MINUTE_MS).max(1);
    }
}

impl PartialEq for WindowStore {
    fn eq(&self, other: &Self) -> bool {
        self.retention_minutes == other.retention_minutes
            && self.minutes == other.minutes
            && self.ledger == other.ledger
            && self.service == other.service
            && self.revision == other.revision
            && self.revisions == other.revisions
            && self.revisions_first_seen == other.revisions_first_seen
            && self.budget == other.budget
            && self.exclusions == other.exclusions
            && self.late == other.late
            && self.newly_excluded == other.newly_excluded
    }
}

#[cfg(test)]
mod tests;
