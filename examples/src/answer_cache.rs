//! The answer cache: an in-process L1 (quick_cache, its capacity from
//! Lumen's tuning channel) in front of Redis when configured, else a map in
//! the process. Every lookup is reported to Lumen once, as a hit (L1 or
//! Redis) or a miss, and each tier's lookup is timed (the origin's fetch
//! is timed by the handler).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lumen_middleware::cache::{self, Tier};
use lumen_middleware::tuning::CacheTuning;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Prefix of every key this API writes.
pub const KEY_PREFIX: &str = "lumen:answer:";

type L1 = quick_cache::sync::Cache<String, (String, Instant)>;

/// An in-process L1 whose capacity follows the tuning channel: a new
/// capacity starts a new, empty L1 (rare: the loop moves it seldom).
pub struct L1Cache {
    cache: RwLock<Arc<L1>>,
    capacity: AtomicU64,
    tuning: &'static CacheTuning,
}

impl std::fmt::Debug for L1Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1Cache")
            .field("capacity", &self.capacity.load(Ordering::Relaxed))
            .finish()
    }
}

impl L1Cache {
    /// An L1 of `capacity` entries until `tuning` says otherwise (0: none).
    pub fn new(capacity: u64, tuning: &'static CacheTuning) -> Self {
        Self {
            cache: RwLock::new(Arc::new(L1::new(capacity.max(1) as usize))),
            capacity: AtomicU64::new(capacity),
            tuning,
        }
    }

    /// The capacity held now.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// The capacity in force: the tuning channel's if it changed (the L1 is
    /// rebuilt to it now), else the one held.
    pub fn capacity_in_force(&self) -> u64 {
        let _ = self.current();
        self.capacity()
    }

    fn current(&self) -> Option<Arc<L1>> {
        if let Some(wanted) = self.tuning.l1_capacity()
            && wanted != self.capacity()
        {
            tracing::info!(
                from = self.capacity(),
                to = wanted,
                "L1 capacity changed by the tuning channel"
            );
            *self
                .cache
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Arc::new(L1::new(wanted.max(1) as usize));
            self.capacity.store(wanted, Ordering::Relaxed);
        }
        (self.capacity() > 0).then(|| {
            Arc::clone(
                &self
                    .cache
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        })
    }

    fn get(&self, key: &str) -> Option<String> {
        let l1 = self.current()?;
        l1.get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(v, _)| v)
    }

    fn put(&self, key: &str, answer: &str, ttl: Duration) {
        if let Some(l1) = self.current() {
            l1.insert(key.to_owned(), (answer.to_owned(), Instant::now() + ttl));
        }
    }
}

/// The answer cache: an optional L1 in front of the store.
#[derive(Debug)]
pub struct AnswerCache {
    store: AnswerStore,
    l1: Option<L1Cache>,
}

/// Where answers are kept behind the L1.
pub enum AnswerStore {
    /// A Redis server (reconnects by itself).
    Redis(ConnectionManager),
    /// A map in this process, for machines without Redis.
    InProcess(Mutex<HashMap<String, (String, Instant)>>),
}

impl std::fmt::Debug for AnswerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Redis(_) => "AnswerStore::Redis",
            Self::InProcess(_) => "AnswerStore::InProcess",
        })
    }
}

/// A stable 64-bit hash of a key (SipHash with fixed keys: the same in
/// every process, so every instance samples the same keys).
pub fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(key)
}

/// Lower case, single spaces, no trailing `?`, `!` or `.`: "What is SLO?"
/// and "what  is slo" are one question.
pub fn normalise(question: &str) -> String {
    let words: Vec<&str> = question.split_whitespace().collect();
    words
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['?', '!', '.'])
        .trim()
        .to_owned()
}

impl AnswerCache {
    /// Redis at `url`, without an L1.
    pub async fn redis(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            store: AnswerStore::Redis(client.get_connection_manager().await?),
            l1: None,
        })
    }

    /// An in-process cache, without an L1.
    pub fn in_process() -> Self {
        Self {
            store: AnswerStore::InProcess(Mutex::new(HashMap::new())),
            l1: None,
        }
    }

    /// With `l1` in front.
    pub fn with_l1(mut self, l1: L1Cache) -> Self {
        self.l1 = Some(l1);
        self
    }

    /// The L1, if there is one.
    pub fn l1(&self) -> Option<&L1Cache> {
        self.l1.as_ref()
    }

    /// The cached answer to `key`, reporting one hit or miss to Lumen (L1
    /// first, then the store; a store hit refills the L1 for `ttl`). A
    /// Redis failure counts as a miss (and is logged): the question is
    /// answered by the backend instead.
    pub async fn get(&self, key: &str, ttl: Duration) -> Option<String> {
        // The key's hash feeds Lumen's miss-ratio curve (the L1 size).
        let hash = key_hash(key);
        if let Some(l1) = &self.l1 {
            let started = Instant::now();
            let found = l1.get(key);
            cache::record_tier(Tier::L1, started.elapsed());
            if let Some(found) = found {
                cache::record_key(hash, true);
                return Some(found);
            }
        }
        // Each tier's lookups are timed: the sidecar weighs them with the
        // hit rates to say whether the L1, Redis or both pay off.
        let started = Instant::now();
        let found = self.store.get(key).await;
        cache::record_tier(self.store.tier(), started.elapsed());
        if let (Some(v), Some(l1)) = (&found, &self.l1) {
            l1.put(key, v, ttl);
        }
        cache::record_key(hash, found.is_some());
        found
    }

    /// Caches `answer` for `ttl`, in the L1 and the store.
    pub async fn put(&self, key: &str, answer: &str, ttl: Duration) {
        if let Some(l1) = &self.l1 {
            l1.put(key, answer, ttl);
        }
        self.store.put(key, answer, ttl).await;
    }
}

impl AnswerStore {
    /// The tier this store is: Redis is shared (L2), the in-process map is
    /// the app's own (L1).
    fn tier(&self) -> Tier {
        match self {
            Self::Redis(_) => Tier::L2,
            Self::InProcess(_) => Tier::L1,
        }
    }

    async fn get(&self, key: &str) -> Option<String> {
        match self {
            Self::Redis(con) => {
                let mut con = con.clone();
                match con
                    .get::<_, Option<String>>(format!("{KEY_PREFIX}{key}"))
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "redis GET failed; answering from the backend");
                        None
                    }
                }
            }
            Self::InProcess(map) => {
                let map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                map.get(key)
                    .filter(|(_, expires)| *expires > Instant::now())
                    .map(|(v, _)| v.clone())
            }
        }
    }

    async fn put(&self, key: &str, answer: &str, ttl: Duration) {
        match self {
            Self::Redis(con) => {
                let mut con = con.clone();
                let result: Result<(), _> = con
                    .set_ex(format!("{KEY_PREFIX}{key}"), answer, ttl.as_secs().max(1))
                    .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "redis SET failed; the answer is not cached");
                }
            }
            Self::InProcess(map) => {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                map.insert(key.to_owned(), (answer.to_owned(), Instant::now() + ttl));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_normalise() {
        assert_eq!(normalise("  What is an   SLO? "), "what is an slo");
        assert_eq!(normalise("what is an slo"), "what is an slo");
        assert_eq!(normalise("Why?!"), "why");
    }

    #[tokio::test]
    async fn in_process_entries_expire() {
        let c = AnswerCache::in_process();
        let ttl = Duration::from_secs(60);
        c.put("k", "v", ttl).await;
        assert_eq!(c.get("k", ttl).await.as_deref(), Some("v"));
        c.put("gone", "v", Duration::ZERO).await;
        assert_eq!(c.get("gone", ttl).await, None);
    }

    #[tokio::test]
    async fn the_l1_answers_first() {
        let tuning = lumen_middleware::tuning().cache("test:l1");
        let c = AnswerCache::in_process().with_l1(L1Cache::new(10, tuning));
        let ttl = Duration::from_secs(60);
        c.put("k", "v", ttl).await;
        // Gone from the store, still in the L1.
        if let AnswerStore::InProcess(map) = &c.store {
            map.lock().expect("lock").clear();
        }
        assert_eq!(c.get("k", ttl).await.as_deref(), Some("v"));
        assert_eq!(c.l1().map(L1Cache::capacity), Some(10));
    }
}
