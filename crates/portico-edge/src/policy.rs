//! May this identity use this app? Until sign-in arrives every request is anonymous and every
//! app is open; per-app access rules (public, signed-in, users, groups) plug in here.

use portico_core::{AppRoute, Identity};

pub fn allows(_identity: &Identity, _route: &AppRoute) -> bool {
    true
}
