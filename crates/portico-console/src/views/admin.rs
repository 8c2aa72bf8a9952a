//! What every admin page shares: only administrators get in (others get a 403 page saying so,
//! and the refusal is audited), and state-changing forms pass the CSRF check.

use super::{csrf, render, see_other, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use portico_core::{Identity, User};
use std::sync::Arc;

#[derive(Template)]
#[template(path = "message.html")]
struct Refused {
    nav: Nav,
    heading: &'static str,
    message: String,
}

/// The signed-in administrator, or the response for anyone else.
pub async fn require_admin(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Option<Extension<Identity>>,
    path: &str,
) -> Result<(Identity, Arc<User>), Response> {
    match identity {
        Some(Extension(identity @ Identity::User(user))) if user.admin => {
            Ok((identity.clone(), user.clone()))
        }
        Some(Extension(identity @ Identity::User(user))) => {
            let _ = state
                .accounts
                .store()
                .add_audit(&user.email, "admin.denied", Some(path), "")
                .await;
            let (token, cookie) = csrf::token(state, headers);
            let page = Refused {
                nav: Nav::new(identity, &token),
                heading: "Only administrators can open this page",
                message: format!(
                    "You are signed in as {}, who is not an administrator. Ask {} if you need to manage users.",
                    user.email, state.contact
                ),
            };
            Err(csrf::with_cookie(
                render(StatusCode::FORBIDDEN, &page),
                cookie,
            ))
        }
        _ => {
            let back: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            Err(see_other(&format!("/_portico/sign-in?return={back}")))
        }
    }
}

/// The CSRF check of admin forms; `Err` with the words to show.
pub fn check_form(state: &ConsoleState, headers: &HeaderMap, token: &str) -> Result<(), String> {
    csrf::check(state, headers, token).map_err(|_| {
        "This form was sent from another site or had expired; nothing changed. Try again."
            .to_owned()
    })
}

/// The first letter in upper case, for error messages shown as sentences.
pub fn sentence(text: impl Into<String>) -> String {
    let mut text = text.into();
    if let Some(first) = text.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    text
}
