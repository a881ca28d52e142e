//! [`LatencyCounts`]: a decoded latency histogram as its non-zero buckets,
//! read straight from the compressed V2 encoding without building a dense
//! histogram (the sidecar decodes thousands of these a second).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

use super::histogram::{MAX_HIGHEST_TRACKABLE_US, MAX_SIGNIFICANT_DIGITS};
use crate::layout::HistogramLayout;

const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304;
const V2_COOKIE: u32 = 0x1c84_9303;
/// Cookies carry the word size in bits 4..8; compare without it.
const WORD_SIZE_BITS: u32 = 0xf0;
/// Longest inflated payload accepted (a dense 3-digit, 1 h histogram of
/// 9-byte counts is under 250 KB).
const MAX_INFLATED_BYTES: u64 = 1 << 20;

/// The non-zero buckets of a histogram, in its own layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyCounts {
    layout: HistogramLayout,
    buckets: Vec<(u32, u64)>,
    total: u64,
}

impl LatencyCounts {
    /// The buckets of `histogram`.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        let layout = HistogramLayout::new(histogram.low(), histogram.high(), histogram.sigfig())
            .expect("an hdrhistogram's bounds make a valid layout");
        let buckets: Vec<(u32, u64)> = histogram
            .iter_recorded()
            .map(|v| {
                (
                    layout.index_of(v.value_iterated_to()) as u32,
                    v.count_at_value(),
                )
            })
            .collect();
        Self {
            layout,
            total: buckets.iter().map(|b| b.1).sum(),
            buckets,
        }
    }

    /// The layout the indices refer to.
    pub fn layout(&self) -> HistogramLayout {
        self.layout
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// `(index, count)` of each non-zero bucket, by ascending index.
    pub fn buckets(&self) -> &[(u32, u64)] {
        &self.buckets
    }

    /// `(highest value of the bucket, count)` of each non-zero bucket.
    pub fn values(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .map(|(i, c)| (self.layout.highest_equivalent(*i as usize), *c))
    }

    /// An `hdrhistogram` holding the same counts.
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(
            self.layout.lowest(),
            self.layout.highest(),
            self.layout.significant_digits(),
        )
        .expect("the layout was valid");
        for (i, c) in &self.buckets {
            h.record_n(self.layout.lowest_equivalent(*i as usize), *c)
                .expect("a bucket's value is in range");
        }
        h
    }

    /// Decodes a base64 V2-compressed histogram, refusing ranges and
    /// precision beyond the wire's limits.
    pub fn decode(encoded: &str) -> Result<Self, String> {
        Self::decode_sized(encoded).map(|(h, _)| h)
    }

    /// [`decode`](Self::decode), with the bytes the histogram inflated to
    /// (what decoding it cost; a batch's histograms together are bounded).
    pub fn decode_sized(encoded: &str) -> Result<(Self, usize), String> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("base64: {e}"))?;
        if bytes.len() < 8 {
            return Err(format!("{} bytes is shorter than the header", bytes.len()));
        }
        let word =
            |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let cookie = word(&bytes, 0);
        if cookie & !WORD_SIZE_BITS != V2_COMPRESSED_COOKIE {
            return Err(format!("cookie {cookie:#010x} is not V2 compressed"));
        }
        let inflated = inflate(&bytes[8..])?;
        if inflated.len() < 40 {
            return Err(format!(
                "inflated header of {} bytes is shorter than 40",
                inflated.len()
            ));
        }
        let long = |at: usize| {
            let mut b = [0_u8; 8];
            b.copy_from_slice(&inflated[at..at + 8]);
            u64::from_be_bytes(b)
        };
        if word(&inflated, 0) & !WORD_SIZE_BITS != V2_COOKIE {
            return Err(format!(
                "inner cookie {:#010x} is not V2",
                word(&inflated, 0)
            ));
        }
        let payload_len = word(&inflated, 4) as usize;
        if word(&inflated, 8) != 0 {
            return Err("a normalizing index offset is not supported".into());
        }
        let digits = word(&inflated, 12);
        if !(1..=MAX_SIGNIFICANT_DIGITS).contains(&digits) {
            return Err(format!(
                "{digits} significant digits; 1 to {MAX_SIGNIFICANT_DIGITS} are accepted"
            ));
        }
        let (lowest, highest) = (long(16), long(24));
        if highest > MAX_HIGHEST_TRACKABLE_US {
            return Err(format!(
                "highest trackable value {highest} exceeds {MAX_HIGHEST_TRACKABLE_US}"
            ));
        }
        let layout =
            HistogramLayout::new(lowest, highest, digits as u8).map_err(|e| e.to_string())?;
        let payload = inflated
            .get(40..40 + payload_len)
            .ok_or_else(|| format!("payload of {payload_len} bytes is truncated"))?;
        let mut buckets = Vec::new();
        let mut total = 0_u64;
        let mut index = 0_u64;
        let mut at = 0;
        while at < payload.len() {
            let v = zig_zag_leb128(payload, &mut at).ok_or("a count is truncated")?;
            if v < 0 {
                index = index.saturating_add(v.unsigned_abs());
                continue;
            }
            if index >= layout.len() as u64 {
                return Err(format!(
                    "count at index {index} is beyond the layout's {} buckets",
                    layout.len()
                ));
            }
            if v > 0 {
                buckets.push((index as u32, v as u64));
                total = total.checked_add(v as u64).ok_or("total count overflows")?;
            }
            index += 1;
        }
        Ok((
            Self {
                layout,
                buckets,
                total,
            },
            inflated.len(),
        ))
    }
}

thread_local! {
    /// One inflater per thread, reset for each histogram: its state is tens
    /// of kilobytes, too much to allocate per series.
    static INFLATER: std::cell::RefCell<Decompress> = std::cell::RefCell::new(Decompress::new(true));
}

/// Inflates a zlib stream of at most [`MAX_INFLATED_BYTES`].
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, String> {
    INFLATER.with(|cell| {
        let mut inflater = cell.borrow_mut();
        inflater.reset(true);
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        loop {
            let consumed = inflater.total_in() as usize;
            let status = inflater
                .decompress_vec(
                    &compressed[consumed.min(compressed.len())..],
                    &mut out,
                    FlushDecompress::None,
                )
                .map_err(|e| format!("inflating: {e}"))?;
            match status {
                Status::StreamEnd => return Ok(out),
                _ if out.len() as u64 >= MAX_INFLATED_BYTES => {
                    return Err(format!("inflates beyond {MAX_INFLATED_BYTES} bytes"));
                }
                _ if out.len() < out.capacity()
                    && inflater.total_in() as usize >= compressed.len() =>
                {
                    return Err("inflating: the stream is truncated".into());
                }
                _ => out.reserve(out.capacity().max(1024)),
            }
        }
    })
}

/// HdrHistogram's ZigZag LEB128 with at most 9 bytes (the 9th holds 8 bits).
fn zig_zag_leb128(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut v = 0_u64;
    for shift in (0..56).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    let b = *bytes.get(*at)?;
    *at += 1;
    v |= u64::from(b) << 56;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_histogram;

    #[test]
    fn agrees_with_the_dense_decoder() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
        for (v, n) in [
            (1_u64, 3_u64),
            (2_047, 1),
            (2_048, 5),
            (150_000, 1 << 40),
            (59_999_999, 2),
        ] {
            h.record_n(v, n).expect("in range");
        }
        let sparse = LatencyCounts::decode(&encode_histogram(&h)).expect("decodes");
        assert_eq!(sparse, LatencyCounts::from_histogram(&h));
        assert_eq!(sparse.len(), h.len());
        assert_eq!(sparse.to_histogram(), h);
    }

    #[test]
    fn decodes_the_python_fixture() {
        let text = include_str!("../../tests/fixtures/python-hdrhistogram.b64");
        let sparse = LatencyCounts::decode(text).expect("decodes");
        assert_eq!(sparse.len(), 1007);
        assert_eq!(sparse.values().last(), Some((250_111, 7)));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let wide = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).expect("valid");
        assert!(
            LatencyCounts::decode(&encode_histogram(&wide))
                .expect_err("wide")
                .contains("highest trackable")
        );
        assert!(
            LatencyCounts::decode("AAAAAAAAAAA=")
                .expect_err("cookie")
                .contains("cookie")
        );
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
        h.record(1000).expect("in range");
        let mut text = encode_histogram(&h);
        text.truncate(text.len() - 8);
        assert!(LatencyCounts::decode(&text).is_err());
        // A whole base64 text of a cut zlib stream.
        let mut bytes = STANDARD.decode(encode_histogram(&h)).expect("base64");
        bytes.truncate(bytes.len() - 6);
        let err = LatencyCounts::decode(&STANDARD.encode(&bytes)).expect_err("cut stream");
        assert!(
            err.contains("inflat") || err.contains("truncated") || err.contains("shorter"),
            "{err}"
        );
    }
}
