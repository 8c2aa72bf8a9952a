//! `/_portico/admin/audit`: the audit log, newest first, filtered by who acted, what they did
//! (a prefix such as `sign-in`) and whom it concerned.

use super::admin::require_admin;
use super::{csrf, render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use portico_core::Identity;
use portico_store::{AuditFilter, AuditRow};
use serde::Deserialize;
use std::sync::Arc;

const PATH: &str = "/_portico/admin/audit";
const DEFAULT_LIMIT: i64 = 200;
const MAX_LIMIT: i64 = 5000;

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Nav,
    actor: String,
    action: String,
    subject: String,
    limit: i64,
    entries: Vec<AuditRow>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    limit: Option<String>,
}

/// An empty field means "any"; values are trimmed and bounded.
fn field(value: &str) -> Option<String> {
    let value: String = value.trim().chars().take(320).collect();
    (!value.is_empty()).then_some(value)
}

pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let (identity, _) = match require_admin(&state, &headers, &identity, PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let limit = query
        .limit
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
        });
    let (limit, mut error) = match limit {
        None => (DEFAULT_LIMIT, None),
        Some(Some(n)) => (n, None),
        Some(None) => (
            DEFAULT_LIMIT,
            Some(format!(
                "Show between 1 and {MAX_LIMIT} entries; showing {DEFAULT_LIMIT}."
            )),
        ),
    };
    let filter = AuditFilter {
        actor: field(&query.actor),
        action: field(&query.action),
        subject: field(&query.subject).map(|s| s.to_lowercase()),
        limit,
    };
    let entries = match state.accounts.store().audit_filtered(&filter).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!("the audit page cannot read the log: {e}");
            error = Some("The audit log cannot be read right now.".into());
            Vec::new()
        }
    };
    let (token, cookie) = csrf::token(&state, &headers);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = AuditPage {
        nav: Nav::new(&identity, &token),
        actor: query.actor.trim().to_owned(),
        action: query.action.trim().to_owned(),
        subject: query.subject.trim().to_owned(),
        limit,
        entries,
        error,
    };
    csrf::with_cookie(render(status, &page), cookie)
}
