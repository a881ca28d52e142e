//! Which sidecars wrote when (`lumen:{S}:il`, a sorted set: sidecar → its
//! last write, Unix ms), so the sidecars' latest information
//! (`lumen:{S}:i`, one field each) keeps only those seen in the last 32
//! days: on Cloud Run instances come and go all day, and a field per
//! instance that ever lived would grow without end. Every writer marks
//! itself at each write and drops, in one transaction, the fields of the
//! sidecars last seen longer ago (a few hundred at a time); the first
//! writer of a store without the index builds it from the fields (their
//! `last_seen_ms`), once.

use redis::aio::ConnectionManager;

use super::block::{InstanceInfo, decode};
use super::error::FleetStoreError;
use super::keys::{BUDGET_KEEP_MINUTES, FleetKeys};

/// Sidecars dropped per write at most.
const DROP_AT_ONCE: usize = 500;

/// Adds "`instance` wrote at `now_ms`" to `pipe`.
pub fn mark(pipe: &mut redis::Pipeline, keys: &FleetKeys, instance: &str, now_ms: u64) {
    pipe.cmd("ZADD")
        .arg(keys.instances_seen())
        .arg(now_ms)
        .arg(instance)
        .ignore();
    pipe.cmd("EXPIRE")
        .arg(keys.instances_seen())
        .arg(BUDGET_KEEP_MINUTES * 60)
        .ignore();
}

/// Builds the index from the sidecars' information when there is none
/// (a store written before it existed): how many were indexed.
pub async fn build_if_missing(
    con: &mut ConnectionManager,
    keys: &FleetKeys,
) -> Result<usize, FleetStoreError> {
    let present: bool = redis::cmd("EXISTS")
        .arg(keys.instances_seen())
        .query_async(con)
        .await
        .map_err(|source| FleetStoreError::Redis {
            doing: "looking for the sidecars' index",
            source,
        })?;
    if present {
        return Ok(0);
    }
    let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(keys.instances())
        .query_async(con)
        .await
        .map_err(|source| FleetStoreError::Redis {
            doing: "reading the sidecars' information",
            source,
        })?;
    let mut pipe = redis::pipe();
    let mut indexed = 0;
    for (instance, bytes) in &fields {
        // One that does not read is indexed as seen long ago: dropped.
        let seen = decode::<InstanceInfo>(bytes).map_or(0, |i| i.last_seen_ms);
        pipe.cmd("ZADD")
            .arg(keys.instances_seen())
            .arg(seen)
            .arg(instance)
            .ignore();
        indexed += 1;
    }
    if indexed > 0 {
        pipe.query_async::<()>(con)
            .await
            .map_err(|source| FleetStoreError::Redis {
                doing: "indexing the sidecars",
                source,
            })?;
    }
    Ok(indexed)
}

/// Drops the information of the sidecars last seen before `before_ms`:
/// how many.
pub async fn drop_unseen(
    con: &mut ConnectionManager,
    keys: &FleetKeys,
    before_ms: u64,
) -> Result<usize, FleetStoreError> {
    let gone: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(keys.instances_seen())
        .arg("-inf")
        .arg(format!("({before_ms}"))
        .arg("LIMIT")
        .arg(0)
        .arg(DROP_AT_ONCE)
        .query_async(con)
        .await
        .map_err(|source| FleetStoreError::Redis {
            doing: "finding sidecars not seen for 32 days",
            source,
        })?;
    if gone.is_empty() {
        return Ok(0);
    }
    redis::pipe()
        .atomic()
        .cmd("HDEL")
        .arg(keys.instances())
        .arg(&gone)
        .ignore()
        .cmd("ZREM")
        .arg(keys.instances_seen())
        .arg(&gone)
        .ignore()
        .query_async::<()>(con)
        .await
        .map_err(|source| FleetStoreError::Redis {
            doing: "dropping sidecars not seen for 32 days",
            source,
        })?;
    Ok(gone.len())
}
