//! The portal's one stylesheet, compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;

const STYLESHEET: &str = include_str!("../../static/portico.css");

pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLESHEET,
    )
}

/// The public keys that verify `X-Portico-Assertion` (public: it holds no secret).
pub async fn jwks(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::ConsoleState>>,
) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.assertions.jwks().to_owned(),
    )
}
