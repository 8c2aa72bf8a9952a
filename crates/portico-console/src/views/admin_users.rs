//! `/_portico/admin/users`: everyone with an account; invite, disable and enable, reset MFA,
//! send a password-reset link, grant or revoke admin, and group membership. Every change is
//! audited with the administrator as actor (the account services do it).

use super::admin::{check_form, require_admin, sentence};
use super::{csrf, render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{Identity, User};
use portico_identity::LinkPurpose;
use serde::Deserialize;
use std::sync::Arc;

const PATH: &str = "/_portico/admin/users";

struct UserLine {
    email: String,
    name: String,
    groups: Vec<String>,
    admin: bool,
    disabled: bool,
    mfa: bool,
    invited: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserLine>,
    groups: Vec<String>,
    message: Option<String>,
    /// A link to hand over when there is no mail server.
    link: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    csrf: String,
}

/// What a form did, shown above the list.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    message: Option<String>,
    link: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn done(message: String) -> Outcome {
        Outcome {
            message: Some(message),
            ..Outcome::default()
        }
    }

    fn failed(status: StatusCode, error: String) -> Outcome {
        Outcome {
            status: Some(status),
            error: Some(sentence(error)),
            ..Outcome::default()
        }
    }
}

async fn page(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    outcome: Outcome,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    let store = state.accounts.store();
    let (users, groups, with_mfa) = match (
        state.accounts.list().await,
        state.accounts.groups().await,
        store.users_with_totp().await,
    ) {
        (Ok(users), Ok(groups), Ok(with_mfa)) => (users, groups, with_mfa),
        _ => {
            tracing::error!("the users page cannot read the accounts");
            (Vec::new(), Vec::new(), Vec::new())
        }
    };
    let users = users
        .into_iter()
        .map(|u| UserLine {
            mfa: with_mfa.contains(&u.user.id),
            invited: u.user.password_hash.is_none(),
            email: u.user.email,
            name: u.user.display_name,
            groups: u.groups,
            admin: u.user.admin,
            disabled: u.user.disabled,
        })
        .collect();
    let page = UsersPage {
        nav: Nav::new(identity, &token),
        users,
        groups: groups.into_iter().map(|g| g.name).collect(),
        message: outcome.message,
        link: outcome.link,
        error: outcome.error,
    };
    csrf::with_cookie(
        render(outcome.status.unwrap_or(StatusCode::OK), &page),
        cookie,
    )
}

pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    match require_admin(&state, &headers, &identity, PATH).await {
        Ok((identity, _)) => page(&state, &headers, &identity, Outcome::default()).await,
        Err(response) => response,
    }
}

/// Sends (or, without a mail server, shows) a link.
async fn hand_over(
    state: &ConsoleState,
    purpose: LinkPurpose,
    user: &portico_store::UserRow,
    url: String,
) -> Outcome {
    let what = match purpose {
        LinkPurpose::Invite => "an invitation",
        LinkPurpose::Reset => "a password-reset link",
    };
    match &state.mailer {
        Some(mailer) => match state.links.send(mailer, purpose, user, &url).await {
            Ok(()) => Outcome::done(format!("Sent {what} to {}.", user.email)),
            Err(e) => Outcome {
                status: Some(StatusCode::BAD_GATEWAY),
                error: Some(format!("{e}. Give {} this link yourself:", user.email)),
                link: Some(url),
                ..Outcome::default()
            },
        },
        None => Outcome {
            message: Some(format!(
                "Give {} this link ({what}, it works once); there is no mail server configured ([smtp]):",
                user.email
            )),
            link: Some(url),
            ..Outcome::default()
        },
    }
}

pub async fn invite(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<InviteForm>,
) -> Response {
    let (identity, admin) = match require_admin(&state, &headers, &identity, PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = match check_form(&state, &headers, &form.csrf) {
        Err(error) => Outcome::failed(StatusCode::FORBIDDEN, error),
        Ok(()) => match state
            .links
            .invite(&state.accounts, &admin.email, &form.email)
            .await
        {
            Ok((user, url)) => hand_over(&state, LinkPurpose::Invite, &user, url).await,
            Err(e) => Outcome::failed(StatusCode::BAD_REQUEST, e.to_string()),
        },
    };
    page(&state, &headers, &identity, outcome).await
}

pub async fn act(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<ActionForm>,
) -> Response {
    let (identity, admin) = match require_admin(&state, &headers, &identity, PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = match check_form(&state, &headers, &form.csrf) {
        Err(error) => Outcome::failed(StatusCode::FORBIDDEN, error),
        Ok(()) => perform(&state, &admin, &form).await,
    };
    page(&state, &headers, &identity, outcome).await
}

async fn perform(state: &ConsoleState, admin: &User, form: &ActionForm) -> Outcome {
    let actor = admin.email.as_str();
    let email = form.email.as_str();
    let accounts = &state.accounts;
    let result = match form.action.as_str() {
        "disable" => accounts
            .set_disabled(actor, email, true)
            .await
            .map(|()| format!("Disabled {email}; their sessions have ended.")),
        "enable" => accounts
            .set_disabled(actor, email, false)
            .await
            .map(|()| format!("Enabled {email}.")),
        "grant-admin" => accounts
            .set_admin(actor, email, true)
            .await
            .map(|()| format!("{email} is now an administrator.")),
        "revoke-admin" => accounts
            .set_admin(actor, email, false)
            .await
            .map(|()| format!("{email} is no longer an administrator.")),
        "add-group" => accounts
            .set_member(actor, &form.group, email, true)
            .await
            .map(|_| format!("{email} is in \"{}\".", form.group)),
        "remove-group" => accounts
            .set_member(actor, &form.group, email, false)
            .await
            .map(|_| format!("{email} is no longer in \"{}\".", form.group)),
        "reset-mfa" => {
            let user = match accounts.store().user_by_email(email).await {
                Ok(Some(user)) => user,
                _ => {
                    return Outcome::failed(
                        StatusCode::NOT_FOUND,
                        format!("there is no user {email}"),
                    )
                }
            };
            return match state.mfa.remove(actor, &user).await {
                Ok(true) => Outcome::done(format!(
                    "Removed the authenticator of {email}; they set up a new one at their next sign-in if MFA is required."
                )),
                Ok(false) => Outcome::done(format!("{email} had no authenticator; nothing changed.")),
                Err(e) => Outcome::failed(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            };
        }
        "reset-link" => {
            return match state.links.reset(actor, email).await {
                Ok((user, url)) => hand_over(state, LinkPurpose::Reset, &user, url).await,
                Err(e) => Outcome::failed(StatusCode::BAD_REQUEST, e.to_string()),
            };
        }
        other => {
            let shown: String = other.chars().take(40).collect();
            return Outcome::failed(
                StatusCode::BAD_REQUEST,
                format!("\"{shown}\" is not an action"),
            );
        }
    };
    match result {
        Ok(message) => Outcome::done(message),
        Err(e) => Outcome::failed(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
