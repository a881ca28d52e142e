//! What one sidecar writes under one key: a block's routes and budget
//! counts, or its own latest information; CBOR after a format byte, each
//! histogram as its packed buckets (the form the store and the checkpoint
//! keep: about 2 bytes per distinct latency bucket, read without
//! inflating a dense array).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{BudgetCounts, Counts, RouteKey, RouteSlot, SparseHistogram, store_layout};

/// The format byte every value starts with.
pub const BLOCK_FORMAT: u8 = 1;

/// One sidecar's block of one tier: every route's counts and latency,
/// and the budget counts of the block's minutes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetBlock {
    /// Each route with traffic, `None` first.
    pub routes: Vec<(RouteKey, RouteSlot)>,
    /// The block's good and bad events, as the sidecar's budgets counted them.
    pub budget: BudgetCounts,
}

/// A route as stored: label, the nine counts (status classes 1xx to 5xx,
/// inner failures, cancellations, cache hits, cache misses), latency.
type PackedRoute = (RouteKey, [u64; 9], SparseHistogram);

/// A block as stored: arrays, not maps, so no field name is repeated in
/// every route of every block.
#[derive(Serialize, Deserialize)]
struct PackedBlock(Vec<PackedRoute>, [u64; 5]);

impl From<&FleetBlock> for PackedBlock {
    fn from(b: &FleetBlock) -> Self {
        let routes = b
            .routes
            .iter()
            .map(|(key, slot)| {
                let c = &slot.counts;
                let [s1, s2, s3, s4, s5] = c.status;
                (
                    key.clone(),
                    [
                        s1,
                        s2,
                        s3,
                        s4,
                        s5,
                        c.errors,
                        c.cancelled,
                        c.cache_hits,
                        c.cache_misses,
                    ],
                    slot.latency.clone(),
                )
            })
            .collect();
        let d = &b.budget;
        Self(
            routes,
            [d.total, d.unavailable, d.errors, d.slow_p95, d.slow_p99],
        )
    }
}

impl From<PackedBlock> for FleetBlock {
    fn from(PackedBlock(routes, d): PackedBlock) -> Self {
        Self {
            routes: routes
                .into_iter()
                .map(|(key, c, latency)| {
                    let counts = Counts {
                        status: [c[0], c[1], c[2], c[3], c[4]],
                        errors: c[5],
                        cancelled: c[6],
                        cache_hits: c[7],
                        cache_misses: c[8],
                        // The fleet store's blocks do not carry gRPC codes.
                        grpc: [0; crate::store::GRPC_CODES],
                    };
                    (key, RouteSlot { counts, latency })
                })
                .collect(),
            budget: BudgetCounts {
                total: d[0],
                unavailable: d[1],
                errors: d[2],
                slow_p95: d[3],
                slow_p99: d[4],
            },
        }
    }
}

/// One sidecar's latest figures, for the fleet's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// When it last wrote, Unix ms.
    pub last_seen_ms: u64,
    /// The latest revision its batches named.
    pub revision: Option<String>,
    /// Deployments in 7 days, as it knows them.
    pub deployments_7d: Option<u32>,
    /// Its app's CPU use against its limit, 0 to 1.
    pub cpu_utilisation: Option<f64>,
    /// Its app's memory use against its limit, 0 to 1.
    pub memory_utilisation: Option<f64>,
    /// When its sidecar started, Unix ms (absent from older writers).
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// What its instance cost per second, USD (absent from older writers).
    #[serde(default)]
    pub cost_usd_per_s: Option<f64>,
    /// Its cumulative cache lookups by route, `[hits, misses]` (the
    /// feedback loop sums them over the fleet).
    #[serde(default)]
    pub cache_totals: std::collections::BTreeMap<String, [u64; 2]>,
    /// P95 latency of its app's first two minutes, ms (cold-start evidence).
    #[serde(default)]
    pub cold_p95_ms: Option<f64>,
    /// P95 latency after those minutes (up to the last hour), ms.
    #[serde(default)]
    pub warm_p95_ms: Option<f64>,
    /// Its own A/B experiment counts by experiment id (the fleet's
    /// experiment sums them over every instance).
    #[serde(default)]
    pub experiment_counts: std::collections::BTreeMap<u32, crate::app::experiments::ArmData>,
}

/// The JSON document at `key`, if there is one (the fleet's shared
/// feedback-loop and experiments state).
pub(super) async fn read_json<T: DeserializeOwned>(
    con: &redis::aio::ConnectionManager,
    key: String,
    doing: &'static str,
) -> Result<Option<T>, super::error::FleetStoreError> {
    let mut con = con.clone();
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut con)
        .await
        .map_err(super::error::redis_error(doing))?;
    bytes
        .map(|b| {
            serde_json::from_slice(&b).map_err(|e| super::error::FleetStoreError::Corrupt {
                key,
                field: String::new(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Takes the lock `key` for `holder` for `hold` if no one holds it
/// (`SET key holder NX PX hold`): whether this call took it.
pub(super) async fn take_lock(
    con: &redis::aio::ConnectionManager,
    key: String,
    holder: &str,
    hold: std::time::Duration,
    doing: &'static str,
) -> Result<bool, super::error::FleetStoreError> {
    let mut con = con.clone();
    let won: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(holder)
        .arg("NX")
        .arg("PX")
        .arg((hold.as_millis() as u64).max(1))
        .query_async(&mut con)
        .await
        .map_err(super::error::redis_error(doing))?;
    Ok(won.is_some())
}

/// Writes `value` as the JSON document at `key`.
pub(super) async fn write_json<T: Serialize>(
    con: &redis::aio::ConnectionManager,
    key: String,
    value: &T,
    doing: &'static str,
) -> Result<(), super::error::FleetStoreError> {
    let json = serde_json::to_vec(value).expect("plain data serialises");
    let mut con = con.clone();
    redis::cmd("SET")
        .arg(key)
        .arg(json)
        .query_async::<()>(&mut con)
        .await
        .map_err(super::error::redis_error(doing))
}

/// Every sidecar's latest information, as the fleet store holds it (one
/// that does not read is left out, logged and counted).
pub(super) async fn instance_infos(
    con: &redis::aio::ConnectionManager,
    keys: &super::keys::FleetKeys,
) -> Result<std::collections::BTreeMap<String, InstanceInfo>, super::error::FleetStoreError> {
    let mut con = con.clone();
    let fields: std::collections::BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(keys.instances())
        .query_async(&mut con)
        .await
        .map_err(super::error::redis_error("reading the instances"))?;
    Ok(fields
        .into_iter()
        .filter_map(|(field, bytes)| match decode(&bytes) {
            Ok(info) => Some((field, info)),
            Err(reason) => {
                super::error::note_unreadable(&keys.instances(), &field, &reason);
                None
            }
        })
        .collect())
}

impl InstanceInfo {
    /// What the instance cost between `from_ms` and `to_ms`, USD: its rate
    /// over the part of that span it lived (from its start to its last
    /// write). `None` when it did not say its cost.
    pub fn cost_between(&self, from_ms: u64, to_ms: u64) -> Option<f64> {
        let (started, rate) = (self.started_ms?, self.cost_usd_per_s?);
        let lived = self
            .last_seen_ms
            .min(to_ms)
            .saturating_sub(started.max(from_ms));
        Some(rate * lived as f64 / 1000.0)
    }
}

/// What every instance in `infos` cost between `from_ms` and `to_ms`, USD
/// (ended instances too: the store keeps their infos); `None` when none
/// said its cost.
pub fn fleet_cost_between(
    infos: &std::collections::BTreeMap<String, InstanceInfo>,
    from_ms: u64,
    to_ms: u64,
) -> Option<f64> {
    infos
        .values()
        .filter_map(|i| i.cost_between(from_ms, to_ms))
        .reduce(|a, b| a + b)
}

/// `value` as the store keeps it.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![BLOCK_FORMAT];
    ciborium::into_writer(value, &mut out)
        .expect("CBOR into a Vec cannot fail: no I/O, and every value has a CBOR form");
    out
}

/// A value the store holds; `Err` says what is wrong with it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&BLOCK_FORMAT, rest)) => {
            ciborium::from_reader(rest).map_err(|e| format!("not a Lumen value: {e}"))
        }
        Some((other, _)) => Err(format!(
            "format {other}, this sidecar reads {BLOCK_FORMAT}: upgrade it"
        )),
        None => Err("empty".into()),
    }
}

impl FleetBlock {
    /// The block as the store keeps it.
    pub fn encode(&self) -> Vec<u8> {
        encode(&PackedBlock::from(self))
    }

    /// A block read from the store, checked: histograms inside the layout,
    /// each holding exactly its counts' requests.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let block = Self::from(decode::<PackedBlock>(bytes)?);
        let len = store_layout().len();
        for (route, slot) in &block.routes {
            let Some(total) = slot.latency.checked_total(len) else {
                return Err(format!("route {route:?}: histogram outside the layout"));
            };
            if total != slot.counts.requests() {
                return Err(format!(
                    "route {route:?}: histogram holds {total} values, counts say {}",
                    slot.counts.requests()
                ));
            }
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn block() -> FleetBlock {
        let slot = |n: u64| RouteSlot {
            counts: Counts {
                status: [0, n, 0, 0, 0],
                ..Counts::default()
            },
            latency: SparseHistogram::from_pairs(vec![(1200, n - 1), (1500, 1)]),
        };
        FleetBlock {
            routes: vec![(None, slot(3)), (Some(Arc::from("/ask")), slot(40))],
            budget: BudgetCounts {
                total: 43,
                slow_p95: 2,
                ..BudgetCounts::default()
            },
        }
    }

    #[test]
    fn the_fleets_cost_sums_every_instance_over_the_part_of_the_span_it_lived() {
        let info = |started_ms: Option<u64>, last_seen_ms: u64, rate: Option<f64>| InstanceInfo {
            started_ms,
            last_seen_ms,
            cost_usd_per_s: rate,
            ..InstanceInfo::default()
        };
        let infos: std::collections::BTreeMap<String, InstanceInfo> = [
            // Lived through the span: 10 s at 0.5.
            ("a".to_owned(), info(Some(0), 50_000, Some(0.5))),
            // Ended in it: 4 s at 1.0.
            ("b".to_owned(), info(Some(0), 14_000, Some(1.0))),
            // Ended before it, and one that said no cost: nothing.
            ("c".to_owned(), info(Some(0), 9_000, Some(1.0))),
            ("d".to_owned(), info(None, 50_000, None)),
        ]
        .into();
        assert_eq!(fleet_cost_between(&infos, 10_000, 20_000), Some(9.0));
        let silent: std::collections::BTreeMap<String, InstanceInfo> =
            [("d".to_owned(), info(None, 50_000, None))].into();
        assert_eq!(fleet_cost_between(&silent, 10_000, 20_000), None);
    }

    #[test]
    fn a_block_reads_back_as_written() {
        let b = block();
        let bytes = b.encode();
        assert_eq!(bytes[0], BLOCK_FORMAT);
        assert_eq!(FleetBlock::decode(&bytes), Ok(b));
    }

    #[test]
    fn values_lumen_did_not_write_are_refused_with_the_reason() {
        let mut inconsistent = block();
        inconsistent.routes[1].1.counts.status[1] = 41;
        let err = FleetBlock::decode(&inconsistent.encode()).expect_err("41 ≠ 40");
        assert!(err.contains("holds 40 values, counts say 41"), "{err}");
        let mut future = block().encode();
        future[0] = 9;
        assert!(
            FleetBlock::decode(&future)
                .expect_err("format 9")
                .contains("format 9")
        );
        assert!(FleetBlock::decode(b"").is_err());
        assert!(FleetBlock::decode(&[BLOCK_FORMAT, 0xff, 0x00]).is_err());
        let outside = FleetBlock {
            routes: vec![(
                None,
                RouteSlot {
                    counts: Counts {
                        status: [0, 1, 0, 0, 0],
                        ..Counts::default()
                    },
                    latency: SparseHistogram::from_pairs(vec![(u32::MAX - 1, 1)]),
                },
            )],
            budget: BudgetCounts::default(),
        };
        assert!(
            FleetBlock::decode(&outside.encode())
                .expect_err("index beyond the layout")
                .contains("outside the layout")
        );
    }
}
