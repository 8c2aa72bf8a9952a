//! The pages behind e-mailed links: accepting an invitation (`/_portico/welcome`), resetting a
//! password (`/_portico/reset-password`), and asking for a reset link
//! (`/_portico/forgot-password`). Links carry their token in the query; these pages send no
//! `Referer`, so the token never leaks to another site.

use super::csrf;
use super::{render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{ClientAddr, Identity};
use portico_identity::links::{LinkProblem, RedeemError};
use portico_identity::LinkPurpose;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const FORGED: &str = "This form was sent from another site or had expired; try again.";

#[derive(Template)]
#[template(path = "set_password.html")]
struct SetPasswordPage {
    nav: Nav,
    heading: &'static str,
    action: &'static str,
    email: String,
    token: String,
    /// Invitations also ask for the name to show.
    name: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Nav,
    heading: String,
    message: String,
}

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage {
    nav: Nav,
    /// Without a mail server there is no self-service reset: whom to ask instead.
    contact: Option<String>,
    sent_to: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf: String,
}

fn private(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn heading(purpose: LinkPurpose) -> (&'static str, &'static str) {
    match purpose {
        LinkPurpose::Invite => ("Welcome to Portico", "/_portico/welcome"),
        LinkPurpose::Reset => ("Choose a new password", "/_portico/reset-password"),
    }
}

fn problem_page(token: &str, problem: &LinkProblem) -> Response {
    let status = match problem {
        LinkProblem::Unknown => StatusCode::NOT_FOUND,
        LinkProblem::Used | LinkProblem::Expired => StatusCode::GONE,
    };
    let page = MessagePage {
        nav: Nav::new(&Identity::Anonymous, token),
        heading: "This link cannot be used".into(),
        message: problem.to_string(),
    };
    private(render(status, &page))
}

async fn show(
    state: &ConsoleState,
    headers: &HeaderMap,
    purpose: LinkPurpose,
    token: String,
) -> Response {
    let (csrf_token, cookie) = csrf::token(state, headers);
    let open = match state.links.check(purpose, &token).await {
        Ok(open) => open,
        Err(problem) => return csrf::with_cookie(problem_page(&csrf_token, &problem), cookie),
    };
    let (heading, action) = heading(purpose);
    let page = SetPasswordPage {
        nav: Nav::new(&Identity::Anonymous, &csrf_token),
        heading,
        action,
        email: open.user.email,
        token,
        name: (purpose == LinkPurpose::Invite).then_some(open.user.display_name),
        error: None,
    };
    csrf::with_cookie(private(render(StatusCode::OK, &page)), cookie)
}

pub async fn welcome(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    show(&state, &headers, LinkPurpose::Invite, query.token).await
}

pub async fn reset(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    show(&state, &headers, LinkPurpose::Reset, query.token).await
}

async fn set_password(
    state: &ConsoleState,
    headers: &HeaderMap,
    purpose: LinkPurpose,
    form: SetPasswordForm,
) -> Response {
    let (csrf_token, cookie) = csrf::token(state, headers);
    let (heading, action) = heading(purpose);
    let again = |status, email: String, error: String| {
        let page = SetPasswordPage {
            nav: Nav::new(&Identity::Anonymous, &csrf_token),
            heading,
            action,
            email,
            token: form.token.clone(),
            name: form.name.clone(),
            error: Some(error),
        };
        csrf::with_cookie(private(render(status, &page)), cookie.clone())
    };
    let open = match state.links.check(purpose, &form.token).await {
        Ok(open) => open,
        Err(problem) => return csrf::with_cookie(problem_page(&csrf_token, &problem), cookie),
    };
    let email = open.user.email.clone();
    if csrf::check(state, headers, &form.csrf).is_err() {
        return again(StatusCode::FORBIDDEN, email, FORGED.into());
    }
    if form.password != form.repeat {
        let error = "The password and its repetition differ.".into();
        return again(StatusCode::BAD_REQUEST, email, error);
    }
    let name = match purpose {
        LinkPurpose::Invite => form.name.as_deref(),
        LinkPurpose::Reset => None,
    };
    match state
        .links
        .redeem(purpose, &form.token, &form.password, name)
        .await
    {
        Ok(user) => {
            // Whoever knew the old password is signed out everywhere.
            if let Err(e) = state.sessions.end_all_for_user(user.id).await {
                tracing::error!("cannot end sessions after a password was set: {e}");
            }
            let page = MessagePage {
                nav: Nav::new(&Identity::Anonymous, &csrf_token),
                heading: "Your password is set".into(),
                message: format!("Sign in as {} with your new password.", user.email),
            };
            csrf::with_cookie(private(render(StatusCode::OK, &page)), cookie)
        }
        Err(RedeemError::Link(problem)) => {
            csrf::with_cookie(problem_page(&csrf_token, &problem), cookie)
        }
        Err(RedeemError::Input(problem)) => {
            let mut message = problem.to_string();
            if let Some(first) = message.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            again(StatusCode::BAD_REQUEST, email, message)
        }
    }
}

pub async fn accept_invitation(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<SetPasswordForm>,
) -> Response {
    set_password(&state, &headers, LinkPurpose::Invite, form).await
}

pub async fn complete_reset(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<SetPasswordForm>,
) -> Response {
    set_password(&state, &headers, LinkPurpose::Reset, form).await
}

pub async fn forgot_form(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let (token, cookie) = csrf::token(&state, &headers);
    let page = ForgotPage {
        nav: Nav::new(&Identity::Anonymous, &token),
        contact: state.mailer.is_none().then(|| state.contact.clone()),
        sent_to: None,
        error: None,
    };
    csrf::with_cookie(render(StatusCode::OK, &page), cookie)
}

/// Sends a reset link if the account exists and can sign in. The answer is the same either
/// way, and the sending happens after it, so neither words nor timing tell who has an account.
pub async fn forgot_submit(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    Form(form): Form<ForgotForm>,
) -> Response {
    let client = client
        .map(|e| e.0 .0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (token, cookie) = csrf::token(&state, &headers);
    let page = |status, sent_to: Option<String>, error: Option<&str>| {
        let page = ForgotPage {
            nav: Nav::new(&Identity::Anonymous, &token),
            contact: state.mailer.is_none().then(|| state.contact.clone()),
            sent_to,
            error: error.map(str::to_owned),
        };
        csrf::with_cookie(render(status, &page), cookie.clone())
    };
    if csrf::check(&state, &headers, &form.csrf).is_err() {
        return page(StatusCode::FORBIDDEN, None, Some(FORGED));
    }
    let Some(mailer) = state.mailer.clone() else {
        return page(StatusCode::OK, None, None);
    };
    if !state.throttle.admit_client(client) {
        let error = "Too many requests from your network. Wait a minute and try again.";
        return page(StatusCode::TOO_MANY_REQUESTS, None, Some(error));
    }
    let email: String = form.email.trim().chars().take(320).collect();
    if email.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            None,
            Some("Type your e-mail address."),
        );
    }
    let links = state.links.clone();
    let requested = email.clone();
    tokio::spawn(async move {
        // Unknown and disabled accounts get nothing; that is not an error worth logging.
        if let Ok((user, url)) = links.reset("self-service", &requested).await {
            if let Err(e) = links.send(&mailer, LinkPurpose::Reset, &user, &url).await {
                tracing::error!("cannot send a password-reset e-mail to {}: {e}", user.email);
            }
        }
    });
    page(StatusCode::OK, Some(email), None)
}
