pub mod account;
pub mod account_mfa;
pub mod account_tokens;
pub mod admin;
pub mod admin_apps;
pub mod admin_audit;
pub mod admin_groups;
pub mod admin_users;
pub mod assets;
pub mod csrf;
pub mod handoff;
pub mod links;
pub mod not_found;
pub mod portal;
pub mod saml;
pub mod second_factor;
pub mod sign_in;
pub mod sign_out;
pub mod sso;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portico_core::Identity;

/// Renders a template the same way everywhere: HTML, never cached, never sniffed. A render
/// failure is a bug; it shows a plain message rather than a stack trace.
pub fn render(status: StatusCode, template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, html).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "This page could not be rendered.",
        )
            .into_response(),
    }
}

/// A page with a heading and one message (errors that need a sentence, confirmations).
#[derive(askama::Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub nav: Nav,
    pub heading: String,
    pub message: String,
}

/// Renders a `MessagePage`.
pub fn message(status: StatusCode, nav: Nav, heading: &str, message: &str) -> Response {
    render(
        status,
        &MessagePage {
            nav,
            heading: heading.to_owned(),
            message: message.to_owned(),
        },
    )
}

/// The header bar of every page: who is signed in, and the token of the sign-out form.
pub struct Nav {
    pub user: Option<String>,
    /// Shows the link to the admin pages.
    pub admin: bool,
    pub csrf: String,
}

impl Nav {
    pub fn new(identity: &Identity, csrf: &str) -> Nav {
        Nav {
            user: identity.user().map(|u| u.display_name.clone()),
            admin: identity.user().is_some_and(|u| u.admin),
            csrf: csrf.to_owned(),
        }
    }
}

/// The Host header as the browser sent it, lowercased: sessions are bound to it.
pub fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A 303 to `location`.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
