//! A route's sample of cache keys for the sidecar's miss-ratio curve:
//! spatial sampling (SHARDS) keeps a key when the top 24 bits of its mixed
//! hash are below a threshold, so every access to a sampled key is kept.
//! Sampled accesses go into a fixed ring of atomics (no lock, no
//! allocation after the route's first sampled key); an interval holds at
//! most [`RING_SLOTS`] of them, the rest are counted as dropped. A drain
//! racing a writer can lose that one access: a sample, not a census.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Sampled accesses one route keeps per interval (32 KiB, allocated at the
/// route's first sampled key): at 1 %, 409,600 keyed lookups an interval,
/// 40,000 a second at the default 10-second interval.
pub const RING_SLOTS: usize = 4096;
/// The spatial-hash modulus: 24 bits.
pub const MODULUS: u32 = 1 << 24;
/// The default sampling rate: 1 % of keys.
pub const DEFAULT_THRESHOLD: u32 = MODULUS / 100;

/// The process's sampling threshold (of [`MODULUS`]).
pub(crate) static THRESHOLD: AtomicU32 = AtomicU32::new(DEFAULT_THRESHOLD);

/// Mixes an app's key hash (Fibonacci hashing): poor hashes still spread.
#[inline]
pub(crate) fn mix(hash: u64) -> u64 {
    (hash ^ (hash >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What the sample keeps of a lookup of the key hashed to `hash`: its
/// mixed hash (never 0, which marks an empty slot: the lowest bit is not
/// part of the spatial value) when the key is sampled at the process's
/// threshold, else `None`.
#[inline]
pub fn sampled(hash: u64) -> Option<u64> {
    let mixed = mix(hash);
    (((mixed >> 40) as u32) < THRESHOLD.load(Ordering::Relaxed)).then_some(mixed | 1)
}

/// One route's ring.
#[derive(Debug, Default)]
pub(crate) struct KeyRing {
    slots: OnceLock<Box<[AtomicU64]>>,
    next: AtomicUsize,
    lookups: AtomicU64,
    dropped: AtomicU64,
}

/// What a drain takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DrainedKeys {
    pub(crate) accesses: Vec<u64>,
    pub(crate) lookups: u64,
    pub(crate) dropped: u64,
}

impl KeyRing {
    /// Counts one keyed lookup and keeps it when its key is sampled.
    #[inline]
    pub(crate) fn record(&self, hash: u64) {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let Some(kept) = sampled(hash) else {
            return;
        };
        let at = self.next.fetch_add(1, Ordering::Relaxed);
        if at >= RING_SLOTS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let slots = self
            .slots
            .get_or_init(|| (0..RING_SLOTS).map(|_| AtomicU64::new(0)).collect());
        slots[at].store(kept, Ordering::Relaxed);
    }

    /// Takes the interval's sample.
    pub(crate) fn drain(&self) -> DrainedKeys {
        let n = self.next.swap(0, Ordering::Relaxed).min(RING_SLOTS);
        let mut accesses = Vec::with_capacity(n);
        if let Some(slots) = self.slots.get() {
            for slot in &slots[..n] {
                let v = slot.swap(0, Ordering::Relaxed);
                if v != 0 {
                    accesses.push(v);
                }
            }
        }
        DrainedKeys {
            accesses,
            lookups: self.lookups.swap(0, Ordering::Relaxed),
            dropped: self.dropped.swap(0, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_the_threshold_share_of_keys_is_kept_with_every_access() {
        let ring = KeyRing::default();
        for _round in 0..3 {
            for key in 0..20_000u64 {
                ring.record(key);
            }
            let d = ring.drain();
            assert_eq!(d.lookups, 20_000);
            // 1 % of 20 000 keys ≈ 200 (each once a round), within the ring.
            assert!(
                (120..=280).contains(&d.accesses.len()),
                "{}",
                d.accesses.len()
            );
            assert!(
                d.accesses
                    .iter()
                    .all(|h| ((h >> 40) as u32) < DEFAULT_THRESHOLD)
            );
        }
        // Overflow is counted, not stored.
        let hot = (0..)
            .find(|k| ((mix(*k) >> 40) as u32) < DEFAULT_THRESHOLD)
            .expect("some key is sampled");
        for _ in 0..RING_SLOTS + 500 {
            ring.record(hot);
        }
        let d = ring.drain();
        assert_eq!((d.accesses.len(), d.dropped), (RING_SLOTS, 500));
    }
}
