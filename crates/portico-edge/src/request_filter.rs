//! The first phase: refuse what must never reach a dashboard, and remove what a client may
//! not claim.

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Version};
use percent_encoding::percent_decode_str;

/// Headers only Portico may set. A client sending them is trying to impersonate someone
/// (identity headers) or to confuse a dashboard about where it lives (forwarding headers).
const CLIENT_FORBIDDEN: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
    "shiny-server-credentials",
    "remote-user",
];

/// Removes headers a client may not send upstream:
/// - the identity and forwarding headers above, and anything starting with `x-portico-`;
/// - any header whose name contains `_`. WSGI and CGI servers turn `-` and `_` both into `_`,
///   so `X_Forwarded_User` would reach a Flask app as the real identity header, and gunicorn
///   honours a client's `SCRIPT_NAME` header. nginx drops such headers by default too.
pub fn strip_client_headers(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            CLIENT_FORBIDDEN.contains(&n) || n.starts_with("x-portico-") || n.contains('_')
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// HTTP/2 names the host in `:authority`, and browsers send no `Host` header with it. Every
/// later phase (sessions are bound to the host, the portal's forms, the dashboards' own
/// origin checks) reads `Host`, so it is set here from `:authority`; where a client sent both
/// and they differ, `:authority` wins, as RFC 9113 (8.3.1) says it identifies the target.
pub fn host_from_authority<B>(req: &mut Request<B>) {
    if req.version() != Version::HTTP_2 {
        return;
    }
    let Some(authority) = req.uri().authority() else {
        return;
    };
    // `:authority` may not carry user information; whatever a client put there is not a host.
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(host) {
        req.headers_mut().insert(HOST, value);
    }
}

/// Why a path is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum UnsafePath {
    /// A `.` or `..` segment, literal or percent-encoded (also double-encoded).
    DotSegment,
    /// An encoded `/` or `\`, or a NUL, that could make a segment into two.
    EncodedSeparator,
    /// Not valid percent-encoding of UTF-8.
    BadEncoding,
}

/// Checks a request path before routing. Dot segments are refused rather than resolved: no
/// browser sends them (it resolves them itself), so one arriving is a probe, and resolving it
/// would let `/apps/sales/../admin/` escape an app's prefix.
pub fn check_path(path: &str) -> Result<(), UnsafePath> {
    for raw in path.split('/') {
        if raw == "." || raw == ".." {
            return Err(UnsafePath::DotSegment);
        }
        if raw.contains('\\') {
            return Err(UnsafePath::EncodedSeparator);
        }
        // Only encoded segments need decoding (and an allocation): the common path has none.
        if raw.contains('%') {
            check_encoded_segment(raw)?;
        }
    }
    Ok(())
}

/// Decodes up to three times, so that `%252e%252e` (double encoding) is seen as `..`.
fn check_encoded_segment(raw: &str) -> Result<(), UnsafePath> {
    let mut segment = raw.to_owned();
    for _ in 0..3 {
        let decoded = percent_decode_str(&segment)
            .decode_utf8()
            .map_err(|_| UnsafePath::BadEncoding)?
            .into_owned();
        if decoded.contains(['/', '\\', '\0']) {
            return Err(UnsafePath::EncodedSeparator);
        }
        if decoded == "." || decoded == ".." {
            return Err(UnsafePath::DotSegment);
        }
        if !decoded.contains('%') {
            return Ok(());
        }
        segment = decoded;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn traversal_in_every_spelling_is_refused() {
        for path in [
            "/apps/../etc/passwd",
            "/apps/sales/../../x",
            "/apps/%2e%2e/x",
            "/apps/%2E%2E/x",
            "/apps/.%2e/x",
            "/apps/%252e%252e/x",
            "/apps/sales/./x",
        ] {
            assert_eq!(check_path(path), Err(UnsafePath::DotSegment), "{path}");
        }
        assert_eq!(
            check_path("/apps/sales%2f..%2fadmin/"),
            Err(UnsafePath::EncodedSeparator)
        );
        assert_eq!(
            check_path("/apps/sales/..%5c/x"),
            Err(UnsafePath::EncodedSeparator)
        );
        assert_eq!(check_path("/apps/sales/%ff"), Err(UnsafePath::BadEncoding));
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/apps/sales/",
            "/apps/sales/static/main.3f.js",
            "/a/b%20c/",
            "/x/...y",
            "/file.tar.gz",
        ] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn identity_and_forwarding_headers_from_clients_are_removed() {
        let mut h = HeaderMap::new();
        for name in [
            "x-forwarded-user",
            "X-Forwarded-Groups",
            "x-portico-assertion",
            "shiny-server-credentials",
            "x-forwarded-for",
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("admin"),
            );
        }
        h.insert(
            HeaderName::from_static("script_name"),
            HeaderValue::from_static("/evil"),
        );
        h.insert(
            HeaderName::from_static("x_forwarded_user"),
            HeaderValue::from_static("admin"),
        );
        h.insert("accept", HeaderValue::from_static("text/html"));
        strip_client_headers(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn http2_requests_get_their_host_from_the_authority() {
        let request = |version, uri: &str, host: Option<&str>| {
            let mut builder = Request::builder().version(version).uri(uri);
            if let Some(host) = host {
                builder = builder.header(HOST, host);
            }
            let mut req = builder.body(()).unwrap();
            host_from_authority(&mut req);
            req.headers()
                .get(HOST)
                .map(|h| h.to_str().unwrap().to_owned())
        };
        let h2 = Version::HTTP_2;
        assert_eq!(
            request(h2, "https://sales.localhost:8443/x", None).as_deref(),
            Some("sales.localhost:8443")
        );
        assert_eq!(
            request(h2, "https://sales.localhost/x", Some("evil.example")).as_deref(),
            Some("sales.localhost"),
            ":authority wins over a differing Host"
        );
        assert_eq!(
            request(h2, "https://someone@sales.localhost/x", None).as_deref(),
            Some("sales.localhost")
        );
        // HTTP/1.1 keeps its Host header as sent.
        assert_eq!(
            request(Version::HTTP_11, "/x", Some("localhost:8080")).as_deref(),
            Some("localhost:8080")
        );
    }
}
