//! `/_portico/handoff?to=<app URL>`: the portal's half of the cross-host handshake
//! (`portico_identity::handoff`). Signed in: a one-time code for that app host, and back to
//! it. Not signed in: sign in first, then here again.

use super::{see_other, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use portico_core::Identity;
use portico_identity::web::{app_url_parts, SESSION_COOKIE};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct HandoffQuery {
    #[serde(default)]
    to: String,
    /// The app host's state for this browser (see `portico_identity::handoff`).
    #[serde(default)]
    state: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Nav,
    heading: &'static str,
    message: &'static str,
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub async fn start(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Query(query): Query<HandoffQuery>,
) -> Response {
    let identity = identity.map(|e| e.0).unwrap_or_default();
    let Some((host, path)) = app_url_parts(&query.to, state.urls.scheme(), state.urls.domain())
    else {
        let page = MessagePage {
            nav: Nav::new(&identity, ""),
            heading: "This link does not lead to a dashboard",
            message: "Portico only signs you in to its own dashboards. Start from the list of dashboards.",
        };
        return super::render(StatusCode::BAD_REQUEST, &page);
    };
    let Identity::User(user) = &identity else {
        let back = format!(
            "/_portico/handoff?to={}&state={}",
            encode(&query.to),
            encode(&query.state)
        );
        return see_other(&format!("/_portico/sign-in?return={}", encode(&back)));
    };
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let host_here = super::request_host(&headers);
    // The portal session the code is made from (the one that identified this request).
    let parent = state
        .cookies
        .values(cookies, SESSION_COOKIE)
        .find(|v| state.sessions.lookup(v, &host_here).is_some());
    let Some(parent) = parent else {
        return see_other("/_portico/sign-in");
    };
    let code = state
        .handoffs
        .issue(user.id, parent, &host.to_ascii_lowercase(), &query.state);
    see_other(&format!(
        "{}://{}/_portico/callback?code={code}&to={}",
        state.urls.scheme(),
        host,
        encode(path)
    ))
}
