//! `/_portico/account/tokens`: your API tokens (for `portico deploy`, `git push`, scripts):
//! list them, make one (shown once, on the page that made it), revoke one. Only your own:
//! revoking someone else's token id is refused as if it did not exist.

use super::account::signed_in;
use super::csrf;
use super::{render, see_other, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{Identity, User};
use portico_identity::sessions::unix_now;
use portico_identity::Scope;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Template)]
#[template(path = "account_tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<TokenView>,
    /// A token just made: shown this once.
    made: Option<String>,
    message: Option<String>,
    error: Option<String>,
}

struct TokenView {
    id: i64,
    name: String,
    prefix: String,
    scopes: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
}

fn date(unix: Option<i64>, none: &str) -> String {
    match unix {
        Some(at) => {
            let time = std::time::UNIX_EPOCH + Duration::from_secs(at.max(0) as u64);
            humantime::format_rfc3339_seconds(time).to_string()
        }
        None => none.to_owned(),
    }
}

async fn page(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    user: &User,
    status: StatusCode,
    outcome: Outcome,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    let now = unix_now();
    let tokens = match state.tokens.list(Some(&user.email)).await {
        Ok(list) => list
            .into_iter()
            .map(|l| TokenView {
                id: l.token.id,
                state: portico_identity::tokens::state(&l.token, now),
                name: l.token.name,
                prefix: format!("{}…", l.token.prefix),
                scopes: l.token.scopes,
                created: date(Some(l.token.created_at), ""),
                expires: date(l.token.expires_at, "never"),
                last_used: date(l.token.last_used_at, "never"),
            })
            .collect(),
        Err(e) => {
            tracing::error!("the tokens page cannot list tokens: {e}");
            Vec::new()
        }
    };
    let page = TokensPage {
        nav: Nav::new(identity, &token),
        tokens,
        made: outcome.made,
        message: outcome.message,
        error: outcome.error,
    };
    csrf::with_cookie(render(status, &page), cookie)
}

/// What a form without this site's CSRF token is told.
const FORGED: &str = "This form was sent from another site or had expired; try again.";

#[derive(Default)]
struct Outcome {
    made: Option<String>,
    message: Option<String>,
    error: Option<String>,
}

fn failed(error: impl Into<String>) -> Outcome {
    Outcome {
        error: Some(error.into()),
        ..Outcome::default()
    }
}

pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in?return=%2F_portico%2Faccount%2Ftokens");
    };
    page(
        &state,
        &headers,
        &identity,
        &user,
        StatusCode::OK,
        Outcome::default(),
    )
    .await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    csrf: String,
}

/// What the form asks for, or what is wrong with it.
fn read(form: &CreateForm) -> Result<(String, Vec<Scope>, Duration), String> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("Name the token (1-100 characters), e.g. \"laptop\".".into());
    }
    let scopes = form
        .scope
        .split_whitespace()
        .map(Scope::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}.", super::admin::sentence(e)))?;
    let scopes = if scopes.is_empty() {
        vec![Scope::Deploy]
    } else {
        scopes
    };
    let days: u64 = form
        .days
        .trim()
        .parse()
        .ok()
        .filter(|d| (1..=366).contains(d))
        .ok_or("It must expire in 1 to 366 days.")?;
    Ok((
        name.to_owned(),
        scopes,
        Duration::from_secs(days * 24 * 3600),
    ))
}

pub async fn create(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<CreateForm>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    let answer = |status, outcome| page(&state, &headers, &identity, &user, status, outcome);
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return answer(StatusCode::FORBIDDEN, failed(FORGED)).await;
    }
    let (name, scopes, lifetime) = match read(&form) {
        Ok(asked) => asked,
        Err(error) => return answer(StatusCode::BAD_REQUEST, failed(error)).await,
    };
    match state
        .tokens
        .create(&user.email, &user.email, &name, &scopes, Some(lifetime))
        .await
    {
        Ok(made) => {
            let outcome = Outcome {
                made: Some(made.token),
                ..Outcome::default()
            };
            answer(StatusCode::OK, outcome).await
        }
        Err(e) => {
            tracing::error!("cannot make a token: {e}");
            let error = "The token could not be made; try again in a moment.";
            answer(StatusCode::SERVICE_UNAVAILABLE, failed(error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    csrf: String,
}

pub async fn revoke(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    let answer = |status, outcome| page(&state, &headers, &identity, &user, status, outcome);
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return answer(StatusCode::FORBIDDEN, failed(FORGED)).await;
    }
    let mine = state
        .tokens
        .list(Some(&user.email))
        .await
        .is_ok_and(|list| list.iter().any(|l| l.token.id == form.id));
    if !mine {
        return answer(StatusCode::NOT_FOUND, failed("You have no such token.")).await;
    }
    match state.tokens.revoke(&user.email, form.id).await {
        Ok(_) => {
            let outcome = Outcome {
                message: Some(format!("Token {} is revoked: it works no more.", form.id)),
                ..Outcome::default()
            };
            answer(StatusCode::OK, outcome).await
        }
        Err(e) => {
            tracing::error!("cannot revoke a token: {e}");
            let error = "The token could not be revoked; try again in a moment.";
            answer(StatusCode::SERVICE_UNAVAILABLE, failed(error)).await
        }
    }
}
