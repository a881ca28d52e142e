//! The state volume's room. The write-ahead log may only grow while the
//! next checkpoint still fits beside the files it replaces: a checkpoint is
//! written whole before the log segments it covers are deleted, so a
//! volume filled by the log alone could never be checkpointed (and never
//! recover). Ingest answers 503 while the log has no room, and a
//! checkpoint is asked for at once; once it is written and the covered
//! segments are gone, the log has room again.

use std::path::Path;

/// What a volume's size and free space are, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSpace {
    /// The file system's size (or the configured `store.state_max_bytes`).
    pub total: u64,
    /// Free to this process.
    pub free: u64,
}

/// Free margin kept beyond the checkpoint's estimate.
pub const MARGIN_BYTES: u64 = 1 << 20;

/// The share of the state volume the window store may take in memory: its
/// checkpoint (compressed, about 45 % of its memory for production
/// traffic, measured in `bench/RESULTS.md`) must fit twice (the last one
/// and the one being written, with a quarter more in reserve) with room
/// for the log between two: 2.25 × 0.45 × 0.6 ≈ 0.6 of the volume.
pub const STORE_SHARE_OF_VOLUME: f64 = 0.6;

/// The volume holding `dir`, as `statvfs` reports it, with `max_bytes`
/// (when configured) as its size and `used` (the state files' bytes)
/// counted against it.
pub fn space(dir: &Path, max_bytes: Option<u64>, used: u64) -> std::io::Result<VolumeSpace> {
    let vfs = rustix::fs::statvfs(dir)?;
    let fs = VolumeSpace {
        total: vfs.f_blocks.saturating_mul(vfs.f_frsize),
        free: vfs.f_bavail.saturating_mul(vfs.f_frsize),
    };
    Ok(match max_bytes {
        Some(max) => VolumeSpace {
            total: max.min(fs.total),
            free: fs.free.min(max.saturating_sub(used)),
        },
        None => fs,
    })
}

/// What the next checkpoint may take: the last one's bytes and the log's
/// since (every logged batch ends up in it, in a form no larger than its
/// body), a quarter more, and [`MARGIN_BYTES`].
pub fn checkpoint_reserve(checkpoint_bytes: u64, log_bytes: u64) -> u64 {
    let sum = checkpoint_bytes.saturating_add(log_bytes);
    sum.saturating_add(sum / 4).saturating_add(MARGIN_BYTES)
}

/// Whether `append` more bytes of log fit with `free` bytes free, keeping
/// the next checkpoint's reserve.
pub fn log_fits(free: u64, append: u64, checkpoint_bytes: u64, log_bytes: u64) -> bool {
    let reserve = checkpoint_reserve(checkpoint_bytes, log_bytes.saturating_add(append));
    free >= append.saturating_add(reserve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_stops_while_the_next_checkpoint_would_not_fit() {
        let mib = 1 << 20;
        // A 10 MiB checkpoint, 2 MiB of log: the next one may take 15 MiB.
        assert_eq!(
            checkpoint_reserve(10 * mib, 2 * mib),
            15 * mib + MARGIN_BYTES
        );
        // 30 MiB free: a 1 MiB append fits (1 + 16.25 + 1 ≤ 30)…
        assert!(log_fits(30 * mib, mib, 10 * mib, 2 * mib));
        // …18 MiB free does not (1 + 16.25 + 1 > 18).
        assert!(!log_fits(18 * mib, mib, 10 * mib, 2 * mib));
        // Nothing written yet: only the margin is kept.
        assert!(log_fits(3 * mib, mib / 2, 0, 0));
        assert!(!log_fits(mib, mib / 2, 0, 0));
        assert!(!log_fits(u64::MAX - 1, u64::MAX, u64::MAX, u64::MAX));
    }

    #[test]
    fn a_configured_size_counts_the_state_files_against_it() {
        let dir = std::env::temp_dir();
        let fs = space(&dir, None, 0).expect("statvfs");
        assert!(fs.total >= fs.free && fs.total > 0, "{fs:?}");
        let capped = space(&dir, Some(64 << 20), 60 << 20).expect("statvfs");
        assert_eq!(capped.total, (64_u64 << 20).min(fs.total));
        assert!(capped.free <= 4 << 20, "{capped:?}");
    }
}
