//! The portal and (later) the admin console: server-rendered pages, one file per page under
//! `views/`, each with its askama template struct beside its handler.

mod views;

use axum::routing::get;
use portico_core::{PublicUrls, SharedRoutes};
use portico_identity::{Accounts, AssertionSigner, Handoffs, Sessions, Throttle};
use std::sync::Arc;

/// What every page handler can read.
pub struct ConsoleState {
    pub routes: SharedRoutes,
    pub urls: PublicUrls,
    pub accounts: Accounts,
    pub sessions: Arc<Sessions>,
    pub handoffs: Arc<Handoffs>,
    pub assertions: Arc<AssertionSigner>,
    pub throttle: Throttle,
}

/// The portal's routes, served by the edge for the portal host. The edge puts the request's
/// `Identity` in its extensions.
pub fn router(state: Arc<ConsoleState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(views::portal::page))
        .route(
            "/_portico/sign-in",
            get(views::sign_in::form).post(views::sign_in::submit),
        )
        .route(
            "/_portico/sign-out",
            axum::routing::post(views::sign_out::submit),
        )
        .route("/_portico/handoff", get(views::handoff::start))
        .route("/_portico/account", get(views::account::show))
        .route(
            "/_portico/account/password",
            axum::routing::post(views::account::change_password),
        )
        .route(
            "/_portico/account/sign-out-everywhere",
            axum::routing::post(views::account::sign_out_everywhere),
        )
        .route("/_portico/portico.css", get(views::assets::stylesheet))
        .route("/.well-known/portico/jwks.json", get(views::assets::jwks))
        .fallback(views::not_found::page)
        .with_state(state)
}
