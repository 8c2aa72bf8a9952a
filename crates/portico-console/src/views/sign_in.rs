//! `/_portico/sign-in`: e-mail and password. Works without JavaScript.

use super::csrf::{self, Forgery};
use super::{render, request_host, see_other, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{ClientAddr, Identity};
use portico_identity::mfa::MfaStatus;
use portico_identity::sso::ldap::LdapOutcome;
use portico_identity::sso::provision;
use portico_identity::throttle::Refusal;
use portico_identity::web::{safe_local_path, MFA_COOKIE, SESSION_COOKIE};
use portico_store::UserRow;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Longer input is refused before any hashing: at most this many bytes of e-mail and password.
const MAX_EMAIL: usize = 320;
const MAX_PASSWORD: usize = 1024;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    nav: Nav,
    /// With a directory configured people may type a user name, not only an address.
    directory: bool,
    /// Whether to show the e-mail and password form at all.
    password_form: bool,
    /// A button per single sign-on provider.
    providers: Vec<SsoButton>,
    email: String,
    return_to: String,
    error: Option<String>,
}

struct SsoButton {
    href: String,
    name: String,
}

fn sso_buttons(state: &ConsoleState, return_to: &str) -> Vec<SsoButton> {
    let back: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let oidc = state.oidc.iter().map(|p| &p.config.common);
    let saml = state.saml.iter().map(|p| &p.config.common);
    oidc.chain(saml)
        .map(|common| SsoButton {
            href: format!("/_portico/sso/{}?return={back}", common.id),
            name: common.name.clone(),
        })
        .collect()
}

#[derive(Deserialize)]
pub struct ReturnQuery {
    #[serde(rename = "return")]
    return_to: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "return")]
    return_to: String,
}

pub(super) fn local_or_root(candidate: Option<&str>) -> String {
    candidate
        .and_then(safe_local_path)
        .unwrap_or("/")
        .to_owned()
}

pub async fn form(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Query(query): Query<ReturnQuery>,
) -> Response {
    let identity = identity.map(|e| e.0).unwrap_or_default();
    let return_to = local_or_root(query.return_to.as_deref());
    if identity.user().is_some() {
        return see_other(&return_to);
    }
    let (token, cookie) = csrf::token(&state, &headers);
    let page = SignInPage {
        nav: Nav::new(&identity, &token),
        directory: !state.ldap.is_empty(),
        password_form: state.password_sign_in || !state.ldap.is_empty(),
        providers: sso_buttons(&state, &return_to),
        email: String::new(),
        return_to,
        error: None,
    };
    csrf::with_cookie(render(StatusCode::OK, &page), cookie)
}

pub async fn submit(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    Form(form): Form<SignInForm>,
) -> Response {
    let client = client
        .map(|e| e.0 .0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let return_to = local_or_root(Some(&form.return_to));
    let (token, cookie) = csrf::token(&state, &headers);
    let again = |status, error: &str, email: &str| {
        let page = SignInPage {
            nav: Nav::new(&Identity::Anonymous, &token),
            directory: !state.ldap.is_empty(),
            password_form: state.password_sign_in || !state.ldap.is_empty(),
            providers: sso_buttons(&state, &return_to),
            email: email.to_owned(),
            return_to: return_to.clone(),
            error: Some(error.to_owned()),
        };
        csrf::with_cookie(render(status, &page), cookie.clone())
    };
    match csrf::check(&state, &headers, &form.csrf) {
        Ok(()) => {}
        Err(Forgery::ForeignOrigin) => {
            return again(
                StatusCode::FORBIDDEN,
                "This form was sent from another site, so it was refused. Sign in here instead.",
                "",
            )
        }
        Err(Forgery::BadToken) => {
            return again(
                StatusCode::FORBIDDEN,
                "This form had expired. Please sign in again.",
                "",
            )
        }
    }
    let email = form.email.trim();
    let shown_email: String = email.chars().take(254).collect();
    let store = state.accounts.store();
    // Throttled by the address as typed, known or not, so a lockout reveals nothing.
    let account = email
        .to_lowercase()
        .chars()
        .take(MAX_EMAIL)
        .collect::<String>();
    match state.throttle.admit(&account, client) {
        Ok(()) => {}
        Err(Refusal::AccountLocked(wait)) => {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let plural = if minutes == 1 { "" } else { "s" };
            let message = format!(
                "Too many failed sign-ins for this account. Try again in {minutes} minute{plural}."
            );
            return again(StatusCode::TOO_MANY_REQUESTS, &message, &shown_email);
        }
        Err(Refusal::TooManyFromClient) => {
            let _ = store
                .add_audit(
                    &client.to_string(),
                    "sign-in.rate-limited",
                    Some(&shown_email),
                    "",
                )
                .await;
            let message =
                "Too many sign-in attempts from your network. Wait a minute and try again.";
            return again(StatusCode::TOO_MANY_REQUESTS, message, &shown_email);
        }
    }
    let user = if email.len() > MAX_EMAIL || form.password.len() > MAX_PASSWORD {
        None
    } else {
        match authenticate(&state, email, &form.password).await {
            Ok(user) => user,
            Err(message) => {
                return again(StatusCode::SERVICE_UNAVAILABLE, &message, &shown_email);
            }
        }
    };
    let Some(user) = user else {
        let _ = store
            .add_audit(
                &client.to_string(),
                "sign-in.failure",
                Some(&shown_email),
                "",
            )
            .await;
        if let Some(lock) = state.throttle.failed(&account) {
            let detail = format!("locked for {}s", lock.as_secs());
            let _ = store
                .add_audit(
                    &client.to_string(),
                    "sign-in.lockout",
                    Some(&shown_email),
                    &detail,
                )
                .await;
        }
        // The same answer whether the account is unknown, disabled or the password wrong.
        return again(
            StatusCode::UNAUTHORIZED,
            "That e-mail and password do not match an account that can sign in.",
            &shown_email,
        );
    };

    let needs_second_factor = match state.mfa.status(user.id).await {
        Ok(MfaStatus::Active { .. }) => Some(false),
        Ok(MfaStatus::None) if state.mfa_policy.requires(user.admin) => Some(true),
        Ok(MfaStatus::None) => None,
        Err(e) => {
            tracing::error!("sign-in could not read MFA settings: {e}");
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now. Try again in a moment.",
                &shown_email,
            );
        }
    };
    if let Some(must_enrol) = needs_second_factor {
        // No session yet: only a token naming the half-done sign-in.
        let token = state.pending.start(user.id, &return_to, must_enrol);
        let mut response = see_other("/_portico/sign-in/verify");
        append_cookie(
            &mut response,
            &state.cookies.set(MFA_COOKIE, &token, "Strict", Some(600)),
        );
        return response;
    }
    // Failures are forgiven only once every factor is proved, so wrong codes after a right
    // password still count towards the account's lockout.
    state.throttle.succeeded(&account);
    match start_session(&state, &headers, &user, "password").await {
        Some((cookie, _)) => {
            let mut response = see_other(&return_to);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => again(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable right now. Try again in a moment.",
            &shown_email,
        ),
    }
}

/// Checks a sign-in name and password: Portico's own accounts first (when allowed), then each
/// directory in order until one knows the name. `Ok(None)` for a wrong password or an unknown
/// name alike; `Err` with words for the person when no answer could be had (the precise
/// reason is logged).
async fn authenticate(
    state: &ConsoleState,
    login: &str,
    password: &str,
) -> Result<Option<UserRow>, String> {
    let unavailable = || "Sign-in is unavailable right now. Try again in a moment.".to_owned();
    if state.password_sign_in {
        match state.accounts.verify(login, password).await {
            Ok(Some(user)) => return Ok(Some(user)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!("sign-in could not read the accounts: {e}");
                return Err(unavailable());
            }
        }
    }
    let mut failed = false;
    for directory in state.ldap.iter() {
        match directory.authenticate(login, password).await {
            Ok(LdapOutcome::NoSuchUser) => continue,
            Ok(LdapOutcome::WrongPassword) => return Ok(None),
            Ok(LdapOutcome::SignedIn(profile)) => {
                let store = state.accounts.store();
                let settings = &directory.config.common;
                return provision(store, settings, &profile, &state.contact)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
            Err(e) => {
                tracing::error!(
                    "directory {} could not check a sign-in: {e}",
                    directory.provider()
                );
                failed = true;
            }
        }
    }
    if failed {
        Err(unavailable())
    } else {
        Ok(None)
    }
}

/// Signs a user in for good once every factor is proved: a new session id (no fixation), the
/// browser's previous session ended, audited with `method`. Returns the session cookie and
/// the session's stored id.
pub(super) async fn start_session(
    state: &ConsoleState,
    headers: &HeaderMap,
    user: &UserRow,
    method: &str,
) -> Option<(HeaderValue, String)> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for old in state.cookies.values(cookies, SESSION_COOKIE) {
        let _ = state.sessions.end(old).await;
    }
    let host = request_host(headers);
    let session = match state.sessions.create(user, &host, None).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!("cannot create a session: {e}");
            return None;
        }
    };
    let _ = state
        .accounts
        .store()
        .add_audit(&user.email, "sign-in.success", Some(&user.email), method)
        .await;
    let cookie = state
        .cookies
        .set(SESSION_COOKIE, &session.cookie_value, "Lax", None);
    Some((HeaderValue::from_str(&cookie).ok()?, session.id_hash))
}

/// Adds a `Set-Cookie` header.
pub(super) fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
