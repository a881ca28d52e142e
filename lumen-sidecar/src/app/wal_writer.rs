//! The write-ahead log: every batch that changes the store is written to the
//! state directory and synced before it is applied and answered, so an
//! acknowledged batch survives a crash (`kill -9`, out of memory).
//!
//! One writer thread takes the batches in order. It groups what is queued
//! (one sync for the group), and holds the store's lock from the log check
//! through the write to the apply, so the store always holds exactly the
//! logged batches: a checkpoint (the snapshot) taken under that lock covers
//! every segment up to the one being written, which it then closes; the
//! checkpoint's write deletes the covered segments. Start-up replays the
//! segments after the checkpoint; a torn or corrupt tail is cut at the last
//! good record and logged. If the log cannot be written, the group's
//! batches are answered 503 with nothing applied, and the next group starts
//! a new segment. The log only grows while the next checkpoint still fits
//! in the volume ([`super::state_volume`]); without room, the group is
//! answered 503 and a checkpoint asked for at once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::state::AppState;
use super::wal_handle::{IngestError, LogQueue, LogRoom, MAX_GROUP, WalJob};
use crate::store::Applied;
use crate::store::wal::{encode_record, list_segments, read_segment, segment_header, segment_name};

/// What start-up found in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segments read.
    pub segments: usize,
    /// Records read.
    pub records: usize,
    /// Records whose batch changed the store (the others the checkpoint held).
    pub applied: usize,
    /// Segments whose tail was cut.
    pub torn: usize,
    /// The highest segment number seen (0: none).
    pub last_segment: u64,
}

/// Replays the segments of `dir` into `state` (after its checkpoint was
/// restored); cuts torn tails.
pub fn replay(state: &AppState, dir: &Path) -> std::io::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for (n, path) in list_segments(dir)? {
        report.segments += 1;
        report.last_segment = n;
        let bytes = std::fs::read(&path)?;
        let read = read_segment(&bytes);
        if let Some(why) = &read.torn {
            report.torn += 1;
            tracing::warn!(segment = %path.display(), kept_bytes = read.good_len, dropped_bytes = bytes.len() as u64 - read.good_len, reason = %why, "log segment cut at its last good record");
            let cut = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(read.good_len));
            if let Err(e) = cut {
                tracing::error!(segment = %path.display(), error = %e, "cannot cut the segment; its tail is ignored");
            }
        }
        for record in read.records {
            report.records += 1;
            let batch = match lumen_middleware::wire::decode(&record.body) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(segment = n, error = %e, "a logged batch no longer decodes; skipped");
                    continue;
                }
            };
            let mut store = state.store();
            if let Ok(Applied::Stored { .. } | Applied::Expired { .. }) =
                state.apply_locked(&mut store, &batch, record.accepted_ms)
            {
                report.applied += 1;
            }
        }
    }
    state
        .stats
        .wal_replayed
        .fetch_add(report.records as u64, Ordering::Relaxed);
    Ok(report)
}

struct Segment {
    file: Option<File>,
    number: u64,
    len: u64,
}

impl Segment {
    fn append(&mut self, dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            let path = dir.join(segment_name(self.number));
            // Never through a link: a segment is written in the state
            // directory itself, not wherever a link points.
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(crate::store::wal::NO_FOLLOW)
                .open(&path)?;
            let len = file.metadata()?.len();
            if len == 0 {
                file.write_all(&segment_header())?;
                self.len = segment_header().len() as u64;
            } else {
                self.len = len;
            }
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Leave no half record behind; the next group starts afresh.
                let _ = file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn next(&mut self, active: &AtomicU64) {
        self.file = None;
        self.number += 1;
        self.len = 0;
        active.store(self.number, Ordering::SeqCst);
    }
}

/// Starts the writer thread of `log` (after its replay), writing from
/// segment `first`; the checkpoint's and the log's sizes are read now.
pub fn start(state: &Arc<AppState>, log: LogQueue, first: u64) -> std::io::Result<()> {
    let LogQueue {
        queue,
        dir,
        active,
        rotate,
        room,
    } = log;
    active.store(first, Ordering::SeqCst);
    room.checkpoint_bytes.store(
        state
            .config
            .snapshot_file()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len()),
        Ordering::SeqCst,
    );
    room.log_bytes.store(
        list_segments(&dir)?
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum(),
        Ordering::SeqCst,
    );
    let writer_state = Arc::clone(state);
    std::thread::Builder::new()
        .name("lumen-wal".into())
        .spawn(move || write_loop(writer_state, queue, dir, active, rotate, room))?;
    Ok(())
}

fn write_loop(
    state: Arc<AppState>,
    mut queue: mpsc::Receiver<WalJob>,
    dir: PathBuf,
    active: Arc<AtomicU64>,
    rotate: Arc<AtomicBool>,
    room: Arc<LogRoom>,
) {
    let mut segment = Segment {
        file: None,
        number: active.load(Ordering::SeqCst),
        len: 0,
    };
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut store = state.store();
        if rotate.swap(false, Ordering::SeqCst) {
            segment.next(&active);
        }
        let mut logged = Vec::with_capacity(group.len());
        let mut bytes = Vec::new();
        for job in group {
            match store.precheck(&job.batch, job.accepted_ms) {
                Ok(None) => {
                    encode_record(job.accepted_ms, &job.body, &mut bytes);
                    logged.push(job);
                }
                // Duplicates and refusals change nothing: no record.
                _ => {
                    let result = state.apply_locked(&mut store, &job.batch, job.accepted_ms);
                    let _ = job.reply.send(result.map_err(IngestError::Store));
                }
            }
        }
        if logged.is_empty() {
            continue;
        }
        if let Some(why) = no_room(&dir, &room, bytes.len() as u64) {
            state.stats.wal_no_room.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(batches = logged.len(), reason = %why, "no room in the state volume for the log; answering 503 and checkpointing now");
            room.checkpoint_wanted.notify_one();
            for job in logged {
                let _ = job.reply.send(Err(IngestError::Unavailable(why.clone())));
            }
            continue;
        }
        match segment.append(&dir, &bytes) {
            Ok(()) => {
                room.log_bytes
                    .fetch_add(bytes.len() as u64, Ordering::SeqCst);
                state
                    .stats
                    .wal_appended
                    .fetch_add(logged.len() as u64, Ordering::Relaxed);
                for job in logged {
                    let result = state.apply_locked(&mut store, &job.batch, job.accepted_ms);
                    let _ = job.reply.send(result.map_err(IngestError::Store));
                }
            }
            Err(e) => {
                state.stats.wal_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(segment = segment.number, error = %e, batches = logged.len(), "cannot write the log; answering 503, nothing applied");
                segment.next(&active);
                let why = format!("the write-ahead log cannot be written: {e}");
                for job in logged {
                    let _ = job.reply.send(Err(IngestError::Unavailable(why.clone())));
                }
            }
        }
    }
}

/// Why `append` more bytes may not be logged now (the next checkpoint
/// would not fit), if so. A volume whose space cannot be read is written
/// to: the write itself then says whether it fits.
fn no_room(dir: &Path, room: &LogRoom, append: u64) -> Option<String> {
    let checkpoint = room.checkpoint_bytes.load(Ordering::SeqCst);
    let log = room.log_bytes.load(Ordering::SeqCst);
    let space = super::state_volume::space(dir, room.max_bytes, checkpoint + log).ok()?;
    (!super::state_volume::log_fits(space.free, append, checkpoint, log)).then(|| {
        format!(
            "the state volume has {} bytes free; the next checkpoint needs {} beside the log: retry after it",
            space.free,
            super::state_volume::checkpoint_reserve(checkpoint, log + append)
        )
    })
}
