//! `/`: the dashboards a person may open, with their status and both addresses.

use super::{csrf, render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use portico_core::{AppStatus, Decision, Identity};
use std::sync::Arc;

struct AppCard {
    name: String,
    title: String,
    description: String,
    framework: String,
    /// running, starting, building, failed, stopped: also the CSS class.
    status: &'static str,
    status_text: String,
    host_url: String,
    path_url: String,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    nav: Nav,
    apps: Vec<AppCard>,
    running: usize,
    signed_in: bool,
    /// Apps an anonymous visitor would see after signing in.
    hidden: usize,
}

/// Lists only the apps this person may open: a dashboard they may not use is neither listed
/// nor reachable.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    let identity = identity.map(|e| e.0).unwrap_or_default();
    let table = state.routes.load();
    let hidden = table
        .iter()
        .filter(|r| r.access.decide(&identity) == Decision::SignIn)
        .count();
    let apps: Vec<AppCard> = table
        .iter()
        .filter(|route| route.access.decide(&identity) == Decision::Allow)
        .map(|route| AppCard {
            name: route.name.to_string(),
            title: route.title.to_string(),
            description: route.description.to_string(),
            framework: route
                .framework
                .map(|f| f.display_name().to_owned())
                .unwrap_or_default(),
            status: route.status.label(),
            status_text: match &route.status {
                AppStatus::Running => "Running".into(),
                AppStatus::Starting => "Starting…".into(),
                AppStatus::Building => "Preparing…".into(),
                AppStatus::Stopped => "Stopped".into(),
                AppStatus::Sleeping => "Starts when opened".into(),
                AppStatus::Failed(_) => "Unavailable".into(),
            },
            host_url: state.urls.app_host(&route.name),
            path_url: state.urls.app_path(&route.name),
        })
        .collect();
    let running = apps.iter().filter(|a| a.status == "running").count();
    let (token, cookie) = csrf::token(&state, &headers);
    let page = PortalPage {
        nav: Nav::new(&identity, &token),
        apps,
        running,
        signed_in: identity.user().is_some(),
        hidden,
    };
    csrf::with_cookie(render(StatusCode::OK, &page), cookie)
}
