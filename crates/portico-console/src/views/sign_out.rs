//! `POST /_portico/sign-out`: ends this session and every app-host session made from it.

use super::csrf;
use super::see_other;
use crate::ConsoleState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use portico_core::Identity;
use portico_identity::web::SESSION_COOKIE;
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
    if csrf::check(&state, &headers, &form.csrf).is_err() {
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
    for value in state.cookies.values(cookies, SESSION_COOKIE) {
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
    if let Ok(value) = HeaderValue::from_str(&state.cookies.clear(SESSION_COOKIE)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
