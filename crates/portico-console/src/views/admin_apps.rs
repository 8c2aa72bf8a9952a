//! `/_portico/admin/apps`: the fleet at a glance for administrators. Per app: its status,
//! restarts, each live replica with what it is doing now (sessions, open WebSockets,
//! requests in flight: from the route table, which only the running Portico knows) and the
//! last events with their reasons (from the store).

use super::admin::require_admin;
use super::{csrf, render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use portico_core::{Identity, LiveApp};
use portico_store::{EventRow, Store};
use std::sync::Arc;

const PATH: &str = "/_portico/admin/apps";
/// Events shown per app.
const EVENTS: i64 = 8;
/// Replica rows read per app (the newest), enough for any `max`.
const REPLICAS: i64 = 200;

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AppsPage {
    nav: Nav,
    apps: Vec<AppStatusView>,
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
    let live = state.routes.load().live();
    let (apps, error) = match views(state.accounts.store(), &live).await {
        Ok(apps) => (apps, None),
        Err(e) => {
            tracing::error!("the status page cannot read the database: {e}");
            (
                Vec::new(),
                Some("The recorded state cannot be read right now.".to_owned()),
            )
        }
    };
    let (token, cookie) = csrf::token(&state, &headers);
    let page = AppsPage {
        nav: Nav::new(&identity, &token),
        apps,
        error,
    };
    csrf::with_cookie(render(StatusCode::OK, &page), cookie)
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
        });
    }
    Ok(views)
}
