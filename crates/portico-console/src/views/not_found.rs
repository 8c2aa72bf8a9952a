//! Any portal path that is not a page.

use super::{render, Nav};
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use portico_core::Identity;

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage {
    nav: Nav,
}

pub async fn page(identity: Option<Extension<Identity>>) -> Response {
    let identity = identity.map(|e| e.0).unwrap_or_default();
    render(
        StatusCode::NOT_FOUND,
        &NotFoundPage {
            nav: Nav::new(&identity, ""),
        },
    )
}
