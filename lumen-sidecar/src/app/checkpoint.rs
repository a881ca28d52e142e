//! The store across restarts: restored from the snapshot at start, written
//! back periodically and at the end.

use std::sync::atomic::Ordering;

use super::clock::now_ms;
use super::state::AppState;
use crate::config::SidecarConfig;
use crate::store::WindowStore;
use crate::store::snapshot::{self, SnapshotError};

/// Reads the snapshot if there is one, with the cumulative totals it kept
/// (for [`StateParts::kept`](super::StateParts::kept)); a bad one is logged, set aside and
/// replaced by an empty store.
pub fn restore_checkpoint(config: &SidecarConfig) -> (WindowStore, Option<serde_json::Value>) {
    let empty = || {
        let mut store = WindowStore::new(config.retention);
        store.set_budget_rules(config.budget_rules());
        store.set_route_cap(config.max_routes);
        store.set_recurring_exclusions(config.budget_maintenance.clone());
        store.set_keep_late(config.fleet_store.redis_url.is_some());
        store
    };
    let Some(path) = &config.snapshot_file() else {
        return (empty(), None);
    };
    // A checkpoint cut short by a kill is never read, only in the way.
    let stale = path.with_extension("tmp");
    if std::fs::symlink_metadata(&stale).is_ok() {
        match std::fs::remove_file(&stale) {
            Ok(()) => {
                tracing::info!(path = %stale.display(), "removed a checkpoint left unfinished")
            }
            Err(e) => {
                tracing::warn!(path = %stale.display(), error = %e, "cannot remove a checkpoint left unfinished")
            }
        }
    }
    match snapshot::read_all(path) {
        Ok(Some(snapshot::Restored { mut store, totals })) => {
            store.set_retention(config.retention);
            store.set_budget_rules(config.budget_rules());
            store.set_route_cap(config.max_routes);
            store.set_recurring_exclusions(config.budget_maintenance.clone());
            store.set_keep_late(config.fleet_store.redis_url.is_some());
            store.evict(now_ms());
            tracing::info!(path = %path.display(), minutes = store.minutes_held(), instances = store.ledger().len(), "restored the snapshot");
            (store, totals)
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no snapshot yet; starting empty");
            (empty(), None)
        }
        Err(e @ (SnapshotError::Corrupt { .. } | SnapshotError::Foreign { .. })) => {
            match snapshot::set_aside(path, now_ms()) {
                Ok(aside) => {
                    tracing::error!(error = %e, set_aside = %aside.display(), "snapshot not trusted; starting empty")
                }
                Err(e2) => {
                    tracing::error!(error = %e, rename_error = %e2, "snapshot not trusted and could not be set aside; starting empty")
                }
            }
            (empty(), None)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the snapshot; starting empty");
            (empty(), None)
        }
    }
}

/// Writes the snapshot now, if one is configured. With a write-ahead log it
/// is the log's checkpoint: taken under the store's lock with the segment
/// being written sealed, and once written, the segments it covers are
/// deleted.
pub fn save_snapshot(state: &AppState) {
    let Some(path) = &state.config.snapshot_file() else {
        return;
    };
    // Copy under the lock, write outside it: the copy shares every minute
    // with the store (copy on write), so ingest waits for a few thousand
    // reference counts, not for a copy of the data nor for the JSON.
    let (copy, totals, covered) = {
        let store = state.store();
        // Under the store's lock the totals agree with the store: both
        // change together in `apply_locked`.
        let mut totals = state.totals().to_json(state.latency_boundaries());
        if let Some(record) = totals.as_object_mut() {
            record.insert("experiments".into(), state.experiments.to_json());
            record.insert(
                "tuning".into(),
                serde_json::to_value(state.tuning.state()).expect("the loop's state serialises"),
            );
        }
        (
            store.clone(),
            totals,
            state.wal().map(|w| w.seal_for_checkpoint()),
        )
    };
    match snapshot::write_streamed(path, &copy, Some(&totals), now_ms()) {
        Ok(bytes) => {
            state
                .stats
                .snapshots_written
                .fetch_add(1, Ordering::Relaxed);
            let deleted = match (state.wal(), covered) {
                (Some(wal), Some(n)) => wal.delete_covered(n, bytes),
                _ => 0,
            };
            tracing::debug!(path = %path.display(), bytes, log_segments_deleted = deleted, "snapshot written");
        }
        Err(e) => {
            state
                .stats
                .snapshot_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "snapshot write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::app::state::StateParts;
    use crate::config::FeedbackMode;

    #[test]
    fn the_feedback_loop_and_its_answer_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!(
            "lumen-checkpoint-tuning-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut config = SidecarConfig {
            snapshot_path: Some(dir.join("snapshot")),
            ..SidecarConfig::default()
        };
        config.feedback.mode = FeedbackMode::Apply;
        let (store, _) = restore_checkpoint(&config);
        let before = AppState::new(config.clone(), store);
        let lookups: BTreeMap<String, [u64; 2]> = [("/ask".to_owned(), [500, 500])].into();
        before.tuning.start(&BTreeMap::new(), 1_000);
        assert_eq!(
            before.tuning.decide(&lookups, 2_000).len(),
            1,
            "a TTL change"
        );
        let answer = before.tuning_answer().expect("an answer");
        save_snapshot(&before);

        let (store, kept) = restore_checkpoint(&config);
        let after = AppState::from_parts(StateParts {
            kept,
            ..StateParts::new(config.clone(), store)
        });
        let restored = after.tuning_answer().expect("the answer kept");
        assert_eq!(
            (restored.version, &restored.caches),
            (answer.version, &answer.caches)
        );
        let report = after.tuning.report();
        assert_eq!(
            report.caches["/ask"].ttl_s,
            before.tuning.report().caches["/ask"].ttl_s
        );
        assert_eq!(report.caches["/ask"].changes.len(), 1);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
