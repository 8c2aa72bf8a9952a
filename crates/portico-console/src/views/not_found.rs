//! Any portal path that is not a page.

use super::render;
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage;

pub async fn page() -> Response {
    render(StatusCode::NOT_FOUND, &NotFoundPage)
}
