//! `/_portico/account/mfa…`: a signed-in user sets up, renews or removes their authenticator.

use super::account::{answer, signed_in};
use super::csrf;
use super::second_factor::{CodeForm, EnrolPage, RecoveryCodesPage};
use super::{render, see_other, Nav};
use crate::ConsoleState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{Identity, User};
use portico_identity::mfa::{MfaError, MfaStatus};
use portico_store::UserRow;
use std::sync::Arc;

const ACTION: &str = "/_portico/account/mfa";
const FORGED: &str = "This form was sent from another site or had expired; try again.";

async fn row(state: &ConsoleState, user: &User) -> Option<UserRow> {
    state
        .accounts
        .store()
        .user_by_id(user.id)
        .await
        .ok()
        .flatten()
}

async fn enrol_page(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    user: &UserRow,
    error: Option<String>,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    match state.mfa.enrolment(user).await {
        Ok(enrolment) => {
            let mut page = EnrolPage::new(Nav::new(identity, &token), ACTION, false, enrolment);
            let status = if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            page.error = error;
            csrf::with_cookie(render(status, &page), cookie)
        }
        Err(e) => {
            tracing::error!("cannot start MFA enrolment: {e}");
            see_other("/_portico/account")
        }
    }
}

fn codes_page(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    codes: Vec<String>,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    let page = RecoveryCodesPage {
        nav: Nav::new(identity, &token),
        codes,
        continue_to: "/_portico/account".into(),
    };
    csrf::with_cookie(render(StatusCode::OK, &page), cookie)
}

pub async fn enrolment(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in?return=%2F_portico%2Faccount%2Fmfa");
    };
    if matches!(
        state.mfa.status(user.id).await,
        Ok(MfaStatus::Active { .. })
    ) {
        return see_other("/_portico/account");
    }
    match row(&state, &user).await {
        Some(row) => enrol_page(&state, &headers, &identity, &row, None).await,
        None => see_other("/_portico/sign-in"),
    }
}

pub async fn confirm(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    let Some(row) = row(&state, &user).await else {
        return see_other("/_portico/sign-in");
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return enrol_page(&state, &headers, &identity, &row, Some(FORGED.into())).await;
    }
    match state.mfa.confirm(&row, &form.code).await {
        Ok(codes) => codes_page(&state, &headers, &identity, codes),
        Err(e @ (MfaError::WrongCode | MfaError::NothingPending)) => {
            enrol_page(&state, &headers, &identity, &row, Some(e.to_string())).await
        }
        Err(e) => {
            tracing::error!("cannot confirm MFA enrolment: {e}");
            see_other("/_portico/account")
        }
    }
}

pub async fn new_recovery_codes(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        let error = Some(FORGED.into());
        return answer(
            &state,
            &headers,
            &identity,
            &user,
            StatusCode::FORBIDDEN,
            None,
            error,
        )
        .await;
    }
    let Some(row) = row(&state, &user).await else {
        return see_other("/_portico/sign-in");
    };
    match state.mfa.replace_recovery_codes(&row).await {
        Ok(codes) => codes_page(&state, &headers, &identity, codes),
        Err(e) => {
            tracing::error!("cannot replace recovery codes: {e}");
            see_other("/_portico/account")
        }
    }
}

/// Turns MFA off, after a current code (someone at an unlocked computer cannot do it alone).
pub async fn remove(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some((identity, user)) = signed_in(&identity) else {
        return see_other("/_portico/sign-in");
    };
    let reply = |status, message: Option<&str>, error: Option<String>| {
        let message = message.map(str::to_owned);
        let (state, headers, identity, user) = (&state, &headers, &identity, &user);
        async move { answer(state, headers, identity, user, status, message, error).await }
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return reply(StatusCode::FORBIDDEN, None, Some(FORGED.into())).await;
    }
    if state.mfa_policy.requires(user.admin) {
        let error = "Your organisation requires two-step verification, so it cannot be turned off.";
        return reply(StatusCode::FORBIDDEN, None, Some(error.into())).await;
    }
    let Some(row) = row(&state, &user).await else {
        return see_other("/_portico/sign-in");
    };
    match state.mfa.verify(&row, &form.code).await {
        Ok(_) => {}
        Err(e @ (MfaError::WrongCode | MfaError::Replayed | MfaError::NothingPending)) => {
            return reply(StatusCode::BAD_REQUEST, None, Some(e.to_string())).await;
        }
        Err(e) => {
            tracing::error!("cannot check an MFA code: {e}");
            let error = "Try again in a moment.";
            return reply(StatusCode::SERVICE_UNAVAILABLE, None, Some(error.into())).await;
        }
    }
    match state.mfa.remove(&row.email, &row).await {
        Ok(_) => {
            let message = "Two-step verification is off. Your recovery codes no longer work.";
            reply(StatusCode::OK, Some(message), None).await
        }
        Err(e) => {
            tracing::error!("cannot remove MFA: {e}");
            let error = "Try again in a moment.";
            reply(StatusCode::SERVICE_UNAVAILABLE, None, Some(error.into())).await
        }
    }
}
