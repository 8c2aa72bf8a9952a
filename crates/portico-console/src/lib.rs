//! The portal and (later) the admin console: server-rendered pages, one file per page under
//! `views/`, each with its askama template struct beside its handler.

pub mod api;
mod views;

use axum::routing::get;
use portico_core::{MfaPolicy, PublicUrls, SharedRoutes};
use portico_identity::sso::flows::SsoFlows;
use portico_identity::sso::ldap::LdapProvider;
use portico_identity::sso::oidc::OidcProvider;
use portico_identity::sso::saml::SamlProvider;
use portico_identity::web::CookieRules;
use portico_identity::{
    Accounts, AssertionSigner, Handoffs, Links, Mailer, Mfa, PendingSignIns, SecretBox, Sessions,
    Throttle,
};
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
    pub mfa: Mfa,
    pub mfa_policy: MfaPolicy,
    pub pending: PendingSignIns,
    pub links: Links,
    /// `None` without `[smtp]`: no self-service password reset, invitations print links.
    pub mailer: Option<Mailer>,
    /// Whom to ask (from `[auth] contact`).
    pub contact: String,
    /// Cookie names and flags: `__Host-` and `Secure` under TLS.
    pub cookies: CookieRules,
    /// Whether Portico's own accounts may sign in with a password.
    pub password_sign_in: bool,
    /// LDAP directories, tried in order after Portico's own accounts.
    pub ldap: Vec<LdapProvider>,
    /// OpenID Connect providers, a button each on the sign-in page.
    pub oidc: Vec<Arc<OidcProvider>>,
    /// SAML identity providers, a button each too.
    pub saml: Vec<SamlProvider>,
    pub sso_flows: SsoFlows,
    /// Seals the providers' tokens kept with sessions.
    pub secrets: SecretBox,
    /// API tokens, which the REST API authenticates with.
    pub tokens: portico_identity::ApiTokens,
    /// Deploys and rollbacks.
    pub deployments: Arc<portico_fleet::Deployments>,
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
        .route(
            "/_portico/sign-in/verify",
            get(views::second_factor::form).post(views::second_factor::verify),
        )
        .route(
            "/_portico/sign-in/enrol",
            axum::routing::post(views::second_factor::enrol),
        )
        .route("/_portico/handoff", get(views::handoff::start))
        .route("/_portico/sso/{id}", get(views::sso::start))
        .route("/_portico/sso/{id}/callback", get(views::sso::callback))
        .route("/_portico/saml/{id}/metadata", get(views::saml::metadata))
        .route(
            "/_portico/saml/{id}/acs",
            axum::routing::post(views::saml::acs),
        )
        .route(
            "/_portico/welcome",
            get(views::links::welcome).post(views::links::accept_invitation),
        )
        .route(
            "/_portico/reset-password",
            get(views::links::reset).post(views::links::complete_reset),
        )
        .route(
            "/_portico/forgot-password",
            get(views::links::forgot_form).post(views::links::forgot_submit),
        )
        .route("/_portico/account", get(views::account::show))
        .route(
            "/_portico/account/password",
            axum::routing::post(views::account::change_password),
        )
        .route(
            "/_portico/account/sign-out-everywhere",
            axum::routing::post(views::account::sign_out_everywhere),
        )
        .route(
            "/_portico/account/mfa",
            get(views::account_mfa::enrolment).post(views::account_mfa::confirm),
        )
        .route(
            "/_portico/account/mfa/recovery-codes",
            axum::routing::post(views::account_mfa::new_recovery_codes),
        )
        .route(
            "/_portico/account/tokens",
            get(views::account_tokens::list).post(views::account_tokens::create),
        )
        .route(
            "/_portico/account/tokens/revoke",
            axum::routing::post(views::account_tokens::revoke),
        )
        .route(
            "/_portico/account/mfa/remove",
            axum::routing::post(views::account_mfa::remove),
        )
        .route("/_portico/admin/users", get(views::admin_users::list))
        .route(
            "/_portico/admin/users/invite",
            axum::routing::post(views::admin_users::invite),
        )
        .route(
            "/_portico/admin/users/action",
            axum::routing::post(views::admin_users::act),
        )
        .route(
            "/_portico/admin/groups",
            get(views::admin_groups::list).post(views::admin_groups::add),
        )
        .route("/_portico/admin/audit", get(views::admin_audit::list))
        .route("/_portico/admin/apps", get(views::admin_apps::page))
        .route(
            "/_portico/admin/apps/rollback",
            axum::routing::post(views::admin_apps::rollback),
        )
        .route("/_portico/portico.css", get(views::assets::stylesheet))
        .route("/_portico/auto-submit.js", get(views::assets::auto_submit))
        .route("/.well-known/portico/jwks.json", get(views::assets::jwks))
        .route(
            "/api/v1/apps/{app}/releases",
            get(api::releases::list).post(api::releases::upload),
        )
        .route(
            "/api/v1/apps/{app}/releases/{number}",
            get(api::releases::show),
        )
        .route(
            "/api/v1/apps/{app}/releases/{number}/log",
            get(api::releases::log),
        )
        .route("/git/{repo}/{*rest}", axum::routing::any(api::git::serve))
        .route(
            "/api/v1/apps/{app}/webhook",
            axum::routing::post(api::webhook::receive),
        )
        .route(
            "/api/v1/apps/{app}/rollback",
            axum::routing::post(api::releases::rollback),
        )
        .fallback(views::not_found::page)
        .with_state(state)
}
