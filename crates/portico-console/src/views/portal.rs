//! `/`: the dashboards a person may open, with their status and both addresses.

use super::render;
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use portico_core::AppStatus;
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
    apps: Vec<AppCard>,
    running: usize,
}

pub async fn page(State(state): State<Arc<ConsoleState>>) -> Response {
    let table = state.routes.load();
    let apps: Vec<AppCard> = table
        .iter()
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
                AppStatus::Failed(_) => "Unavailable".into(),
            },
            host_url: state.urls.app_host(&route.name),
            path_url: state.urls.app_path(&route.name),
        })
        .collect();
    let running = apps.iter().filter(|a| a.status == "running").count();
    render(StatusCode::OK, &PortalPage { apps, running })
}
