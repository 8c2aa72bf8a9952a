//! The portal's stylesheet and its one script, compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;

const STYLESHEET: &str = include_str!("../../static/portico.css");
const AUTO_SUBMIT: &str = include_str!("../../static/auto-submit.js");

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
/// The one script: submits the SAML POST binding's form (a file, not inline, so the pages'
/// Content-Security-Policy can forbid inline scripts).
pub async fn auto_submit() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        AUTO_SUBMIT,
    )
}

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
