//! Phase 4: may this identity use this app? The app's access rule decides (see
//! `portico_core::access`); admins may open everything.

use portico_core::{AppRoute, Decision, Identity};

pub fn decide(identity: &Identity, route: &AppRoute) -> Decision {
    route.access.decide(identity)
}
