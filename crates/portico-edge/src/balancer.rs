//! Choosing a ready replica for a request. With one replica per app this is trivial; it is
//! its own phase because replicas, stickiness and least-busy choice arrive here later.

use portico_core::AppRoute;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub struct Balancer {
    next: AtomicUsize,
}

impl Balancer {
    /// A ready endpoint of the app, round-robin; `None` when no replica is ready.
    pub fn pick(&self, route: &AppRoute) -> Option<SocketAddr> {
        match route.endpoints.len() {
            0 => None,
            1 => Some(route.endpoints[0]),
            n => Some(route.endpoints[self.next.fetch_add(1, Ordering::Relaxed) % n]),
        }
    }
}
