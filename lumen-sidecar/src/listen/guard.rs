//! What a request must show before the sidecar (or the gate) acts on it.
//! A command that changes state comes as JSON (a web page cannot send that
//! across sites without the browser asking first), from no other site
//! (`Origin`, `Sec-Fetch-Site`), with the token when one is configured,
//! compared in constant time. Any request names a host the sidecar is
//! reached by (an IP address, `localhost`, or a configured name), so a
//! page whose DNS name was rebound to 127.0.0.1 cannot read it either.

use axum::http::{HeaderMap, StatusCode, header};

/// Whether `given` equals `expected`, in time that depends only on their
/// lengths.
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0_u8, |d, (a, b)| d | (a ^ b))
            == 0
}

/// Whether `headers` carry `Authorization: Bearer TOKEN` for `token`
/// (any request passes when no token is configured).
pub fn bearer_ok(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let expected = format!("Bearer {token}");
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    token_matches(given, expected.as_bytes())
}

/// Why a command (a request that changes state) is refused, if it is:
/// not JSON (415), from another site (403), without the token (401).
pub fn command_refusal(headers: &HeaderMap, token: Option<&str>) -> Option<(StatusCode, String)> {
    if !bearer_ok(headers, token) {
        return Some((
            StatusCode::UNAUTHORIZED,
            "authorization: a valid bearer token is required".into(),
        ));
    }
    if let Some(content_type) = not_json(headers) {
        return Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type: {content_type:?}; commands are application/json"),
        ));
    }
    if let Some(why) = cross_site(headers) {
        return Some((StatusCode::FORBIDDEN, why));
    }
    None
}

/// The request's content type when it is not `application/json` (media
/// types compare case-insensitively), `None` when it is.
pub fn not_json(headers: &HeaderMap) -> Option<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (!content_type
        .to_ascii_lowercase()
        .starts_with("application/json"))
    .then(|| content_type.to_owned())
}

/// Why a request comes from another site, if it does: a browser's
/// `Sec-Fetch-Site` says so, or its `Origin` names another host than the
/// one the request is for.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!(
            "sec-fetch-site: {site}; commands are refused from other sites"
        ));
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("null");
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, h)| h.trim_end_matches('/'));
    if origin_host.is_some_and(|h| h.eq_ignore_ascii_case(host)) {
        None
    } else {
        Some(format!(
            "origin: {origin:?} is not this host ({host:?}); commands are refused from other sites"
        ))
    }
}

/// Whether `host` (a `Host` header: a name or address, with or without a
/// port) is one the sidecar may be reached by: an IP address, `localhost`,
/// or one of `allowed` (names, case-insensitive).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn commands_come_as_json_from_this_site_with_the_token() {
        let json = [
            ("content-type", "application/json"),
            ("host", "127.0.0.1:9464"),
        ];
        assert_eq!(command_refusal(&headers(&json), None), None);
        for (pairs, status) in [
            (
                vec![("content-type", "text/plain"), ("host", "127.0.0.1:9464")],
                415,
            ),
            (
                vec![
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", "127.0.0.1:9464"),
                ],
                415,
            ),
            (
                vec![
                    ("content-type", "application/json"),
                    ("host", "127.0.0.1:9464"),
                    ("origin", "http://evil.example"),
                ],
                403,
            ),
            (
                vec![
                    ("content-type", "application/json"),
                    ("host", "127.0.0.1:9464"),
                    ("origin", "null"),
                ],
                403,
            ),
            (
                vec![
                    ("content-type", "application/json"),
                    ("host", "127.0.0.1:9464"),
                    ("sec-fetch-site", "cross-site"),
                ],
                403,
            ),
        ] {
            let refused = command_refusal(&headers(&pairs), None).map(|(s, _)| s.as_u16());
            assert_eq!(refused, Some(status), "{pairs:?}");
        }
        // The page's own origin is this host: allowed.
        let same = [
            ("content-type", "application/json"),
            ("host", "127.0.0.1:9464"),
            ("origin", "http://127.0.0.1:9464"),
        ];
        assert_eq!(command_refusal(&headers(&same), None), None);
        // With a token, only with it.
        assert_eq!(
            command_refusal(&headers(&json), Some("t0k")).map(|(s, _)| s.as_u16()),
            Some(401)
        );
        let with = [
            ("content-type", "application/json"),
            ("host", "127.0.0.1:9464"),
            ("authorization", "Bearer t0k"),
        ];
        assert_eq!(command_refusal(&headers(&with), Some("t0k")), None);
        assert!(!token_matches(b"Bearer t0", b"Bearer t0k"));
    }

    #[test]
    fn hosts_are_addresses_localhost_or_configured_names() {
        let names = vec!["lumen.internal".to_owned()];
        for ok in [
            "127.0.0.1:9464",
            "10.0.0.7",
            "[::1]:9464",
            "localhost:9464",
            "LOCALHOST",
            "lumen.internal:9464",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example:9464",
            "127.0.0.1.evil.example",
            "",
            "[nonsense]:1",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }
}
