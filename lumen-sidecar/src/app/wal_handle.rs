//! The ingest side of the write-ahead log: the handle the state submits
//! batches through, and the queue its writer thread ([`super::wal_writer`])
//! takes them from. Made before the state (the state holds the handle);
//! the writer starts once the log is replayed into the state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use lumen_middleware::wire::DecodedBatch;
use tokio::sync::{mpsc, oneshot};

use crate::store::wal::list_segments;
use crate::store::{Applied, StoreError};

/// Why a batch was not taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The store refused it (another service, from the future).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// It could not be made durable: nothing was applied; send it again later.
    #[error("{0}")]
    Unavailable(String),
}

/// Batches queued for the writer before ingest waits.
pub const QUEUE: usize = 1024;
/// Batches written with one sync at most.
pub const MAX_GROUP: usize = 256;

/// One batch for the log.
#[derive(Debug)]
pub struct WalJob {
    pub(super) batch: DecodedBatch,
    pub(super) body: Bytes,
    pub(super) accepted_ms: u64,
    pub(super) reply: oneshot::Sender<Result<Applied, IngestError>>,
}

/// What the log and its checkpoint take in the volume, and the wish for
/// a checkpoint when the log has no room left.
#[derive(Debug, Default)]
pub struct LogRoom {
    /// The last checkpoint's bytes.
    pub(super) checkpoint_bytes: AtomicU64,
    /// The segments' bytes (those the last checkpoint did not cover).
    pub(super) log_bytes: AtomicU64,
    /// The volume's size when configured (`store.state_max_bytes`).
    pub(super) max_bytes: Option<u64>,
    /// Fires when the log needs a checkpoint to go on.
    pub(super) checkpoint_wanted: tokio::sync::Notify,
}

impl LogRoom {
    /// Waits until the log asks for a checkpoint.
    pub async fn checkpoint_wanted(&self) {
        self.checkpoint_wanted.notified().await;
    }
}

/// The ingest side of the log, held by the state.
#[derive(Debug)]
pub struct WalHandle {
    jobs: mpsc::Sender<WalJob>,
    active: Arc<AtomicU64>,
    rotate: Arc<AtomicBool>,
    dir: PathBuf,
    room: Arc<LogRoom>,
}

impl WalHandle {
    /// Logs and applies `batch` (its `body` as it arrived) accepted at
    /// `accepted_ms`.
    pub async fn submit(
        &self,
        batch: DecodedBatch,
        body: Bytes,
        accepted_ms: u64,
    ) -> Result<Applied, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(WalJob {
                batch,
                body,
                accepted_ms,
                reply,
            })
            .await
            .map_err(|_| IngestError::Unavailable("the log writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| IngestError::Unavailable("the log writer has stopped".into()))?
    }

    /// Called under the store's lock by a checkpoint: the segment being
    /// written, which the writer closes before it writes again. The
    /// checkpoint covers it and every earlier one.
    pub fn seal_for_checkpoint(&self) -> u64 {
        self.rotate.store(true, Ordering::SeqCst);
        self.active.load(Ordering::SeqCst)
    }

    /// Deletes the segments up to `covered` after a checkpoint of
    /// `checkpoint_bytes` holding them was written; returns how many.
    pub fn delete_covered(&self, covered: u64, checkpoint_bytes: u64) -> usize {
        self.room
            .checkpoint_bytes
            .store(checkpoint_bytes, Ordering::SeqCst);
        let Ok(segments) = list_segments(&self.dir) else {
            return 0;
        };
        let mut deleted = 0;
        let mut left = 0;
        for (n, path) in segments {
            if n > covered {
                left += std::fs::metadata(&path).map_or(0, |m| m.len());
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    left += std::fs::metadata(&path).map_or(0, |m| m.len());
                    tracing::warn!(segment = n, error = %e, "cannot delete a covered log segment")
                }
            }
        }
        self.room.log_bytes.store(left, Ordering::SeqCst);
        deleted
    }

    /// The log's room, for the housekeeping that checkpoints when it asks.
    pub fn room(&self) -> Arc<LogRoom> {
        Arc::clone(&self.room)
    }
}

/// The writer's side of a new log: its queue and the state it shares with
/// the handle.
#[derive(Debug)]
pub struct LogQueue {
    pub(super) queue: mpsc::Receiver<WalJob>,
    pub(super) dir: PathBuf,
    pub(super) active: Arc<AtomicU64>,
    pub(super) rotate: Arc<AtomicBool>,
    pub(super) room: Arc<LogRoom>,
}

/// A new log over `dir` (the volume's size `max_bytes` when configured):
/// the handle for the state and the queue for its writer.
pub fn open_log(dir: &Path, max_bytes: Option<u64>) -> (WalHandle, LogQueue) {
    let (jobs, queue) = mpsc::channel(QUEUE);
    let active = Arc::new(AtomicU64::new(0));
    let rotate = Arc::new(AtomicBool::new(false));
    let room = Arc::new(LogRoom {
        max_bytes,
        ..LogRoom::default()
    });
    let handle = WalHandle {
        jobs,
        active: Arc::clone(&active),
        rotate: Arc::clone(&rotate),
        dir: dir.to_owned(),
        room: Arc::clone(&room),
    };
    let log = LogQueue {
        queue,
        dir: dir.to_owned(),
        active,
        rotate,
        room,
    };
    (handle, log)
}
