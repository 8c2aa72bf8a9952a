//! Portico's edge: the listener and the life of a request.
//!
//! ```text
//! accept ─▶ request_filter ─▶ identity ─▶ router ─▶ policy ─▶ balancer ─▶ proxy ─▶ replica
//!           bad paths,        (anonymous  host/path  (allow    ready        HTTP and
//!           spoofed headers    for now)   → target    all)     endpoint     WebSocket
//! ```
//!
//! `lifecycle::handle` calls these phases in this order; each lives in its own module.
//! The request path reads only the route table snapshot and in-memory state: never the store.

pub mod acme;
mod balancer;
mod body;
mod guards;
mod hop;
mod identity;
mod identity_headers;
mod instance_visit;
mod lifecycle;
mod limits;
mod listener;
mod pages;
mod policy;
mod pool;
mod proxy;
mod refusals;
mod request_filter;
mod router;
mod signin;
mod splice;
mod sticky;
mod telemetry;
pub mod tls;

pub use body::ProxyBody;
pub use guards::GuardConfig;
pub use lifecycle::{Edge, EdgeOptions, ListenerKind};
pub use listener::{bind, serve, BindError, ListenerSettings};
pub use proxy::UpstreamTimeouts;
pub use telemetry::install_metrics_recorder;

/// The route the unit tests share: a public app "sales" with these endpoints.
#[cfg(test)]
pub(crate) fn test_route(
    status: portico_core::AppStatus,
    endpoints: Vec<portico_core::Endpoint>,
) -> portico_core::AppRoute {
    portico_core::AppRoute {
        name: "sales".into(),
        title: "Sales".into(),
        description: "".into(),
        framework: None,
        status,
        endpoints: endpoints.into(),
        current_release: 0,
        access: std::sync::Arc::new(portico_core::Access::Public),
        owners: Default::default(),
        firewall: Default::default(),
        max_body_bytes: u64::MAX,
        frame_policy: None,
        demand: Default::default(),
        start_wait: std::time::Duration::from_secs(60),
        per_user: false,
        admin_access: false,
    }
}
