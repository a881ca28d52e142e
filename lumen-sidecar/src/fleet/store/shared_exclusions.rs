//! One-off windows kept off the error budget, shared through the fleet
//! store: a mark taken by any sidecar (`slo exclude`) is written to the
//! service's `lumen:{S}:x` hash, and every sidecar's writer applies the
//! marks it finds there to its own ledger before it writes, so the budget
//! counts every sidecar writes, and the fleet's summed from them, leave
//! those minutes out.

use std::collections::HashMap;

use redis::aio::ConnectionManager;

use super::error::{FleetStoreError, note_unreadable};
use super::keys::{BUDGET_KEEP_MINUTES, FleetKeys};
use crate::store::Exclusion;
use crate::store::exclusions::MAX_ONE_OFF;

/// FNV-1a: a field name every version of every sidecar agrees on.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A mark's field: its span and reason (the same mark twice is one field).
fn field(e: &Exclusion) -> String {
    format!("{}-{}-{:016x}", e.from_ms, e.to_ms, fnv(&e.reason))
}

/// Writes `e` to the fleet's marks (kept as long as the budget's hours).
pub async fn share(
    con: &mut ConnectionManager,
    keys: &FleetKeys,
    e: &Exclusion,
) -> Result<(), FleetStoreError> {
    let json = serde_json::to_vec(e).expect("a mark serializes");
    redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(keys.exclusions())
        .arg(field(e))
        .arg(json)
        .ignore()
        .cmd("EXPIRE")
        .arg(keys.exclusions())
        .arg(BUDGET_KEEP_MINUTES * 60)
        .ignore()
        .query_async::<()>(con)
        .await
        .map_err(|source| FleetStoreError::Redis {
            doing: "sharing a window kept off the budget",
            source,
        })
}

/// The fleet's marks, each checked as a command's would be (one that
/// does not read or check is left out and logged), at most
/// [`MAX_ONE_OFF`].
pub async fn shared(
    con: &mut ConnectionManager,
    keys: &FleetKeys,
) -> Result<Vec<Exclusion>, FleetStoreError> {
    let key = keys.exclusions();
    let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(con)
        .await
        .map_err(|source| FleetStoreError::Redis {
        doing: "reading the windows kept off the budget",
        source,
    })?;
    let mut marks: Vec<Exclusion> = fields
        .into_iter()
        .filter_map(|(f, bytes)| {
            let checked = serde_json::from_slice::<Exclusion>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|e| Exclusion::new(e.from_ms, e.to_ms, &e.reason, &e.by, e.marked_ms));
            match checked {
                Ok(e) => Some(e),
                Err(reason) => {
                    note_unreadable(&key, &f, &reason);
                    None
                }
            }
        })
        .collect();
    marks.sort_by_key(|e| (e.marked_ms, e.from_ms));
    let excess = marks.len().saturating_sub(MAX_ONE_OFF);
    marks.drain(..excess);
    Ok(marks)
}
