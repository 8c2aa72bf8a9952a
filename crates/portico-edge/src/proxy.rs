//! The last phase: forward the request to a replica over a pooled connection and stream the
//! answer back, or, for a WebSocket, complete the handshake on both sides and splice the two
//! connections together.

use crate::body::{from_incoming, ProxyBody};
use crate::hop::{restore_upgrade, strip_hop_by_hop};
use crate::identity_headers::IdentityHeaders;
use crate::pool::{Pool, SendError};
use crate::router::Mode;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE, HOST};
use http::{uri, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use portico_core::urls::{app_prefix, APPS_PATH};
use portico_core::{AppRoute, Endpoint, LoadGuard, MountStyle};
use portico_identity::web::without_portico_cookies;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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

// Names written on every proxied request: parsed once, not per request.
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
static X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
static X_FORWARDED_PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-forwarded-preferred-username");
static X_FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");
static SHINY_SERVER_CREDENTIALS: HeaderName = HeaderName::from_static("shiny-server-credentials");
static X_PORTICO_ASSERTION: HeaderName = HeaderName::from_static("x-portico-assertion");

/// Kept-alive HTTP/1.1 connections to replicas.
pub struct Upstream {
    pool: Arc<Pool>,
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
        Upstream {
            pool: Pool::new(timeouts.connect),
            timeouts,
        }
    }

    pub async fn forward(
        &self,
        req: Request<Incoming>,
        f: Forward<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let _in_flight = LoadGuard::request(&f.endpoint.load);
        let (mut parts, body) = req.into_parts();

        // Host is the one the browser used (for HTTP/2, set from :authority by the request
        // filter): frameworks check WebSocket origins against it and build URLs from it.
        let uri = std::mem::take(&mut parts.uri);
        parts.uri = upstream_uri(f.route, f.mode, f.endpoint.mount, uri)?;
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        let upgrade = strip_hop_by_hop(headers);
        if let Some(upgrade) = upgrade.clone() {
            restore_upgrade(headers, upgrade);
        }
        if let Some(host) = headers.get(HOST).cloned() {
            headers.insert(&X_FORWARDED_HOST, host);
        }
        if let Some(ip) = ip_header(f.peer.ip()) {
            headers.insert(&X_FORWARDED_FOR, ip);
        }
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(f.scheme));
        if f.mode == Mode::Path {
            if let Ok(prefix) =
                HeaderValue::from_maybe_shared(Bytes::from(app_prefix(&f.route.name)))
            {
                headers.insert(&X_FORWARDED_PREFIX, prefix);
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
        if upgrade.is_some() {
            // Resolves once we answered 101 to the client.
            let client_upgrade = parts.extensions.remove::<OnUpgrade>();
            let request = Request::from_parts(parts, body);
            return self.upgrade(request, client_upgrade, &f).await;
        }
        let request = Request::from_parts(parts, body);
        let sent = self.pool.send(f.endpoint.addr, request);
        let response = match tokio::time::timeout(self.timeouts.response, sent).await {
            Err(_) => return Err(ProxyError::Timeout(self.timeouts.response)),
            Ok(Err(e)) => return Err(unreachable(e)),
            Ok(Ok(response)) => response,
        };
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
        Ok(Response::from_parts(parts, body))
    }

    /// A WebSocket handshake: on a 101 from the replica, the two connections are spliced
    /// together once the client has had its 101 too.
    async fn upgrade(
        &self,
        request: Request<ProxyBody>,
        client_upgrade: Option<OnUpgrade>,
        f: &Forward<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let sent = self.pool.send_upgrade(f.endpoint.addr, request);
        let mut response = match tokio::time::timeout(self.timeouts.response, sent).await {
            Err(_) => return Err(ProxyError::Timeout(self.timeouts.response)),
            Ok(Err(e)) => return Err(unreachable(e)),
            Ok(Ok(response)) => response,
        };
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let (Some(client_upgrade), true) = (client_upgrade, switching) else {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Ok(Response::from_parts(parts, from_incoming(body)));
        };
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
        Ok(Response::from_parts(parts, crate::body::empty()))
    }
}

fn unreachable(error: SendError) -> ProxyError {
    ProxyError::Unreachable(error.to_string())
}

/// `X-Forwarded-For` for the client's address, formatted without an intermediate string.
fn ip_header(ip: IpAddr) -> Option<HeaderValue> {
    let mut buffer = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    write!(cursor, "{ip}").ok()?;
    let length = usize::try_from(cursor.position()).ok()?;
    HeaderValue::from_bytes(&buffer[..length]).ok()
}

/// No Portico cookie ever reaches a dashboard: a dashboard holding a session cookie could act
/// as the user everywhere. (HTTP/2 may split cookies over several headers; they are joined.)
fn hide_portico_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let kept = without_portico_cookies(
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    headers.remove(COOKIE);
    if let Some(value) = kept.and_then(|k| HeaderValue::from_maybe_shared(Bytes::from(k)).ok()) {
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
    headers.insert(&X_FORWARDED_USER, identity.email.clone());
    headers.insert(&X_FORWARDED_EMAIL, identity.email.clone());
    headers.insert(
        &X_FORWARDED_PREFERRED_USERNAME,
        identity.preferred_username.clone(),
    );
    headers.insert(&X_FORWARDED_GROUPS, identity.groups.clone());
    headers.insert(
        &SHINY_SERVER_CREDENTIALS,
        identity.shiny_credentials.clone(),
    );
    if let Some(assertion) = assertion {
        headers.insert(&X_PORTICO_ASSERTION, assertion.clone());
    }
}

/// The replica's URI for this request, in origin form (the connection already names the
/// replica). The original path and query are reused as they are (no copy) unless the
/// replica's mount style needs the prefix added or removed.
fn upstream_uri(
    route: &AppRoute,
    mode: Mode,
    mount: MountStyle,
    uri: Uri,
) -> Result<Uri, ProxyError> {
    let path_and_query = match rewritten_path(route, mount, mode, &uri) {
        Some(path_and_query) => uri::PathAndQuery::try_from(path_and_query)
            .map_err(|e| ProxyError::Request(e.to_string()))?,
        None => uri
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| uri::PathAndQuery::from_static("/")),
    };
    Ok(Uri::from(path_and_query))
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

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::AppStatus;

    fn rewrite(mount: MountStyle, mode: Mode, uri: &str) -> String {
        let route = crate::test_route(AppStatus::Running, vec![]);
        let upstream = upstream_uri(&route, mode, mount, uri.parse().unwrap()).unwrap();
        assert!(upstream.authority().is_none(), "origin form: {upstream}");
        upstream.to_string()
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
