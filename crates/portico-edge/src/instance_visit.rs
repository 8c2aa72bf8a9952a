//! Administrators opening someone's private instance (per-user apps with
//! `per_user.admin_access = true`): `/_portico/instance/<replica>` on the app's host sticks
//! the administrator's browser to that instance (the replica cookie, signed as ever), and
//! `/_portico/instance/mine` takes them back to their own. Every opening is audited; without
//! the setting, or for anyone but an administrator, the answer is 403.

use crate::body::ProxyBody;
use crate::pages::Page;
use crate::signin::see_other;
use crate::sticky::Sticky;
use http::{header, HeaderMap, Response, StatusCode};
use portico_core::{AppRoute, User};
use portico_identity::AuditSink;

/// Where, on a per-user app's host, an administrator opens an instance.
pub const INSTANCE_PREFIX: &str = "/_portico/instance/";

/// The answer to `GET /_portico/instance/<which>` from signed-in `user`.
pub fn open(
    which: &str,
    headers: &HeaderMap,
    user: &User,
    route: &AppRoute,
    sticky: &Sticky,
    audit: &AuditSink,
    portal: &str,
) -> Response<ProxyBody> {
    let refuse = |status, heading: &str, message: &str| {
        Page {
            status,
            heading,
            message,
            hint: "",
            refresh: None,
        }
        .render(portal)
    };
    // Another site must not move an administrator into someone's instance behind their back.
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site {
        return refuse(
            StatusCode::FORBIDDEN,
            "Link refused",
            "Open instances from Portico's status page, not from another site.",
        );
    }
    if which == "mine" {
        let mut response = see_other("/");
        if let Some(cookie) = sticky.clear_cookie(&route.name) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        return response;
    }
    if !(user.admin && route.admin_access) {
        audit.access_denied(&user.email, &route.name, "someone else's instance");
        return refuse(
            StatusCode::FORBIDDEN,
            "This instance is not yours",
            "Only its owner opens a private instance; administrators may where the app allows it (per_user.admin_access).",
        );
    }
    let Some(endpoint) = route
        .endpoints
        .iter()
        .find(|e| *e.replica == *which && e.owner.is_some())
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            "No such instance is running",
            "It may have been stopped for being idle; `portico replicas` lists those running.",
        );
    };
    let detail = format!(
        "replica {} of user {}",
        endpoint.replica,
        endpoint.owner.unwrap_or_default()
    );
    audit.instance_opened(&user.email, &route.name, &detail);
    let mut response = see_other("/");
    if let Some(cookie) = sticky.set_cookie(&route.name, &endpoint.replica, rand::random()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
