//! Choosing a ready replica for a request: the one the client is stuck to while it is
//! ready (even one of an earlier release that is draining after a deploy), otherwise the
//! least loaded replica of the current release (open WebSockets plus requests in flight),
//! ties taken in turn so that idle replicas share new sessions evenly.

use portico_core::{AppRoute, Endpoint};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub struct Balancer {
    next: AtomicUsize,
}

impl Balancer {
    /// The endpoint for this request; `sticky` is the replica the client was sent to before.
    /// `None` when no replica is ready.
    pub fn pick<'a>(&self, route: &'a AppRoute, sticky: Option<&str>) -> Option<&'a Endpoint> {
        let endpoints = &route.endpoints;
        if let Some(id) = sticky {
            if let Some(endpoint) = endpoints.iter().find(|e| &*e.replica == id) {
                return Some(endpoint);
            }
        }
        let current = |e: &&Endpoint| e.takes_new_sessions(route);
        match endpoints.len() {
            0 => None,
            1 => endpoints.first().filter(current),
            n => {
                let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
                (0..n)
                    .map(|i| &endpoints[(start + i) % n])
                    .filter(current)
                    .min_by_key(|e| e.load.total())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::LoadGuard;

    fn route(replicas: &[&str]) -> AppRoute {
        crate::test_route(
            portico_core::AppStatus::Running,
            replicas
                .iter()
                .enumerate()
                .map(|(i, id)| Endpoint::new(id, ([127, 0, 0, 1], 9000 + i as u16).into()))
                .collect(),
        )
    }

    #[test]
    fn sticky_clients_keep_their_replica_and_new_ones_go_to_the_least_loaded() {
        let route = route(&["a", "b", "c"]);
        let balancer = Balancer::default();
        let busy_a = LoadGuard::websocket(&route.endpoints[0].load);
        let busy_b = LoadGuard::websocket(&route.endpoints[1].load);
        for _ in 0..5 {
            assert_eq!(&*balancer.pick(&route, None).unwrap().replica, "c");
        }
        assert_eq!(&*balancer.pick(&route, Some("a")).unwrap().replica, "a");
        assert_eq!(
            &*balancer.pick(&route, Some("gone")).unwrap().replica,
            "c",
            "a replica that went away is replaced by the least loaded"
        );
        drop((busy_a, busy_b));
        let chosen: std::collections::HashSet<_> = (0..6)
            .map(|_| balancer.pick(&route, None).unwrap().replica.clone())
            .collect();
        assert_eq!(chosen.len(), 3, "idle replicas share new sessions");
        assert!(balancer.pick(&self::route(&[]), None).is_none());
    }

    #[test]
    fn after_a_deploy_new_sessions_go_to_the_new_release_and_old_ones_stay() {
        let mut route = route(&["v1", "v2"]);
        let mut endpoints = route.endpoints.to_vec();
        endpoints[0].release = 1;
        endpoints[1].release = 2;
        route.endpoints = endpoints.into();
        route.current_release = 2;
        let balancer = Balancer::default();
        let busy_v2 = LoadGuard::websocket(&route.endpoints[1].load);
        for _ in 0..4 {
            assert_eq!(
                &*balancer.pick(&route, None).unwrap().replica,
                "v2",
                "the idle old replica takes no new session"
            );
        }
        drop(busy_v2);
        assert_eq!(&*balancer.pick(&route, Some("v1")).unwrap().replica, "v1");
        route.endpoints = route.endpoints[..1].to_vec().into();
        assert!(
            balancer.pick(&route, None).is_none(),
            "with only the old release ready, a new session waits for the new one"
        );
    }
}
