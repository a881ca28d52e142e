//! The write-ahead log's format: segments of length-prefixed, checksummed
//! records, one per accepted batch, read back up to the first bad byte.
//!
//! A segment is the 12-byte header (`LUMENWAL`, then the format version,
//! u32 little-endian) and records: the payload's length (u32 LE), its
//! CRC-32 (u32 LE), then the payload — when the sidecar accepted the batch
//! (Unix ms, u64 LE) and the batch's body exactly as it arrived. Replaying a
//! record is applying its batch again at its acceptance time; the dedup
//! ledger makes a record the checkpoint already holds a no-op.

use std::path::{Path, PathBuf};

/// `O_NOFOLLOW`, for opening state files: a link in the state directory
/// is refused (`ELOOP`) rather than followed to whatever it names.
pub const NO_FOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// The first bytes of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"LUMENWAL";
/// The segment format this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// The header's length.
pub const HEADER_LEN: usize = 12;
/// The largest record payload read back (a batch body is at most 64 MiB).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024 + 8;

/// One accepted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// When the sidecar accepted it, Unix ms.
    pub accepted_ms: u64,
    /// The batch's body as it arrived.
    pub body: Vec<u8>,
}

/// The header of a new segment.
pub fn segment_header() -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

/// Appends the record of `body` accepted at `accepted_ms` to `out`.
pub fn encode_record(accepted_ms: u64, body: &[u8], out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(8 + body.len());
    payload.extend_from_slice(&accepted_ms.to_le_bytes());
    payload.extend_from_slice(body);
    let len = u32::try_from(payload.len()).expect("a body is at most 64 MiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRead {
    /// The good records, in order.
    pub records: Vec<WalRecord>,
    /// Bytes up to the end of the last good record (the header included).
    pub good_len: u64,
    /// Why reading stopped before the end, if it did (a torn or corrupt tail).
    pub torn: Option<String>,
}

/// Reads a segment's bytes up to the first bad byte.
pub fn read_segment(bytes: &[u8]) -> SegmentRead {
    let mut out = SegmentRead {
        records: Vec::new(),
        good_len: 0,
        torn: None,
    };
    if bytes.len() < HEADER_LEN {
        out.torn = (!bytes.is_empty()).then(|| "a header cut short".to_owned());
        return out;
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        out.torn = Some("not a Lumen WAL segment".to_owned());
        return out;
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != SEGMENT_VERSION {
        out.torn = Some(format!(
            "segment version {version}, this build reads {SEGMENT_VERSION}"
        ));
        return out;
    }
    let mut at = HEADER_LEN;
    out.good_len = at as u64;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            out.torn = Some(format!("a record header cut short at byte {at}"));
            break;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if !(8..=MAX_PAYLOAD).contains(&len) {
            out.torn = Some(format!("a record of {len} bytes at byte {at}"));
            break;
        }
        let Some(payload) = rest.get(8..8 + len) else {
            out.torn = Some(format!("a record cut short at byte {at}"));
            break;
        };
        if crc32fast::hash(payload) != crc {
            out.torn = Some(format!("a checksum mismatch at byte {at}"));
            break;
        }
        out.records.push(WalRecord {
            accepted_ms: u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")),
            body: payload[8..].to_vec(),
        });
        at += 8 + len;
        out.good_len = at as u64;
    }
    out
}

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("wal-{n:020}.log")
}

/// The segment number of a file name, if it is a segment's.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")
        .filter(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// The segments in `dir`, ascending: regular files with a segment's name
/// (anything else by that name — a link, a device — is left alone and
/// logged: it is not ours to read).
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(n) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        if entry.file_type()?.is_file() {
            out.push((n, entry.path()));
        } else {
            tracing::warn!(path = %entry.path().display(), "not a regular file: not read as a log segment");
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = segment_header().to_vec();
        for (at, body) in records {
            encode_record(*at, body, &mut out);
        }
        out
    }

    #[test]
    fn records_come_back_as_written() {
        let bytes = segment(&[(1, b"{\"a\":1}"), (2, b""), (3, b"xyz")]);
        let read = read_segment(&bytes);
        assert_eq!(read.torn, None);
        assert_eq!(read.good_len, bytes.len() as u64);
        assert_eq!(
            read.records,
            [
                WalRecord {
                    accepted_ms: 1,
                    body: b"{\"a\":1}".to_vec()
                },
                WalRecord {
                    accepted_ms: 2,
                    body: Vec::new()
                },
                WalRecord {
                    accepted_ms: 3,
                    body: b"xyz".to_vec()
                },
            ]
        );
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_at_the_last_good_record() {
        let whole = segment(&[(1, b"first"), (2, b"second")]);
        let first_end = segment(&[(1, b"first")]).len() as u64;
        // Every cut inside the second record keeps exactly the first.
        for cut in first_end as usize + 1..whole.len() {
            let read = read_segment(&whole[..cut]);
            assert_eq!(read.records.len(), 1, "cut at {cut}");
            assert_eq!(read.good_len, first_end);
            assert!(read.torn.is_some());
        }
        // A flipped bit in the second record's body: its checksum fails.
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let read = read_segment(&flipped);
        assert_eq!(read.records.len(), 1);
        assert!(read.torn.as_deref().is_some_and(|t| t.contains("checksum")));
        // Zeros (a pre-allocated or foreign file) are not records.
        let read = read_segment(&[0; 64]);
        assert!(read.records.is_empty());
        assert_eq!(read.torn.as_deref(), Some("not a Lumen WAL segment"));
        let mut zeros = segment_header().to_vec();
        zeros.extend([0; 64]);
        assert_eq!(read_segment(&zeros).records.len(), 0);
    }

    #[test]
    fn segment_names_sort_and_parse() {
        assert_eq!(parse_segment_name(&segment_name(7)), Some(7));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("wal-7.log"), None);
        assert_eq!(parse_segment_name("checkpoint.json"), None);
    }
}
