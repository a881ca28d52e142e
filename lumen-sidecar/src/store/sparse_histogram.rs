//! A histogram that keeps only its non-zero buckets, packed: each bucket is
//! the gap from the previous bucket's index and its count, both as LEB128
//! varints. A typical bucket costs 2 bytes, so a route's minute costs about
//! 2 bytes per distinct latency bucket it saw.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Non-zero counters of an HDR layout, by ascending index, varint-packed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseHistogram {
    packed: Box<[u8]>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*at`; `None` when truncated or longer than 64 bits.
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0_u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Iterates `(index, count)`; stops at the first malformed byte (only a
/// corrupt snapshot can hold one, and [`SparseHistogram::is_valid_for`]
/// refuses those).
struct Pairs<'a> {
    bytes: &'a [u8],
    at: usize,
    index: u64,
    first: bool,
}

impl Iterator for Pairs<'_> {
    type Item = (u32, u64);

    fn next(&mut self) -> Option<(u32, u64)> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let gap = get_varint(self.bytes, &mut self.at)?;
        let count = get_varint(self.bytes, &mut self.at)?;
        self.index = if self.first {
            gap
        } else {
            self.index.checked_add(gap)?
        };
        self.first = false;
        Some((u32::try_from(self.index).ok()?, count))
    }
}

impl SparseHistogram {
    /// Builds from `(index, count)` pairs in any order; zero counts are
    /// dropped and repeated indices summed.
    pub fn from_pairs(mut pairs: Vec<(u32, u64)>) -> Self {
        pairs.sort_unstable_by_key(|p| p.0);
        let mut merged: Vec<(u32, u64)> = Vec::with_capacity(pairs.len());
        for (index, count) in pairs {
            if count == 0 {
                continue;
            }
            match merged.last_mut() {
                Some(last) if last.0 == index => last.1 = last.1.saturating_add(count),
                _ => merged.push((index, count)),
            }
        }
        Self::pack(&merged)
    }

    /// Packs pairs already sorted by index, distinct and non-zero (as a
    /// [`WindowHistogram`](super::WindowHistogram) holds them).
    pub fn from_sorted(sorted: &[(u32, u64)]) -> Self {
        Self::pack(sorted)
    }

    /// Packs sorted, distinct, non-zero pairs.
    fn pack(sorted: &[(u32, u64)]) -> Self {
        let mut out = Vec::with_capacity(sorted.len() * 2);
        let mut previous = 0_u32;
        for (i, (index, count)) in sorted.iter().enumerate() {
            let gap = if i == 0 { *index } else { index - previous };
            put_varint(&mut out, u64::from(gap));
            put_varint(&mut out, *count);
            previous = *index;
        }
        Self {
            packed: out.into_boxed_slice(),
        }
    }

    /// Adds `other` into this one (a merge of two sorted lists).
    pub fn merge(&mut self, other: &Self) {
        if other.packed.is_empty() {
            return;
        }
        if self.packed.is_empty() {
            *self = other.clone();
            return;
        }
        let merged = {
            let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
            let mut out = Vec::new();
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x.0 == y.0 => {
                        let (x, y) = (a.next(), b.next());
                        x.zip(y).map(|(x, y)| (x.0, x.1.saturating_add(y.1)))
                    }
                    (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, Some(_)) => b.next(),
                    (None, None) => break,
                };
                out.extend(next);
            }
            out
        };
        *self = Self::pack(&merged);
    }

    /// Takes `other` out of this one, bucket by bucket, saturating at
    /// zero: exact when `other` was merged into it (a batch out of the
    /// minute that holds it).
    pub fn subtract(&mut self, other: &Self) {
        if other.packed.is_empty() || self.packed.is_empty() {
            return;
        }
        let mut b = other.iter().peekable();
        let mut out = Vec::new();
        for (index, count) in self.iter() {
            while b.peek().is_some_and(|(i, _)| *i < index) {
                b.next();
            }
            let taken = match b.peek() {
                Some((i, n)) if *i == index => *n,
                _ => 0,
            };
            let left = count.saturating_sub(taken);
            if left > 0 {
                out.push((index, left));
            }
        }
        *self = Self::pack(&out);
    }

    /// Adds every counter into a dense array indexed like the layout;
    /// returns the lowest and highest index touched.
    pub fn add_to_dense(&self, dense: &mut [u64]) -> Option<(usize, usize)> {
        let mut range: Option<(usize, usize)> = None;
        for (index, count) in self.iter() {
            let index = index as usize;
            if let Some(slot) = dense.get_mut(index) {
                *slot = slot.saturating_add(count);
                range = Some(range.map_or((index, index), |(low, _)| (low, index)));
            }
        }
        range
    }

    /// `(index, count)` pairs by ascending index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        Pairs {
            bytes: &self.packed,
            at: 0,
            index: 0,
            first: true,
        }
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.iter().fold(0_u64, |s, (_, c)| s.saturating_add(c))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.packed.len()
    }

    /// Whether the bytes decode completely into ascending indices below
    /// `len` with positive counts: what a snapshot must satisfy before it is
    /// trusted.
    pub fn is_valid_for(&self, len: usize) -> bool {
        self.checked_total(len).is_some()
    }

    /// The total count, when the bytes are valid for a layout of `len`
    /// buckets ([`is_valid_for`](Self::is_valid_for)); one pass.
    pub fn checked_total(&self, len: usize) -> Option<u64> {
        let bytes = &self.packed;
        let mut total = 0_u64;
        let mut at = 0;
        let mut index: Option<u64> = None;
        while at < bytes.len() {
            let (gap, count) = (get_varint(bytes, &mut at)?, get_varint(bytes, &mut at)?);
            let next = match index {
                None => gap,
                Some(_) if gap == 0 => return None,
                Some(i) => i.checked_add(gap)?,
            };
            if count == 0 || next >= len as u64 {
                return None;
            }
            index = Some(next);
            total = total.checked_add(count)?;
        }
        Some(total)
    }
}

/// In text formats (JSON) the packed bytes travel as base64; in binary ones
/// (the CBOR checkpoint) as a byte string.
impl Serialize for SparseHistogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(&self.packed))
        } else {
            s.serialize_bytes(&self.packed)
        }
    }
}

struct PackedVisitor;

impl<'de> serde::de::Visitor<'de> for PackedVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a packed histogram (bytes, or base64 text)")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        STANDARD.decode(v).map_err(E::custom)
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

impl<'de> Deserialize<'de> for SparseHistogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_byte_buf`, not `deserialize_bytes`: a reader may
        // only lend bytes that fit its scratch buffer (ciborium's is 4 KiB,
        // less than one busy minute's histogram), while an owned buffer
        // takes any length.
        let bytes = if d.is_human_readable() {
            d.deserialize_str(PackedVisitor)?
        } else {
            d.deserialize_byte_buf(PackedVisitor)?
        };
        Ok(Self {
            packed: bytes.into_boxed_slice(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_histogram_subtracted_is_the_one_before() {
        let a = SparseHistogram::from_pairs(vec![(3, 5), (70, 1), (900, 2)]);
        let b = SparseHistogram::from_pairs(vec![(3, 2), (71, 4), (900, 2)]);
        let mut sum = a.clone();
        sum.merge(&b);
        sum.subtract(&b);
        assert_eq!(sum, a);
        let mut small = b.clone();
        small.subtract(&a);
        assert_eq!(
            small.iter().collect::<Vec<_>>(),
            vec![(71, 4)],
            "saturates at zero, empty buckets leave"
        );
    }

    #[test]
    fn keeps_sorted_nonzero_sums() {
        let h = SparseHistogram::from_pairs(vec![(5, 1), (2, 3), (5, 4), (9, 0)]);
        assert_eq!(h.iter().collect::<Vec<_>>(), [(2, 3), (5, 5)]);
        assert_eq!(h.total(), 8);
        let mut m = h.clone();
        m.merge(&SparseHistogram::from_pairs(vec![(1, 1), (5, 1)]));
        assert_eq!(m.iter().collect::<Vec<_>>(), [(1, 1), (2, 3), (5, 6)]);
        let mut dense = vec![0; 6];
        m.add_to_dense(&mut dense);
        assert_eq!(dense, [0, 1, 3, 0, 0, 6]);
        assert!(m.is_valid_for(6));
        assert!(!m.is_valid_for(5));
    }

    #[test]
    fn large_indices_and_counts_round_trip_compactly() {
        let pairs = vec![(0, 1), (17_407, u64::MAX), (300, 128), (301, 127)];
        let h = SparseHistogram::from_pairs(pairs);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [(0, 1), (300, 128), (301, 127), (17_407, u64::MAX)]
        );
        // Gap and count bytes: 1+1, 2+2, 1+1, 3+10.
        assert_eq!(h.heap_bytes(), 21);
        let json = serde_json::to_string(&h).expect("serializes");
        let back: SparseHistogram = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, h);
    }

    #[test]
    fn histograms_larger_than_a_readers_scratch_buffer_read_back_in_cbor() {
        // 5,000 distinct buckets pack to more than ciborium's 4 KiB
        // scratch buffer: a busy minute's histogram.
        let h =
            SparseHistogram::from_pairs((0..5_000).map(|i| (i * 3, u64::from(i) + 1)).collect());
        assert!(h.heap_bytes() > 4_096, "{}", h.heap_bytes());
        let mut cbor = Vec::new();
        ciborium::into_writer(&h, &mut cbor).expect("serializes");
        let back: SparseHistogram = ciborium::from_reader(cbor.as_slice()).expect("reads back");
        assert_eq!(back, h);
    }

    #[test]
    fn malformed_bytes_are_invalid() {
        for bytes in [vec![0x80], vec![1, 0], vec![5, 1, 0, 1], vec![0xff; 11]] {
            let h = SparseHistogram {
                packed: bytes.clone().into_boxed_slice(),
            };
            assert!(!h.is_valid_for(100), "{bytes:?}");
        }
    }
}
