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
/// The first bytes of a binary checkpoint (a 12-byte header: these 8
/// bytes and the version, u32 little-endian; then CBOR, zlib-compressed
/// from version 2 on). A file starting with `{` is an older JSON snapshot,
/// still read.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"LUMENCKP";
/// The checkpoint version this build writes: CBOR in a zlib stream
/// (DEFLATE with an Adler-32 check): about 45 % of the plain CBOR, at
/// about 150 MB/s.
pub const SNAPSHOT_VERSION: u32 = 2;
/// The plain-CBOR checkpoint version of earlier builds, still read.
pub const PLAIN_CHECKPOINT_VERSION: u32 = 1;
/// The JSON snapshot version of earlier builds, still read.
pub const JSON_SNAPSHOT_VERSION: u32 = 1;

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
        version: JSON_SNAPSHOT_VERSION,
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
/// whole in memory. The new file is read back and checked before it
/// replaces the old one, so a checkpoint that would not read at the next
/// start never replaces anything (and the log segments it would have
/// covered are kept); a failed attempt leaves no temporary file behind.
/// Returns the bytes written.
pub fn write_streamed(
    path: &Path,
    store: &WindowStore,
    totals: Option<&serde_json::Value>,
    now_ms: u64,
) -> Result<u64, SnapshotError> {
    let tmp = path.with_extension("tmp");
    let written = write_checked(&tmp, store, totals, now_ms).and_then(|written| {
        std::fs::rename(&tmp, path).map_err(|source| SnapshotError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(written)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes the checkpoint to `tmp`, syncs it and reads it back.
fn write_checked(
    tmp: &Path,
    store: &WindowStore,
    totals: Option<&serde_json::Value>,
    now_ms: u64,
) -> Result<u64, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: tmp.to_owned(),
        source,
    };
    let file = create_new(tmp).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    out.write_all(CHECKPOINT_MAGIC).map_err(io)?;
    out.write_all(&SNAPSHOT_VERSION.to_le_bytes()).map_err(io)?;
    let mut deflate = flate2::write::ZlibEncoder::new(out, flate2::Compression::fast());
    ciborium::into_writer(
        &SnapshotOut {
            format: SNAPSHOT_FORMAT,
            version: SNAPSHOT_VERSION,
            saved_at_ms: now_ms,
            store,
            totals,
        },
        &mut deflate,
    )
    .map_err(|e| match e {
        ciborium::ser::Error::Io(e) => io(e),
        other => io(std::io::Error::other(other.to_string())),
    })?;
    let out = deflate.finish().map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let written = file.metadata().map_err(io)?.len();
    drop(file);
    // Read back as the next start would, one minute at a time.
    let checked = check(tmp)?;
    if checked.store.summary() != store.summary() || checked.totals.as_ref() != totals {
        return Err(SnapshotError::Corrupt {
            path: tmp.to_owned(),
            reason: format!(
                "read back, it holds {:?} (slots, requests) where the store holds {:?}",
                checked.store.summary(),
                store.summary()
            ),
        });
    }
    Ok(written)
}

/// A checkpoint read to check it, its minutes not kept.
#[derive(Deserialize)]
struct SnapshotCheck {
    store: crate::store::StoreCheck,
    #[serde(default)]
    totals: Option<serde_json::Value>,
}

/// Reads the binary checkpoint at `path` without keeping its minutes.
fn check(path: &Path) -> Result<SnapshotCheck, SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file = open_no_follow(path).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    match read_head(path, &mut reader)? {
        Head::Binary(SNAPSHOT_VERSION) => {
            decode_cbor(path, &mut reader, SNAPSHOT_VERSION)?.map_err(corrupt)
        }
        _ => Err(corrupt(format!(
            "not a version {SNAPSHOT_VERSION} checkpoint"
        ))),
    }
}

/// What a file's first bytes say it is.
enum Head {
    /// A binary checkpoint of this version.
    Binary(u32),
    /// Anything else (an older JSON snapshot, or not ours): its first bytes.
    Other(Vec<u8>),
}

/// Reads the header of the file behind `reader`: a binary checkpoint's
/// version, or the bytes read; a binary header cut short is corrupt.
fn read_head(
    path: &Path,
    reader: &mut std::io::BufReader<std::fs::File>,
) -> Result<Head, SnapshotError> {
    let mut head = [0_u8; 12];
    let got = read_up_to(reader, &mut head).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    let magic = got.min(CHECKPOINT_MAGIC.len());
    if got == 0 || head[..magic] != CHECKPOINT_MAGIC[..magic] {
        return Ok(Head::Other(head[..got].to_vec()));
    }
    if got < head.len() {
        return Err(SnapshotError::Corrupt {
            path: path.to_owned(),
            reason: "a header cut short".into(),
        });
    }
    Ok(Head::Binary(u32::from_le_bytes(
        head[8..].try_into().expect("4 bytes"),
    )))
}

/// The CBOR body of a binary checkpoint of `version` (1: plain, 2:
/// zlib), read to its end: `Err` on I/O, `Ok(Err)` when it does not
/// decode or has bytes after it.
fn decode_cbor<T: serde::de::DeserializeOwned>(
    path: &Path,
    reader: &mut std::io::BufReader<std::fs::File>,
    version: u32,
) -> Result<Result<T, String>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    fn read_to_end<T: serde::de::DeserializeOwned>(
        r: &mut impl std::io::Read,
    ) -> std::io::Result<Result<T, String>> {
        let value = match ciborium::from_reader::<T, _>(&mut *r) {
            Ok(v) => v,
            Err(ciborium::de::Error::Io(e)) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
                return Err(e);
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
        let mut rest = [0_u8; 1];
        Ok(if read_up_to(r, &mut rest)? > 0 {
            Err("bytes after the checkpoint".into())
        } else {
            Ok(value)
        })
    }
    match version {
        SNAPSHOT_VERSION => {
            let mut inflate = flate2::bufread::ZlibDecoder::new(reader);
            match read_to_end(&mut inflate) {
                // A cut or damaged stream is corrupt data, not I/O.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::InvalidInput
                            | std::io::ErrorKind::InvalidData
                            | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    Ok(Err(e.to_string()))
                }
                other => other.map_err(io),
            }
        }
        PLAIN_CHECKPOINT_VERSION => read_to_end(reader).map_err(io),
        other => Err(SnapshotError::Foreign {
            path: path.to_owned(),
            reason: format!(
                "checkpoint version {other}, this build reads 1 and {SNAPSHOT_VERSION}"
            ),
        }),
    }
}

/// Opens `path` for reading, never through a link.
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(super::wal::NO_FOLLOW)
        .open(path)
}

/// Creates `path` afresh for writing, never through a link: a link (or
/// anything else) by that name is removed first, so what is written lands
/// in the state directory itself.
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Reads `path`: `Ok(None)` when there is no file.
pub fn read(path: &Path) -> Result<Option<WindowStore>, SnapshotError> {
    Ok(read_all(path)?.map(|r| r.store))
}

/// Reads `path` with the totals: `Ok(None)` when there is no file.
pub fn read_all(path: &Path) -> Result<Option<Restored>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match open_no_follow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(source)),
    };
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    // A binary checkpoint is decoded as it is read, never held whole.
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut bytes = match read_head(path, &mut reader)? {
        Head::Binary(version) => {
            let mut snapshot: SnapshotIn =
                decode_cbor(path, &mut reader, version)?.map_err(corrupt)?;
            snapshot.store.validate_restored().map_err(corrupt)?;
            return Ok(Some(Restored {
                store: snapshot.store,
                totals: snapshot.totals,
            }));
        }
        Head::Other(bytes) => bytes,
    };
    // An older JSON snapshot: read whole.
    std::io::Read::read_to_end(&mut reader, &mut bytes).map_err(io)?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if header.format.as_deref() != Some(SNAPSHOT_FORMAT) {
        return Err(SnapshotError::Foreign {
            path: path.to_owned(),
            reason: format!("format {:?}, expected {SNAPSHOT_FORMAT:?}", header.format),
        });
    }
    if header.version != Some(JSON_SNAPSHOT_VERSION) {
        return Err(SnapshotError::Foreign {
            path: path.to_owned(),
            reason: format!(
                "version {:?}, this build reads {JSON_SNAPSHOT_VERSION}",
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

/// Fills `buf` from `reader` as far as it goes: the bytes read (fewer
/// only at the end).
fn read_up_to(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Renames a bad snapshot to `<path>.rejected-<now_ms>` so that it is kept
/// for a person to look at and never read again. Only the latest one is
/// kept: earlier rejected files of `path` are deleted first, so they never
/// fill the state volume.
pub fn set_aside(path: &Path, now_ms: u64) -> Result<PathBuf, SnapshotError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".rejected-{now_ms}"));
    let aside = PathBuf::from(name);
    if let (Some(dir), Some(file)) = (path.parent(), path.file_name()) {
        let mut prefix = file.to_owned();
        prefix.push(".rejected-");
        let prefix = prefix.to_string_lossy().into_owned();
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
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

    #[test]
    fn only_the_latest_rejected_file_is_kept() {
        let path = temp("rejected");
        for at in [1, 2, 3] {
            std::fs::write(&path, b"not a checkpoint").expect("write");
            set_aside(&path, at).expect("renamed");
        }
        let dir = path.parent().expect("a dir");
        let names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["snapshot.json.rejected-3"]);
    }

    #[test]
    fn a_link_in_place_of_the_temporary_file_is_not_written_through() {
        let path = temp("link");
        let dir = path.parent().expect("a dir");
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"keep me").expect("write");
        std::os::unix::fs::symlink(&target, path.with_extension("tmp")).expect("symlink");
        let store = WindowStore::new(Duration::from_secs(86_400));
        write_streamed(&path, &store, None, 1).expect("written");
        assert_eq!(std::fs::read(&target).expect("target"), b"keep me");
        assert_eq!(read(&path).expect("reads").expect("present"), store);
        assert!(
            !std::fs::symlink_metadata(&path)
                .expect("a file")
                .is_symlink()
        );
    }

    #[test]
    fn a_checkpoint_behind_a_link_is_not_read() {
        let path = temp("read-link");
        let dir = path.parent().expect("a dir");
        let elsewhere = dir.join("elsewhere");
        let store = WindowStore::new(Duration::from_secs(86_400));
        write_streamed(&elsewhere, &store, None, 1).expect("written");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("symlink");
        assert!(matches!(read(&path), Err(SnapshotError::Io { .. })));
        // The next checkpoint replaces the link, not its target.
        write_streamed(&path, &store, None, 2).expect("written");
        assert!(
            !std::fs::symlink_metadata(&path)
                .expect("a file")
                .is_symlink()
        );
        assert_eq!(read(&path).expect("reads").expect("present"), store);
    }

    #[test]
    fn a_write_that_fails_leaves_no_temporary_file() {
        let path = temp("fails");
        // The checkpoint's own name is a directory: the rename fails, and a
        // write into a missing directory fails before it.
        std::fs::create_dir_all(&path).expect("dir");
        let store = WindowStore::new(Duration::from_secs(86_400));
        assert!(write_streamed(&path, &store, None, 1).is_err());
        assert!(!path.with_extension("tmp").exists());
        let missing = path.join("no-such-dir").join("checkpoint");
        assert!(write_streamed(&missing, &store, None, 1).is_err());
        assert!(!missing.with_extension("tmp").exists());
    }

    #[test]
    fn plain_checkpoints_of_earlier_builds_still_read_and_damage_is_corrupt() {
        let path = temp("versions");
        let store = WindowStore::new(Duration::from_secs(86_400));
        let mut plain = CHECKPOINT_MAGIC.to_vec();
        plain.extend(PLAIN_CHECKPOINT_VERSION.to_le_bytes());
        ciborium::into_writer(
            &SnapshotOut {
                format: SNAPSHOT_FORMAT,
                version: PLAIN_CHECKPOINT_VERSION,
                saved_at_ms: 1,
                store: &store,
                totals: None,
            },
            &mut plain,
        )
        .expect("CBOR");
        std::fs::write(&path, &plain).expect("write");
        assert_eq!(read(&path).expect("reads").expect("present"), store);

        write_streamed(&path, &store, Some(&serde_json::json!({"a": 1})), 2).expect("written");
        let mut bytes = std::fs::read(&path).expect("a file");
        assert_eq!(bytes[8..12], SNAPSHOT_VERSION.to_le_bytes());
        let middle = 12 + (bytes.len() - 12) / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(read(&path), Err(SnapshotError::Corrupt { .. })));
        std::fs::write(&path, &bytes[..10]).expect("write");
        assert!(matches!(read(&path), Err(SnapshotError::Corrupt { .. })));
        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&9_u32.to_le_bytes());
        std::fs::write(&path, &future).expect("write");
        assert!(matches!(read(&path), Err(SnapshotError::Foreign { .. })));
    }
}
