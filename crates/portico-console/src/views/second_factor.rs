//! The second step of sign-in: a code from an authenticator app (or a recovery code), or, when
//! policy requires MFA of someone who has none, setting up the app there and then.

use super::csrf;
use super::sign_in::{append_cookie, start_session};
use super::{render, see_other, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use portico_core::Identity;
use portico_identity::mfa::{Enrolment, MfaError, Proof};
use portico_identity::pending::PendingSignIn;
use portico_identity::web::MFA_COOKIE;
use portico_store::UserRow;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "mfa_verify.html")]
struct VerifyPage {
    nav: Nav,
    error: Option<String>,
}

/// Setting up an authenticator: at sign-in (policy requires it) or from the account page.
#[derive(Template)]
#[template(path = "mfa_enrol.html")]
pub(super) struct EnrolPage {
    pub nav: Nav,
    pub action: &'static str,
    pub required: bool,
    pub secret: String,
    pub qr_svg: String,
    pub error: Option<String>,
}

impl EnrolPage {
    pub fn new(nav: Nav, action: &'static str, required: bool, enrolment: Enrolment) -> Self {
        // Groups of four are easier to type into a phone.
        let secret = enrolment
            .secret
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        EnrolPage {
            nav,
            action,
            required,
            secret,
            qr_svg: enrolment.qr_svg,
            error: None,
        }
    }
}

/// Recovery codes, shown once.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub(super) struct RecoveryCodesPage {
    pub nav: Nav,
    pub codes: Vec<String>,
    pub continue_to: String,
}

/// A form with a code (TOTP or recovery) and the CSRF token.
#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub(super) code: String,
    #[serde(default)]
    pub(super) csrf: String,
}

/// The browser's pending sign-in and its user, or a response sending it back to the start.
async fn pending(
    state: &ConsoleState,
    headers: &HeaderMap,
) -> Result<(String, PendingSignIn, UserRow), Response> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let restart = || see_other("/_portico/sign-in");
    let (token, pending) = state
        .pending
        .get(state.cookies.values(cookies, MFA_COOKIE))
        .ok_or_else(restart)?;
    match state.accounts.store().user_by_id(pending.user_id).await {
        Ok(Some(user)) if !user.disabled => Ok((token, pending, user)),
        _ => {
            state.pending.finish(&token);
            Err(restart())
        }
    }
}

pub async fn form(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let (_, pending, user) = match pending(&state, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (token, cookie) = csrf::token(&state, &headers);
    let nav = Nav::new(&Identity::Anonymous, &token);
    if pending.must_enrol {
        return match state.mfa.enrolment(&user).await {
            Ok(enrolment) => {
                let page = EnrolPage::new(nav, "/_portico/sign-in/enrol", true, enrolment);
                csrf::with_cookie(render(StatusCode::OK, &page), cookie)
            }
            Err(e) => unavailable(&e, nav, cookie),
        };
    }
    let page = VerifyPage { nav, error: None };
    csrf::with_cookie(render(StatusCode::OK, &page), cookie)
}

fn unavailable(error: &MfaError, nav: Nav, cookie: Option<String>) -> Response {
    tracing::error!("two-step verification failed: {error}");
    let page = VerifyPage {
        nav,
        error: Some("Sign-in is unavailable right now. Try again in a moment.".into()),
    };
    csrf::with_cookie(render(StatusCode::SERVICE_UNAVAILABLE, &page), cookie)
}

/// Finishes a sign-in: the session cookie, the pending cookie removed.
async fn signed_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    token: &str,
    user: &UserRow,
    method: &str,
    mut response: Response,
) -> Response {
    state.pending.finish(token);
    state.throttle.succeeded(&user.email);
    match start_session(state, headers, user, method).await {
        Some((cookie, _)) => {
            response.headers_mut().append(header::SET_COOKIE, cookie);
            append_cookie(&mut response, &state.cookies.clear(MFA_COOKIE));
            response
        }
        None => see_other("/_portico/sign-in"),
    }
}

/// A wrong code: counted against the pending sign-in and the account's lockout.
async fn wrong_code(state: &ConsoleState, token: &str, user: &UserRow, error: &MfaError) -> bool {
    let _ = state
        .accounts
        .store()
        .add_audit(
            &user.email,
            "sign-in.mfa-failure",
            Some(&user.email),
            &error.to_string(),
        )
        .await;
    if let Some(lock) = state.throttle.failed(&user.email) {
        let _ = state
            .accounts
            .store()
            .add_audit(
                &user.email,
                "sign-in.lockout",
                Some(&user.email),
                &format!("locked for {}s", lock.as_secs()),
            )
            .await;
        state.pending.finish(token);
        return false;
    }
    state.pending.failed(token)
}

pub async fn verify(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (token, pending, user) = match pending(&state, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (csrf_token, cookie) = csrf::token(&state, &headers);
    let again = |status, error: String| {
        let page = VerifyPage {
            nav: Nav::new(&Identity::Anonymous, &csrf_token),
            error: Some(error),
        };
        csrf::with_cookie(render(status, &page), cookie.clone())
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return again(
            StatusCode::FORBIDDEN,
            "This form was sent from another site or had expired; type the code again.".into(),
        );
    }
    if pending.must_enrol {
        return see_other("/_portico/sign-in/verify");
    }
    match state.mfa.verify(&user, &form.code).await {
        Ok(proof) => {
            let next = match proof {
                Proof::RecoveryCode { left } if left <= 3 => "/_portico/account".to_owned(),
                _ => pending.return_to.clone(),
            };
            signed_in(
                &state,
                &headers,
                &token,
                &user,
                proof.method(),
                see_other(&next),
            )
            .await
        }
        Err(e @ (MfaError::WrongCode | MfaError::Replayed)) => {
            if wrong_code(&state, &token, &user, &e).await {
                again(StatusCode::UNAUTHORIZED, e.to_string())
            } else {
                let mut response = see_other("/_portico/sign-in");
                append_cookie(&mut response, &state.cookies.clear(MFA_COOKIE));
                response
            }
        }
        Err(e) => {
            tracing::error!("two-step verification failed: {e}");
            again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now. Try again in a moment.".into(),
            )
        }
    }
}

/// Confirms the authenticator set up during sign-in, signs in, and shows the recovery codes.
pub async fn enrol(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (token, pending, user) = match pending(&state, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (csrf_token, cookie) = csrf::token(&state, &headers);
    let nav = || Nav::new(&Identity::Anonymous, &csrf_token);
    let forged = csrf::check(&state, &headers, &form.csrf).is_err();
    if !pending.must_enrol {
        return see_other("/_portico/sign-in/verify");
    }
    let error = if forged {
        "This form was sent from another site or had expired; type the code again.".to_owned()
    } else {
        match state.mfa.confirm(&user, &form.code).await {
            Ok(codes) => {
                let page = RecoveryCodesPage {
                    nav: nav(),
                    codes,
                    continue_to: pending.return_to.clone(),
                };
                let response = csrf::with_cookie(render(StatusCode::OK, &page), cookie);
                return signed_in(&state, &headers, &token, &user, "password+totp", response).await;
            }
            Err(e @ MfaError::WrongCode) => {
                if !wrong_code(&state, &token, &user, &e).await {
                    return see_other("/_portico/sign-in");
                }
                e.to_string()
            }
            Err(e) => return unavailable(&e, nav(), cookie),
        }
    };
    match state.mfa.enrolment(&user).await {
        Ok(enrolment) => {
            let mut page = EnrolPage::new(nav(), "/_portico/sign-in/enrol", true, enrolment);
            page.error = Some(error);
            csrf::with_cookie(render(StatusCode::UNAUTHORIZED, &page), cookie)
        }
        Err(e) => unavailable(&e, nav(), cookie),
    }
}
