//! The REST API under `/api/v1/`: what `portico deploy`, `portico releases`,
//! `portico rollback` and scripts call. It authenticates with API tokens only
//! (`Authorization: Bearer portico_…`), never with the browser's session cookie, so a page on
//! another site cannot make a signed-in browser deploy (no CSRF surface). Every answer is
//! JSON, errors included (`{"error": "…"}`, a sentence saying what to do), except a build
//! log, which is text.

pub mod git;
pub mod releases;
pub mod webhook;

use crate::ConsoleState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portico_core::User;
use portico_identity::tokens::TokenHolder;

/// An API error: a status and a sentence for the person at the terminal.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portico\""),
            );
        }
        response
    }
}

/// A failure Portico caused, logged with its detail; the caller hears only that it failed.
pub fn internal(what: &str, error: impl std::fmt::Display) -> ApiError {
    tracing::error!("API: {what}: {error}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Portico could not {what}; its log says why"),
    )
}

/// Who is calling, by their API token: the user as the access rules see them (with their
/// groups) and the token's scopes.
pub struct Caller {
    pub user: User,
    pub token: TokenHolder,
}

/// The caller of a request, from its bearer token.
pub async fn caller(state: &ConsoleState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this API needs an API token: send `Authorization: Bearer <token>`; create one with `portico tokens create`",
            )
        })?;
    let token = state
        .tokens
        .verify(presented)
        .await
        .map_err(|problem| ApiError::new(StatusCode::UNAUTHORIZED, problem.to_string()))?;
    let groups = state
        .accounts
        .store()
        .groups_of(token.user.id)
        .await
        .map_err(|e| internal("read the token's user's groups", e))?;
    let user = User {
        id: token.user.id,
        email: token.user.email.clone(),
        display_name: token.user.display_name.clone(),
        groups,
        admin: token.user.admin,
    };
    Ok(Caller { user, token })
}

/// The caller if they may make the app `app` by deploying to it: it does not exist, the
/// name can be one, the token's scopes cover it, and its user is an admin or one of
/// `[deploy] creators`.
pub async fn creator(
    state: &ConsoleState,
    headers: &HeaderMap,
    app: &str,
) -> Result<Caller, ApiError> {
    let caller = caller(state, headers).await?;
    let may = caller.user.admin || state.deployments.config().creators.may_deploy(&caller.user);
    if !may || !caller.token.scoped_for_deploy(app) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("there is no app \"{app}\", and {} may not make one; ask an administrator to add you to [deploy] creators, or to declare the app", caller.user.email),
        ));
    }
    if !portico_core::config::is_dns_label(app) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("\"{app}\" cannot name an app: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'"),
        ));
    }
    Ok(caller)
}

/// The caller if they may deploy `app`: the app exists, the token's scopes cover it, and
/// its user is an admin or one of the app's owners.
pub async fn deployer(
    state: &ConsoleState,
    headers: &HeaderMap,
    app: &str,
) -> Result<Caller, ApiError> {
    let caller = caller(state, headers).await?;
    let table = state.routes.load();
    let route = table.get(app).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("there is no app \"{app}\"; apps are declared in Portico's config"),
        )
    })?;
    if !caller.token.scoped_for_deploy(app) {
        let scopes: Vec<String> = caller.token.scopes.iter().map(|s| s.to_string()).collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token may not deploy \"{app}\" (its scopes: {}); create one with --scope deploy:{app} or --scope deploy",
                scopes.join(" ")
            ),
        ));
    }
    if !route.owners.may_deploy(&caller.user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is not an owner of \"{app}\"; ask an administrator to add you (or your group) to the app's owners",
                caller.user.email
            ),
        ));
    }
    Ok(caller)
}
