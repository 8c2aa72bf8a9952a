//! When a request needs a signed-in user, and the end of the cross-host handshake
//! (`portico_identity::handoff`) on an app's own host.

use crate::body::{empty, ProxyBody};
use crate::identity::is_navigation;
use crate::pages::{plain, Page};
use crate::router::Mode;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use portico_core::PublicUrls;
use portico_identity::web::{safe_local_path, CookieRules, SESSION_COOKIE, STATE_COOKIE};
use portico_identity::{Handoffs, Sessions};

/// Paths under this prefix on an app's own host belong to Portico, not the app.
pub const RESERVED_PREFIX: &str = "/_portico/";
const CALLBACK: &str = "/_portico/callback";

pub(crate) fn see_other(location: &str) -> Response<ProxyBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The handshake's state cookie: only sent to the callback path, for five minutes.
fn state_cookie(rules: CookieRules, value: &str, max_age: i64) -> String {
    let secure = if rules.secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path={CALLBACK}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        rules.name(STATE_COOKIE)
    )
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A browser navigating is sent to sign in and brought back; anything else (scripts,
/// WebSockets) gets 401, which it can act on, rather than an HTML page it cannot.
pub fn required(
    req: &Request<Incoming>,
    mode: Mode,
    urls: &PublicUrls,
    portal: &str,
) -> Response<ProxyBody> {
    if !is_navigation(req.method(), req.headers()) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "sign in first: this dashboard needs a signed-in user\n",
        );
    }
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match mode {
        Mode::Path => see_other(&format!(
            "/_portico/sign-in?return={}",
            encode(path_and_query)
        )),
        Mode::Host => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let here = format!(
                "{}://{}{}",
                urls.scheme(),
                host.to_ascii_lowercase(),
                path_and_query
            );
            // Binds the handshake to this browser (see `portico_identity::handoff`).
            let state = Handoffs::new_state();
            let mut response = see_other(&format!(
                "{portal}_portico/handoff?to={}&state={state}",
                encode(&here)
            ));
            let cookie = state_cookie(CookieRules::for_scheme(urls.scheme()), &state, 300);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
    }
}

/// `/_portico/…` on an app host: only the callback exists there.
pub async fn on_app_host(
    req: &Request<Incoming>,
    sessions: &Sessions,
    handoffs: &Handoffs,
    portal: &str,
    cookies: CookieRules,
) -> Response<ProxyBody> {
    if req.uri().path() != CALLBACK {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let mut code = None;
    let mut to = None;
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*key {
            "code" => code = Some(value.into_owned()),
            "to" => to = Some(value.into_owned()),
            _ => {}
        }
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rules = cookies;
    let cookies = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let states = rules.values(cookies, STATE_COOKIE);
    let pending = code
        .as_deref()
        .and_then(|code| handoffs.redeem(code, &host, states));
    let Some(pending) = pending else {
        let page = Page {
            status: StatusCode::BAD_REQUEST,
            heading: "This sign-in link has expired",
            message:
                "Sign-in links work once, for a minute. Open the dashboard again to get a new one.",
            hint: "",
            refresh: None,
        };
        return page.render(portal);
    };
    let target = to
        .as_deref()
        .and_then(safe_local_path)
        .unwrap_or("/")
        .to_owned();
    match sessions
        .create_for_user_id(pending.user_id, &host, &pending.parent_cookie)
        .await
    {
        Ok(Some(session)) => {
            let mut response = see_other(&target);
            let cookie = rules.set(SESSION_COOKIE, &session.cookie_value, "Lax", None);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            let spent = state_cookie(rules, "", 0);
            if let Ok(value) = HeaderValue::from_str(&spent) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => plain(StatusCode::FORBIDDEN, "this account cannot sign in\n"),
        Err(e) => {
            tracing::error!("cannot create a session: {e}");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "sign-in is unavailable right now; try again in a moment\n",
            )
        }
    }
}
