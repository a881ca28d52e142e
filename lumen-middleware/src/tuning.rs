//! The tuning channel, app side: the parameters the sidecar's feedback
//! loop sets (a cache's TTL, its in-process L1 capacity) arrive on each
//! ingest answer; the shipper stores them here, and the app reads them
//! where it uses them. A read is one relaxed atomic load: no lock, no
//! allocation. Take a cache's handle once (that registers its name), keep
//! it, read it per request:
//!
//! ```
//! use std::time::Duration;
//! use lumen_middleware::tuning;
//!
//! let answers = tuning().cache("/ask");
//! // Per request: the loop's TTL once it set one, else the app's own.
//! let ttl = answers.ttl_or(Duration::from_secs(300));
//! assert_eq!(ttl, Duration::from_secs(300));
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::wire::TuningAnswer;

/// Caches the channel keeps at most (names past it are ignored: each
/// handle lives as long as the process).
pub const MAX_CACHES: usize = 256;

/// One cache's parameters as the feedback loop last set them.
#[derive(Debug)]
pub struct CacheTuning {
    name: Box<str>,
    ttl_s: AtomicU32,
    l1_capacity: AtomicU64,
}

impl CacheTuning {
    /// Its name (the route whose lookups it serves).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TTL the loop set, if it set one.
    #[inline]
    pub fn ttl(&self) -> Option<Duration> {
        match self.ttl_s.load(Ordering::Relaxed) {
            0 => None,
            s => Some(Duration::from_secs(u64::from(s))),
        }
    }

    /// The TTL the loop set, else `default`.
    #[inline]
    pub fn ttl_or(&self, default: Duration) -> Duration {
        self.ttl().unwrap_or(default)
    }

    /// The L1 capacity (entries) the loop set, if it set one.
    #[inline]
    pub fn l1_capacity(&self) -> Option<u64> {
        match self.l1_capacity.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Every cache's parameters and the version they came with.
#[derive(Debug)]
pub struct Tuning {
    version: AtomicU64,
    caches: Mutex<Vec<&'static CacheTuning>>,
}

static TUNING: Tuning = Tuning {
    version: AtomicU64::new(0),
    caches: Mutex::new(Vec::new()),
};

/// The process's tuning channel.
pub fn tuning() -> &'static Tuning {
    &TUNING
}

impl Tuning {
    /// The handle of cache `name`, registered on first use (that takes a
    /// lock and allocates once: take it at start-up and keep it). Past
    /// [`MAX_CACHES`] names, a handle that no answer sets.
    pub fn cache(&self, name: &str) -> &'static CacheTuning {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = caches.iter().find(|c| &*c.name == name) {
            return found;
        }
        let made: &'static CacheTuning = Box::leak(Box::new(CacheTuning {
            name: name.into(),
            ttl_s: AtomicU32::new(0),
            l1_capacity: AtomicU64::new(0),
        }));
        if caches.len() < MAX_CACHES {
            caches.push(made);
        }
        made
    }

    /// The version of the parameters held (0: none received).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Stores `answer` if it is newer than what is held; whether it was.
    pub(crate) fn apply(&self, answer: &TuningAnswer) -> bool {
        if answer.version <= self.version() {
            return false;
        }
        for (name, params) in &answer.caches {
            let cache = self.cache(name);
            if let Some(ttl) = params.ttl_s {
                cache.ttl_s.store(ttl, Ordering::Relaxed);
            }
            if let Some(n) = params.l1_capacity {
                cache.l1_capacity.store(n, Ordering::Relaxed);
            }
        }
        self.version.store(answer.version, Ordering::Relaxed);
        tracing::info!(
            version = answer.version,
            caches = answer.caches.len(),
            "tuning parameters received"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CacheParams;

    #[test]
    fn newer_answers_set_the_handles_and_older_ones_do_not() {
        let t = Tuning {
            version: AtomicU64::new(0),
            caches: Mutex::new(Vec::new()),
        };
        let ask = t.cache("/ask");
        assert_eq!(ask.ttl(), None);
        let answer = |version, ttl| TuningAnswer {
            version,
            caches: [(
                "/ask".to_owned(),
                CacheParams {
                    ttl_s: Some(ttl),
                    l1_capacity: Some(500),
                },
            )]
            .into(),
        };
        assert!(t.apply(&answer(2, 120)));
        assert_eq!(ask.ttl(), Some(Duration::from_secs(120)));
        assert_eq!(ask.l1_capacity(), Some(500));
        assert!(!t.apply(&answer(1, 60)), "older");
        assert_eq!(ask.ttl_or(Duration::ZERO), Duration::from_secs(120));
        assert!(std::ptr::eq(ask, t.cache("/ask")));
    }
}
