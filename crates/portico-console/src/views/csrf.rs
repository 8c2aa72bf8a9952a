//! Cross-site request forgery defences for every state-changing form:
//! 1. the request must come from the portal's own origin (`Origin`, or `Referer` when a
//!    browser omits it). This also stops a dashboard on a sub-domain, which could plant a
//!    cookie for the parent domain and so defeat a double-submit token alone;
//! 2. a double-submit token: a random value in an HttpOnly, SameSite=Strict cookie that the
//!    form must repeat, compared in constant time.

use crate::ConsoleState;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use portico_identity::web::CSRF_COOKIE;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The token to put in a form, and the cookie to set when the browser has none yet.
pub fn token(state: &ConsoleState, headers: &HeaderMap) -> (String, Option<String>) {
    let existing = state
        .cookies
        .values(
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            CSRF_COOKIE,
        )
        .find(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    match existing {
        Some(token) => (token, None),
        None => {
            let mut raw = [0u8; 32];
            rand::rng().fill_bytes(&mut raw);
            let token = hex::encode(raw);
            let cookie = state.cookies.set(CSRF_COOKIE, &token, "Strict", None);
            (token, Some(cookie))
        }
    }
}

/// Adds the token cookie to a response when one was made.
pub fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Why a form submission was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Forgery {
    ForeignOrigin,
    BadToken,
}

/// Checks both defences against the portal's origin (`http://localhost:8080`).
pub fn check(state: &ConsoleState, headers: &HeaderMap, form_token: &str) -> Result<(), Forgery> {
    let portal = state.urls.portal();
    let portal_origin = portal.trim_end_matches('/');
    let same_origin = match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => origin == portal_origin,
        None => headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .is_some_and(|r| r == portal_origin || r.starts_with(&format!("{portal_origin}/"))),
    };
    if !same_origin {
        return Err(Forgery::ForeignOrigin);
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let matches = state.cookies.values(cookies, CSRF_COOKIE).any(|cookie| {
        !cookie.is_empty() && bool::from(cookie.as_bytes().ct_eq(form_token.as_bytes()))
    });
    if matches {
        Ok(())
    } else {
        Err(Forgery::BadToken)
    }
}
