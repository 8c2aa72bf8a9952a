//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message, so a proxy
//! must not forward them: `Connection` itself, every header that `Connection` names, and the
//! classic list below. An upgrade (WebSocket) is the exception: `Connection: upgrade` and
//! `Upgrade` must reach the upstream for the handshake to happen, and come back on the 101.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};

const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers; returns the `Upgrade` value when this was an upgrade request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    // Most messages carry none: one look at each name then, rather than a removal per name.
    let any = headers
        .keys()
        .any(|name| *name == CONNECTION || HOP_BY_HOP.contains(&name.as_str()));
    if !any {
        return None;
    }
    let mut upgrade_requested = false;
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| {
            let name = name.trim();
            if name.eq_ignore_ascii_case("upgrade") {
                upgrade_requested = true;
            }
            HeaderName::from_bytes(name.as_bytes()).ok()
        })
        .collect();
    let upgrade = if upgrade_requested {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    headers.remove(CONNECTION);
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    upgrade
}

/// Puts back the two headers an upgrade needs.
pub fn restore_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, upgrade);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_the_headers_it_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        assert!(strip_hop_by_hop(&mut h).is_none());
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn an_upgrade_is_reported_so_it_can_be_restored() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        let upgrade = strip_hop_by_hop(&mut h).unwrap();
        assert!(h.is_empty());
        restore_upgrade(&mut h, upgrade);
        assert_eq!(h[UPGRADE], "websocket");
        assert_eq!(h[CONNECTION], "upgrade");
    }

    #[test]
    fn an_upgrade_header_without_connection_upgrade_is_dropped() {
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(strip_hop_by_hop(&mut h).is_none());
        assert!(h.is_empty());
    }
}
