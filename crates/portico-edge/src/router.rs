//! Which app (or Portico page) a request is for, from its host and path (DESIGN.md,
//! "Addresses"): `<app>.<domain>` is host-based, `<domain>/apps/<app>/` is path-based, and
//! everything else on `<domain>` belongs to the portal.

use portico_core::urls::APPS_PATH;
use portico_core::{AppRoute, RouteTable};
use std::borrow::Cow;
use std::sync::Arc;

/// How the request addressed its app; decides the path rewrite in the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Host,
    Path,
}

/// Portico's own endpoints, served on the portal host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    Healthz,
    Readyz,
    Metrics,
}

#[derive(Debug)]
pub enum Target {
    Internal(Internal),
    Portal,
    App {
        route: Arc<AppRoute>,
        mode: Mode,
    },
    /// `/apps/<app>` without its trailing slash: relative URLs in the app need it.
    AddSlash(String),
    UnknownHost(String),
    UnknownApp(String),
}

/// The host a request names, lowercased and without port. `None` when absent or malformed.
/// Borrows unless the host has capitals (browsers send lowercase).
pub fn request_host<'a>(
    host_header: Option<&'a str>,
    authority: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    let raw = host_header.or(authority)?;
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [::1]:8080
        &raw[..rest.find(']')? + 2]
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    if host.is_empty() {
        None
    } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

pub fn route(
    table: &RouteTable,
    domain: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
) -> Target {
    if host == domain || is_ip_literal(host) {
        return route_portal_host(table, path, query);
    }
    let app = host.strip_suffix(domain).and_then(|h| h.strip_suffix('.'));
    match app {
        Some(name) if !name.contains('.') => match table.get(name) {
            Some(route) => Target::App {
                route: route.clone(),
                mode: Mode::Host,
            },
            None => Target::UnknownApp(name.to_owned()),
        },
        _ => Target::UnknownHost(host.to_owned()),
    }
}

fn route_portal_host(table: &RouteTable, path: &str, query: Option<&str>) -> Target {
    match path {
        "/healthz" => return Target::Internal(Internal::Healthz),
        "/readyz" => return Target::Internal(Internal::Readyz),
        "/metrics" => return Target::Internal(Internal::Metrics),
        _ => {}
    }
    let Some(rest) = path.strip_prefix(APPS_PATH) else {
        return Target::Portal;
    };
    let (name, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(n, t)| (n, Some(t)));
    if name.is_empty() {
        return Target::Portal;
    }
    match (table.get(name), tail) {
        (Some(_), None) => {
            let mut location = format!("{APPS_PATH}{name}/");
            if let Some(q) = query {
                location.push('?');
                location.push_str(q);
            }
            Target::AddSlash(location)
        }
        (Some(route), Some(_)) => Target::App {
            route: route.clone(),
            mode: Mode::Path,
        },
        (None, _) => Target::UnknownApp(name.to_owned()),
    }
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::AppStatus;

    fn table() -> RouteTable {
        RouteTable::new(vec![crate::test_route(AppStatus::Starting, vec![])])
    }

    fn target(host: &str, path: &str) -> String {
        match route(&table(), "localhost", host, path, None) {
            Target::App { route, mode } => format!("app {} {mode:?}", route.name),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn host_and_path_addresses_reach_the_app() {
        assert_eq!(target("sales.localhost", "/"), "app sales Host");
        assert_eq!(target("sales.localhost", "/apps/other/"), "app sales Host");
        assert_eq!(target("localhost", "/apps/sales/x"), "app sales Path");
        assert_eq!(target("127.0.0.1", "/apps/sales/"), "app sales Path");
    }

    #[test]
    fn the_portal_host_serves_portal_and_internal_paths() {
        assert_eq!(target("localhost", "/"), "Portal");
        assert_eq!(target("localhost", "/apps/"), "Portal");
        assert_eq!(target("localhost", "/healthz"), "Internal(Healthz)");
        assert_eq!(target("sales.localhost", "/healthz"), "app sales Host");
    }

    #[test]
    fn unknown_names_and_missing_slash() {
        assert_eq!(target("nope.localhost", "/"), "UnknownApp(\"nope\")");
        assert_eq!(
            target("a.b.localhost", "/"),
            "UnknownHost(\"a.b.localhost\")"
        );
        assert_eq!(target("example.org", "/"), "UnknownHost(\"example.org\")");
        assert_eq!(target("localhost", "/apps/nope/"), "UnknownApp(\"nope\")");
        assert_eq!(
            target("localhost", "/apps/sales"),
            "AddSlash(\"/apps/sales/\")"
        );
    }

    #[test]
    fn hosts_are_read_without_port_and_lowercased() {
        assert_eq!(
            request_host(Some("Sales.LocalHost:8080"), None).unwrap(),
            "sales.localhost"
        );
        assert_eq!(request_host(None, Some("localhost")).unwrap(), "localhost");
        assert_eq!(request_host(Some("[::1]:8080"), None).unwrap(), "[::1]");
        assert!(request_host(None, None).is_none());
    }
}
