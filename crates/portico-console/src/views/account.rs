//! `/_portico/account`: who you are, change your password, sign out everywhere.

use super::csrf;
use super::{render, request_host, see_other, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{Identity, User};
use portico_identity::mfa::MfaStatus;
use portico_identity::web::SESSION_COOKIE;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    email: String,
    groups: String,
    message: Option<String>,
    error: Option<String>,
    mfa: MfaSummary,
}

/// The two-step verification section of the account page.
#[derive(Clone, Copy)]
pub(super) struct MfaSummary {
    pub on: bool,
    pub recovery_codes_left: i64,
    /// Policy requires it: it cannot be turned off.
    pub required: bool,
}

pub(super) async fn mfa_summary(state: &ConsoleState, user: &User) -> MfaSummary {
    let status = state.mfa.status(user.id).await.unwrap_or(MfaStatus::None);
    let (on, recovery_codes_left) = match status {
        MfaStatus::Active {
            recovery_codes_left,
        } => (true, recovery_codes_left),
        MfaStatus::None => (false, 0),
    };
    MfaSummary {
        on,
        recovery_codes_left,
        required: state.mfa_policy.requires(user.admin),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
}

fn page(
    user: &User,
    identity: &Identity,
    token: &str,
    message: Option<String>,
    error: Option<String>,
    mfa: MfaSummary,
) -> AccountPage {
    let groups = if user.groups.is_empty() {
        "none".to_owned()
    } else {
        user.groups.join(", ")
    };
    AccountPage {
        nav: Nav::new(identity, token),
        email: user.email.clone(),
        groups,
        message,
        error,
        mfa,
    }
}

/// The account page with a message or an error, for the forms that post to sub-paths.
pub(super) async fn answer(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    user: &User,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    let mfa = mfa_summary(state, user).await;
    csrf::with_cookie(
        render(status, &page(user, identity, &token, message, error, mfa)),
        cookie,
    )
}

pub(super) fn signed_in(identity: &Option<Extension<Identity>>) -> Option<(Identity, Arc<User>)> {
    match identity {
        Some(Extension(identity @ Identity::User(user))) => Some((identity.clone(), user.clone())),
        _ => None,
    }
}

pub async fn show(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in?return=%2F_portico%2Faccount");
    };
    answer(
        &state,
        &headers,
        &identity,
        &user,
        StatusCode::OK,
        None,
        None,
    )
    .await
}

/// Changes the password after checking the current one; every other session of the user ends
/// (someone who knew the old password is signed out), this browser gets a new one.
pub async fn change_password(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    let (token, cookie) = csrf::token(&state, &headers);
    let mfa = mfa_summary(&state, &user).await;
    let answer = |status, message: Option<&str>, error: Option<String>| {
        let page = page(
            &user,
            &identity,
            &token,
            message.map(str::to_owned),
            error,
            mfa,
        );
        csrf::with_cookie(render(status, &page), cookie.clone())
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return answer(
            StatusCode::FORBIDDEN,
            None,
            Some("This form was sent from another site or had expired; try again.".into()),
        );
    }
    if let Ok(Some(provider)) = state
        .accounts
        .store()
        .external_providers_of(user.id)
        .await
        .map(|p| p.into_iter().next())
    {
        let error = format!("Your password is managed by {provider}; change it there.");
        return answer(StatusCode::BAD_REQUEST, None, Some(error));
    }
    if form.new != form.repeat {
        return answer(
            StatusCode::BAD_REQUEST,
            None,
            Some("The new password and its repetition differ.".into()),
        );
    }
    match state.accounts.verify(&user.email, &form.current).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return answer(
                StatusCode::BAD_REQUEST,
                None,
                Some("The current password is not right.".into()),
            )
        }
        Err(e) => {
            tracing::error!("cannot check a password: {e}");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                Some("Try again in a moment.".into()),
            );
        }
    }
    if let Err(e) = state
        .accounts
        .reset_password(&user.email, &user.email, Some(&form.new))
        .await
    {
        return answer(
            StatusCode::BAD_REQUEST,
            None,
            Some(capitalise(&e.to_string())),
        );
    }
    if let Err(e) = state.sessions.end_all_for_user(user.id).await {
        tracing::error!("cannot end sessions after a password change: {e}");
    }
    let fresh = match state.accounts.store().user_by_email(&user.email).await {
        Ok(Some(row)) => state
            .sessions
            .create(&row, &request_host(&headers), None)
            .await
            .ok(),
        _ => None,
    };
    let mut response = answer(
        StatusCode::OK,
        Some("Your password is changed. Other sessions were signed out."),
        None,
    );
    let value = match fresh {
        Some(session) => state
            .cookies
            .set(SESSION_COOKIE, &session.cookie_value, "Lax", None),
        None => state.cookies.clear(SESSION_COOKIE),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Ends every session of the user, in every browser and on every app host.
pub async fn sign_out_everywhere(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<TokenForm>,
) -> Response {
    let Some((_, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return see_other("/_portico/account");
    }
    if let Err(e) = state.sessions.end_all_for_user(user.id).await {
        tracing::error!("cannot end sessions: {e}");
    }
    let _ = state
        .accounts
        .store()
        .add_audit(&user.email, "sign-out.everywhere", Some(&user.email), "")
        .await;
    let mut response = see_other("/_portico/sign-in");
    if let Ok(value) = HeaderValue::from_str(&state.cookies.clear(SESSION_COOKIE)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
