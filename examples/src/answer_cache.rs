//! The answer cache: Redis when configured, else a map in the process.
//! Every lookup is reported to Lumen as a hit or a miss.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Prefix of every key this API writes.
pub const KEY_PREFIX: &str = "lumen:answer:";

/// Where answers are kept.
pub enum AnswerCache {
    /// A Redis server (reconnects by itself).
    Redis(ConnectionManager),
    /// A map in this process, for machines without Redis.
    InProcess(Mutex<HashMap<String, (String, Instant)>>),
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Redis(_) => "AnswerCache::Redis",
            Self::InProcess(_) => "AnswerCache::InProcess",
        })
    }
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
    /// Connects to `url`.
    pub async fn redis(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(Self::Redis(client.get_connection_manager().await?))
    }

    /// An in-process cache.
    pub fn in_process() -> Self {
        Self::InProcess(Mutex::new(HashMap::new()))
    }

    /// The cached answer to `key`, reporting a hit or a miss to Lumen. A
    /// Redis failure counts as a miss (and is logged): the question is
    /// answered by the backend instead.
    pub async fn get(&self, key: &str) -> Option<String> {
        let found = match self {
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
        };
        lumen_middleware::cache::record(found.is_some());
        found
    }

    /// Caches `answer` for `ttl`.
    pub async fn put(&self, key: &str, answer: &str, ttl: Duration) {
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
        c.put("k", "v", Duration::from_secs(60)).await;
        assert_eq!(c.get("k").await.as_deref(), Some("v"));
        c.put("gone", "v", Duration::ZERO).await;
        assert_eq!(c.get("gone").await, None);
    }
}
