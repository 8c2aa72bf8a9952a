//! `POST /_portico/sign-out`: ends this session and every app-host session made from it.

use super::csrf;
use super::see_other;
use crate::ConsoleState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use portico_core::Identity;
use portico_identity::sessions::id_hash_of;
use portico_identity::sso::refresh;
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
    let values: Vec<&str> = state.cookies.values(cookies, SESSION_COOKIE).collect();
    let mut provider_logout = None;
    for value in &values {
        if provider_logout.is_none() {
            provider_logout = provider_logout_url(&state, value).await;
        }
    }
    for value in values {
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
    // Signed in through an OIDC provider that offers it: end the session there too, and
    // come back to the sign-in page.
    let mut response = see_other(provider_logout.as_deref().unwrap_or("/_portico/sign-in"));
    if let Ok(value) = HeaderValue::from_str(&state.cookies.clear(SESSION_COOKIE)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The provider's end-session URL for the session of this cookie, if it came from a provider
/// that offers one.
async fn provider_logout_url(state: &ConsoleState, cookie_value: &str) -> Option<String> {
    let hash = id_hash_of(cookie_value)?;
    let row = state.accounts.store().sso_session(&hash).await.ok()??;
    let provider = state.oidc.iter().find(|p| p.provider() == row.provider)?;
    let id_token = state
        .secrets
        .open(
            &refresh::purpose(&hash, "id"),
            row.id_token_sealed.as_deref()?,
        )
        .ok()?;
    let back = format!("{}_portico/sign-in", state.urls.portal());
    provider
        .logout_url(&String::from_utf8_lossy(&id_token), &back)
        .await
}
