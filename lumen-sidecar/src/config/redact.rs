//! The one place secrets are masked: every value that can hold one (a URL
//! with a password or token, header values, a bearer token) goes through
//! [`redact`] before it reaches an error, a log line or `config show`.

use super::Setting;

/// The variables and file keys whose values can hold a secret.
pub const SECRET_SETTINGS: [&str; 10] = [
    "LUMEN_AUTH_TOKEN",
    "server.auth_token",
    "LUMEN_FLEET_REDIS_URL",
    "fleet.redis_url",
    "LUMEN_FLEET_PROMETHEUS_URL",
    "fleet.prometheus_url",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "SLACK_WEBHOOK_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Whether `setting`'s values can hold a secret.
pub fn holds_secret(setting: &Setting) -> bool {
    setting
        .env
        .iter()
        .copied()
        .chain(setting.key)
        .any(|name| SECRET_SETTINGS.contains(&name))
        || setting.env.contains(&"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
}

/// `value` with whatever secret it may hold masked as `***`: a URL's
/// password (or its whole user part, which may be a token), its query
/// values and, for a Slack webhook, its path; each `key=value` pair's
/// value; anything else whole.
pub fn redact(value: &str) -> String {
    if let Some(scheme_end) = value.find("://") {
        return redact_url(value, scheme_end);
    }
    if value.contains('=') {
        return value
            .split(',')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => "***".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    if value.is_empty() {
        String::new()
    } else {
        "***".to_owned()
    }
}

fn redact_url(url: &str, scheme_end: usize) -> String {
    let rest_at = scheme_end + 3;
    let (authority_end, has_path) = match url[rest_at..].find(['/', '?', '#']) {
        Some(i) => (rest_at + i, true),
        None => (url.len(), false),
    };
    let authority = &url[rest_at..authority_end];
    let host = match authority.rfind('@') {
        Some(at) => {
            let user = &authority[..at];
            let shown = match user.split_once(':') {
                Some((name, _)) => format!("{name}:***"),
                None => "***".to_owned(),
            };
            format!("{shown}@{}", &authority[at + 1..])
        }
        None => authority.to_owned(),
    };
    let mut out = format!("{}{host}", &url[..rest_at]);
    if has_path {
        let tail = &url[authority_end..];
        // A Slack webhook's path is its secret; query values may be tokens.
        if host.ends_with("hooks.slack.com") {
            out.push_str("/***");
        } else {
            match tail.split_once('?') {
                Some((path, _)) => {
                    out.push_str(path);
                    out.push_str("?***");
                }
                None => out.push_str(tail),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_of_secret_is_masked() {
        assert_eq!(
            redact("rediss://:s3cret@10.0.0.3:6378/0"),
            "rediss://:***@10.0.0.3:6378/0"
        );
        assert_eq!(
            redact("redis://lumen:s3cret@host:6379"),
            "redis://lumen:***@host:6379"
        );
        assert_eq!(redact("https://tok3n@host/x"), "https://***@host/x");
        assert_eq!(
            redact("https://host/v1/metrics?key=s3cret"),
            "https://host/v1/metrics?***"
        );
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/s3cret"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            redact("authorization=Bearer s3cret,x-api-key=k3y"),
            "authorization=***,x-api-key=***"
        );
        assert_eq!(redact("s3cret-token"), "***");
        assert_eq!(redact("http://127.0.0.1:9090"), "http://127.0.0.1:9090");
    }
}
