//! `/_portico/admin/apps`: the fleet at a glance for administrators. Per app: its status,
//! restarts, each live replica with what it is doing now (sessions, open WebSockets,
//! requests in flight: from the route table, which only the running Portico knows) and the
//! last events with their reasons (from the store), and its releases, each of which can be
//! rolled back to from here.

use super::admin::{check_form, require_admin, sentence};
use super::{csrf, render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::{Identity, LiveApp};
use portico_store::{EventRow, ReleaseState, Store};
use serde::Deserialize;
use std::sync::Arc;

const PATH: &str = "/_portico/admin/apps";
/// Events shown per app.
const EVENTS: i64 = 8;
/// Replica rows read per app (the newest), enough for any `max`.
const REPLICAS: i64 = 200;
/// Releases shown per app (the newest).
const RELEASES: usize = 10;

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AppsPage {
    nav: Nav,
    apps: Vec<AppStatusView>,
    message: Option<String>,
    error: Option<String>,
}

struct AppStatusView {
    name: String,
    title: String,
    framework: String,
    status: String,
    reason: String,
    restarts: i64,
    last_restart: String,
    waiting: usize,
    replicas: Vec<ReplicaView>,
    events: Vec<EventRow>,
    releases: Vec<ReleaseView>,
}

struct ReleaseView {
    number: i64,
    state: &'static str,
    origin: String,
    by: String,
    commit: String,
    created_at: String,
    reason: String,
    /// Offered a rollback button.
    can_roll_back: bool,
}

struct ReplicaView {
    id: String,
    state: &'static str,
    pid: String,
    address: String,
    started_at: String,
    sessions: usize,
    websockets: usize,
    in_flight: usize,
    /// Per-user apps: whose private instance it is; empty otherwise.
    owner: String,
}

pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    let (identity, _) = match require_admin(&state, &headers, &identity, PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    answer(&state, &headers, &identity, StatusCode::OK, None, None).await
}

async fn answer(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let live = state.routes.load().live();
    let (apps, read_error) = match views(state.accounts.store(), &live).await {
        Ok(apps) => (apps, None),
        Err(e) => {
            tracing::error!("the status page cannot read the database: {e}");
            (
                Vec::new(),
                Some("The recorded state cannot be read right now.".to_owned()),
            )
        }
    };
    let (token, cookie) = csrf::token(state, headers);
    let page = AppsPage {
        nav: Nav::new(identity, &token),
        apps,
        message,
        error: error.or(read_error),
    };
    csrf::with_cookie(render(status, &page), cookie)
}

#[derive(Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    app: String,
    #[serde(default)]
    release: i64,
    #[serde(default)]
    csrf: String,
}

/// `POST /_portico/admin/apps/rollback`: serves an earlier release again, rolled out like a
/// deploy (nobody on the live release is cut off).
pub async fn rollback(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let (identity, admin) = match require_admin(&state, &headers, &identity, PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(error) = check_form(&state, &headers, &form.csrf) {
        return answer(
            &state,
            &headers,
            &identity,
            StatusCode::FORBIDDEN,
            None,
            Some(error),
        )
        .await;
    }
    match state
        .deployments
        .rollback(&form.app, Some(form.release))
        .await
    {
        Ok(rolled) => {
            let release = rolled.release;
            let detail = format!("to release {}", release.number);
            if let Err(e) = state
                .accounts
                .store()
                .add_audit(&admin.email, "app.rollback", Some(&form.app), &detail)
                .await
            {
                tracing::error!("cannot write the audit log: {e}");
            }
            let message = format!(
                "Rolling {} back to release {}: it goes live once its replicas are ready; sessions on the live release stay where they are.",
                form.app, release.number
            );
            answer(
                &state,
                &headers,
                &identity,
                StatusCode::OK,
                Some(message),
                None,
            )
            .await
        }
        Err(e) => {
            let error = sentence(e.to_string());
            answer(
                &state,
                &headers,
                &identity,
                StatusCode::BAD_REQUEST,
                None,
                Some(error),
            )
            .await
        }
    }
}

/// Apps in config order (those the route table has), each with its recorded history.
async fn views(store: &Store, live: &[LiveApp]) -> portico_store::Result<Vec<AppStatusView>> {
    let recorded = store.apps().await?;
    let mut views = Vec::new();
    for app in live {
        let Some(row) = recorded.iter().find(|r| r.name == app.name) else {
            continue;
        };
        let replicas = store
            .replicas(&app.name, REPLICAS)
            .await?
            .into_iter()
            .rev()
            .filter(|r| r.state.is_live())
            .map(|r| {
                let load = app.replicas.iter().find(|l| l.id == r.id);
                ReplicaView {
                    state: r.state.as_str(),
                    pid: r.pid.map(|p| p.to_string()).unwrap_or_default(),
                    address: r.endpoint.unwrap_or_default(),
                    started_at: r.started_at,
                    sessions: load.map_or(0, |l| l.sessions),
                    websockets: load.map_or(0, |l| l.websockets),
                    in_flight: load.map_or(0, |l| l.in_flight),
                    owner: r.owner.map(|o| o.email).unwrap_or_default(),
                    id: r.id,
                }
            })
            .collect();
        views.push(AppStatusView {
            name: app.name.clone(),
            title: row.title.clone(),
            framework: row.framework.clone().unwrap_or_default(),
            status: app.status.clone(),
            reason: row
                .status_reason
                .as_deref()
                .filter(|_| app.status == "failed")
                .unwrap_or_default()
                .to_owned(),
            restarts: row.restarts,
            last_restart: row
                .last_restart_reason
                .as_deref()
                .map(|r| r.lines().next().unwrap_or(r).to_owned())
                .unwrap_or_default(),
            waiting: app.waiting,
            replicas,
            events: store.events(&app.name, EVENTS).await?,
            releases: store
                .releases(&app.name)
                .await?
                .into_iter()
                .take(RELEASES)
                .map(|r| ReleaseView {
                    number: r.number,
                    state: r.state.as_str(),
                    can_roll_back: r.state == ReleaseState::Superseded,
                    origin: r.origin,
                    by: r.deployed_by.unwrap_or_else(|| "(config)".into()),
                    commit: r
                        .commit_id
                        .map(|c| c.chars().take(10).collect())
                        .unwrap_or_default(),
                    created_at: r.created_at,
                    reason: r
                        .reason
                        .as_deref()
                        .and_then(|r| r.lines().next())
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect(),
        });
    }
    Ok(views)
}
