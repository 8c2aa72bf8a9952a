//! Phase 2: who is asking. The session cookie for this host, looked up in memory.

use http::{header, HeaderMap};
use portico_core::Identity;
use portico_identity::web::{CookieRules, SESSION_COOKIE};
use portico_identity::Sessions;

/// The identity of a request to `host` (the Host header as sent, lowercased). Every value of
/// the session cookie is tried, so a cookie planted alongside the real one cannot shadow it.
pub fn identify(
    headers: &HeaderMap,
    host: &str,
    sessions: &Sessions,
    cookies: CookieRules,
) -> Identity {
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    cookies
        .values(values, SESSION_COOKIE)
        .find_map(|value| sessions.lookup(value, host))
        .map(Identity::User)
        .unwrap_or(Identity::Anonymous)
}

/// Whether a request is a browser navigating (and so should be redirected to sign in) rather
/// than a script or a WebSocket (which should get a status code it can act on).
pub fn is_navigation(method: &http::Method, headers: &HeaderMap) -> bool {
    let accepts_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    (method == http::Method::GET || method == http::Method::HEAD)
        && accepts_html
        && !headers.contains_key(header::UPGRADE)
}

/// Cross-site WebSocket hijacking: a page on another site opening a WebSocket to a dashboard
/// with the victim's cookie. Browsers always send `Origin` on WebSocket handshakes, so one
/// that names another host than the request's own is refused.
pub fn foreign_websocket_origin(headers: &HeaderMap, host: &str) -> bool {
    if !headers.contains_key(header::UPGRADE) {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => false,
        Some(origin) => {
            let origin_host = origin
                .split_once("://")
                .map_or("", |(_, rest)| rest)
                .trim_end_matches('/');
            !origin_host.eq_ignore_ascii_case(host)
        }
    }
}
