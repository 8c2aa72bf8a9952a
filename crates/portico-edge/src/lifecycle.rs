//! The life of a request, phase by phase (see the crate documentation for the diagram).

use crate::balancer::Balancer;
use crate::body::{from_axum, full, ProxyBody};
use crate::guards::{GuardConfig, Guards};
use crate::identity::{foreign_websocket_origin, identify};
use crate::identity_headers::IdentityHeaderCache;
use crate::instance_visit::{self, INSTANCE_PREFIX};
use crate::pages::{plain, redirect, Page, WAIT_HEADER};
use crate::policy;
use crate::proxy::{Forward, ProxyError, Upstream, UpstreamTimeouts};
use crate::refusals::{Reason, Refusals};
use crate::request_filter::{check_path, host_from_authority, strip_client_headers, UnsafePath};
use crate::router::{request_host, route, Internal, Mode, Target};
use crate::signin;
use crate::sticky::Sticky;
use crate::telemetry::{Telemetry, PORTAL_LABEL};
use arc_swap::ArcSwap;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use portico_core::{AppRoute, AppStatus, Decision, Identity, PublicUrls, SharedRoutes, User};
use portico_identity::web::CookieRules;
use portico_identity::{AssertionSigner, AuditSink, Handoffs, Sessions};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

/// How the edge is set up.
pub struct EdgeOptions {
    pub urls: PublicUrls,
    /// `false` when metrics have a listener of their own.
    pub metrics_on_main_listener: bool,
    pub upstream: UpstreamTimeouts,
    pub sessions: Arc<Sessions>,
    pub handoffs: Arc<Handoffs>,
    pub assertions: Arc<AssertionSigner>,
    pub audit: Arc<AuditSink>,
    /// Named on "no access" pages: whom to ask.
    pub contact: String,
    /// The firewall, limits and HSTS; replaced by [`Edge::reconfigure`] on a reload.
    pub guards: GuardConfig,
    /// With ACME's HTTP-01: the answers the redirect listener serves.
    pub acme_challenges: Option<Arc<crate::acme::Challenges>>,
    /// Signs the cookies that keep a client on its replica (derived from the secret key).
    pub sticky_key: [u8; 32],
}

/// Where an ACME CA fetches HTTP-01 answers (RFC 8555, section 8.3).
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Main,
    /// Serves only `/metrics`, `/healthz` and `/readyz`.
    Metrics,
    /// Plain HTTP beside HTTPS: sends every request to the same address over HTTPS.
    Redirect,
}

pub struct Edge {
    routes: SharedRoutes,
    portal: axum::Router,
    options: EdgeOptions,
    portal_url: String,
    upstream: Upstream,
    balancer: Balancer,
    telemetry: Telemetry,
    identity_headers: IdentityHeaderCache,
    metrics: Option<PrometheusHandle>,
    /// Latches once every app has settled after start-up (see `readyz`).
    ready: AtomicBool,
    guards: ArcSwap<Guards>,
    refusals: Refusals,
    sticky: Sticky,
}

impl Edge {
    pub fn new(
        routes: SharedRoutes,
        portal: axum::Router,
        mut options: EdgeOptions,
        metrics: Option<PrometheusHandle>,
    ) -> Edge {
        let guards = Guards::build(std::mem::take(&mut options.guards), None);
        let sticky = Sticky::new(options.sticky_key, options.urls.scheme() == "https");
        Edge {
            routes,
            portal,
            portal_url: options.urls.portal(),
            upstream: Upstream::new(options.upstream),
            options,
            balancer: Balancer::default(),
            telemetry: Telemetry::default(),
            identity_headers: IdentityHeaderCache::default(),
            metrics,
            ready: AtomicBool::new(false),
            guards: ArcSwap::from_pointee(guards),
            sticky,
            refusals: Refusals::default(),
        }
    }

    /// Puts new firewall rules, limits and HSTS in force (a reload). Requests already past
    /// the guards finish under the old ones; open connections and WebSockets stay open.
    pub fn reconfigure(&self, config: GuardConfig) {
        let next = Guards::build(config, Some(&self.guards.load()));
        self.guards.store(Arc::new(next));
    }

    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        listener: ListenerKind,
    ) -> Response<ProxyBody> {
        let mut response = self.respond(req, peer, listener).await;
        if listener == ListenerKind::Main {
            if let Some(hsts) = &self.guards.load().hsts {
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
        }
        response
    }

    async fn respond(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        listener: ListenerKind,
    ) -> Response<ProxyBody> {
        let started = Instant::now();

        if listener == ListenerKind::Redirect {
            return self.to_https(&req);
        }

        // Phase 0: the firewall, on the client's address (the peer's, or what a trusted
        // proxy says it is). Read before the request filter removes `X-Forwarded-For`.
        let guards = self.guards.load();
        let firewall = &guards.firewall;
        let client = firewall.client_ip(
            peer.ip(),
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        if !firewall.rules.permits(client) {
            self.refusals
                .record(Reason::Firewall, client, format_args!("a request"));
            return self.finish(PORTAL_LABEL, started, self.address_refused());
        }
        let peer = SocketAddr::new(client, peer.port());
        if let Err(wait) = guards.rates.admit(client) {
            self.refusals
                .record(Reason::Rate, client, format_args!("a request"));
            return self.finish(PORTAL_LABEL, started, too_many(wait));
        }
        let url_length = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if url_length > guards.limits.max_url_bytes {
            self.refusals.record(
                Reason::Size,
                client,
                format_args!("a {url_length}-byte URL"),
            );
            return self.finish(
                PORTAL_LABEL,
                started,
                plain(
                    StatusCode::URI_TOO_LONG,
                    "This address is too long for Portico to accept.\n",
                ),
            );
        }
        // Short-lived: a snapshot is not held across the awaits below.
        drop(guards);

        // Phase 1: request filter.
        if let Err(problem) = check_path(req.uri().path()) {
            return self.finish(PORTAL_LABEL, started, self.bad_path(problem));
        }
        strip_client_headers(req.headers_mut());
        host_from_authority(&mut req);

        // Phases 2 and 3: identity and router. Both read the host, which borrows from the
        // request, so they happen in a block whose results own what they need.
        let (identity, target) = {
            let host_header = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let authority = req.uri().authority().map(|a| a.as_str());
            let Some(host) = request_host(host_header, authority) else {
                let page = Page {
                    status: StatusCode::BAD_REQUEST,
                    heading: "This request names no host",
                    message: "Portico routes by host name, and this request did not say which host it was for.",
                    hint: "Open the address in a browser, or send a Host header.",
                    refresh: None,
                };
                return self.finish(PORTAL_LABEL, started, page.render(&self.portal_url));
            };
            if listener == ListenerKind::Metrics {
                return self.metrics_listener(req.uri().path());
            }
            // Sessions are bound to the host as the browser names it, port included.
            let session_host = lowercase(host_header.or(authority).unwrap_or(""));
            let cookies = CookieRules::for_scheme(self.options.urls.scheme());
            let identity = identify(
                req.headers(),
                &session_host,
                &self.options.sessions,
                cookies,
            );
            let table = self.routes.load();
            let target = route(
                &table,
                self.options.urls.domain(),
                &host,
                req.uri().path(),
                req.uri().query(),
            );
            (identity, target)
        };
        let (route, mode) = match target {
            Target::App { route, mode } => (route, mode),
            Target::Portal => {
                // Every form of Portico's own pages is a sign-in or account action. The API
                // and git are not: they take 256-bit tokens, which no rate of guessing finds.
                let path = req.uri().path();
                let token_only = path.starts_with("/api/") || path.starts_with("/git/");
                if req.method() == http::Method::POST && !token_only {
                    let admitted = self.guards.load().rates.admit_sign_in(peer.ip());
                    if let Err(wait) = admitted {
                        self.refusals.record(
                            Reason::SignInRate,
                            peer.ip(),
                            format_args!("a sign-in attempt"),
                        );
                        return self.finish(PORTAL_LABEL, started, too_many(wait));
                    }
                }
                req.extensions_mut().insert(identity);
                req.extensions_mut()
                    .insert(portico_core::ClientAddr(peer.ip()));
                let response = self
                    .portal
                    .clone()
                    .oneshot(req.map(axum::body::Body::new))
                    .await;
                let mut response = match response {
                    Ok(response) => response.map(from_axum),
                    Err(never) => match never {},
                };
                crate::pages::protect_page(response.headers_mut());
                return self.finish(PORTAL_LABEL, started, response);
            }
            Target::Internal(Internal::Metrics) if !self.options.metrics_on_main_listener => {
                return self.finish(PORTAL_LABEL, started, self.unknown_app("metrics"));
            }
            Target::Internal(internal) => return self.internal(internal),
            Target::AddSlash(location) => {
                return self.finish(PORTAL_LABEL, started, redirect(&location))
            }
            Target::UnknownApp(name) => {
                return self.finish(PORTAL_LABEL, started, self.unknown_app(&name))
            }
            Target::UnknownHost(host) => {
                return self.finish(PORTAL_LABEL, started, self.unknown_host(&host))
            }
        };
        if !route.firewall.is_open() && !route.firewall.permits(peer.ip()) {
            self.refusals.record(
                Reason::AppFirewall,
                peer.ip(),
                format_args!("a request for {}", route.name),
            );
            return self.finish(&route.name, started, self.address_refused());
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > route.max_body_bytes) {
            self.refusals.record(
                Reason::Size,
                peer.ip(),
                format_args!(
                    "a body over {} bytes for {}",
                    route.max_body_bytes, route.name
                ),
            );
            return self.finish(
                &route.name,
                started,
                plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "This upload is larger than this dashboard accepts.\n",
                ),
            );
        }
        // An administrator opening someone's private instance (per-user apps).
        if mode == Mode::Host && route.per_user {
            if let Some(which) = req.uri().path().strip_prefix(INSTANCE_PREFIX) {
                let response = match identity.user() {
                    Some(user) => instance_visit::open(
                        which,
                        req.headers(),
                        user,
                        &route,
                        &self.sticky,
                        &self.options.audit,
                        &self.portal_url,
                    ),
                    None => signin::required(&req, mode, &self.options.urls, &self.portal_url),
                };
                return self.finish(&route.name, started, response);
            }
        }
        // An app's own host reserves /_portico/ for the end of the sign-in handshake.
        if mode == Mode::Host && req.uri().path().starts_with(signin::RESERVED_PREFIX) {
            let response = signin::on_app_host(
                &req,
                &self.options.sessions,
                &self.options.handoffs,
                &self.portal_url,
                CookieRules::for_scheme(self.options.urls.scheme()),
            )
            .await;
            return self.finish(&route.name, started, response);
        }

        // Phase 4: policy.
        let host = lowercase(
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        );
        if foreign_websocket_origin(req.headers(), &host) {
            let page = Page {
                status: StatusCode::FORBIDDEN,
                heading: "Connection refused",
                message: "This live connection was opened from another site, which Portico does not allow.",
                hint: "",
                refresh: None,
            };
            return self.finish(&route.name, started, page.render(&self.portal_url));
        }
        match policy::decide(&identity, &route) {
            Decision::Allow => {}
            Decision::SignIn => {
                let response = signin::required(&req, mode, &self.options.urls, &self.portal_url);
                return self.finish(&route.name, started, response);
            }
            Decision::Deny => {
                if let Some(user) = identity.user() {
                    let how = if req.headers().contains_key(header::UPGRADE) {
                        "websocket"
                    } else {
                        "http"
                    };
                    self.options
                        .audit
                        .access_denied(&user.email, &route.name, how);
                }
                let heading = format!("You do not have access to {}", route.title);
                let message = format!("Ask {} to give you access.", self.options.contact);
                let page = Page {
                    status: StatusCode::FORBIDDEN,
                    heading: &heading,
                    message: &message,
                    hint: "",
                    refresh: None,
                };
                return self.finish(&route.name, started, page.render(&self.portal_url));
            }
        }

        // Phase 5: balancer (waiting first, if no replica is ready). In a per-user app the
        // replica is the person's own instance, and no other.
        let owner = match (&identity, route.per_user) {
            (_, false) => None,
            (Identity::User(user), true) => Some(user),
            (Identity::Anonymous, true) => {
                // The config refuses public per-user apps; never serve one anonymously.
                let response = signin::required(&req, mode, &self.options.urls, &self.portal_url);
                return self.finish(&route.name, started, response);
            }
        };
        let stuck = self.sticky.read(req.headers(), &route.name);
        // An administrator who opened someone's instance (`per_user.admin_access`).
        let visiting = owner
            .filter(|user| user.admin && route.admin_access)
            .and(stuck)
            .and_then(|s| {
                route
                    .endpoints
                    .iter()
                    .position(|e| *e.replica == *s.replica && e.owner.is_some())
            });
        let route = if visiting.is_none() && !has_replica(&route, owner) {
            match self.wait_for_replica(&req, route, owner).await {
                Ok(route) => route,
                Err((name, response)) => return self.finish(&name, started, response),
            }
        } else {
            route
        };
        if req.headers().contains_key(WAIT_HEADER) {
            // The waiting page asks only whether the app is ready: it is.
            let mut ready = Response::new(crate::body::empty());
            *ready.status_mut() = StatusCode::NO_CONTENT;
            ready
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return self.finish(&route.name, started, ready);
        }
        let endpoint = match (visiting, owner) {
            (Some(index), _) => route.endpoints.get(index),
            (None, Some(user)) => route.instance_of(user.id),
            (None, None) => self.balancer.pick(&route, stuck.map(|s| s.replica)),
        };
        let Some(endpoint) = endpoint else {
            return self.finish(&route.name, started, self.not_ready(&route));
        };
        // Only clients that keep the cookie are counted as sessions: a script that ignores
        // it would look like a new session at every request.
        match stuck {
            Some(stuck) => endpoint.load.recent.touch(stuck.client),
            None => endpoint.load.recent.touch_anonymous(),
        }
        // A new client, or one whose replica went away, is stuck to the chosen one (keeping
        // its client id).
        let stick = (stuck.map(|s| s.replica) != Some(&*endpoint.replica))
            .then(|| {
                let client = stuck.map_or_else(rand::random, |s| s.client);
                self.sticky
                    .set_cookie(&route.name, &endpoint.replica, client)
            })
            .flatten();

        // Phase 6: proxy.
        let (identity_headers, assertion) = match &identity {
            Identity::User(user) => (
                self.identity_headers.get(user),
                self.options
                    .assertions
                    .assertion(user, &route.name)
                    .and_then(|token| HeaderValue::from_maybe_shared(token).ok()),
            ),
            Identity::Anonymous => (None, None),
        };
        let forward = Forward {
            route: &route,
            mode,
            endpoint,
            peer,
            scheme: self.options.urls.scheme(),
            identity_headers: identity_headers.as_deref(),
            assertion: assertion.as_ref(),
        };
        let response = match self.upstream.forward(req, forward).await {
            Ok(mut response) => {
                if let Some(cookie) = stick {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                response
            }
            Err(error) => {
                self.telemetry.app(&route.name).upstream_errors.increment(1);
                tracing::warn!(app = %route.name, endpoint = %endpoint.addr, replica = %endpoint.replica, "upstream error: {error}");
                self.upstream_failed(&route, &error)
            }
        };
        self.finish(&route.name, started, response)
    }

    fn finish(
        &self,
        app: &str,
        started: Instant,
        response: Response<ProxyBody>,
    ) -> Response<ProxyBody> {
        self.telemetry
            .app(app)
            .record(response.status().as_u16(), started.elapsed());
        response
    }

    fn address_refused(&self) -> Response<ProxyBody> {
        Page {
            status: StatusCode::FORBIDDEN,
            heading: "Your network address may not reach this",
            message: "The firewall rules of this site do not allow connections from your network address.",
            hint: "If you need access, ask your Portico administrator and tell them your address.",
            refresh: None,
        }
        .render(&self.portal_url)
    }

    /// Counts and logs a connection closed because `max_connections` are open.
    pub(crate) fn refuse_connection(&self, peer: SocketAddr) {
        self.refusals.record(
            Reason::Connections,
            peer.ip(),
            format_args!("a connection (max_connections reached)"),
        );
    }

    /// The most client connections the main listener keeps open.
    pub(crate) fn max_connections(&self) -> usize {
        self.guards.load().limits.max_connections
    }

    /// The redirect listener's answer: the same host and path over HTTPS, for hosts Portico
    /// serves (anything else would make Portico an open redirector).
    fn to_https(&self, req: &Request<Incoming>) -> Response<ProxyBody> {
        // ACME HTTP-01: the CA fetches the answer over plain HTTP and must not be redirected
        // before it has it. Unknown tokens get 404, not a redirect, so the CA's log says so.
        if let Some(token) = req.uri().path().strip_prefix(ACME_CHALLENGE_PATH) {
            if let Some(challenges) = &self.options.acme_challenges {
                return match challenges.http_answer(token) {
                    Some(answer) => Response::new(full(answer)),
                    None => plain(StatusCode::NOT_FOUND, "no such ACME challenge\n"),
                };
            }
        }
        let host_header = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let host = request_host(host_header, req.uri().authority().map(|a| a.as_str()));
        match host {
            Some(host) if self.options.urls.serves_host(&host) => {
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                redirect(&format!("{}{path}", self.options.urls.origin_of(&host)))
            }
            _ => plain(
                StatusCode::MISDIRECTED_REQUEST,
                "Portico does not serve this host name.\n",
            ),
        }
    }

    fn metrics_listener(&self, path: &str) -> Response<ProxyBody> {
        match path {
            "/metrics" => self.internal(Internal::Metrics),
            "/readyz" => self.internal(Internal::Readyz),
            "/healthz" => self.internal(Internal::Healthz),
            _ => plain(
                StatusCode::NOT_FOUND,
                "not found: this listener serves /metrics, /healthz and /readyz\n",
            ),
        }
    }

    fn internal(&self, which: Internal) -> Response<ProxyBody> {
        match which {
            Internal::Healthz => plain(StatusCode::OK, "ok\n"),
            Internal::Readyz => self.readyz(),
            Internal::Metrics => match &self.metrics {
                Some(handle) => {
                    let mut response = Response::new(full(handle.render()));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    response
                }
                None => plain(StatusCode::NOT_FOUND, "metrics are not enabled\n"),
            },
        }
    }

    /// Ready once every app has settled (running or failed) after start-up; it then stays
    /// ready, so that one app restarting never takes the whole portal out of a load balancer.
    fn readyz(&self) -> Response<ProxyBody> {
        let table = self.routes.load();
        if !self.ready.load(Ordering::Relaxed) {
            let settled = table.iter().all(|r| {
                matches!(
                    r.status,
                    AppStatus::Running | AppStatus::Sleeping | AppStatus::Failed(_)
                )
            });
            if settled {
                self.ready.store(true, Ordering::Relaxed);
            }
        }
        let apps: serde_json::Map<String, serde_json::Value> = table
            .iter()
            .map(|r| (r.name.to_string(), r.status.label().into()))
            .collect();
        let ready = self.ready.load(Ordering::Relaxed);
        let body = serde_json::json!({ "ready": ready, "apps": apps }).to_string();
        let mut response = Response::new(full(body));
        *response.status_mut() = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    fn bad_path(&self, problem: UnsafePath) -> Response<ProxyBody> {
        let message = match problem {
            UnsafePath::DotSegment => {
                "This address contains a '.' or '..' segment, which Portico does not forward."
            }
            UnsafePath::EncodedSeparator => {
                "This address contains an encoded '/' or '\\', which Portico does not forward."
            }
            UnsafePath::BadEncoding => {
                "This address contains percent-encoding that is not valid UTF-8."
            }
        };
        Page {
            status: StatusCode::BAD_REQUEST,
            heading: "This address is not allowed",
            message,
            hint: "Check the link you followed, or start again from the list of dashboards.",
            refresh: None,
        }
        .render(&self.portal_url)
    }

    fn unknown_app(&self, name: &str) -> Response<ProxyBody> {
        let message = format!("There is no dashboard called “{name}” here.");
        Page {
            status: StatusCode::NOT_FOUND,
            heading: "Dashboard not found",
            message: &message,
            hint: "It may have been renamed or removed. The list of dashboards shows what is available.",
            refresh: None,
        }
        .render(&self.portal_url)
    }

    fn unknown_host(&self, host: &str) -> Response<ProxyBody> {
        let message = format!("Portico serves no site at “{host}”.");
        Page {
            status: StatusCode::NOT_FOUND,
            heading: "Unknown address",
            message: &message,
            hint: "Check the address; dashboards live at <name>.<domain> or under /apps/<name>/.",
            refresh: None,
        }
        .render(&self.portal_url)
    }

    /// No replica of the app is ready. If one is coming (the app sleeps, starts or
    /// restarts), a person's page load gets the waiting page at once, and any other request
    /// (an API call, a WebSocket, the waiting page's own wait) is held until a replica is
    /// ready, at most the app's `start_wait`. Either wakes a sleeping app. `Err` is the
    /// answer to give instead, with the app it is counted for.
    async fn wait_for_replica(
        &self,
        req: &Request<Incoming>,
        route: Arc<AppRoute>,
        owner: Option<&Arc<User>>,
    ) -> Result<Arc<AppRoute>, (Arc<str>, Response<ProxyBody>)> {
        if !coming(&route.status) {
            return Err((route.name.clone(), self.not_ready(&route)));
        }
        let _waiting = match owner {
            Some(user) => route.demand.wait_as(user),
            None => route.demand.wait(),
        };
        let waiter = req.headers().contains_key(WAIT_HEADER);
        if let Some(reason) = owner.and_then(|user| route.demand.refusal(user.id)) {
            return Err((route.name.clone(), self.instance_refused(&route, &reason)));
        }
        if !waiter && is_page_load(req) {
            return Err((route.name.clone(), self.waiting_page(&route)));
        }
        let deadline = tokio::time::Instant::now() + route.start_wait;
        let mut current = route;
        loop {
            let demand = current.demand.clone();
            let change = demand.next_change();
            let Some(latest) = self.routes.load().get(&current.name).cloned() else {
                return Err((current.name.clone(), self.unknown_app(&current.name)));
            };
            current = latest;
            if has_replica(&current, owner) {
                return Ok(current);
            }
            if let Some(reason) = owner.and_then(|user| current.demand.refusal(user.id)) {
                return Err((
                    current.name.clone(),
                    self.instance_refused(&current, &reason),
                ));
            }
            if !coming(&current.status) {
                return Err((current.name.clone(), self.not_ready(&current)));
            }
            if tokio::time::timeout_at(deadline, change).await.is_err() {
                return Err((current.name.clone(), self.still_starting(&current)));
            }
        }
    }

    fn waiting_page(&self, route: &AppRoute) -> Response<ProxyBody> {
        let heading = if route.per_user {
            format!("Starting your {}", route.title)
        } else {
            format!("{} is starting", route.title)
        };
        let message = if route.per_user {
            "Everyone gets their own instance of this app; yours is starting. The files in your home folder are kept between sessions."
        } else if route.status == AppStatus::Sleeping {
            "Nobody was using this dashboard, so it was asleep. It is starting for you now."
        } else {
            "The dashboard is starting up."
        };
        Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            heading: &heading,
            message,
            hint: "It opens here by itself when it is ready.",
            refresh: Some(5),
        }
        .render_waiting(&self.portal_url)
    }

    /// A person's instance will not start (a limit, or no size profile for them).
    fn instance_refused(&self, route: &AppRoute, reason: &str) -> Response<ProxyBody> {
        let heading = format!("Your {} could not start", route.title);
        let mut chars = reason.chars();
        let message = match chars.next() {
            Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
            None => String::new(),
        };
        let mut response = Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            heading: &heading,
            message: &message,
            hint: "Reload the page to try again.",
            refresh: None,
        }
        .render(&self.portal_url);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        response
    }

    /// A held request's wait ran out.
    fn still_starting(&self, route: &AppRoute) -> Response<ProxyBody> {
        let heading = format!("{} is still starting", route.title);
        Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            heading: &heading,
            message: "No replica of the dashboard became ready in time.",
            hint: "Try again in a moment.",
            refresh: Some(5),
        }
        .render(&self.portal_url)
    }

    fn not_ready(&self, route: &AppRoute) -> Response<ProxyBody> {
        let (heading, message, hint, refresh);
        let failed_message;
        match &route.status {
            AppStatus::Failed(reason) => {
                heading = format!("{} failed to start", route.title);
                // Only the first line: the rest may quote the app's output, which is for
                // administrators (`portico logs`), not for every visitor.
                failed_message = format!(
                    "{}.",
                    reason
                        .lines()
                        .next()
                        .unwrap_or("unknown reason")
                        .trim_end_matches('.')
                );
                message = failed_message.as_str();
                hint =
                    "An administrator can see the details with `portico logs` and `portico apps`.";
                refresh = None;
            }
            AppStatus::Stopped => {
                heading = format!("{} is stopped", route.title);
                message = "Portico is shutting this dashboard down.";
                hint = "Try again in a moment.";
                refresh = Some(5);
            }
            AppStatus::Building => {
                heading = format!("{} is being prepared", route.title);
                message = "Its environment is being installed; this happens once per change of its requirements.";
                hint = "This page refreshes by itself.";
                refresh = Some(2);
            }
            AppStatus::Starting | AppStatus::Running | AppStatus::Sleeping => {
                heading = format!("{} is starting", route.title);
                message = "The dashboard is starting up.";
                hint = "This page refreshes by itself.";
                refresh = Some(2);
            }
        }
        Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            heading: &heading,
            message,
            hint,
            refresh,
        }
        .render(&self.portal_url)
    }

    fn upstream_failed(&self, route: &AppRoute, error: &ProxyError) -> Response<ProxyBody> {
        let (status, heading) = match error {
            ProxyError::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!("{} took too long to answer", route.title),
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                format!("{} is not answering", route.title),
            ),
        };
        Page {
            status,
            heading: &heading,
            message: "The dashboard did not answer this request. If it crashed, Portico is restarting it.",
            hint: "Reload the page in a few seconds.",
            refresh: None,
        }
        .render(&self.portal_url)
    }
}

/// Whether the request has a replica to go to: any ready one, or in a per-user app the
/// owner's own instance.
fn has_replica(route: &AppRoute, owner: Option<&Arc<User>>) -> bool {
    match owner {
        Some(user) => route.instance_of(user.id).is_some(),
        None => !route.endpoints.is_empty(),
    }
}

/// Whether a replica of an app in this state is on its way (or starts when asked).
fn coming(status: &AppStatus) -> bool {
    matches!(
        status,
        AppStatus::Sleeping | AppStatus::Starting | AppStatus::Running
    )
}

/// A person opening a page (rather than a script, an XHR or a WebSocket): shown the waiting
/// page instead of being held.
fn is_page_load(req: &Request<Incoming>) -> bool {
    let headers = req.headers();
    matches!(*req.method(), http::Method::GET | http::Method::HEAD)
        && !headers.contains_key(header::UPGRADE)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// Hosts compare case-insensitively; browsers send lowercase, so this rarely allocates.
fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// 429 with when to try again (whole seconds, at least one).
fn too_many(wait: std::time::Duration) -> Response<ProxyBody> {
    let mut response = plain(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests from your address. Wait a moment and try again.\n",
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}
