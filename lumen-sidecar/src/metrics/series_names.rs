//! The names the sidecar's series carry where they are queried, by data
//! path, and PromQL that names them correctly.
//!
//! Over `/metrics` a Prometheus stores the exposition's names
//! (`http_server_request_duration_seconds_bucket{http_route=…}`). Over OTLP
//! into Cloud Monitoring, the Telemetry API keeps names and attribute keys
//! as sent and writes points "as for Managed Service for Prometheus": the
//! latency histogram becomes `http.server.request.duration` with its
//! `_bucket`/`_sum`/`_count` series and the route is `http.route`. A name or
//! key holding anything but letters, digits, `_` and `:` must be quoted in
//! PromQL: `{"http.server.request.duration_bucket", "http.route"="/x"}`.

use std::borrow::Cow;

use super::{DURATION_BUCKETS, DURATION_HISTOGRAM, otlp_label};
use crate::config::DataPath;

/// The OTLP latency histogram's bucket series, as the Telemetry API stores it.
pub const OTLP_DURATION_BUCKETS: &str = "http.server.request.duration_bucket";

const _: () = {
    // The bucket series is the histogram's name and `_bucket`.
    let (a, b) = (
        DURATION_HISTOGRAM.as_bytes(),
        OTLP_DURATION_BUCKETS.as_bytes(),
    );
    assert!(a.len() + "_bucket".len() == b.len());
};

impl DataPath {
    /// The path's name in settings and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Otlp => "otlp",
            Self::Prometheus => "prometheus",
        }
    }

    /// The latency histogram's bucket series.
    pub fn latency_buckets(self) -> &'static str {
        match self {
            Self::Otlp => OTLP_DURATION_BUCKETS,
            Self::Prometheus => DURATION_BUCKETS,
        }
    }

    /// A label as the series carry it on this path (`http_route` on
    /// `/metrics`, `http.route` over OTLP).
    pub fn label(self, label: &'static str) -> &'static str {
        match self {
            Self::Otlp => otlp_label(label),
            Self::Prometheus => label,
        }
    }

    /// A `by (…)` list of `labels` on this path, quoted where PromQL needs it.
    pub fn by_clause(self, labels: &[&'static str]) -> String {
        labels
            .iter()
            .map(|l| promql_name(self.label(l)).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether PromQL takes `name` unquoted (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A metric or label name as PromQL writes it: as is, or quoted (UTF-8 syntax).
pub fn promql_name(name: &str) -> Cow<'_, str> {
    if is_plain_name(name) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(quote(name))
    }
}

/// A selector of `metric` with `matchers` (`a="b",c=~"d"`, may be empty):
/// `metric{matchers}`, or `{"metric", matchers}` for a name PromQL must quote.
pub fn promql_selector(metric: &str, matchers: &str) -> String {
    match (is_plain_name(metric), matchers.is_empty()) {
        (true, _) => format!("{metric}{{{matchers}}}"),
        (false, true) => format!("{{{}}}", quote(metric)),
        (false, false) => format!("{{{}, {matchers}}}", quote(metric)),
    }
}

/// `text` as a double-quoted string (backslash and quote escaped), as PromQL
/// and Cloud Monitoring filters write strings.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_where_promql_needs_it() {
        assert_eq!(promql_name("http_route"), "http_route");
        assert_eq!(promql_name("http.route"), "\"http.route\"");
        assert_eq!(
            promql_selector(OTLP_DURATION_BUCKETS, "service_name=\"api\""),
            "{\"http.server.request.duration_bucket\", service_name=\"api\"}"
        );
        assert_eq!(
            promql_selector(DURATION_BUCKETS, "service_name=\"api\""),
            "http_server_request_duration_seconds_bucket{service_name=\"api\"}"
        );
        assert_eq!(
            DataPath::Otlp.by_clause(&["http_route", "le"]),
            "\"http.route\", le"
        );
        assert_eq!(
            DataPath::Prometheus.by_clause(&["http_route", "le"]),
            "http_route, le"
        );
        assert!(!is_plain_name("9x") && !is_plain_name("") && is_plain_name("lumen:x_y"));
    }
}
