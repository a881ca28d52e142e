//! Reaching the fleet store: a Redis URL (`rediss://` for TLS, a password
//! in the URL for AUTH, as Memorystore offers them), an optional CA file.

use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::{FleetStoreError, masked};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command (or pipeline) may wait for its answer.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for `url`, trusting the CA in `ca_file` (PEM) when given.
pub fn open_client(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, FleetStoreError> {
    let config_error = |reason: String| FleetStoreError::Config {
        url: masked(url),
        reason,
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(config_error("not a redis:// or rediss:// URL".into()));
    }
    match ca_file {
        None => redis::Client::open(url).map_err(|e| config_error(e.to_string())),
        Some(path) => {
            if !url.starts_with("rediss://") {
                return Err(config_error(format!(
                    "a CA file ({}) is for rediss:// URLs",
                    path.display()
                )));
            }
            let pem = std::fs::read(path)
                .map_err(|e| config_error(format!("CA file {}: {e}", path.display())))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| config_error(format!("CA file {}: {e}", path.display())))
        }
    }
}

/// A connection that reconnects by itself, made without waiting: the
/// first command connects (within `CONNECT_TIMEOUT`, 2 s); a command fails
/// after `RESPONSE_TIMEOUT` rather than hang.
pub fn connection(client: redis::Client) -> Result<ConnectionManager, FleetStoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config).map_err(|source| {
        FleetStoreError::Redis {
            doing: "setting up the connection",
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_urls_are_refused_before_any_connection() {
        let err = open_client("http://host", None).expect_err("not redis");
        assert!(err.to_string().contains("not a redis://"), "{err}");
        let err = open_client("redis://:pw@host", Some(Path::new("/ca.pem")))
            .expect_err("CA without TLS");
        assert!(err.to_string().contains("for rediss://"), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
        let err = open_client("rediss://host", Some(Path::new("/nonexistent/ca.pem")))
            .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
