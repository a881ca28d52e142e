//! What every part of the running sidecar shares: the configuration, the
//! window store, the cumulative totals and the counters.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use lumen_middleware::wire::{DecodedBatch, METHODS, MethodCounts, StatusCounts};
use tokio::sync::mpsc;

use super::evaluation::Evaluation;
use super::stats::{ExportStats, IngestStats, SlackStats};
use crate::config::SidecarConfig;
use crate::eval::StatusClass;
use crate::store::WindowStore;

/// Cumulative finished requests by (route, method, outcome) since start;
/// the method is one of [`METHODS`] (`_OTHER` when the sender did not say),
/// the outcome a status class's label or `error` (an inner failure).
pub type RequestTotals = BTreeMap<(Option<String>, &'static str, &'static str), u64>;

/// Cumulative cache lookups by route since start: `[hits, misses]`.
pub type CacheTotals = BTreeMap<Option<String>, [u64; 2]>;

/// The method label of requests whose sender did not say their method.
const UNKNOWN_METHOD: &str = "_OTHER";

/// One ingested series' latency, for the exported histogram.
#[derive(Debug, Clone)]
pub struct LatencyFeed {
    /// Its service (the configured one, else the batch's).
    pub service: String,
    /// Its route.
    pub route: Option<String>,
    /// `(seconds, count)` per latency bucket.
    pub buckets: Vec<(f64, u64)>,
}

fn add_outcomes(
    totals: &mut RequestTotals,
    route: Option<&String>,
    method: &'static str,
    status: &StatusCounts,
    errors: u64,
) {
    let outcomes = StatusClass::ALL
        .iter()
        .map(|c| c.as_str())
        .chain([INNER_FAILURE_LABEL]);
    let counts = status.as_array().into_iter().chain([errors]);
    for (outcome, n) in outcomes.zip(counts) {
        if n > 0 {
            *totals.entry((route.cloned(), method, outcome)).or_insert(0) += n;
        }
    }
}

/// The shared state behind every handler and peer.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: SidecarConfig,
    /// The window store; every critical section is short and never awaits.
    pub store: Mutex<WindowStore>,
    /// Counters of ingest and snapshots.
    pub stats: IngestStats,
    /// Counters of the OTLP export.
    pub export_stats: Arc<ExportStats>,
    /// Counters of the Slack alerter.
    pub slack_stats: Arc<SlackStats>,
    totals: Mutex<(RequestTotals, CacheTotals)>,
    histogram_feed: OnceLock<mpsc::Sender<LatencyFeed>>,
    deployments: Mutex<Option<crate::eval::Deployments>>,
    pub(super) evaluation_cache: Mutex<Option<(Instant, Arc<Evaluation>)>>,
}

/// The outcome label of an inner failure (no response), beside the status classes.
pub const INNER_FAILURE_LABEL: &str = "error";

impl AppState {
    /// A state over `store`.
    pub fn new(config: SidecarConfig, store: WindowStore) -> Self {
        Self {
            config,
            store: Mutex::new(store),
            stats: IngestStats::default(),
            export_stats: Arc::default(),
            slack_stats: Arc::default(),
            totals: Mutex::new((BTreeMap::new(), BTreeMap::new())),
            histogram_feed: OnceLock::new(),
            deployments: Mutex::new(None),
            evaluation_cache: Mutex::new(None),
        }
    }

    /// Adds a stored batch to the cumulative totals and queues its latency
    /// for the exported histogram (when an export runs).
    pub fn note_exported(&self, batch: &DecodedBatch) {
        {
            let mut guard = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            let (totals, cache) = &mut *guard;
            for series in &batch.series {
                if series.cache.hits + series.cache.misses > 0 {
                    let c = cache.entry(series.route.clone()).or_insert([0, 0]);
                    c[0] += series.cache.hits;
                    c[1] += series.cache.misses;
                }
                let unsplit = [(
                    UNKNOWN_METHOD,
                    MethodCounts {
                        status: series.status,
                        errors: series.errors,
                    },
                )];
                let by_method: Vec<(&'static str, MethodCounts)> = if series.methods.is_empty() {
                    unsplit.to_vec()
                } else {
                    series
                        .methods
                        .iter()
                        .filter_map(|(name, counts)| {
                            METHODS
                                .iter()
                                .find(|m| **m == name.as_str())
                                .map(|m| (*m, *counts))
                        })
                        .collect()
                };
                for (method, counts) in by_method {
                    add_outcomes(
                        totals,
                        series.route.as_ref(),
                        method,
                        &counts.status,
                        counts.errors,
                    );
                }
            }
        }
        let Some(feed) = self.histogram_feed.get() else {
            return;
        };
        for series in &batch.series {
            // Each bucket's midpoint: unbiased for the exported sum; a value
            // within 0.1 % of an OTLP bucket boundary may land on either side.
            let layout = series.latency.layout();
            let item = LatencyFeed {
                service: self
                    .config
                    .service
                    .clone()
                    .unwrap_or_else(|| batch.service.clone()),
                route: series.route.clone(),
                buckets: series
                    .latency
                    .buckets()
                    .iter()
                    .map(|(i, n)| {
                        let (low, high) = (
                            layout.lowest_equivalent(*i as usize),
                            layout.highest_equivalent(*i as usize),
                        );
                        ((low + high) as f64 / 2e6, *n)
                    })
                    .collect(),
            };
            if feed.try_send(item).is_err() {
                self.export_stats
                    .histogram_feed_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The cumulative request totals, for the exported counter.
    pub fn request_totals(&self) -> RequestTotals {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// The cumulative cache lookups, for the exported counter.
    pub fn cache_totals(&self) -> CacheTotals {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Connects the exported histogram's queue.
    pub fn attach_histogram_feed(&self, feed: mpsc::Sender<LatencyFeed>) {
        let _ = self.histogram_feed.set(feed);
    }

    /// Records the service's deployment count from its source of truth.
    pub fn set_deployments(&self, deployments: crate::eval::Deployments) {
        *self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(deployments);
    }

    /// The service's deployment count from its source of truth, if known.
    pub fn deployments(&self) -> Option<crate::eval::Deployments> {
        *self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The store, even if a panic poisoned its lock (the store is only ever
    /// changed by `apply`/`evict`, which leave it consistent or untouched).
    pub fn store(&self) -> MutexGuard<'_, WindowStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
