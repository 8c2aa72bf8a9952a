//! Pages the edge answers with itself: what happened, and what the person can do about it.
//! One template for all of them, so every error looks and reads the same.

use crate::body::{full, ProxyBody};
use askama::Template;
use http::{header, HeaderValue, Response, StatusCode};

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
    hint: &'a str,
    /// Seconds after which the page reloads itself (for "starting" pages).
    refresh: Option<u32>,
    portal: &'a str,
    /// For the page shown while an app starts: the script that waits for it.
    script: Option<&'static str>,
}

/// Asks the edge (with [`WAIT_HEADER`]) to answer once the app is ready, then reloads: the
/// browser waits on one held request instead of polling. Any other answer (the wait timed
/// out, the app failed) reloads after a pause, showing whatever is true then.
const WAITING_SCRIPT: &str = "fetch(location.href,{headers:{'Portico-Wait':'1'},cache:'no-store',credentials:'same-origin'}).then(function(r){if(r.status===204){location.reload();}else{setTimeout(function(){location.reload();},2000);}},function(){setTimeout(function(){location.reload();},2000);});";

/// Sent by the waiting page's script: answer 204 when a replica is ready, do not forward.
pub const WAIT_HEADER: &str = "portico-wait";

/// The waiting page's policy: [`PAGE_POLICY`] plus its one inline script, by hash.
static WAITING_POLICY: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(WAITING_SCRIPT.as_bytes()));
    let policy = PAGE_POLICY.replace(
        "script-src 'self'",
        &format!("script-src 'self' 'sha256-{hash}'"),
    );
    HeaderValue::from_str(&policy).expect("the policy is ASCII")
});

/// A page for a person, with an HTTP status a program can act on.
pub struct Page<'a> {
    pub status: StatusCode,
    pub heading: &'a str,
    pub message: &'a str,
    pub hint: &'a str,
    pub refresh: Option<u32>,
}

impl Page<'_> {
    pub fn render(&self, portal: &str) -> Response<ProxyBody> {
        self.render_with(portal, None)
    }

    /// The page with the script that waits for the app and then shows it (instead of
    /// reloading every few seconds; `refresh` applies only without JavaScript).
    pub fn render_waiting(&self, portal: &str) -> Response<ProxyBody> {
        self.render_with(portal, Some(WAITING_SCRIPT))
    }

    fn render_with(&self, portal: &str, script: Option<&'static str>) -> Response<ProxyBody> {
        let html = StatusPage {
            status: self.status.as_u16(),
            heading: self.heading,
            message: self.message,
            hint: self.hint,
            refresh: self.refresh,
            portal,
            script,
        }
        .render()
        .unwrap_or_else(|_| format!("{} {}", self.status.as_u16(), self.heading));
        let mut response = Response::new(full(html));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if script.is_some() {
            headers.insert(header::CONTENT_SECURITY_POLICY, WAITING_POLICY.clone());
        }
        protect_page(headers);
        if let Some(seconds) = self.refresh {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The policy for Portico's own pages: only its own scripts (there are none inline), styles
/// (the status pages carry theirs inline, since an app's host cannot load the portal's
/// stylesheet), images and SVG QR codes; never framed, no `<base>`, no plugins.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// Security headers for a page Portico wrote (the portal's and the edge's), set unless the
/// page set its own.
pub fn protect_page(headers: &mut http::HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

pub fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub fn redirect(location: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(Vec::new()));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
