//! The standard HdrHistogram "compressed" encoding: V2 + DEFLATE, in base64.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::read::ZlibDecoder;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// The highest trackable value a batch's histogram may declare: one hour in
/// microseconds. It bounds what decoding a hostile header can allocate.
pub const MAX_HIGHEST_TRACKABLE_US: u64 = 3_600_000_000;
/// The most significant digits a batch's histogram may declare.
pub const MAX_SIGNIFICANT_DIGITS: u32 = 3;

// Cookies carry the word size in bits 4..8 (0x10 in practice); compare without it.
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304;
const V2_COOKIE: u32 = 0x1c84_9303;
const WORD_SIZE_BITS: u32 = 0xf0;

/// Encodes `histogram` the way HdrHistogram's `encode()` does in Java,
/// Python and Go: V2 format, DEFLATE, base64 with padding.
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into a Vec cannot fail on I/O, and the histogram is in range");
    STANDARD.encode(bytes)
}

/// Decodes a base64 compressed histogram, refusing headers that declare a
/// range or precision beyond [`MAX_HIGHEST_TRACKABLE_US`] and
/// [`MAX_SIGNIFICANT_DIGITS`] before anything is allocated for them.
pub fn decode_histogram(encoded: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("base64: {e}"))?;
    check_header(&bytes)?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("{e:?}"))
}

/// Reads the compressed header and the start of the inflated V2 header.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    let cookie = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if cookie & !WORD_SIZE_BITS != V2_COMPRESSED_COOKIE {
        return Err(format!("cookie {cookie:#010x} is not V2 compressed"));
    }
    let mut header = [0_u8; 40];
    ZlibDecoder::new(&bytes[8..])
        .read_exact(&mut header)
        .map_err(|e| format!("inflating the header: {e}"))?;
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let long = |at: usize| {
        let mut b = [0_u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if word(0) & !WORD_SIZE_BITS != V2_COOKIE {
        return Err(format!("inner cookie {:#010x} is not V2", word(0)));
    }
    let digits = word(12);
    if !(1..=MAX_SIGNIFICANT_DIGITS).contains(&digits) {
        return Err(format!(
            "{digits} significant digits; 1 to {MAX_SIGNIFICANT_DIGITS} are accepted"
        ));
    }
    let highest = long(24);
    if highest > MAX_HIGHEST_TRACKABLE_US {
        return Err(format!(
            "highest trackable value {highest} exceeds {MAX_HIGHEST_TRACKABLE_US}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Produced by the Python `hdrhistogram` package (0.10.8):
    /// `h = HdrHistogram(1, 60_000_000, 3)`; `h.record_value(v)` for
    /// v in 1..=1000; `h.record_value(250_000, 7)`; `h.encode()`.
    const PYTHON_FIXTURE: &str = include_str!("../../tests/fixtures/python-hdrhistogram.b64");

    #[test]
    fn round_trips() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
        for v in [1_u64, 17, 999, 1_000_000, 59_000_000] {
            h.record_n(v, v % 7 + 1).expect("in range");
        }
        let back = decode_histogram(&encode_histogram(&h)).expect("decodes");
        assert_eq!(back, h);
    }

    #[test]
    fn decodes_another_implementation() {
        let h = decode_histogram(PYTHON_FIXTURE).expect("python encoding decodes");
        assert_eq!(h.len(), 1007);
        assert_eq!(h.count_at(500), 1);
        assert_eq!(h.count_at(250_000), 7);
        assert_eq!(h.max(), h.highest_equivalent(250_000));
        assert_eq!(h.min(), 1);
    }

    #[test]
    fn refuses_garbage_and_hostile_headers() {
        assert!(
            decode_histogram("***")
                .expect_err("not base64")
                .starts_with("base64")
        );
        assert!(decode_histogram("AAAA").is_err());
        let wide = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).expect("valid");
        let err = decode_histogram(&encode_histogram(&wide)).expect_err("too wide");
        assert!(err.contains("highest trackable"), "{err}");
        let fine = Histogram::<u64>::new_with_bounds(1, 1000, 4).expect("valid");
        let err = decode_histogram(&encode_histogram(&fine)).expect_err("too precise");
        assert!(err.contains("significant digits"), "{err}");
        let mut truncated = encode_histogram(&Histogram::<u64>::new(3).expect("valid"));
        truncated.truncate(truncated.len() / 2);
        assert!(decode_histogram(&truncated).is_err());
    }
}
