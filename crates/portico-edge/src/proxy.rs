//! The last phase: forward the request to a replica over a pooled connection and stream the
//! answer back, or, for a WebSocket, complete the handshake on both sides and splice the two
//! connections together.

use crate::body::{from_incoming, ProxyBody};
use crate::hop::{restore_upgrade, strip_hop_by_hop};
use crate::identity_headers::IdentityHeaders;
use crate::router::Mode;
use http::header::{HeaderMap, HeaderValue, COOKIE, HOST};
use http::{uri, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_core::urls::{app_prefix, APPS_PATH};
use portico_core::{AppRoute, Endpoint, LoadGuard, MountStyle};
use portico_identity::web::without_portico_cookies;
use std::net::SocketAddr;
use std::time::Duration;

/// Timeouts towards replicas.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    /// Until the replica's response headers arrive (long-running callbacks need headroom).
    pub response: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the replica did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the replica: {0}")]
    Unreachable(String),
    #[error("cannot build the upstream request: {0}")]
    Request(String),
}

/// Pooled HTTP/1.1 connections to replicas.
pub struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    timeouts: UpstreamTimeouts,
}

/// Where and how to forward one request.
pub struct Forward<'a> {
    pub route: &'a AppRoute,
    pub mode: Mode,
    /// The replica chosen by the balancer; its load is counted while the request is in
    /// flight, and for as long as a WebSocket stays open.
    pub endpoint: &'a Endpoint,
    pub peer: SocketAddr,
    pub scheme: &'static str,
    /// For a signed-in user: the identity headers, and the signed `X-Portico-Assertion`.
    pub identity_headers: Option<&'a IdentityHeaders>,
    pub assertion: Option<&'a HeaderValue>,
}

impl Upstream {
    pub fn new(timeouts: UpstreamTimeouts) -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Upstream { client, timeouts }
    }

    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        f: Forward<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let _in_flight = LoadGuard::request(&f.endpoint.load);
        // Taken before the request is consumed: resolves once we answered 101 to the client.
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (mut parts, body) = req.into_parts();

        // Host is the one the browser used (for HTTP/2, set from :authority by the request
        // filter): frameworks check WebSocket origins against it and build URLs from it.
        parts.uri = upstream_uri(f.route, f.mode, f.endpoint, &parts.uri)?;
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        let upgrade = strip_hop_by_hop(headers);
        if let Some(upgrade) = upgrade.clone() {
            restore_upgrade(headers, upgrade);
        }
        if let Some(host) = headers.get(HOST).cloned() {
            headers.insert("x-forwarded-host", host);
        }
        if let Ok(ip) = HeaderValue::from_str(&f.peer.ip().to_string()) {
            headers.insert("x-forwarded-for", ip);
        }
        headers.insert("x-forwarded-proto", HeaderValue::from_static(f.scheme));
        if f.mode == Mode::Path {
            if let Ok(prefix) = HeaderValue::from_str(&app_prefix(&f.route.name)) {
                headers.insert("x-forwarded-prefix", prefix);
            }
        }

        hide_portico_cookies(headers);
        set_identity_headers(headers, f.identity_headers, f.assertion);

        // A body declared too large was refused before; one streamed without a length is
        // cut off at the limit (the app sees an aborted upload).
        let body = match usize::try_from(f.route.max_body_bytes) {
            Ok(limit) if limit < usize::MAX => http_body_util::Limited::new(body, limit)
                .map_err(crate::body::BoxError::from)
                .boxed_unsync(),
            _ => from_incoming(body),
        };
        let request = Request::from_parts(parts, body);
        let mut response = match tokio::time::timeout(
            self.timeouts.response,
            self.client.request(request),
        )
        .await
        {
            Err(_) => return Err(ProxyError::Timeout(self.timeouts.response)),
            Ok(Err(e)) => return Err(ProxyError::Unreachable(describe_client_error(&e))),
            Ok(Ok(response)) => response,
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS && upgrade.is_some() {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let open = LoadGuard::websocket(&f.endpoint.load);
            tokio::spawn(async move {
                let _open = open;
                let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::debug!("websocket upgrade did not complete: {e}");
                        return;
                    }
                };
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                let _ = crate::splice::splice(&mut client, &mut upstream).await;
            });
            let (parts, _) = response.into_parts();
            return Ok(Response::from_parts(parts, crate::body::empty()));
        }

        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // Appended, not set: every CSP header is enforced, so the app's own policy still holds
        // and this one only adds who may frame it.
        if let Some(policy) = &f.route.frame_policy {
            if let Ok(value) = HeaderValue::from_maybe_shared(policy.clone()) {
                parts
                    .headers
                    .append(http::header::CONTENT_SECURITY_POLICY, value);
            }
        }
        Ok(Response::from_parts(parts, from_incoming(body)))
    }
}

/// No Portico cookie ever reaches a dashboard: a dashboard holding a session cookie could act
/// as the user everywhere. (HTTP/2 may split cookies over several headers; they are joined.)
fn hide_portico_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let joined: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let kept = without_portico_cookies(&joined.join("; "));
    headers.remove(COOKIE);
    if let Some(value) = kept.and_then(|k| HeaderValue::from_str(&k).ok()) {
        headers.insert(COOKIE, value);
    }
}

/// Who the user is, in the forms dashboards read (DESIGN.md, "Identity to apps"): the
/// oauth2-proxy headers, the header R-Shiny reads for `session$user` and `session$groups`,
/// and the signed assertion. Clients' own versions were removed by the request filter.
fn set_identity_headers(
    headers: &mut HeaderMap,
    identity: Option<&IdentityHeaders>,
    assertion: Option<&HeaderValue>,
) {
    let Some(identity) = identity else { return };
    headers.insert("x-forwarded-user", identity.email.clone());
    headers.insert("x-forwarded-email", identity.email.clone());
    headers.insert(
        "x-forwarded-preferred-username",
        identity.preferred_username.clone(),
    );
    headers.insert("x-forwarded-groups", identity.groups.clone());
    headers.insert(
        "shiny-server-credentials",
        identity.shiny_credentials.clone(),
    );
    if let Some(assertion) = assertion {
        headers.insert("x-portico-assertion", assertion.clone());
    }
}

/// The replica's URI for this request. The original path and query are reused as they are
/// (no copy) unless the replica's mount style needs the prefix added or removed.
fn upstream_uri(
    route: &AppRoute,
    mode: Mode,
    endpoint: &Endpoint,
    uri: &Uri,
) -> Result<Uri, ProxyError> {
    let mut parts = uri::Parts::default();
    parts.scheme = Some(uri::Scheme::HTTP);
    parts.authority = Some(
        uri::Authority::try_from(endpoint.addr.to_string().as_str())
            .map_err(|e| ProxyError::Request(e.to_string()))?,
    );
    parts.path_and_query = match rewritten_path(route, endpoint.mount, mode, uri) {
        Some(path_and_query) => Some(
            uri::PathAndQuery::try_from(path_and_query)
                .map_err(|e| ProxyError::Request(e.to_string()))?,
        ),
        None => uri
            .path_and_query()
            .cloned()
            .or_else(|| Some(uri::PathAndQuery::from_static("/"))),
    };
    Uri::from_parts(parts).map_err(|e| ProxyError::Request(e.to_string()))
}

/// The path a replica expects (see `MountStyle`), or `None` when it is the request's own:
/// prefixed apps always see `/apps/<name>/…`, root apps always see `/…`, whichever address
/// the browser used.
fn rewritten_path(route: &AppRoute, mount: MountStyle, mode: Mode, uri: &Uri) -> Option<String> {
    let path = uri.path();
    let rest = path
        .strip_prefix(APPS_PATH)
        .and_then(|r| r.strip_prefix(&*route.name));
    let under_prefix = rest.is_some_and(|r| r.is_empty() || r.starts_with('/'));
    let rewritten = match (mount, mode) {
        (MountStyle::Prefixed, Mode::Path) | (MountStyle::Root, Mode::Host) => return None,
        (MountStyle::Prefixed, Mode::Host) if under_prefix => return None,
        (MountStyle::Prefixed, Mode::Host) => format!("{}{path}", app_prefix(&route.name)),
        (MountStyle::Root, Mode::Path) => match rest.filter(|_| under_prefix) {
            Some("") | None => "/".to_owned(),
            Some(rest) => rest.to_owned(),
        },
    };
    Some(match uri.query() {
        Some(q) => format!("{rewritten}?{q}"),
        None => rewritten,
    })
}

fn describe_client_error(error: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::AppStatus;

    fn rewrite(mount: MountStyle, mode: Mode, uri: &str) -> String {
        let route = crate::test_route(AppStatus::Running, vec![]);
        let mut endpoint = Endpoint::new("sales-1", SocketAddr::from(([127, 0, 0, 1], 5000)));
        endpoint.mount = mount;
        let upstream = upstream_uri(&route, mode, &endpoint, &uri.parse().unwrap()).unwrap();
        assert_eq!(upstream.authority().unwrap().as_str(), "127.0.0.1:5000");
        upstream.path_and_query().unwrap().to_string()
    }

    #[test]
    fn prefixed_apps_always_see_their_prefix() {
        assert_eq!(
            rewrite(MountStyle::Prefixed, Mode::Path, "/apps/sales/x?a=1"),
            "/apps/sales/x?a=1"
        );
        assert_eq!(
            rewrite(MountStyle::Prefixed, Mode::Host, "/x?a=1"),
            "/apps/sales/x?a=1"
        );
        assert_eq!(
            rewrite(MountStyle::Prefixed, Mode::Host, "/"),
            "/apps/sales/"
        );
        // Absolute links the app generated with its prefix are not prefixed twice.
        assert_eq!(
            rewrite(MountStyle::Prefixed, Mode::Host, "/apps/sales/_dash-layout"),
            "/apps/sales/_dash-layout"
        );
        assert_eq!(
            rewrite(MountStyle::Prefixed, Mode::Host, "/apps/salesman"),
            "/apps/sales/apps/salesman"
        );
    }

    #[test]
    fn root_apps_never_see_the_prefix() {
        assert_eq!(
            rewrite(MountStyle::Root, Mode::Path, "/apps/sales/websocket/"),
            "/websocket/"
        );
        assert_eq!(rewrite(MountStyle::Root, Mode::Path, "/apps/sales/"), "/");
        assert_eq!(
            rewrite(MountStyle::Root, Mode::Host, "/websocket/?x"),
            "/websocket/?x"
        );
    }
}
