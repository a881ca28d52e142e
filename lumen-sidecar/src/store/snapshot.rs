//! The store on disk: written atomically (temporary file, fsync, rename),
//! read at start, and set aside — never trusted — when it is corrupt or
//! foreign.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::WindowStore;

/// The `format` field every snapshot carries.
pub const SNAPSHOT_FORMAT: &str = "lumen-sidecar-snapshot";
/// The first bytes of a binary checkpoint (CBOR after a 12-byte header:
/// these 8 bytes and the version, u32 little-endian). A file starting with
/// `{` is an older JSON snapshot, still read.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"LUMENCKP";
/// The snapshot version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// A snapshot that cannot be written or used.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Reading, writing or renaming failed.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a readable snapshot (truncated, not JSON, inconsistent).
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is a snapshot of another format or version.
    #[error("snapshot {path} is not ours: {reason}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What it is.
        reason: String,
    },
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: &'a str,
    version: u32,
    saved_at_ms: u64,
    store: &'a WindowStore,
    #[serde(skip_serializing_if = "Option::is_none")]
    totals: Option<&'a serde_json::Value>,
}

#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u32>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    store: WindowStore,
    #[serde(default)]
    totals: Option<serde_json::Value>,
}

/// What a snapshot holds: the store, and the cumulative totals the
/// exported counters continue from (absent in older snapshots).
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The window store.
    pub store: WindowStore,
    /// The cumulative totals, as the application wrote them.
    pub totals: Option<serde_json::Value>,
}

/// Serializes `store` alone (a snapshot without totals, as older builds
/// wrote them).
pub fn encode(store: &WindowStore, now_ms: u64) -> Vec<u8> {
    serde_json::to_vec(&SnapshotOut {
        format: SNAPSHOT_FORMAT,
        version: SNAPSHOT_VERSION,
        saved_at_ms: now_ms,
        store,
        totals: None,
    })
    .expect("the store serializes")
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Writes `store` and `totals` to `path` atomically as a binary checkpoint
/// (CBOR, histograms as raw packed bytes), streamed: it is never held
/// whole in memory. Returns the bytes written.
pub fn write_streamed(
    path: &Path,
    store: &WindowStore,
    totals: Option<&serde_json::Value>,
    now_ms: u64,
) -> Result<u64, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    out.write_all(CHECKPOINT_MAGIC).map_err(io)?;
    out.write_all(&SNAPSHOT_VERSION.to_le_bytes()).map_err(io)?;
    ciborium::into_writer(
        &SnapshotOut {
            format: SNAPSHOT_FORMAT,
            version: SNAPSHOT_VERSION,
            saved_at_ms: now_ms,
            store,
            totals,
        },
        &mut out,
    )
    .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let written = file.metadata().map_err(io)?.len();
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(written)
}

/// Reads `path`: `Ok(None)` when there is no file.
pub fn read(path: &Path) -> Result<Option<WindowStore>, SnapshotError> {
    Ok(read_all(path)?.map(|r| r.store))
}

/// Reads `path` with the totals: `Ok(None)` when there is no file.
pub fn read_all(path: &Path) -> Result<Option<Restored>, SnapshotError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if let Some(rest) = bytes.strip_prefix(CHECKPOINT_MAGIC) {
        let Some((version, cbor)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt("a header cut short".into()));
        };
        let version = u32::from_le_bytes(*version);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Foreign {
                path: path.to_owned(),
                reason: format!(
                    "checkpoint version {version}, this build reads {SNAPSHOT_VERSION}"
                ),
            });
        }
        let mut snapshot: SnapshotIn =
            ciborium::from_reader(cbor).map_err(|e| corrupt(e.to_string()))?;
        snapshot.store.validate_restored().map_err(corrupt)?;
        return Ok(Some(Restored {
            store: snapshot.store,
            totals: snapshot.totals,
        }));
    }
    let header: Header = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if header.format.as_deref() != Some(SNAPSHOT_FORMAT) {
        return Err(SnapshotError::Foreign {
            path: path.to_owned(),
            reason: format!("format {:?}, expected {SNAPSHOT_FORMAT:?}", header.format),
        });
    }
    if header.version != Some(SNAPSHOT_VERSION) {
        return Err(SnapshotError::Foreign {
            path: path.to_owned(),
            reason: format!(
                "version {:?}, this build reads {SNAPSHOT_VERSION}",
                header.version
            ),
        });
    }
    let mut snapshot: SnapshotIn =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    snapshot.store.validate_restored().map_err(corrupt)?;
    Ok(Some(Restored {
        store: snapshot.store,
        totals: snapshot.totals,
    }))
}

/// Renames a bad snapshot to `<path>.rejected-<now_ms>` so that it is kept
/// for a person to look at and never read again.
pub fn set_aside(path: &Path, now_ms: u64) -> Result<PathBuf, SnapshotError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".rejected-{now_ms}"));
    let aside = PathBuf::from(name);
    std::fs::rename(path, &aside).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lumen-snap-{}-{name}", std::process::id()));
        // Process ids are reused: a directory left by an earlier run is not ours.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("snapshot.json")
    }

    #[test]
    fn round_trip_missing_truncated_and_foreign() {
        let path = temp("rt");
        assert!(read(&path).expect("no file is fine").is_none());
        let store = WindowStore::new(Duration::from_secs(86_400));
        let bytes = encode(&store, 5);
        write(&path, &bytes).expect("written");
        assert_eq!(read(&path).expect("reads").expect("present"), store);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        assert!(matches!(read(&path), Err(SnapshotError::Corrupt { .. })));
        let aside = set_aside(&path, 42).expect("renamed");
        assert!(
            aside
                .to_string_lossy()
                .ends_with("snapshot.json.rejected-42")
        );
        assert!(read(&path).expect("gone").is_none());
        std::fs::write(&path, br#"{"format":"something-else","version":1}"#).expect("write");
        let err = read(&path).expect_err("foreign");
        assert!(err.to_string().contains("is not ours"), "{err}");
        std::fs::write(
            &path,
            format!(r#"{{"format":"{SNAPSHOT_FORMAT}","version":9}}"#),
        )
        .expect("write");
        assert!(matches!(read(&path), Err(SnapshotError::Foreign { .. })));
    }

    #[test]
    fn a_streamed_snapshot_reads_back_with_its_totals() {
        let path = temp("streamed");
        let store = WindowStore::new(Duration::from_secs(86_400));
        let totals = serde_json::json!({ "requests": [] });
        let written = write_streamed(&path, &store, Some(&totals), 7).expect("written");
        assert_eq!(written, std::fs::metadata(&path).expect("a file").len());
        assert!(
            std::fs::read(&path)
                .expect("a file")
                .starts_with(CHECKPOINT_MAGIC)
        );
        let back = read_all(&path).expect("reads").expect("present");
        assert_eq!(back.store, store);
        assert_eq!(back.totals, Some(totals));
        // Cut short, it is corrupt, not half-trusted.
        let bytes = std::fs::read(&path).expect("a file");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        assert!(matches!(
            read_all(&path),
            Err(SnapshotError::Corrupt { .. })
        ));
    }
}
