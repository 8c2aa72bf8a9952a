//! The portal and (later) the admin console: server-rendered pages, one file per page under
//! `views/`, each with its askama template struct beside its handler.

mod views;

use axum::routing::get;
use portico_core::{PublicUrls, SharedRoutes};
use std::sync::Arc;

/// What every page handler can read.
pub struct ConsoleState {
    pub routes: SharedRoutes,
    pub urls: PublicUrls,
}

/// The portal's routes, served by the edge for the portal host.
pub fn router(state: Arc<ConsoleState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(views::portal::page))
        .route("/_portico/portico.css", get(views::assets::stylesheet))
        .fallback(views::not_found::page)
        .with_state(state)
}
