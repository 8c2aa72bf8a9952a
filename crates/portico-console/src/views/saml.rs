//! The SAML service provider's own endpoints: `/_portico/saml/<id>/metadata` (public: the
//! identity provider's administrator, or the provider itself, reads it) and
//! `/_portico/saml/<id>/acs`, where the provider posts its answer. The answer is checked here
//! and attached to the sign-in it answers; the browser then continues to the callback, which
//! finishes the sign-in in the browser that started it (see `SsoFlows`).

use super::sso::failed;
use super::{render, see_other};
use crate::ConsoleState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use portico_identity::sessions::unix_now;
use portico_identity::sso::flows::Pending;
use portico_identity::sso::saml::{SamlProvider, SamlRequest};
use serde::Deserialize;
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "saml_post.html")]
pub struct PostBindingPage {
    pub name: String,
    pub url: String,
    pub saml_request: String,
    pub relay_state: String,
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(default, rename = "SAMLResponse")]
    saml_response: String,
    #[serde(default, rename = "RelayState")]
    relay_state: String,
}

pub(super) fn provider<'a>(state: &'a ConsoleState, id: &str) -> Option<&'a SamlProvider> {
    state.saml.iter().find(|p| p.config.common.id == id)
}

/// The page or redirect that carries the request to the provider.
pub(super) fn send_to_provider(provider: &SamlProvider, request: SamlRequest) -> Response {
    match request {
        SamlRequest::Redirect(url) => see_other(&url),
        SamlRequest::Post {
            url,
            saml_request,
            relay_state,
        } => render(
            StatusCode::OK,
            &PostBindingPage {
                name: provider.config.common.name.clone(),
                url,
                saml_request,
                relay_state,
            },
        ),
    }
}

pub async fn metadata(State(state): State<Arc<ConsoleState>>, Path(id): Path<String>) -> Response {
    let Some(provider) = provider(&state, &id) else {
        return (StatusCode::NOT_FOUND, "no such SAML provider\n").into_response();
    };
    match provider.sp_metadata() {
        Ok(xml) => {
            let mut response = xml.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            );
            response
        }
        Err(e) => {
            tracing::error!("{}: {e}", provider.provider());
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot write the metadata\n",
            )
                .into_response()
        }
    }
}

/// The provider's answer. Not CSRF-checked: it comes from the provider's page, and what
/// vouches for it is the provider's signature over an answer to a request this flow made.
pub async fn acs(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AcsForm>,
) -> Response {
    let Some(provider) = provider(&state, &id) else {
        return failed(
            &state,
            &headers,
            StatusCode::NOT_FOUND,
            "There is no such sign-in method.",
        );
    };
    let name = provider.config.common.name.clone();
    let store = state.accounts.store();
    let refuse = |detail: String| async move {
        tracing::warn!("{} sign-in refused: {detail}", provider.provider());
        let _ = store
            .add_audit(&provider.provider(), "sign-in.refused", None, &detail)
            .await;
    };
    let relay_state = form.relay_state.as_str();
    let flow = (relay_state.len() <= 512)
        .then(|| state.sso_flows.peek(relay_state))
        .flatten()
        .filter(|flow| flow.provider == id);
    let pending = match flow.map(|f| f.pending) {
        Some(Pending::Saml(pending)) => pending,
        _ => {
            // No sign-in of this browser is waiting for it: unknown, expired or already
            // answered RelayState, or a sign-in started at the provider (not accepted: it
            // would let anyone sign a visitor into the wrong account).
            refuse("the answer belongs to no waiting sign-in (unknown, expired or used RelayState, or provider-initiated)".into()).await;
            return failed(
                &state,
                &headers,
                StatusCode::BAD_REQUEST,
                "This sign-in has expired or was already used. Go back to the sign-in page and start again.",
            );
        }
    };
    let checked = provider.finish(&form.saml_response, &pending).await;
    let (profile, assertion) = match checked {
        Ok(done) => done,
        Err(e) => {
            refuse(e.to_string()).await;
            let what = format!(
                "Sign-in with {name} did not work. Try again, or ask {} if it keeps happening.",
                state.contact
            );
            return failed(&state, &headers, StatusCode::BAD_REQUEST, &what);
        }
    };
    match store
        .use_saml_assertion(
            &provider.provider(),
            &assertion.id,
            unix_now(),
            assertion.expires_at,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            refuse(format!(
                "assertion {} was already used (a replay)",
                assertion.id
            ))
            .await;
            return failed(
                &state,
                &headers,
                StatusCode::BAD_REQUEST,
                "This sign-in was already used. Go back to the sign-in page and start again.",
            );
        }
        Err(e) => {
            tracing::error!("cannot record the SAML assertion: {e}");
            return failed(
                &state,
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now. Try again in a moment.",
            );
        }
    }
    if !state.sso_flows.complete(relay_state, profile) {
        return failed(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already used. Go back to the sign-in page and start again.",
        );
    }
    let state_query: String = form_urlencoded::byte_serialize(relay_state.as_bytes()).collect();
    see_other(&format!("/_portico/sso/{id}/callback?state={state_query}"))
}
