//! What can go wrong with the fleet store.

use thiserror::Error;

/// A fleet store that cannot be reached, written or read.
#[derive(Debug, Error)]
pub enum FleetStoreError {
    /// The URL or its TLS material is unusable.
    #[error("fleet store {url}: {reason}")]
    Config {
        /// The URL, its password masked.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Redis refused or did not answer a command.
    #[error("fleet store: {doing}: {source}")]
    Redis {
        /// What was being done.
        doing: &'static str,
        /// Redis's error.
        source: redis::RedisError,
    },
    /// Redis is past the share of its `maxmemory` the store may take:
    /// nothing is written, so Redis does not evict the cache's keys.
    #[error(
        "fleet store: Redis uses {used_mib:.1} MiB of its {max_mib:.1} MiB maxmemory, past the {share_percent} % the store may take (fleet.memory_share): not written, so Redis evicts none of the cache's keys; what is due is kept and written once there is room"
    )]
    NoRoom {
        /// Redis's `used_memory`, MiB.
        used_mib: f64,
        /// Redis's `maxmemory`, MiB.
        max_mib: f64,
        /// The share allowed, percent.
        share_percent: f64,
    },
    /// A value in the store is not one Lumen wrote.
    #[error("fleet store: {key} field {field}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The field (an instance).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Maps a Redis error met while `doing` something.
pub(super) fn redis_error(doing: &'static str) -> impl Fn(redis::RedisError) -> FleetStoreError {
    move |source| FleetStoreError::Redis { doing, source }
}

/// `url` with any password replaced by `***`, for messages (the config's
/// one redaction, [`crate::config::redact::redact`]).
pub fn masked(url: &str) -> String {
    crate::config::redact::redact(url)
}

/// Logs and counts a value at `key`, `field` that did not read: the reader
/// leaves it out and goes on.
pub fn note_unreadable(key: &str, field: &str, reason: &str) {
    crate::app::FLEET_STORE_UNREADABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        key,
        instance = field,
        reason,
        "a fleet-store value does not read; left out of the fleet's figures"
    );
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            masked("rediss://:s3cret@10.0.0.3:6378/0"),
            "rediss://:***@10.0.0.3:6378/0"
        );
        assert_eq!(
            masked("redis://default:pw@host:6379"),
            "redis://default:***@host:6379"
        );
        assert_eq!(masked("redis://host:6379"), "redis://host:6379");
    }
}
