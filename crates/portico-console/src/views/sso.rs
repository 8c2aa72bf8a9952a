//! Single sign-on through a provider's own pages (OIDC, SAML): `/_portico/sso/<id>` sends the
//! browser to the provider; `/_portico/sso/<id>/callback` is where it comes back (with a code
//! from OIDC; after the SAML answer was checked at the ACS, see `saml.rs`). The person sees a
//! plain sentence when something fails; the log says precisely what.

use super::sign_in::{append_cookie, local_or_root, start_session};
use super::{csrf, message, see_other, Nav};
use crate::ConsoleState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use portico_core::{Identity, SsoCommon};
use portico_identity::sessions::unix_now;
use portico_identity::sso::flows::{Flow, Pending};
use portico_identity::sso::oidc::{OidcProvider, OidcTokens};
use portico_identity::sso::refresh;
use portico_identity::sso::{provision, ExternalProfile};
use portico_identity::web::SSO_COOKIE;
use portico_store::SsoSessionRow;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default, rename = "return")]
    return_to: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn provider<'a>(state: &'a ConsoleState, id: &str) -> Option<&'a OidcProvider> {
    state
        .oidc
        .iter()
        .find(|p| p.config.common.id == id)
        .map(|p| p.as_ref())
}

/// A failure page: `what` for the person, nothing internal.
pub(super) fn failed(
    state: &ConsoleState,
    headers: &HeaderMap,
    status: StatusCode,
    what: &str,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    let nav = Nav::new(&Identity::Anonymous, &token);
    let mut response = message(status, nav, "Sign-in did not work", what);
    append_cookie(&mut response, &state.cookies.clear(SSO_COOKIE));
    csrf::with_cookie(response, cookie)
}

/// Keeps the provider's tokens with the session, sealed: the ID token for signing out at the
/// provider, the refresh token for keeping groups current.
async fn keep_tokens(
    state: &ConsoleState,
    provider: &OidcProvider,
    session_hash: &str,
    user_id: i64,
    tokens: &OidcTokens,
) {
    let refresh = provider
        .config
        .refresh_interval
        .and_then(|interval| Some((interval, tokens.refresh_token.as_deref()?)));
    let row = SsoSessionRow {
        session_hash: session_hash.to_owned(),
        provider: provider.provider(),
        user_id,
        id_token_sealed: Some(state.secrets.seal(
            &refresh::purpose(session_hash, "id"),
            tokens.id_token.as_bytes(),
        )),
        refresh_sealed: refresh.map(|(_, token)| {
            state
                .secrets
                .seal(&refresh::purpose(session_hash, "refresh"), token.as_bytes())
        }),
        next_refresh_at: refresh.map_or(i64::MAX / 2, |(interval, _)| {
            unix_now() + interval.as_secs() as i64
        }),
    };
    if let Err(e) = state.accounts.store().insert_sso_session(&row).await {
        tracing::error!("cannot keep the provider's tokens with the session: {e}");
    }
}

pub async fn start(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<StartQuery>,
) -> Response {
    let return_to = local_or_root(query.return_to.as_deref());
    let (name, provider_name, begun) = if let Some(provider) = provider(&state, &id) {
        let begun = provider
            .begin()
            .await
            .map(|(url, sent_state, pending)| (see_other(&url), sent_state, Pending::Oidc(pending)))
            .map_err(|e| e.to_string());
        (&provider.config.common.name, provider.provider(), begun)
    } else if let Some(provider) = super::saml::provider(&state, &id) {
        // RelayState: the flow's key, as OIDC's state is.
        let relay_state = hex::encode(rand::random::<[u8; 32]>());
        let begun = provider
            .begin(&relay_state)
            .await
            .map(|(request, pending)| {
                let page = super::saml::send_to_provider(provider, request);
                (page, relay_state, Pending::Saml(pending))
            })
            .map_err(|e| e.to_string());
        (&provider.config.common.name, provider.provider(), begun)
    } else {
        return failed(
            &state,
            &headers,
            StatusCode::NOT_FOUND,
            "There is no such sign-in method. Go back to the sign-in page and choose again.",
        );
    };
    match begun {
        Ok((mut response, sent_state, pending)) => {
            state.sso_flows.start(&sent_state, &id, &return_to, pending);
            let cookie = state.cookies.set(SSO_COOKIE, &sent_state, "Lax", Some(600));
            append_cookie(&mut response, &cookie);
            response
        }
        Err(e) => {
            tracing::error!("sign-in with {provider_name} cannot start: {e}");
            let what = format!(
                "Sign-in with {name} is unavailable right now. Try again in a moment, or ask {}.",
                state.contact
            );
            failed(&state, &headers, StatusCode::SERVICE_UNAVAILABLE, &what)
        }
    }
}

pub async fn callback(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let kind = if provider(&state, &id).is_some() {
        "oidc"
    } else if super::saml::provider(&state, &id).is_some() {
        "saml"
    } else {
        return failed(
            &state,
            &headers,
            StatusCode::NOT_FOUND,
            "There is no such sign-in method.",
        );
    };
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let flow = query
        .state
        .as_deref()
        .filter(|s| s.len() <= 512)
        .and_then(|s| {
            state
                .sso_flows
                .take(s, state.cookies.values(cookies, SSO_COOKIE))
        })
        .filter(|flow| flow.provider == id);
    let Some(flow) = flow else {
        // Unknown, expired, already used, or started in another browser.
        let _ = state
            .accounts
            .store()
            .add_audit(
                &format!("{kind}:{id}"),
                "sign-in.refused",
                None,
                "unknown or reused state",
            )
            .await;
        return failed(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "This sign-in link has expired or was already used. Go back to the sign-in page and start again.",
        );
    };
    match (&flow.pending, super::saml::provider(&state, &id)) {
        (Pending::Saml(_), Some(provider)) => {
            let Some(profile) = flow.completed.clone() else {
                return failed(
                    &state,
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "The sign-in did not finish at the provider. Go back to the sign-in page and start again.",
                );
            };
            signed_in(
                &state,
                &headers,
                &provider.config.common,
                &profile,
                &flow,
                None,
            )
            .await
        }
        (Pending::Oidc(pending), _) => match provider(&state, &id) {
            Some(provider) => {
                oidc_callback(&state, &headers, provider, &query, &flow, pending).await
            }
            None => failed(&state, &headers, StatusCode::BAD_REQUEST, "Start again."),
        },
        _ => failed(&state, &headers, StatusCode::BAD_REQUEST, "Start again."),
    }
}

async fn oidc_callback(
    state: &ConsoleState,
    headers: &HeaderMap,
    provider: &OidcProvider,
    query: &CallbackQuery,
    flow: &Flow,
    pending: &portico_identity::sso::oidc::OidcPending,
) -> Response {
    let name = provider.config.common.name.clone();
    if let Some(error) = query.error.as_deref() {
        let detail: String = query
            .error_description
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        tracing::warn!(
            "{} sign-in refused by the provider: {error}: {detail}",
            provider.provider()
        );
        let what = format!(
            "{name} did not sign you in. Try again, or ask {}.",
            state.contact
        );
        return failed(state, headers, StatusCode::UNAUTHORIZED, &what);
    }
    let Some(code) = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return failed(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "The provider sent no sign-in code. Start again.",
        );
    };
    let (profile, tokens) = match provider.finish(code, pending).await {
        Ok(done) => done,
        Err(e) => {
            tracing::error!("{} sign-in failed: {e}", provider.provider());
            let _ = state
                .accounts
                .store()
                .add_audit(
                    &provider.provider(),
                    "sign-in.refused",
                    None,
                    &e.to_string(),
                )
                .await;
            let what = format!(
                "Sign-in with {name} did not work. Try again, or ask {} if it keeps happening.",
                state.contact
            );
            return failed(state, headers, StatusCode::BAD_GATEWAY, &what);
        }
    };
    let keep = Some((provider, &tokens));
    signed_in(
        state,
        headers,
        &provider.config.common,
        &profile,
        flow,
        keep,
    )
    .await
}

/// The provider vouched for `profile`: make or find the account, start the session, keep the
/// OIDC tokens (when given) with it, and go where the person was going.
async fn signed_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    settings: &SsoCommon,
    profile: &ExternalProfile,
    flow: &Flow,
    tokens: Option<(&OidcProvider, &OidcTokens)>,
) -> Response {
    let store = state.accounts.store();
    let user = match provision(store, settings, profile, &state.contact).await {
        Ok(user) => user,
        Err(e) => return failed(state, headers, StatusCode::FORBIDDEN, &e.to_string()),
    };
    match start_session(state, headers, &user, &profile.provider).await {
        Some((cookie, session_hash)) => {
            if let Some((provider, tokens)) = tokens {
                keep_tokens(state, provider, &session_hash, user.id, tokens).await;
            }
            let mut response = see_other(&flow.return_to);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            append_cookie(&mut response, &state.cookies.clear(SSO_COOKIE));
            response
        }
        None => failed(
            state,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable right now. Try again in a moment.",
        ),
    }
}
