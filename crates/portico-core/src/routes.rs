//! The route table: what the request path knows about each app. The fleet publishes a new
//! immutable snapshot whenever a replica becomes ready or goes away; the edge reads the
//! current snapshot without locks or database round-trips.

use crate::model::{AppStatus, Framework, MountStyle};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One app as the edge and the portal see it.
#[derive(Debug, Clone)]
pub struct AppRoute {
    pub name: Arc<str>,
    pub title: Arc<str>,
    pub description: Arc<str>,
    pub framework: Option<Framework>,
    pub status: AppStatus,
    pub mount: MountStyle,
    /// Ready replicas; empty while none is ready.
    pub endpoints: Arc<[Endpoint]>,
    /// Who may open it.
    pub access: Arc<crate::access::Access>,
    /// Which addresses may reach it.
    pub firewall: Arc<crate::IpRules>,
    /// Largest request body accepted for it.
    pub max_body_bytes: u64,
    /// `Content-Security-Policy: frame-ancestors …` added to its responses (who may frame
    /// it), shared so that adding it copies nothing; `None`: anyone may.
    pub frame_policy: Option<bytes::Bytes>,
}

/// A ready replica as the edge sees it. Its load is shared by every snapshot of the table,
/// so counting it never writes the table.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub replica: Arc<str>,
    pub addr: SocketAddr,
    pub load: Arc<ReplicaLoad>,
}

impl Endpoint {
    pub fn new(replica: &str, addr: SocketAddr) -> Endpoint {
        Endpoint {
            replica: replica.into(),
            addr,
            load: Arc::default(),
        }
    }
}

/// What a replica is doing right now, counted by the edge: the balancer sends new sessions
/// to the least loaded replica, and the autoscaler reads the sessions.
#[derive(Debug, Default)]
pub struct ReplicaLoad {
    /// Requests being forwarded (until their response headers arrive).
    pub in_flight: AtomicUsize,
    /// Open WebSockets.
    pub websockets: AtomicUsize,
}

impl ReplicaLoad {
    pub fn total(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) + self.websockets.load(Ordering::Relaxed)
    }
}

/// Counts one unit of load while alive (a request in flight, an open WebSocket).
#[derive(Debug)]
pub struct LoadGuard {
    load: Arc<ReplicaLoad>,
    websocket: bool,
}

impl LoadGuard {
    pub fn request(load: &Arc<ReplicaLoad>) -> LoadGuard {
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        LoadGuard {
            load: load.clone(),
            websocket: false,
        }
    }

    pub fn websocket(load: &Arc<ReplicaLoad>) -> LoadGuard {
        load.websockets.fetch_add(1, Ordering::Relaxed);
        LoadGuard {
            load: load.clone(),
            websocket: true,
        }
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let counter = if self.websocket {
            &self.load.websockets
        } else {
            &self.load.in_flight
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An immutable snapshot of every app's route.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    apps: HashMap<Arc<str>, Arc<AppRoute>>,
    /// Config order, so that the portal lists apps the way the operator wrote them.
    order: Vec<Arc<str>>,
}

impl RouteTable {
    pub fn new(routes: Vec<AppRoute>) -> RouteTable {
        let order = routes.iter().map(|r| r.name.clone()).collect();
        let apps = routes
            .into_iter()
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect();
        RouteTable { apps, order }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<AppRoute>> {
        self.apps.get(name)
    }

    /// Apps in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<AppRoute>> {
        self.order.iter().filter_map(|name| self.apps.get(name))
    }

    /// A copy of this table with one app's route replaced through `change`.
    pub fn with_app(&self, name: &str, change: impl FnOnce(&mut AppRoute)) -> RouteTable {
        let mut next = self.clone();
        if let Some(route) = next.apps.get_mut(name) {
            change(Arc::make_mut(route));
        }
        next
    }
}

/// The shared, atomically swapped route table.
pub type SharedRoutes = Arc<ArcSwap<RouteTable>>;

/// Applies `change` to one app in the shared table (retrying if another writer raced).
pub fn update_app(routes: &SharedRoutes, name: &str, change: impl Fn(&mut AppRoute)) {
    routes.rcu(|table| table.with_app(name, &change));
}
