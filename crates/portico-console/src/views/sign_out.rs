//! `POST /_portico/sign-out`: ends this session and every app-host session made from it.

use super::csrf;
use super::see_other;
use crate::ConsoleState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use portico_core::Identity;
use portico_identity::web::{clear_cookie, cookie_values, SESSION_COOKIE};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn submit(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<SignOutForm>,
) -> Response {
    let origin = state.urls.portal().trim_end_matches('/').to_owned();
    if csrf::check(&headers, &form.csrf, &origin).is_err() {
        return (
            StatusCode::FORBIDDEN,
            "This sign-out was sent from another site or had expired; use the Sign out button.",
        )
            .into_response();
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for value in cookie_values(cookies, SESSION_COOKIE) {
        if let Err(e) = state.sessions.end(value).await {
            tracing::error!("cannot end a session: {e}");
        }
    }
    if let Some(Extension(Identity::User(user))) = identity {
        let _ = state
            .accounts
            .store()
            .add_audit(&user.email, "sign-out", Some(&user.email), "")
            .await;
    }
    let mut response = see_other("/_portico/sign-in");
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(SESSION_COOKIE, false)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
